"""Each rule kind's condition, judged for every manager (or department, or task) at an instant.

Everything here is pure: the instant, the rules, the directory, the working calendar, today's
activity and the baselines come in; ``Verdict``s go out to the engine. Activity rules judge a
manager only while the manager is at work (``docs/alerts.md`` has each rule's exact meaning);
outside working time they say "not judged", and once the manager's workday is over they end
whatever fired that day.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from processors.alerting import messages
from processors.alerting.baseline import Baselines
from processors.alerting.drop import judge_drop
from processors.alerting.engine import Verdict
from processors.alerting.expectation import Expected, expected_count, projected_total
from processors.alerting.rules import Period, Rule, RuleKind, RulesFile
from processors.alerting.workdays import Workdays, local_midnight
from processors.page_links import department_link, manager_link
from salespulse.activity import CHANNEL_UP_MAX, ActivitySnapshot, OpenTask
from salespulse.alert_model import Alert, Severity
from salespulse.directory import DepartmentEntry, Directory, ManagerEntry

WORKDAY_OVER = "workday_over"


@dataclass(frozen=True)
class Situation:
    """What the conditions judge by, at ``now``."""

    now: datetime
    rules: RulesFile
    directory: Directory
    workdays: Workdays
    snapshot: ActivitySnapshot
    baselines: Baselines
    dashboard_url: str = ""
    quiet: QuietBook | None = None  # the evaluator's, kept between ticks
    # When this evaluator began to evaluate (a start, a new leader): what went overdue well
    # before it, unseen, is not paged as if it had just happened. None: no such bound.
    started: datetime | None = None
    expected: dict[tuple[str, str, str, str, datetime, datetime], Expected | None] = field(
        default_factory=dict, repr=False, compare=False
    )  # expected counts of this instant, shared by the dip and drop rules
    _loading: dict[str, datetime | None] = field(default_factory=dict, repr=False, compare=False)

    def loading(self, subject: _Subject) -> datetime | None:
        """When a call or chat of the subject's department's today was last stored long after
        it ended (its day is being loaded after the fact), if in the last ``LOAD_SETTLE``."""
        department = subject.department.id
        if department not in self._loading:
            latest = None
            for manager_id, (day, stored) in self.snapshot.loading.items():
                manager = self.directory.managers.get(manager_id)
                if manager is None or manager.department != department or day != subject.today:
                    continue
                if self.now - stored < LOAD_SETTLE and (latest is None or stored > latest):
                    latest = stored
            self._loading[department] = latest
        return self._loading[department]


# A day being loaded after the fact is judged for inactivity again only this long after the
# last of its late records was stored: until then, what is missing may be on its way.
LOAD_SETTLE = timedelta(minutes=2)
# An overdue task is paged only if salespulse could tell it at most this long after the moment
# it would have been told live (its deadline plus grace, or the manager's next working instant):
# later, it is from the past, and its department hears one summary instead.
PAST_AFTER = timedelta(minutes=15)
# The summary of a department's tasks from the past waits until no more of them arrived for
# this long (a load still running would make the count a moving target).
PAST_SETTLE = timedelta(minutes=2)
# Tasks named in a summary's details (the rest are counted).
PAST_NAMED = 20

# When a verdict can next turn into a breach with the same inputs (None: at any moment).
_Judged = tuple[Verdict, datetime | None]
FOREVER = datetime.max.replace(tzinfo=UTC)
# Kinds whose breach, once found, holds for as long as the inputs stay the same.
_LASTING_BREACHES = frozenset({RuleKind.PACE, RuleKind.INACTIVITY})


@dataclass
class QuietBook:
    """Verdicts that cannot become breaches before a known instant while their inputs stay the
    same: an inactivity 20 working minutes short of its idle time, a pace that needs another
    hour without calls to fall under the norm, a threshold not reached (its count only falls
    as time passes). Until that instant, or until any input changes (the reader of today's
    activity keeps a manager's objects while their data stays the same), the verdict is
    given again instead of judged again, as it would come out the same. Alerts that fire are
    always judged (``firing``: their keys, set by the evaluator before each tick), since
    only their judgement can clear them; a verdict that is not a breach leaves no state in
    the engine for any other key."""

    firing: frozenset[str] = frozenset()
    pending: Mapping[str, datetime] = field(default_factory=dict)  # AlertEngine.pending()
    _kept: dict[str, tuple[tuple[object, ...], datetime, Verdict]] = field(default_factory=dict)
    # Overdue tasks: (task, deadline, owner) → when the alert would have been told live.
    told: dict[tuple[str, datetime, str], datetime | None] = field(default_factory=dict)

    def verdict(self, key: str, inputs: tuple[object, ...], now: datetime) -> Verdict | None:
        found = self._kept.get(key)
        # Tuples compare item by item, each first by identity: the same objects match at once.
        if found is None or now >= found[1] or found[0] != inputs:
            return None
        verdict = found[2]
        if verdict.breached:
            # A lasting breach is given again while it waits for its hold; the tick it fires
            # judges it anew, for the alert's facts of that instant.
            since = self.pending.get(key)
            if since is None or now >= since + verdict.rule.hold:
                return None
        return verdict

    def keep(self, key: str, inputs: tuple[object, ...], until: datetime, verdict: Verdict) -> None:
        self._kept[key] = (inputs, until, verdict)

    def forget(self, key: str) -> None:
        self._kept.pop(key, None)


@dataclass(frozen=True)
class _Subject:
    """A manager, or a department as a whole (``manager`` None), as of ``now``."""

    department: DepartmentEntry
    zone: ZoneInfo
    today: date
    day_start: datetime
    working: bool
    over: bool
    manager: ManagerEntry | None = None
    members: tuple[ManagerEntry, ...] = field(default=())

    @property
    def manager_id(self) -> str:
        return self.manager.id if self.manager is not None else ""

    @property
    def role(self) -> str:
        return self.manager.role if self.manager is not None else ""

    @property
    def who(self) -> messages.Who:
        name = self.manager.name or self.manager.id if self.manager is not None else ""
        return messages.Who(name, self.department.name or self.department.id)

    def clock(self, moment: datetime) -> str:
        return messages.clock(moment, self.zone)


def gone_reason(alert: Alert) -> str:
    """Why an alert no verdict mentions any more resolved: an open task that is no longer open
    was completed (or lost its deadline); anything else lost its rule or its subject."""
    return "completed" if alert.kind == RuleKind.OVERDUE_TASK else "gone"


def judged_metrics(rules: RulesFile) -> frozenset[str]:
    """The metrics whose minutes or day totals the active rules read."""
    wanted: set[str] = set()
    for rule in rules.active_rules():
        if rule.kind is RuleKind.INACTIVITY:
            wanted.update(rule.activity_metrics)
        elif rule.metric is not None:
            wanted.add(rule.metric)
    return frozenset(wanted)


def judge(situation: Situation) -> list[Verdict]:
    subjects = _subjects(situation)
    departments = _department_subjects(situation)
    verdicts: list[Verdict] = []
    for rule in situation.rules.active_rules():
        if rule.kind is RuleKind.OVERDUE_TASK:
            verdicts.extend(_overdue_tasks(situation, rule, subjects))
        elif rule.kind is RuleKind.DEPARTMENT_DIP:
            for subject in departments:
                if rule.applies_to(subject.department.id, ""):
                    verdicts.append(_activity_verdict(situation, rule, subject))
        else:
            for subject in subjects.values():
                if rule.applies_to(subject.department.id, subject.role):
                    verdicts.append(_activity_verdict(situation, rule, subject))
    return verdicts


# How far apart the earlier instants are at which a first evaluation looks for onsets.
ONSET_STEP = timedelta(minutes=1)


def with_onsets(
    situation: Situation, verdicts: list[Verdict], known: Collection[str]
) -> list[Verdict]:
    """The verdicts of a leader's first evaluation, each breach that its rule could not date
    (a dip, a pace, a threshold) dated by the same stored data judged at earlier instants,
    ``ONSET_STEP`` apart, back as far as its hold: its onset is the earliest of them from which
    every look found it breached. So a hold that was running under the previous leader goes on
    counting from its start instead of from this leader's. ``known``: keys the engine holds
    already (firing, or pending), which need no date."""
    open_keys = {
        verdict.key: verdict.rule.hold
        for verdict in verdicts
        if verdict.breached
        and verdict.onset is None
        and verdict.rule.hold > timedelta(0)
        and verdict.key not in known
    }
    if not open_keys:
        return verdicts
    onsets: dict[str, datetime] = {}
    back = ONSET_STEP
    while open_keys:
        moment = situation.now - back
        earlier = replace(situation, now=moment, quiet=None, expected={}, _loading={})
        breached = {verdict.key for verdict in judge(earlier) if verdict.breached}
        for key, hold in list(open_keys.items()):
            if key in breached:
                onsets[key] = moment
            if key not in breached or back >= hold:
                del open_keys[key]  # not breached then, or held long enough already
        back += ONSET_STEP
    return [
        replace(verdict, onset=onsets[verdict.key]) if verdict.key in onsets else verdict
        for verdict in verdicts
    ]


def _subjects(situation: Situation) -> dict[str, _Subject]:
    now, directory, workdays = situation.now, situation.directory, situation.workdays
    subjects = {}
    for manager in directory.managers.values():
        department = directory.departments[manager.department]
        zone = directory.timezone_of(department.id)
        today = now.astimezone(zone).date()
        subjects[manager.id] = _Subject(
            department=department,
            zone=zone,
            today=today,
            day_start=local_midnight(today, zone),
            working=workdays.is_working(manager.id, department.id, zone, now),
            over=workdays.day_over(manager.id, department.id, zone, now),
            manager=manager,
        )
    return subjects


def _department_subjects(situation: Situation) -> list[_Subject]:
    """Departments judged on their own calendar: the hours, without anyone's absence."""
    now, directory, workdays = situation.now, situation.directory, situation.workdays
    members: dict[str, list[ManagerEntry]] = {}
    for manager in directory.managers.values():
        members.setdefault(manager.department, []).append(manager)
    subjects = []
    for department in directory.departments.values():
        zone = directory.timezone_of(department.id)
        today = now.astimezone(zone).date()
        subjects.append(
            _Subject(
                department=department,
                zone=zone,
                today=today,
                day_start=local_midnight(today, zone),
                working=workdays.is_working("", department.id, zone, now),
                over=workdays.day_over("", department.id, zone, now),
                members=tuple(members.get(department.id, ())),
            )
        )
    return subjects


def _key(rule: Rule, subject: _Subject) -> str:
    if subject.manager is None:
        return f"{rule.name}/department/{subject.department.id}"
    return f"{rule.name}/manager/{subject.manager.id}"


def _activity_verdict(situation: Situation, rule: Rule, subject: _Subject) -> Verdict:
    key = _key(rule, subject)
    if not subject.working:
        return Verdict(key, rule, None, end_reason=WORKDAY_OVER if subject.over else "")
    judge_kind = {
        RuleKind.DIP: _dip,
        RuleKind.DEPARTMENT_DIP: _dip,
        RuleKind.PACE: _pace,
        RuleKind.INACTIVITY: _inactivity,
        RuleKind.THRESHOLD: _threshold,
        RuleKind.DROP: _drop,
    }[rule.kind]
    book = situation.quiet
    if book is None or subject.manager is None or key in book.firing:
        return judge_kind(situation, rule, subject, key)[0]
    inputs = _inputs(situation, rule, subject)
    found = book.verdict(key, inputs, situation.now)
    if found is not None:
        return found
    verdict, quiet = judge_kind(situation, rule, subject, key)
    if verdict.breached and rule.kind in _LASTING_BREACHES:
        quiet = FOREVER
    elif verdict.breached:
        quiet = None
    if quiet is not None:
        future = _next_minute(situation.snapshot, subject.manager.id, rule, situation.now)
        book.keep(key, inputs, min(quiet, future) if future is not None else quiet, verdict)
    else:
        book.forget(key)
    return verdict


def _inputs(situation: Situation, rule: Rule, subject: _Subject) -> tuple[object, ...]:
    """What a manager's verdict depends on besides the clock (compared by identity: the reader
    of today's activity keeps a manager's objects while their data does not change)."""
    snapshot, manager_id = situation.snapshot, subject.manager_id
    return (
        rule,
        situation.rules,
        situation.workdays,
        situation.baselines,
        subject.department,
        subject.zone,
        subject.today,
        subject.manager,
        snapshot.minutes.get(manager_id),
        snapshot.days.get(manager_id),
        snapshot.last_active.get(manager_id),
        snapshot.busy.get(manager_id),
        situation.loading(subject) if rule.kind is RuleKind.INACTIVITY else None,
    )


def _next_minute(
    snapshot: ActivitySnapshot, manager_id: str, rule: Rule, now: datetime
) -> datetime | None:
    """The first minute from ``now`` on with activity (a record stamped ahead of the clock),
    which enters the counts by the clock alone."""
    metrics = rule.activity_metrics if rule.kind is RuleKind.INACTIVITY else (rule.metric,)
    series = snapshot.minutes.get(manager_id, {})
    later = [
        next(minute for minute, _ in series[metric] if minute >= now)
        for metric in metrics
        if metric in series and series[metric] and series[metric][-1][0] >= now
    ]
    return min(later, default=None)


def _after(now: datetime, seconds: float) -> datetime | None:
    return now + timedelta(seconds=seconds) if seconds > 0 else None


def _draft(
    situation: Situation,
    rule: Rule,
    subject: _Subject,
    key: str,
    metric: str,
    actual: float,
    expected: float,
    since: datetime,
    details: dict[str, str],
) -> Alert:
    department = subject.department
    manager_id = subject.manager_id
    link = "/" + (manager_link(manager_id) if manager_id else department_link(department.id))
    return Alert(
        key=key,
        rule=rule.name,
        kind=rule.kind.value,
        severity=rule.severity,
        manager_id=manager_id,
        manager_name=subject.who.manager_name,
        department_id=department.id,
        department_name=subject.who.department_name,
        metric=metric,
        actual=actual,
        expected=expected,
        since=since,
        fired_at=situation.now,
        recipients=situation.rules.notify.recipients(rule, department.id),
        dashboard_url=f"{situation.dashboard_url}{link}" if situation.dashboard_url else "",
        details=details,
    )


def _dip(situation: Situation, rule: Rule, subject: _Subject, key: str) -> _Judged:
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
        return Verdict(key, rule, None), _after(now, rule.window.total_seconds() / 2 - worked)
    people = (subject.manager,) if subject.manager is not None else subject.members
    actual, expected, sources = 0, 0.0, set()
    for person in people:
        assert person is not None
        found = _expected(situation, person, subject, metric, start, now)
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
        _draft(situation, rule, subject, key, metric, actual, expected, now, details)
        if breached
        else None
    )

    def describe(since: datetime) -> messages.Text:
        return messages.dip(subject.who, metric, actual, expected, worked, subject.clock(since))

    return Verdict(key, rule, breached, draft, describe), None


