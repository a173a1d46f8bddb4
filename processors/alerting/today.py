"""Each manager's today so far, as the head of sales' page shows it.

Pure computation over the same inputs the alert conditions judge by: for the headline metrics,
the count since the manager's local midnight, the count expected by now (the dip rule's
``expected_count``: the baseline, or the role's day norm for a manager without enough history),
the day norm, and the day's total at the pace so far. Departments are the sums of their
managers. Nothing here reads ClickHouse; ``processors.web.source`` feeds it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from processors.alerting.activity import ActivitySnapshot
from processors.alerting.baseline import Baselines
from processors.alerting.expectation import expected_count, projected_total
from processors.alerting.model import Alert, Severity
from processors.alerting.rules import Period, RulesFile
from processors.alerting.workdays import Workdays, local_midnight
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
# Doing less of these than expected is good news, not a warning.
LOWER_IS_BETTER = frozenset({"missed"})
BEHIND_SHARE = 0.5  # under half of the expected count by now is "behind"
_SEVERITY_RANK = {Severity.CRITICAL: 0, Severity.WARNING: 1, Severity.INFO: 2}


@dataclass(frozen=True, slots=True)
class MetricToday:
    """One metric of one manager (or a department's sum) today so far.

    ``expected`` is the count expected by now and ``expected_from`` what it came from
    (``baseline``, ``norm``, both joined by ``+`` for a department, ``""`` for none); ``norm``
    is the day norm; ``projected`` the day's total at the pace so far (None before any working
    time passed). Talk time is in seconds."""

    metric: str
    actual: int
    expected: float | None
    expected_from: str
    norm: float | None
    projected: float | None

    @property
    def share(self) -> float | None:
        """Actual as a fraction of expected; None when nothing was expected."""
        if not self.expected:
            return None
        return self.actual / self.expected

    @property
    def behind(self) -> bool:
        share = self.share
        return share is not None and share < BEHIND_SHARE and self.metric not in LOWER_IS_BETTER


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


@dataclass(frozen=True)
class _Inputs:
    now: datetime
    rules: RulesFile
    workdays: Workdays
    snapshot: ActivitySnapshot
    baselines: Baselines
    metrics: Sequence[str]
    alerts: Sequence[Alert]


def today_board(
    now: datetime,
    rules: RulesFile,
    directory: Directory,
    workdays: Workdays,
    snapshot: ActivitySnapshot,
    baselines: Baselines,
    open_alerts: Iterable[Alert] = (),
    metrics: Sequence[str] = HEADLINE_METRICS,
) -> TodayBoard:
    """Every manager of ``directory`` on their local today, as of ``now``; ``open_alerts`` are
    the alerts open now (from the history), handed to their manager and department."""
    alerts = sorted(open_alerts, key=lambda a: (a.fired_at, a.key), reverse=True)
    alerts.sort(key=lambda a: _SEVERITY_RANK.get(a.severity, 3))
    inputs = _Inputs(now, rules, workdays, snapshot, baselines, metrics, alerts)
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
    rows = []
    for metric in inputs.metrics:
        actual = inputs.snapshot.count(manager.id, metric, day_start, now)
        expected = expected_count(
            workdays, inputs.baselines, inputs.rules, manager, department.id, zone, metric,
            day_start, now,
        )  # fmt: skip
        norm = inputs.rules.norm_for(metric, Period.DAY, department.id, manager.role)
        rows.append(
            MetricToday(
                metric=metric,
                actual=actual,
                expected=expected.count if expected is not None else None,
                expected_from=expected.source if expected is not None else "",
                norm=norm.at_least if norm is not None else None,
                projected=projected_total(actual, worked, day_seconds),
            )
        )
    return ManagerToday(
        manager=manager,
        zone=zone,
        local_date=today,
        working=workdays.is_working(*args, now),
        worked_seconds=worked,
        day_seconds=day_seconds,
        metrics=tuple(rows),
        alerts=tuple(a for a in inputs.alerts if a.manager_id == manager.id),
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
    )
