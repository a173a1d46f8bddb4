"""Each manager's today so far, as the head of sales' page shows it.

Pure computation over the same inputs the alert conditions judge by: for the headline metrics,
the count since the manager's local midnight, the count expected by now (the dip rule's
``expected_count``: the baseline, or the role's day norm for a manager without enough history),
the day norm, the day's total at the pace so far, and whether the manager is dipping now: the
``drop`` rule's scan (``drop.judge_drop``) at the board's instant, by the rules file's drop rule
for the metric or, without one, at the page's own false-alarm budget. Departments are the sums
of their managers, and dip where any of them does. Nothing here reads ClickHouse;
``processors.web.source`` feeds it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import cache
from zoneinfo import ZoneInfo

from processors.alerting.baseline import Baselines
from processors.alerting.drop import judge_drop
from processors.alerting.expectation import Expected, expected_count, projected_total
from processors.alerting.rules import FalseAlarms, Period, Rule, RuleKind, RulesFile
from processors.alerting.workdays import Workdays, local_midnight
from salespulse.activity import ActivitySnapshot
from salespulse.activity_metrics import is_duration
from salespulse.alert_model import Alert, Severity
from salespulse.directory import DepartmentEntry, Directory, ManagerEntry

# What a head of sales looks at first, in this order (labels: messages.METRIC_NAMES).
HEADLINE_METRICS: tuple[str, ...] = (
    "calls_out",
    "calls_out_answered",
    "calls_in_answered",
    "missed",
    "conversations",
    "talk_seconds",
    "chats",
    "meetings",
    "offers",
    "deals_won",
    "payments",
    "tasks_done",
)
# Doing less of these than expected is good news, not a warning: they never dip.
LOWER_IS_BETTER = frozenset({"missed"})
# The false-alarm budget of a dip on the page for a metric without a drop rule in the rules
# file: the drop rule's own default.
PAGE_FALSE_ALARMS = FalseAlarms(1, 20)
_SEVERITY_RANK = {Severity.CRITICAL: 0, Severity.WARNING: 1, Severity.INFO: 2}


@dataclass(frozen=True, slots=True)
class Dip:
    """A drop the ``drop`` rule's scan finds at the board's instant: in the window of working
    time from ``start`` to the last whole minute (``worked_seconds`` of it) the manager did
    ``observed`` where ``expected`` was expected (from ``expected_from``), a tail probability
    under ``threshold`` at the budget ``false_alarms``. ``rule`` names the rules file's drop
    rule it was judged by; ``""``: none applies, the page's own budget."""

    start: datetime
    worked_seconds: float
    observed: int
    expected: float
    expected_from: str
    tail_probability: float
    threshold: float
    false_alarms: str
    rule: str


@dataclass(frozen=True, slots=True)
class MetricToday:
    """One metric of one manager (or a department's sum) today so far.

    ``expected`` is the count expected by now and ``expected_from`` what it came from
    (``baseline``, ``norm``, both joined by ``+`` for a department, ``""`` for none); ``norm``
    is the day norm; ``projected`` the day's total at the pace so far (None before any working
    time passed). Talk time is in seconds. ``dipping`` are the ids of the managers whose count
    of it dips now (the manager, or a department's managers), ``dip`` the manager's window."""

    metric: str
    actual: int
    expected: float | None
    expected_from: str
    norm: float | None
    projected: float | None
    dip: Dip | None = None
    dipping: tuple[str, ...] = ()

    @property
    def share(self) -> float | None:
        """Actual as a fraction of expected; None when nothing was expected."""
        if not self.expected:
            return None
        return self.actual / self.expected


@dataclass(frozen=True, slots=True)
class ManagerToday:
    manager: ManagerEntry
    zone: ZoneInfo
    local_date: date
    working: bool  # at work now by the working calendar (hours, lunch, holidays, absences)
    worked_seconds: float  # working time of today so far
    day_seconds: float  # working time of the whole of today
    metrics: tuple[MetricToday, ...]
    alerts: tuple[Alert, ...]  # open alerts about this manager

    def metric(self, name: str) -> MetricToday:
        return next(m for m in self.metrics if m.metric == name)


@dataclass(frozen=True, slots=True)
class DepartmentToday:
    department: DepartmentEntry
    zone: ZoneInfo
    local_date: date
    working: bool  # the department's own hours, without anyone's absence
    managers: tuple[ManagerToday, ...]
    totals: tuple[MetricToday, ...]
    alerts: tuple[Alert, ...]  # open alerts about the department or any of its managers

    def metric(self, name: str) -> MetricToday:
        return next(m for m in self.totals if m.metric == name)


