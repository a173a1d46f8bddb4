"""Verdicts given again while they cannot turn into breaches change no notice.

Each world runs twice over a working day, a tick every 30 seconds: judging everything every
time, and as the evaluator does, giving again the verdicts of the quiet book.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from salespulse.activity import OpenTask
from tests.unit.alert_world import TODAY, World, at

RULES = """
norms:
  - {metric: calls_out, per: day, at_least: 40}
  - {metric: calls_out, per: week, at_least: 200}
rules:
  - {name: calls_dip, kind: dip, metric: calls_out, window: 2h, below: 0.5, hold: 15m,
     resolve_hold: 10m, min_expected: 4}
  - {name: idle, kind: inactivity, idle: 45m, metrics: [calls_out]}
  - {name: day_pace, kind: pace, metric: calls_out, below: 0.8, after: 2h, hold: 30m}
  - {name: week_pace, kind: pace, metric: calls_out, per: week, below: 1.0, after: 16h}
  - {name: busy, kind: threshold, metric: calls_out, window: 30m, at_least: 4}
  - {name: overdue, kind: overdue_task, grace: 15m}
  - {name: team_dip, kind: department_dip, metric: calls_out, window: 2h, below: 0.6}
"""


def usual_then_quiet(world: World) -> None:
    world.usual_day("petrov")
    world.call_every("ivanova", at(TODAY, "09:00"), at(TODAY, "11:00"), 6)
    world.call_every("ivanova", at(TODAY, "14:30"), at(TODAY, "15:00"), 3)
    world.call_every("ivanova", at(TODAY, "16:00"), at(TODAY, "16:20"), 1.5)
    # A record stamped ahead of the clock enters the counts when its minute comes.
    world.calls["ivanova"].append(at(TODAY, "17:10"))
    world.tasks.append(OpenTask("T-1", "ivanova", "msk", at(TODAY, "15:00"), at(TODAY, "08:00")))


def silent(world: World) -> None:
    world.call_every("petrov", at(TODAY, "10:00"), at(TODAY, "10:30"), 2)


@pytest.mark.parametrize("fill", [usual_then_quiet, silent])
def test_the_quiet_book_changes_no_notice(fill: object) -> None:
    notices = []
    for quiet in (False, True):
        world = World(rules_text=RULES)
        if not quiet:
            world.quiet = None
        fill(world)  # type: ignore[operator]
        notices.append(world.run(at(TODAY, "08:50"), at(TODAY, "18:10"), timedelta(seconds=30)))
    assert notices[0], "the day must raise something for the comparison to mean anything"
    assert notices[1] == notices[0]
