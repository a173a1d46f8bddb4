"""The rules on a manager's (or a department's) activity against what was expected of it: the
dip (``dip``, for a manager and for a department as a whole), the drop (``drop``) and the pace
towards the period's norm (``pace``). ``docs/alerts.md`` has each rule's exact meaning.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime, timedelta

from processors.alerting import messages
from processors.alerting.drop import judge_drop
from processors.alerting.engine import Verdict
from processors.alerting.expectation import Expected, projected_total
from processors.alerting.judge_shared import (
    FOREVER,
    Judged,
    after,
    alert_draft,
    expected_count_once,
)
from processors.alerting.rules import Period, Rule
from processors.alerting.situation import Situation, Subject
from processors.alerting.workdays import local_midnight


def dip(situation: Situation, rule: Rule, subject: Subject, key: str) -> Judged:
    assert rule.metric is not None
    assert rule.window is not None
    assert rule.below is not None
    metric, now, workdays = rule.metric, situation.now, situation.workdays
    start = workdays.window_start(
        subject.manager_id, subject.department.id, subject.zone, now, rule.window, subject.day_start
    )
    worked = workdays.seconds(subject.manager_id, subject.department.id, subject.zone, start, now)
    if worked < rule.window.total_seconds() / 2:
        # Too early in the day to speak of a dip; working time grows no faster than the clock.
        return Verdict(key, rule, None), after(now, rule.window.total_seconds() / 2 - worked)
    people = (subject.manager,) if subject.manager is not None else subject.members
    actual, expected, sources = 0, 0.0, set()
    for person in people:
        assert person is not None
        found = expected_count_once(situation, person, subject, metric, start, now)
        if found is None:
            continue  # nothing to hold this person against: neither history nor norm
        expected += found.count
        sources.add(found.source)
        actual += situation.snapshot.count(person.id, metric, start, now)
    if not sources:
        return Verdict(key, rule, None), None
    if expected <= rule.min_expected:
        return Verdict(key, rule, False), None
    breached = actual < rule.below * expected
    details = {
        "window_start": start.isoformat(),
        "working_seconds": f"{worked:.0f}",
        "expected_from": "+".join(sorted(sources)),
    }
    # The facts of an alert are needed only when it may fire.
    draft = (
        alert_draft(situation, rule, subject, key, metric, actual, expected, now, details)
        if breached
        else None
    )

    def describe(since: datetime) -> messages.Text:
        return messages.dip(subject.who, metric, actual, expected, worked, subject.clock(since))

    return Verdict(key, rule, breached, draft, describe), None


def drop(situation: Situation, rule: Rule, subject: Subject, key: str) -> Judged:
    """The count of the windows of working time ending at the last whole minute against the
    Poisson counts their expectations allow, at the level the false-alarm budget sets for each
    of the day's working minutes (``docs/alerts.md``, the drop rule; ``drop.judge_drop``, which
    the head of sales' page calls too)."""
    assert rule.metric is not None
    assert subject.manager is not None
    metric, now, manager = rule.metric, situation.now, subject.manager
    next_minute = now.replace(second=0, microsecond=0) + timedelta(minutes=1)

    def expect(start: datetime, end: datetime) -> Expected | None:
        return expected_count_once(situation, manager, subject, metric, start, end)

    found = judge_drop(
        situation.workdays,
        situation.snapshot,
        manager.id,
        subject.department.id,
        subject.zone,
        now,
        rule,
        expect,
    )
    if not found.breached:
        # Not judged (nothing to hold this manager against, or no window expects enough yet
        # for any count to be rare: early in the day it neither clears nor holds anything),
        # or clear.
        return Verdict(key, rule, found.breached), next_minute
    window = found.window
    assert window is not None
    actual, expected = window.observed, window.expected.count
    details = {
        "window_start": window.start.isoformat(),
        "working_seconds": f"{window.worked:.0f}",
        "expected_from": window.expected.source,
        "tail_probability": f"{found.tail_probability:.3g}",
        "threshold": f"{found.threshold:.3g}",
        "windows_tested": str(found.tested),
        "dispersion": f"{found.dispersion:.2f}",
        "false_alarms": str(rule.false_alarms),
    }
    draft = alert_draft(situation, rule, subject, key, metric, actual, expected, now, details)

    def describe(since: datetime) -> messages.Text:
        clock = subject.clock(since)
        return messages.drop(subject.who, metric, actual, expected, window.worked, clock)

    return Verdict(key, rule, True, draft, describe), None


def _period(subject: Subject, per: Period) -> tuple[date, date]:
    if per is Period.DAY:
        return subject.today, subject.today + timedelta(days=1)
    monday = subject.today - timedelta(days=subject.today.weekday())
    return monday, monday + timedelta(days=7)


def pace(situation: Situation, rule: Rule, subject: Subject, key: str) -> Judged:
    assert rule.metric is not None
    assert rule.below is not None
    assert subject.manager is not None
    metric, now, manager = rule.metric, situation.now, subject.manager
    norm = situation.rules.norm_for(metric, rule.per, subject.department.id, manager.role)
    if norm is None:
        return Verdict(key, rule, None), FOREVER
    first, after_last = _period(subject, rule.per)
    start = local_midnight(first, subject.zone)
    end = local_midnight(after_last, subject.zone)
    args = (manager.id, subject.department.id, subject.zone)
    elapsed = situation.workdays.seconds(*args, start, now)
    total = situation.workdays.seconds(*args, start, end)
    if elapsed < rule.after.total_seconds():
        return Verdict(key, rule, None), after(now, rule.after.total_seconds() - elapsed)
    snapshot = situation.snapshot
    actual = snapshot.count(manager.id, metric, subject.day_start, now) + sum(
        snapshot.day_total(manager.id, metric, day) for day in _days(first, subject.today)
    )
    projected = projected_total(actual, elapsed, total)
    if projected is None:
        return Verdict(key, rule, None), None  # no working time in the period, or none yet
    breached = actual < norm.at_least and projected < rule.below * norm.at_least
    if breached:
        quiet = None
    elif actual >= norm.at_least:
        quiet = FOREVER  # the norm is reached: no pace can fall short of it
    else:
        # The projection falls as working time passes without activity: not under the norm's
        # share while elapsed <= actual * total / share (a second of margin for rounding).
        reach = actual * total / (rule.below * norm.at_least)
        quiet = after(now, reach - elapsed - 1)
    details = {"projected": f"{projected:.1f}", "norm": f"{norm.at_least:g}", "per": norm.per}
    draft = (
        alert_draft(situation, rule, subject, key, metric, actual, norm.at_least, now, details)
        if breached
        else None
    )
    week = rule.per is Period.WEEK

    def describe(since: datetime) -> messages.Text:
        return messages.pace(subject.who, metric, actual, projected, norm.at_least, week)

    return Verdict(key, rule, breached, draft, describe), quiet


def _days(first: date, stop: date) -> Iterator[date]:
    day = first
    while day < stop:
        yield day
        day += timedelta(days=1)