@dataclass(frozen=True, slots=True)
class TodayBoard:
    """Every department and manager of the directory at ``taken_at``, with the open alerts
    (most severe first, then the newest)."""

    taken_at: datetime
    departments: tuple[DepartmentToday, ...]
    alerts: tuple[Alert, ...]

    def department(self, department_id: str) -> DepartmentToday | None:
        return next((d for d in self.departments if d.department.id == department_id), None)

    def manager(self, manager_id: str) -> ManagerToday | None:
        for department in self.departments:
            for manager in department.managers:
                if manager.manager.id == manager_id:
                    return manager
        return None

    def zone_of(self, department_id: str) -> ZoneInfo:
        found = self.department(department_id)
        return found.zone if found is not None else ZoneInfo("UTC")


@dataclass
class DipBook:
    """The dips of the last board, given again while what they depend on stays the same.

    A scan judges the windows that end at the last whole minute, so it comes out the same for
    every board of that minute unless the manager's activity changed (the reader of today's
    activity keeps a manager's series objects while their data does not change) or a record
    of the minute under way counts in it. The pages read every few seconds: without this, each
    reading would scan every manager's every metric again, about a millisecond each for a
    metric of many events. Entries not used by a board are dropped with the next one."""

    _kept: dict[tuple[str, str], tuple[tuple[object, ...], Dip | None]] = field(
        default_factory=dict
    )
    _used: dict[tuple[str, str], tuple[tuple[object, ...], Dip | None]] = field(
        default_factory=dict
    )

    def find(self, key: tuple[str, str], inputs: tuple[object, ...]) -> tuple[bool, Dip | None]:
        kept = self._kept.get(key)
        # Tuples compare item by item, each first by identity: the same objects match at once.
        if kept is None or kept[0] != inputs:
            return False, None
        self._used[key] = kept
        return True, kept[1]

    def keep(self, key: tuple[str, str], inputs: tuple[object, ...], dip: Dip | None) -> None:
        self._used[key] = (inputs, dip)

    def turn(self) -> None:
        """A board is done: what it used is what the next one may find."""
        self._kept, self._used = self._used, {}


@dataclass(frozen=True)
class _Inputs:
    now: datetime
    rules: RulesFile
    workdays: Workdays
    snapshot: ActivitySnapshot
    baselines: Baselines
    metrics: Sequence[str]
    alerts: Sequence[Alert]
    dips: DipBook | None = None


def today_board(
    now: datetime,
    rules: RulesFile,
    directory: Directory,
    workdays: Workdays,
    snapshot: ActivitySnapshot,
    baselines: Baselines,
    open_alerts: Iterable[Alert] = (),
    metrics: Sequence[str] = HEADLINE_METRICS,
    dips: DipBook | None = None,
) -> TodayBoard:
    """Every manager of ``directory`` on their local today, as of ``now``; ``open_alerts`` are
    the alerts open now (from the history), handed to their manager and department. ``dips``:
    the caller's, kept from board to board (the same board with or without it)."""
    alerts = sorted(open_alerts, key=lambda a: (a.fired_at, a.key), reverse=True)
    alerts.sort(key=lambda a: _SEVERITY_RANK.get(a.severity, 3))
    inputs = _Inputs(now, rules, workdays, snapshot, baselines, metrics, alerts, dips)
    members: dict[str, list[ManagerEntry]] = {}
    for manager in directory.managers.values():
        members.setdefault(manager.department, []).append(manager)
    departments = []
    for department in directory.departments.values():
        zone = directory.timezone_of(department.id)
        today = now.astimezone(zone).date()
        people = tuple(
            _manager_today(inputs, department, zone, today, manager)
            for manager in members.get(department.id, ())
        )
        departments.append(
            DepartmentToday(
                department=department,
                zone=zone,
                local_date=today,
                working=workdays.is_working("", department.id, zone, now),
                managers=people,
                totals=tuple(_sum(metric, people) for metric in metrics),
                alerts=tuple(a for a in alerts if a.department_id == department.id),
            )
        )
    if dips is not None:
        dips.turn()
    return TodayBoard(now, tuple(departments), tuple(alerts))


def _manager_today(
    inputs: _Inputs, department: DepartmentEntry, zone: ZoneInfo, today: date, manager: ManagerEntry
) -> ManagerToday:
    now, workdays = inputs.now, inputs.workdays
    day_start = local_midnight(today, zone)
    day_end = local_midnight(today + timedelta(days=1), zone)
    args = (manager.id, department.id, zone)
    worked = workdays.seconds(*args, day_start, now)
    day_seconds = workdays.seconds(*args, day_start, day_end)
    working = workdays.is_working(*args, now)
    rows = []
    for metric in inputs.metrics:
        actual = inputs.snapshot.count(manager.id, metric, day_start, now)
        expected = expected_count(
            workdays, inputs.baselines, inputs.rules, manager, department.id, zone, metric,
            day_start, now,
        )  # fmt: skip
        norm = inputs.rules.norm_for(metric, Period.DAY, department.id, manager.role)
        dip = None
        if working and expected is not None:  # like the rule, judged only while at work
            dip = _dip(inputs, department, zone, manager, metric)
        rows.append(
            MetricToday(
                metric=metric,
                actual=actual,
                expected=expected.count if expected is not None else None,
                expected_from=expected.source if expected is not None else "",
                norm=norm.at_least if norm is not None else None,
                projected=projected_total(actual, worked, day_seconds),
                dip=dip,
                dipping=(manager.id,) if dip is not None else (),
            )
        )
    return ManagerToday(
        manager=manager,
        zone=zone,
        local_date=today,
        working=working,
        worked_seconds=worked,
        day_seconds=day_seconds,
        metrics=tuple(rows),
        alerts=tuple(a for a in inputs.alerts if a.manager_id == manager.id),
    )


