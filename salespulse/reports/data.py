"""A report's numbers, read from the dashboard rollups.

``activity_daily`` gives every count and the working time per manager and local day (read with
``FINAL``: a recomputed row replaces the previous one by version), ``payments_daily`` the amounts
per currency. The period is the same local dates for everybody: each manager's own local days,
as in ``salespulse summary``.

Managers are listed from the directory, so a manager without activity shows as zeros, and are
put in their current department; the department totals are the sums of their managers' lines.
Managers in the data but no longer in the directory keep the department their rows carry.
Activity of identities nobody owns is one ``(unattributed)`` line of its own department.

Reading is split from assembling so that rendering is tested on hand-made rows.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Literal, NamedTuple

from processors.alerting.rules import RulesFile
from processors.alerting.workdays import Workdays
from salespulse.calendar import Calendar
from salespulse.directory import Directory
from salespulse.errors import DeliveryError
from salespulse.reports.norms import period_norms, working_days
from salespulse.reports.period import ReportPeriod
from sinks.clickhouse.client import ClickHouse, as_date
from sinks.clickhouse.rollup import DAILY, DAILY_TABLE, PAYMENTS_TABLE

UNATTRIBUTED = "(unattributed)"
METRICS: tuple[str, ...] = DAILY.metrics  # every count, then the working time
Progress = Callable[[int, int], None]  # (days read, days in all)


class DayRow(NamedTuple):
    """One manager's counts on one local day, as ``activity_daily`` holds them."""

    manager_id: str
    department_id: str
    local_date: date
    counts: dict[str, int]


class PaymentRow(NamedTuple):
    """One manager's payments in one currency over the period."""

    manager_id: str
    department_id: str
    currency: str
    payments: int
    amount: Decimal


@dataclass
class Line:
    """A manager's line, or the sum of several (``kind`` says which).

    ``norms`` has the metrics with a norm; a sum has a metric's norm only when every manager
    in it with a calendar has one (a norm of some against the activity of all would flatter).
    ``working_days`` is None where there is no calendar to ask (unattributed activity,
    managers no longer in the directory).
    """

    kind: Literal["manager", "department", "total"]
    manager_id: str
    name: str
    department_id: str
    department_name: str
    role: str = ""
    working_days: int | None = None
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(METRICS, 0))
    amounts: dict[str, Decimal] = field(default_factory=dict)
    norms: dict[str, float] = field(default_factory=dict)
    members: int = 1  # the managers summed in this line

    def add(self, other: Line) -> None:
        self.members += other.members
        for metric, value in other.counts.items():
            self.counts[metric] = self.counts.get(metric, 0) + value
        for currency, amount in other.amounts.items():
            self.amounts[currency] = self.amounts.get(currency, Decimal(0)) + amount
        for metric, norm in other.norms.items():
            self.norms[metric] = self.norms.get(metric, 0.0) + norm
        if other.working_days is not None:
            self.working_days = (self.working_days or 0) + other.working_days


@dataclass
class Report:
    period: ReportPeriod
    managers: list[Line]  # by department, then name; unattributed last
    departments: list[Line]  # in the same order
    total: Line
    trend: list[tuple[date, dict[str, int]]]  # the selection's counts per local day
    generated_at: datetime
    department: str | None = None
    manager: str | None = None


class ReportError(DeliveryError):
    """The report cannot be made as asked (an unknown manager or department)."""


def query_report(
    ch: ClickHouse,
    directory: Directory,
    period: ReportPeriod,
    *,
    rules: RulesFile,
    calendar: Calendar,
    generated_at: datetime,
    department: str | None = None,
    manager: str | None = None,
    progress: Progress | None = None,
) -> Report:
    """Read the period from the rollups, a local day at a time, and assemble the report."""
    days = period.days()
    rows: list[DayRow] = []
    for done, day in enumerate(days, start=1):
        rows.extend(read_day(ch, day))
        if progress is not None:
            progress(done, len(days))
    return assemble_report(
        period,
        directory,
        rows,
        read_payments(ch, period),
        rules=rules,
        calendar=calendar,
        generated_at=generated_at,
        department=department,
        manager=manager,
    )


def read_day(ch: ClickHouse, day: date) -> list[DayRow]:
    sums = ", ".join(f"sum({metric})" for metric in METRICS)
    result = ch.execute(
        f"SELECT manager_id, any(department_id), {sums} FROM {ch.database}.{DAILY_TABLE} FINAL "
        "WHERE local_date = %(day)s GROUP BY manager_id",
        {"day": day},
    )
    return [
        DayRow(str(m), str(d), day, dict(zip(METRICS, map(int, values), strict=True)))
        for m, d, *values in result
    ]


