"""The drop rule in the alert world: who is flagged, how soon, and who is never judged.

Ivanova's history is her usual calls every working hour (20 or 2 an hour here, as the test
says); petrov is new (no baseline) and judged by the day norm, or not at all without one. The
calendar is 09:00-18:00 with lunch 13:00-14:00, Moscow time.
"""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest

from processors.alerting.conditions import judge
from processors.alerting.engine import Verdict
from processors.alerting.rules import FalseAlarms, RuleKind, RulesError, load_rules, parse_rules
from processors.alerting.situation import Situation
from salespulse.alert_model import AlertState, Notice
from tests.unit.alert_world import MSK, TODAY, World, at

DROP = """
rules:
  - {name: calls_drop, kind: drop, metric: calls_out}
"""
DROP_WITH_NORM = """
norms:
  - {metric: calls_out, per: day, at_least: 40}
rules:
  - {name: calls_drop, kind: drop, metric: calls_out}
"""


def verdicts(world: World, now: datetime) -> dict[str, Verdict]:
    situation = Situation(
        now,
        world.rules,
        world.directory,
        world.workdays,
        world.snapshot(now),
        world.baselines,
    )
    return {verdict.key: verdict for verdict in judge(situation)}


def fired(notices: list[Notice], manager: str) -> list[Notice]:
    return [n for n in notices if n.alert.manager_id == manager and n.state is AlertState.FIRING]


def test_the_rule_and_its_defaults() -> None:
    rule = parse_rules(DROP).rules[0]
    assert rule.kind is RuleKind.DROP
    assert rule.hold == timedelta(minutes=1)
    assert rule.resolve_hold == timedelta(minutes=10)
    assert rule.max_window == timedelta(hours=8)
    assert rule.min_expected == 0
    assert rule.false_alarms == FalseAlarms(1, 20)
    assert rule.false_alarms.per_working_day == pytest.approx(0.05)
    text = "rules: [{name: d, kind: drop, metric: calls_out, false_alarms: 2 per working day}]"
    assert str(parse_rules(text).rules[0].false_alarms) == "2 per working day"


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ("", "needs metric"),
        ("metric: talk_seconds", "is a duration"),
        ("metric: calls_out, window: 2h", "not window and below"),
        ("metric: calls_out, false_alarms: 1 per 20 days", "1 per 20 working days"),
        ("metric: calls_out, false_alarms: 0 per 20 working days", "positive"),
        ("metric: calls_out, max_window: 2m", "at least 5m"),
    ],
)
def test_a_drop_rule_without_sense_is_refused(fields: str, error: str) -> None:
    with pytest.raises(RulesError, match=error):
        parse_rules(f"rules: [{{name: d, kind: drop, {fields}}}]")


def test_a_usual_day_raises_nothing() -> None:
    world = World(rules_text=DROP_WITH_NORM, ivanova_per_hour=20)
    world.call_every("ivanova", at(TODAY, "09:00"), at(TODAY, "18:00"), 3)
    world.call_every("petrov", at(TODAY, "09:00"), at(TODAY, "18:00"), 12)  # the norm's 5/h
    assert world.run(at(TODAY, "08:00"), at(TODAY, "19:00")) == []


def test_a_silent_twenty_an_hour_manager_is_flagged_within_minutes() -> None:
    world = World(rules_text=DROP, ivanova_per_hour=20)
    world.call_every("ivanova", at(TODAY, "09:00"), at(TODAY, "10:30"), 3)  # last at 10:27
    notices = world.run(at(TODAY, "09:00"), at(TODAY, "12:00"))
    [alarm] = fired(notices, "ivanova")
    # 36 silent working minutes expect 12 calls; P(0 | 12) = e^-12 = 6.1e-6 is under the level
    # (1/20)/480 per minute ÷ 7 windows = 1.5e-5. Condition from 11:04, fired after the hold.
    assert alarm.at == at(TODAY, "11:05")
    alert = alarm.alert
    assert (alert.actual, alert.expected) == (0, pytest.approx(12))
    assert alert.details["working_seconds"] == "2160"
    assert alert.details["expected_from"] == "baseline"
    assert float(alert.details["tail_probability"]) == pytest.approx(6.14e-6, rel=1e-2)
    assert alert.summary_en == (
        "Anna Ivanova (Moscow sales): 0 outgoing calls in the last 36 working minutes, "
        "about 12 expected, since 11:04"
    )
    assert alert.summary_ru == (
        "Anna Ivanova (Moscow sales): исходящие звонки — 0 за последние 36 раб. мин, "
        "ожидалось около 12, с 11:04"
    )


def test_a_silent_two_an_hour_manager_is_flagged_only_after_hours() -> None:
    world = World(rules_text=DROP, ivanova_per_hour=2)
    notices = world.run(at(TODAY, "09:00"), at(TODAY, "18:00"))
    [alarm] = fired(notices, "ivanova")
    # A silent hour is 2 expected, P = e^-2 = 0.14: nothing. Only today's working time so far
    # can be rare enough: 277 working minutes (09:00-13:00, 14:00-14:37) expect 9.2, and
    # e^-9.2 = 9.8e-5 is under (1/20)/480 = 1.04e-4, the only window in the test.
    assert alarm.at == at(TODAY, "14:37")
    assert alarm.alert.details["working_seconds"] == str(277 * 60)
    assert alarm.alert.details["windows_tested"] == "1"