def drop_rule_for(rules: RulesFile, metric: str, department_id: str, role: str) -> Rule | None:
    """The drop rule a manager's metric is judged by on the page: the first active ``drop`` rule
    of the rules file for the metric that applies to the manager, else one with the page's
    budget and the rule's other defaults. None for a metric that cannot dip (fewer missed calls
    are good news; a duration is not a count of events)."""
    if metric in LOWER_IS_BETTER or is_duration(metric):
        return None
    for rule in rules.active_rules():
        if (
            rule.kind is RuleKind.DROP
            and rule.metric == metric
            and rule.applies_to(department_id, role)
        ):
            return rule
    return _page_rule(metric)


@cache
def _page_rule(metric: str) -> Rule:
    return Rule(name="page_dips", kind=RuleKind.DROP, metric=metric, false_alarms=PAGE_FALSE_ALARMS)


def _dip(
    inputs: _Inputs, department: DepartmentEntry, zone: ZoneInfo, manager: ManagerEntry, metric: str
) -> Dip | None:
    """The drop rule's judgement of the manager's metric at the board's instant, if it breaches."""
    rule = drop_rule_for(inputs.rules, metric, department.id, manager.role)
    if rule is None:
        return None
    book, now = inputs.dips, inputs.now
    series = inputs.snapshot.minutes.get(manager.id, {}).get(metric)
    minute = now.replace(second=0, microsecond=0)
    # A record of the minute under way (or stamped ahead of the clock) enters the count as the
    # clock moves: such a series is judged afresh.
    if book is None or (series and series[-1][0] >= minute):
        return _judge_dip(inputs, department, zone, manager, metric, rule)
    key = (manager.id, metric)
    facts: tuple[object, ...] = (minute, rule, inputs.rules, inputs.workdays, inputs.baselines)
    facts += (department.id, zone, manager, series)
    found, dip = book.find(key, facts)
    if not found:
        dip = _judge_dip(inputs, department, zone, manager, metric, rule)
        book.keep(key, facts, dip)
    return dip


def _judge_dip(
    inputs: _Inputs,
    department: DepartmentEntry,
    zone: ZoneInfo,
    manager: ManagerEntry,
    metric: str,
    rule: Rule,
) -> Dip | None:
    """``drop.judge_drop`` by ``rule``, as the rule judges (its expectations too)."""

    def expect(start: datetime, end: datetime) -> Expected | None:
        return expected_count(
            inputs.workdays, inputs.baselines, inputs.rules, manager, department.id, zone, metric,
            start, end,
        )  # fmt: skip

    found = judge_drop(
        inputs.workdays, inputs.snapshot, manager.id, department.id, zone, inputs.now, rule, expect
    )
    if not found.breached:
        return None
    window = found.window
    assert window is not None
    assert found.tail_probability is not None
    assert found.threshold is not None
    return Dip(
        start=window.start,
        worked_seconds=window.worked,
        observed=window.observed,
        expected=window.expected.count,
        expected_from=window.expected.source,
        tail_probability=found.tail_probability,
        threshold=found.threshold,
        false_alarms=str(rule.false_alarms),
        rule="" if rule is _page_rule(metric) else rule.name,
    )


def _sum(metric: str, people: Sequence[ManagerToday]) -> MetricToday:
    """A department's metric: the sum of its managers', each part only over those who have
    it (a manager with neither baseline nor norm adds nothing to the expected)."""
    rows = [person.metric(metric) for person in people]

    def total(values: Iterable[float | None]) -> float | None:
        present = [value for value in values if value is not None]
        return sum(present) if present else None

    sources = sorted({row.expected_from for row in rows if row.expected_from})
    return MetricToday(
        metric=metric,
        actual=sum(row.actual for row in rows),
        expected=total(row.expected for row in rows),
        expected_from="+".join(sources),
        norm=total(row.norm for row in rows),
        projected=total(row.projected for row in rows),
        dipping=tuple(manager for row in rows for manager in row.dipping),
    )
