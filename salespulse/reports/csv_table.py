"""A report as CSV: one row per manager, then one per department and a total, raw numbers.

The columns are fixed (``CSV_COLUMNS``, documented in docs/reports.md) whatever the data, so a
spreadsheet or a script reading last month's file reads this month's too. Durations are whole
seconds, amounts plain decimals, norms plain numbers; nothing is formatted for a locale.
"""

from __future__ import annotations

import csv
import io

from salespulse.reports.data import METRICS, Line, Report

CSV_COLUMNS: tuple[str, ...] = (
    "row_type",  # manager, department or total
    "period",  # day, week or month
    "first_day",
    "last_day",
    "department_id",
    "department_name",
    "manager_id",
    "manager_name",
    "role",
    "managers",
    "working_days",
    *METRICS,
    "payment_amounts",  # CUR=amount;CUR=amount, by currency code
    "norms",  # metric=norm;metric=norm, the metrics with a norm
)
# A cell starting with one of these is a formula to a spreadsheet program; names come from a
# file anyone may edit, so such a name is written with a leading apostrophe.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def render_csv(report: Report, *, bom: bool = False) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for line in [*report.managers, *report.departments, report.total]:
        writer.writerow(_row(report, line))
    return ("\ufeff" if bom else "") + out.getvalue()


def _row(report: Report, line: Line) -> list[str]:
    period = report.period
    days = "" if line.working_days is None else str(line.working_days)
    amounts = ";".join(f"{c}={v}" for c, v in sorted(line.amounts.items()))
    norms = ";".join(f"{m}={_number(v)}" for m, v in sorted(line.norms.items()))
    return [
        line.kind,
        period.kind,
        period.first.isoformat(),
        period.last.isoformat(),
        _text(line.department_id),
        _text(line.department_name),
        _text(line.manager_id),
        _text(line.name if line.kind == "manager" else ""),
        _text(line.role),
        str(line.members),
        days,
        *(str(line.counts.get(metric, 0)) for metric in METRICS),
        amounts,
        norms,
    ]


def _number(value: float) -> str:
    return str(int(value)) if value == int(value) else f"{value:.2f}"


def _text(value: str) -> str:
    return "'" + value if value.startswith(_FORMULA_START) else value