def test_a_quarter_of_the_usual_rate_is_flagged_within_hours() -> None:
    world = World(rules_text=DROP, ivanova_per_hour=20)
    world.call_every("ivanova", at(TODAY, "09:00"), at(TODAY, "10:00"), 3)
    world.call_every("ivanova", at(TODAY, "10:00"), at(TODAY, "18:00"), 12)  # 5 an hour
    notices = world.run(at(TODAY, "09:00"), at(TODAY, "18:00"))
    [alarm] = fired(notices, "ivanova")
    # 11:16: 6 calls in the last 75 working minutes, about 25 expected (P = 6.1e-6).
    assert alarm.at == at(TODAY, "11:17")
    assert (alarm.alert.actual, alarm.alert.expected) == (6, pytest.approx(25))


def test_nothing_is_judged_at_lunch_or_after_hours() -> None:
    world = World(rules_text=DROP, ivanova_per_hour=20)
    world.call_every("ivanova", at(TODAY, "09:00"), at(TODAY, "12:45"), 3)  # last at 12:42
    notices = world.run(at(TODAY, "09:00"), at(TODAY, "14:59"))
    # Silent working minutes from 12:43: 17 before lunch, none at lunch, 19 after it make the
    # 36 that expect 12 at 14:19; it fires after the minute's hold, with the facts of 14:20:
    # the 36 working minutes before it began at 12:44.
    [alarm] = fired(notices, "ivanova")
    assert alarm.at == at(TODAY, "14:20")
    assert alarm.alert.details["window_start"] == at(TODAY, "12:44").isoformat()
    for moment in (at(TODAY, "13:30"), at(TODAY, "19:00"), at(date(2026, 11, 28), "11:00")):
        assert verdicts(world, moment)["calls_drop/manager/ivanova"].breached is None


def test_a_manager_with_no_expectation_is_never_judged() -> None:
    world = World(rules_text=DROP)  # no norm, and petrov is too new for a baseline
    for hhmm in ("09:30", "12:00", "17:59"):
        assert verdicts(world, at(TODAY, hhmm))["calls_drop/manager/petrov"].breached is None
    assert fired(world.run(at(TODAY, "09:00"), at(TODAY, "18:00")), "petrov") == []


def test_a_new_manager_is_held_against_the_norm() -> None:
    world = World(rules_text=DROP_WITH_NORM)
    # 40 a day over 8 working hours is 5 an hour; silent all day, today's working time so far
    # expects 9.25 at 10:51 (111 minutes), e^-9.25 = 9.6e-5 under (1/20)/480 = 1.04e-4.
    notices = world.run(at(TODAY, "09:00"), at(TODAY, "18:00"))
    [alarm] = fired(notices, "petrov")
    assert alarm.alert.details["expected_from"] == "norm"
    assert alarm.at == at(TODAY, "10:52")
    assert alarm.alert.since.astimezone(MSK).strftime("%H:%M") == "10:51"


def test_the_example_rules_file_ships_the_drop_rule_and_its_dip_alternative_commented() -> None:
    path = Path(__file__).parents[2] / "salespulse" / "examples" / "alerts.example.yaml"
    text = path.read_text()
    [drop] = [rule for rule in load_rules(path).rules if rule.kind is RuleKind.DROP]
    assert drop.name == "outgoing_calls_drop"
    assert drop.false_alarms == FalseAlarms(1, 20)
    assert drop.dispersion is None  # each manager's own, measured
    assert all(rule.kind is not RuleKind.DIP for rule in load_rules(path).rules)
    enabled = text.replace("  # - name: outgoing_calls_dip", "  - name: outgoing_calls_dip")
    enabled = re.sub(r"(?m)^  #   (\w+: )", r"    \1", enabled)
    [dip] = [rule for rule in parse_rules(enabled).rules if rule.kind is RuleKind.DIP]
    assert (dip.name, dip.below) == ("outgoing_calls_dip", 0.5)


def test_calls_again_resolve_the_drop_after_the_resolve_hold() -> None:
    world = World(rules_text=DROP, ivanova_per_hour=20)
    world.call_every("ivanova", at(TODAY, "09:00"), at(TODAY, "10:30"), 3)
    world.call_every("ivanova", at(TODAY, "11:15"), at(TODAY, "18:00"), 3)
    notices = world.run(at(TODAY, "09:00"), at(TODAY, "18:30"))
    assert [(n.state, n.at) for n in notices] == [
        (AlertState.FIRING, at(TODAY, "11:05")),
        (AlertState.RESOLVED, at(TODAY, "11:29")),
    ]
    # From 11:19, with the calls of 11:15 and 11:18, the rarest window is the 48 minutes
    # from 10:31: 2 calls against 16, P = 145 e^-16 = 1.6e-5, no longer under 1.49e-5.
    # Clear for the 10 minutes of resolve_hold, it resolves at 11:29.
    assert notices[1].reason == "recovered"