def _expected(
    situation: Situation,
    person: ManagerEntry,
    subject: _Subject,
    metric: str,
    start: datetime,
    end: datetime,
) -> Expected | None:
    """``expected_count`` in [start, end), once per tick for a manager's own dip and their
    department's (whose windows mostly start at the same instant)."""
    key = (person.id, subject.department.id, subject.zone.key, metric, start, end)
    if key not in situation.expected:
        situation.expected[key] = expected_count(
            situation.workdays,
            situation.baselines,
            situation.rules,
            person,
            subject.department.id,
            subject.zone,
            metric,
            start,
            end,
        )
    return situation.expected[key]


def _drop(situation: Situation, rule: Rule, subject: _Subject, key: str) -> _Judged:
    """The count of the windows of working time ending at the last whole minute against the
    Poisson counts their expectations allow, at the level the false-alarm budget sets for each
    of the day's working minutes (``docs/alerts.md``, the drop rule; ``drop.judge_drop``, which
    the head of sales' page calls too)."""
    assert rule.metric is not None
    assert subject.manager is not None
    metric, now, manager = rule.metric, situation.now, subject.manager
    next_minute = now.replace(second=0, microsecond=0) + timedelta(minutes=1)

    def expect(start: datetime, end: datetime) -> Expected | None:
        return _expected(situation, manager, subject, metric, start, end)

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
    draft = _draft(situation, rule, subject, key, metric, actual, expected, now, details)

    def describe(since: datetime) -> messages.Text:
        clock = subject.clock(since)
        return messages.drop(subject.who, metric, actual, expected, window.worked, clock)

    return Verdict(key, rule, True, draft, describe), None


