"""What the rule kinds judge by at an instant: the ``Situation``, the subjects it holds (each
manager, each department as a whole) and the ``QuietBook`` of verdicts kept between ticks, with
what a kept verdict depends on (``verdict_inputs``, ``next_minute``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from processors.alerting import messages
from processors.alerting.baseline import Baselines
from processors.alerting.engine import Verdict
from processors.alerting.expectation import Expected
from processors.alerting.rules import Rule, RuleKind, RulesFile
from processors.alerting.workdays import Workdays, local_midnight
from salespulse.activity import ActivitySnapshot
from salespulse.directory import DepartmentEntry, Directory, ManagerEntry


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

    def loading(self, subject: Subject) -> datetime | None:
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
class Subject:
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


def manager_subjects(situation: Situation) -> dict[str, Subject]:
    now, directory, workdays = situation.now, situation.directory, situation.workdays
    subjects = {}
    for manager in directory.managers.values():
        department = directory.departments[manager.department]
        zone = directory.timezone_of(department.id)
        today = now.astimezone(zone).date()
        subjects[manager.id] = Subject(
            department=department,
            zone=zone,
            today=today,
            day_start=local_midnight(today, zone),
            working=workdays.is_working(manager.id, department.id, zone, now),
            over=workdays.day_over(manager.id, department.id, zone, now),
            manager=manager,
        )
    return subjects


def department_subjects(situation: Situation) -> list[Subject]:
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
            Subject(
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


def verdict_inputs(situation: Situation, rule: Rule, subject: Subject) -> tuple[object, ...]:
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


def next_minute(
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