def read_payments(ch: ClickHouse, period: ReportPeriod) -> list[PaymentRow]:
    # Amounts travel as text: chDB answers decimals as JSON numbers, which would round them.
    result = ch.execute(
        "SELECT manager_id, any(department_id), currency, sum(payments), toString(sum(amount)) "
        f"FROM {ch.database}.{PAYMENTS_TABLE} FINAL "
        "WHERE local_date >= %(first)s AND local_date <= %(last)s "
        "GROUP BY manager_id, currency",
        {"first": period.first, "last": period.last},
    )
    return [PaymentRow(str(m), str(d), str(c), int(n), Decimal(str(a))) for m, d, c, n, a in result]


def assemble_report(
    period: ReportPeriod,
    directory: Directory,
    rows: Iterable[DayRow],
    payments: Iterable[PaymentRow],
    *,
    rules: RulesFile,
    calendar: Calendar,
    generated_at: datetime,
    department: str | None = None,
    manager: str | None = None,
) -> Report:
    workdays = Workdays(calendar)
    lines: dict[str, Line] = {}
    for entry in directory.managers.values():
        zone = directory.timezone_of(entry.department)
        days = working_days(workdays, entry.id, entry.department, zone, period)
        lines[entry.id] = Line(
            "manager",
            entry.id,
            entry.name or entry.id,
            entry.department,
            _department_name(directory, entry.department),
            entry.role,
            days,
            norms=period_norms(rules, workdays, entry.department, entry.role, days),
        )

    def line_of(manager_id: str, department_id: str) -> Line:
        key = manager_id or UNATTRIBUTED
        if key not in lines:
            name = _department_name(directory, department_id)
            lines[key] = Line("manager", key, key, department_id, name)
        return lines[key]

    trend: dict[date, dict[str, int]] = {day: dict.fromkeys(METRICS, 0) for day in period.days()}
    chosen: list[DayRow] = []
    for row in rows:
        if not period.first <= as_date(row.local_date) <= period.last:
            continue
        line = line_of(row.manager_id, row.department_id)
        for metric, value in row.counts.items():
            line.counts[metric] = line.counts.get(metric, 0) + value
        chosen.append(row)
    for payment in payments:
        line = line_of(payment.manager_id, payment.department_id)
        line.amounts[payment.currency] = line.amounts.get(payment.currency, Decimal(0))
        line.amounts[payment.currency] += payment.amount

    selected = _select(lines, directory, department, manager)
    keys = {line.manager_id for line in selected}
    for row in chosen:
        if (row.manager_id or UNATTRIBUTED) in keys:
            day_counts = trend[as_date(row.local_date)]
            for metric, value in row.counts.items():
                day_counts[metric] = day_counts.get(metric, 0) + value
    departments = _department_lines(selected)
    total = _sum("total", "", "", selected)
    return Report(
        period,
        selected,
        departments,
        total,
        sorted(trend.items()),
        generated_at,
        department,
        manager,
    )


def _department_name(directory: Directory, department_id: str) -> str:
    entry = directory.departments.get(department_id)
    return entry.name or entry.id if entry is not None else department_id or UNATTRIBUTED


def _select(
    lines: dict[str, Line], directory: Directory, department: str | None, manager: str | None
) -> list[Line]:
    chosen = [
        line
        for line in lines.values()
        if (department is None or line.department_id == department)
        and (manager is None or line.manager_id == manager)
    ]
    if department is not None and department not in directory.departments and not chosen:
        raise ReportError(f"no department {department!r} in the directory or in the data")
    if manager is not None and not chosen:
        raise ReportError(f"no manager {manager!r} in the directory or in the period's data")
    if department is None and manager is None:
        # Unattributed activity is listed only when there is some.
        chosen = [line for line in chosen if line.manager_id != UNATTRIBUTED or _any(line)]
    elif manager is None:
        chosen = [line for line in chosen if line.manager_id != UNATTRIBUTED]
    return sorted(chosen, key=_order)


def _any(line: Line) -> bool:
    return any(line.counts.values()) or bool(line.amounts)


def _order(line: Line) -> tuple[bool, str, str, str]:
    unattributed = line.manager_id == UNATTRIBUTED
    return (unattributed, line.department_name.casefold(), line.name.casefold(), line.manager_id)


def _department_lines(managers: Sequence[Line]) -> list[Line]:
    groups: dict[str, list[Line]] = {}
    for line in managers:
        key = UNATTRIBUTED if line.manager_id == UNATTRIBUTED else line.department_id
        groups.setdefault(key, []).append(line)
    return [
        _sum("department", lines[0].department_id, lines[0].department_name, lines)
        for lines in groups.values()
    ]


def _sum(
    kind: Literal["department", "total"], department_id: str, name: str, lines: Sequence[Line]
) -> Line:
    total = Line(kind, "", name, department_id, name, members=0)
    for line in lines:
        total.add(line)
    judged = [line for line in lines if line.working_days is not None]
    total.norms = {
        metric: norm
        for metric, norm in total.norms.items()
        if judged and all(metric in line.norms for line in judged)
    }
    return total
