"""The drop rule's judgement of one manager's metric at an instant, for the rule and the page.

The windows of working time ending at the last whole minute, each with the count it holds and
the count expected there, judged by ``poisson.scan`` (with the manager's measured dispersion,
or the rule's) at the level the false-alarm budget sets
for each of the day's working minutes (``docs/alerts.md``, the ``drop`` rule). The ``drop``
rule (``judge_activity.drop``) and the head of sales' page (``today.py``) both call ``judge_drop``,
so that a cell the page marks as dipping is a drop the rule finds on the same inputs.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from processors.alerting import poisson
from processors.alerting.expectation import Expected
from processors.alerting.rules import Rule
from processors.alerting.workdays import Workdays, local_midnight
from salespulse.activity import ActivitySnapshot

# The working-time lengths a drop rule looks back over, in minutes: about a third longer each,
# so that a silence is judged over a window close to its own length (the window in the message)
# while the number of windows, the Bonferroni factor, stays small.
DROP_WINDOWS: tuple[int, ...] = (
    *(5, 6, 8, 10, 12, 15, 20, 24, 30, 36, 48, 60, 75, 90, 120, 150, 180, 240, 300),
    *(360, 480, 600, 720, 960, 1200, 1440),
)

# The count a manager was expected to reach in [start, end), or None without baseline or norm.
Expect = Callable[[datetime, datetime], Expected | None]


@dataclass(frozen=True, slots=True)
class DropWindow:
    """A window of working time from ``start`` to the judged minute: ``worked`` working
    seconds, ``observed`` events in it, ``expected`` there."""

    start: datetime
    worked: float
    observed: int
    expected: Expected


@dataclass(frozen=True, slots=True)
class DropFinding:
    """One judgement. ``breached`` is None when nothing could be judged: neither baseline nor
    norm, no working time today, or no window expecting enough yet for any count to be rare.
    When it is True, ``window`` is the window with the smallest tail probability, ``log_p``
    that probability's log and ``log_threshold`` the per-window level's (alpha/m)."""

    breached: bool | None
    tested: int = 0
    window: DropWindow | None = None
    log_p: float | None = None
    log_threshold: float | None = None
    dispersion: float = 1.0

    @property
    def tail_probability(self) -> float | None:
        return math.exp(self.log_p) if self.log_p is not None else None

    @property
    def threshold(self) -> float | None:
        return math.exp(self.log_threshold) if self.log_threshold is not None else None


def judge_drop(
    workdays: Workdays,
    snapshot: ActivitySnapshot,
    manager_id: str,
    department_id: str,
    zone: ZoneInfo,
    now: datetime,
    rule: Rule,
    expect: Expect,
) -> DropFinding:
    """The windows of ``rule.metric`` ending at the last whole minute before ``now`` against the
    Poisson counts their expectations allow, at ``rule.false_alarms`` spread over the working
    minutes of the manager's local today. Whether the manager works at ``now`` is the caller's
    to ask (neither the rule nor the page judges outside working time)."""
    assert rule.metric is not None
    args = (manager_id, department_id, zone)
    today = now.astimezone(zone).date()
    day_start = local_midnight(today, zone)
    # One judgement a minute: the budget is spent per working minute of the day. A record of
    # the minute under way already counts (it can only make the count less alarming).
    end = now.replace(second=0, microsecond=0)
    tomorrow = local_midnight(today + timedelta(days=1), zone)
    day_minutes = workdays.seconds(*args, day_start, tomorrow) / 60
    if day_minutes <= 0:
        return DropFinding(None)
    alpha = poisson.evaluation_alpha(rule.false_alarms.per_working_day, day_minutes)
    first_work = workdays.first_start(*args, today)

    def start_of(minutes: float) -> datetime:
        start = workdays.window_start(*args, end, timedelta(minutes=minutes), day_start)
        if start == day_start and first_work is not None:
            # Today so far: from the start of work, so that calls before it are not counted
            # against an expectation that leaves them out (nor shown as a window from midnight).
            start = max(start, first_work)
        return start

    longest = rule.max_window.total_seconds() / 60
    if _too_small(workdays, args, start_of(longest), end, rule, expect, alpha):
        return DropFinding(None)
    lengths = [minutes for minutes in DROP_WINDOWS if minutes < longest] + [longest]
    windows: list[DropWindow] = []
    for minutes in lengths:
        start = start_of(minutes)
        if windows and start >= windows[-1].start:
            break  # today's working time so far is shorter than this window: it was the last
        worked = workdays.seconds(*args, start, end)
        if worked <= 0:
            break
        expected = expect(start, end)
        if expected is None:
            return DropFinding(None)  # nothing to hold this manager against
        observed = snapshot.count(manager_id, rule.metric, start, now)
        windows.append(DropWindow(start, worked, observed, expected))
    judged = [w for w in windows if w.expected.count >= rule.min_expected]
    dispersion = _dispersion(rule, judged)
    found = poisson.scan([(w.observed, w.expected.count) for w in judged], alpha, dispersion)
    if found.tested == 0:
        return DropFinding(None)
    if not found.breached:
        return DropFinding(
            False, found.tested, log_threshold=found.log_threshold, dispersion=dispersion
        )
    assert found.index is not None
    return DropFinding(
        True, found.tested, judged[found.index], found.log_p, found.log_threshold, dispersion
    )


def _dispersion(rule: Rule, windows: list[DropWindow]) -> float:
    """The rule's ``dispersion`` when it sets one, else the manager's measured one (the largest
    among the windows, should a window held against the norm carry another)."""
    if rule.dispersion is not None:
        return rule.dispersion
    return max((window.expected.dispersion for window in windows), default=1.0)


def _too_small(
    workdays: Workdays,
    args: tuple[str, str, ZoneInfo],
    start: datetime,
    end: datetime,
    rule: Rule,
    expect: Expect,
    alpha: float,
) -> bool:
    """Whether the longest window, from ``start``, settles that no window can be tested: it has
    no working time, or it is held against a baseline (so every shorter window is too, over
    part of its hours, and expects no more) and expects under ``min_expected`` or no more than
    the least a window must expect before nothing observed in it would be rare enough at
    alpha (``poisson.testable_count`` with m = 1). The usual case for small counts, settled in
    one look instead of one per window."""
    if workdays.seconds(*args, start, end) <= 0:
        return True
    whole = expect(start, end)
    if whole is None or whole.source != "baseline":
        return False  # judged window by window, as a norm's windows may mix with baselines
    dispersion = whole.dispersion if rule.dispersion is None else rule.dispersion
    floor = poisson.log_floor(whole.count, dispersion)
    return whole.count < rule.min_expected or floor >= math.log(alpha)