def _period(subject: _Subject, per: Period) -> tuple[date, date]:
    if per is Period.DAY:
        return subject.today, subject.today + timedelta(days=1)
    monday = subject.today - timedelta(days=subject.today.weekday())
    return monday, monday + timedelta(days=7)


def _pace(situation: Situation, rule: Rule, subject: _Subject, key: str) -> _Judged:
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
        return Verdict(key, rule, None), _after(now, rule.after.total_seconds() - elapsed)
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
        quiet = _after(now, reach - elapsed - 1)
    details = {"projected": f"{projected:.1f}", "norm": f"{norm.at_least:g}", "per": norm.per}
    draft = (
        _draft(situation, rule, subject, key, metric, actual, norm.at_least, now, details)
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


def _last_active(
    snapshot: ActivitySnapshot, manager_id: str, metrics: tuple[str, ...]
) -> datetime | None:
    """The end of the latest call or chat, or the latest minute with any of ``metrics``."""
    candidates = []
    ended = snapshot.last_active.get(manager_id)
    if ended is not None:
        candidates.append(ended)
    per_metric = snapshot.minutes.get(manager_id, {})
    for metric in metrics:
        for minute, value in reversed(per_metric.get(metric, ())):
            if value:
                candidates.append(minute + timedelta(minutes=1))
                break
    return max(candidates, default=None)


def _inactivity(situation: Situation, rule: Rule, subject: _Subject, key: str) -> _Judged:
    assert rule.idle is not None
    assert subject.manager is not None
    now, manager = situation.now, subject.manager
    args = (manager.id, subject.department.id, subject.zone)
    loading = situation.loading(subject)
    if loading is not None:
        # Today's earlier hours are being loaded: no activity yet may be activity on its way.
        return Verdict(key, rule, None), loading + LOAD_SETTLE
    busy = situation.snapshot.busy_since(manager.id, now)
    if busy is not None:
        # On a call now (a channel up, its CDR not written yet): not idle. Judged again when
        # the call ends (the snapshot changes) or, if its Hangup was lost, when it is capped.
        return Verdict(key, rule, False), busy + CHANNEL_UP_MAX
    last = _last_active(situation.snapshot, manager.id, rule.activity_metrics)
    started = last is not None and last > subject.day_start
    since = (
        last
        if last is not None and started
        else situation.workdays.first_start(*args, subject.today)
    )
    if since is None:
        return Verdict(key, rule, None), FOREVER  # no working time today
    if since > now:
        return Verdict(key, rule, None), since
    idle = situation.workdays.seconds(*args, since, now)
    breached = idle >= rule.idle.total_seconds()
    # Idle working time grows no faster than the clock.
    quiet = None if breached else _after(now, rule.idle.total_seconds() - idle)
    details = {"idle_working_seconds": f"{idle:.0f}"}
    metric = "+".join(rule.activity_metrics)
    # The breach began when the idle working time reached ``idle``: its hold counts from then.
    onset = (
        situation.workdays.window_start(
            *args, now, timedelta(seconds=idle - rule.idle.total_seconds()), since
        )
        if breached
        else None
    )
    draft = (
        _draft(situation, rule, subject, key, metric, 0, rule.idle.total_seconds(), since, details)
        if breached
        else None
    )
    clock = subject.clock(since)

    def describe(_: datetime) -> messages.Text:
        return messages.inactivity(subject.who, idle, clock, started)

    return Verdict(key, rule, breached, draft, describe, onset=onset), quiet


def _threshold(situation: Situation, rule: Rule, subject: _Subject, key: str) -> _Judged:
    assert rule.metric is not None
    assert rule.window is not None
    assert rule.at_least is not None
    now, metric, window = situation.now, rule.metric, rule.window
    actual = situation.snapshot.count(subject.manager_id, metric, now - window, now)
    breached = actual >= rule.at_least
    draft = (
        _draft(situation, rule, subject, key, metric, actual, rule.at_least, now, {})
        if breached
        else None
    )
    seconds = window.total_seconds()

    def describe(_: datetime) -> messages.Text:
        return messages.threshold(subject.who, metric, actual, rule.at_least or 0, seconds)

    # Without new records the count in the window only falls as minutes leave it.
    return Verdict(key, rule, breached, draft, describe), None if breached else FOREVER


def _overdue_tasks(
    situation: Situation, rule: Rule, subjects: dict[str, _Subject]
) -> Iterator[Verdict]:
    """One alert per open task past its deadline plus grace, told while its manager works.

    A task salespulse could not tell in time (``_from_the_past``) is not paged: each
    department hears one summary of such tasks instead (``_past_summary``)."""
    now = situation.now
    firing = situation.quiet.firing if situation.quiet is not None else frozenset()
    past: dict[str, list[OpenTask]] = {}
    for task in situation.snapshot.open_tasks:
        subject = subjects.get(task.manager_id)
        if subject is None or not rule.applies_to(subject.department.id, subject.role):
            continue
        if task.due_at + rule.grace > now:
            continue
        key = f"{rule.name}/task/{task.task_id}"
        if key not in firing and _from_the_past(situation, rule, subject, task):
            past.setdefault(subject.department.id, []).append(task)
            yield Verdict(key, rule, None)
            continue
        if not subject.working:
            yield Verdict(key, rule, None)
            continue
        yield _overdue_verdict(situation, rule, subject, key, task)
    for department_id, tasks in past.items():
        yield _past_summary(situation, rule, department_id, tasks)


def _from_the_past(situation: Situation, rule: Rule, subject: _Subject, task: OpenTask) -> bool:
    """Whether the task's alert would be told well after the moment it was due to be told live:
    the first working instant of its manager from the deadline plus grace on. salespulse could
    tell it only once the task was stored (``known_at``; a history import, a late load) and,
    unless an earlier evaluator told it (then it is restored as firing), once this evaluator
    began (``started``)."""
    if task.known_at is None and situation.started is None:
        return False
    told_key = (task.task_id, task.due_at, task.manager_id)
    book = situation.quiet
    if book is not None and told_key in book.told:
        told = book.told[told_key]
    else:
        told = situation.workdays.next_working(
            task.manager_id, subject.department.id, subject.zone, task.due_at + rule.grace
        )
        if book is not None:
            if len(book.told) > 100_000:
                book.told.clear()
            book.told[told_key] = told
    if told is None:
        return False  # no working time ahead to tell it in: judged as before
    could = max(moment for moment in (task.known_at, situation.started) if moment is not None)
    return could - told > PAST_AFTER


def _past_summary(
    situation: Situation, rule: Rule, department_id: str, tasks: list[OpenTask]
) -> Verdict:
    """One alert per department for its open tasks that were overdue before salespulse could
    tell them. It fires once no more such tasks arrived for ``PAST_SETTLE`` (a load is over)
    while the department works, counts them, stays firing while any is open (a second load
    adds to it silently) and resolves when none is left."""
    key = f"{rule.name}/loaded/{department_id}"
    directory = situation.directory
    department = directory.departments[department_id]
    zone = directory.timezone_of(department_id)
    latest = max((task.known_at for task in tasks if task.known_at is not None), default=None)
    settled = latest is None or situation.now - latest >= PAST_SETTLE
    if not settled or not situation.workdays.is_working("", department_id, zone, situation.now):
        return Verdict(key, rule, None)
    subject = _Subject(
        department=department,
        zone=zone,
        today=situation.now.astimezone(zone).date(),
        day_start=local_midnight(situation.now.astimezone(zone).date(), zone),
        working=True,
        over=False,
    )
    ordered = sorted(tasks, key=lambda task: (task.due_at, task.task_id))
    oldest = ordered[0].due_at
    details = {
        "tasks": str(len(ordered)),
        "oldest_due_at": oldest.isoformat(),
        "task_ids": ",".join(task.task_id for task in ordered[:PAST_NAMED]),
    }
    draft = _draft(situation, rule, subject, key, "tasks_done", len(ordered), 0, oldest, details)
    draft = replace(draft, severity=Severity.INFO)
    due = f"{oldest.astimezone(zone):%d.%m %H:%M}"

    def describe(_: datetime) -> messages.Text:
        return messages.overdue_from_the_past(subject.who, len(ordered), due)

    return Verdict(key, rule, True, draft, describe)


def _overdue_verdict(
    situation: Situation, rule: Rule, subject: _Subject, key: str, task: OpenTask
) -> Verdict:
    overdue = (situation.now - task.due_at).total_seconds()
    details = {"task_id": task.task_id, "due_at": task.due_at.isoformat()}
    draft = _draft(situation, rule, subject, key, "tasks_done", overdue, 0, task.due_at, details)
    due = f"{task.due_at.astimezone(subject.zone):%d.%m %H:%M}"

    def describe(_: datetime) -> messages.Text:
        return messages.overdue(subject.who, task.task_id, due)

    return Verdict(key, rule, True, draft, describe)
