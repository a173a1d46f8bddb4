"""The board as JSON (``/api/today``), with every text a page shows already written.

The server-rendered pages take their texts from here too, so a number reads the same in the
first view and after the script updated it. Counts are whole numbers (one decimal under 10
when expected or projected), talk time is h:mm, times are the wall clock of the manager's (or
department's) time zone.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from processors.alerting.messages import amount, metric_name, span
from processors.alerting.today import (
    LOWER_IS_BETTER,
    DepartmentToday,
    Dip,
    ManagerToday,
    MetricToday,
    TodayBoard,
)
from processors.page_links import department_link, manager_link
from salespulse.activity_metrics import is_duration
from salespulse.alert_model import Alert

NO_VALUE = "—"


def hours_minutes(seconds: float) -> str:
    """Hours and minutes, as a clock shows them (whole minutes): 3959 seconds are "1:05"."""
    hours, minutes = divmod(int(seconds // 60), 60)
    return f"{hours}:{minutes:02d}"


def amount_text(metric: str, value: float | None) -> str:
    if value is None:
        return NO_VALUE
    if is_duration(metric):
        return hours_minutes(value)
    if abs(value - round(value)) < 0.05 or value >= 10:
        return f"{value:.0f}"
    return f"{value:.1f}"


def clock(moment: datetime, zone: ZoneInfo) -> str:
    return moment.astimezone(zone).strftime("%H:%M")


def dip_text(metric: str, dip: Dip, zone: ZoneInfo) -> str:
    """A manager's dip as the page's tooltip says it: "2 in the last 48 working minutes (from
    10:16), about 14 expected"."""
    return (
        f"{amount(metric, dip.observed, 'en')} in the last {span(dip.worked_seconds, 'en')} "
        f"(from {clock(dip.start, zone)}), about {amount(metric, dip.expected, 'en')} expected"
    )


def dipping_text(row: MetricToday, names: dict[str, str]) -> str:
    """A department's dipping managers: "2 managers dipping: Anna Ivanova, Pavel Petrov"."""
    who = [names.get(manager_id, manager_id) for manager_id in row.dipping]
    if not who:
        return ""
    many = "managers" if len(who) > 1 else "manager"
    return f"{len(who)} {many} dipping: {', '.join(who)}"


def _dip_payload(dip: Dip | None) -> dict[str, Any] | None:
    if dip is None:
        return None
    return {
        "window_start": dip.start.isoformat(),
        "working_seconds": dip.worked_seconds,
        "observed": dip.observed,
        "expected": dip.expected,
        "expected_from": dip.expected_from,
        "tail_probability": dip.tail_probability,
        "threshold": dip.threshold,
        "false_alarms": dip.false_alarms,
        "rule": dip.rule,
    }


def metric_payload(row: MetricToday, dip: str = "") -> dict[str, Any]:
    """One cell; ``dip`` is what its tooltip says of a dip ("" when none)."""
    share = row.share
    return {
        "label": metric_name(row.metric, "en"),
        "actual": row.actual,
        "expected": row.expected,
        "expected_from": row.expected_from,
        "norm": row.norm,
        "projected": row.projected,
        "share": share,
        "dipping": bool(row.dipping),
        "dipping_managers": len(row.dipping),
        "dip": _dip_payload(row.dip),
        "lower_is_better": row.metric in LOWER_IS_BETTER,
        "bar": None if share is None else round(min(share, 1.0) * 100),
        "text": {
            "actual": amount_text(row.metric, row.actual),
            "expected": amount_text(row.metric, row.expected),
            "norm": amount_text(row.metric, row.norm),
            "projected": amount_text(row.metric, row.projected),
            "share": NO_VALUE if share is None else f"{share:.0%}",
            "expected_from": row.expected_from.replace("+", " + ") or "nothing to expect",
            "dip": dip,
        },
    }


def _working_text(working: bool) -> str:
    return "at work" if working else "off"


def manager_payload(row: ManagerToday, now: datetime) -> dict[str, Any]:
    manager = row.manager
    return {
        "id": manager.id,
        "name": manager.name or manager.id,
        "role": manager.role,
        "department_id": manager.department,
        "timezone": row.zone.key,
        "local_date": row.local_date.isoformat(),
        "working": row.working,
        "worked_seconds": row.worked_seconds,
        "day_seconds": row.day_seconds,
        "metrics": {
            metric.metric: metric_payload(
                metric, dip_text(metric.metric, metric.dip, row.zone) if metric.dip else ""
            )
            for metric in row.metrics
        },
        "alerts": len(row.alerts),
        "text": {
            "clock": clock(now, row.zone),
            "working": _working_text(row.working),
            "worked": f"{hours_minutes(row.worked_seconds)} of {hours_minutes(row.day_seconds)}",
            "alerts": str(len(row.alerts)),
        },
    }


def department_payload(row: DepartmentToday, now: datetime) -> dict[str, Any]:
    department = row.department
    at_work = sum(manager.working for manager in row.managers)
    names = {m.manager.id: m.manager.name or m.manager.id for m in row.managers}
    return {
        "id": department.id,
        "name": department.name or department.id,
        "timezone": row.zone.key,
        "local_date": row.local_date.isoformat(),
        "working": row.working,
        "metrics": {
            metric.metric: metric_payload(metric, dipping_text(metric, names))
            for metric in row.totals
        },
        "managers": [manager_payload(manager, now) for manager in row.managers],
        "alerts": len(row.alerts),
        "text": {
            "clock": clock(now, row.zone),
            "working": _working_text(row.working),
            "at_work": f"{at_work} of {len(row.managers)}",
            "alerts": str(len(row.alerts)),
        },
    }


def alert_payload(alert: Alert, zone: ZoneInfo) -> dict[str, Any]:
    """An open alert; its times on the wall clock of its department."""
    who = alert.manager_name or alert.manager_id or alert.department_name or alert.department_id
    link = manager_link(alert.manager_id) if alert.manager_id else ""
    if not link and alert.department_id:
        link = department_link(alert.department_id)
    return {
        "key": alert.key,
        "rule": alert.rule,
        "kind": alert.kind,
        "severity": alert.severity.value,
        "manager_id": alert.manager_id,
        "manager_name": alert.manager_name,
        "department_id": alert.department_id,
        "department_name": alert.department_name,
        "metric": alert.metric,
        "since": alert.since.isoformat(),
        "fired_at": alert.fired_at.isoformat(),
        "link": link,
        "text": {
            "summary": alert.summary_en or f"{who}: {alert.rule}",
            "when": f"since {clock(alert.since, zone)}, fired {clock(alert.fired_at, zone)}",
        },
    }


def layout_of(board: TodayBoard | None) -> str:
    """Changes when a department or manager comes, goes or is renamed: the pages then reload
    rather than patch numbers into a table that no longer fits."""
    if board is None:
        return ""
    shape = [
        (d.department.id, d.department.name, d.zone.key,
         [(m.manager.id, m.manager.name, m.manager.role) for m in d.managers])
        for d in board.departments
    ]  # fmt: skip
    return hashlib.sha256(json.dumps(shape).encode()).hexdigest()[:16]


def status_text(board: TodayBoard | None, error: str) -> str:
    if board is None:
        return f"waiting for the first numbers: {error}" if error else "waiting for the numbers"
    updated = board.taken_at.astimezone(UTC).strftime("%H:%M:%S UTC")
    if error:
        return f"not updated ({error}); numbers as of {updated}"
    return f"updated {updated}"


def board_payload(board: TodayBoard | None, error: str, refresh_seconds: float) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "taken_at": None,
        "stale": bool(error),
        "error": error,
        "status": status_text(board, error),
        "layout": layout_of(board),
        "refresh_seconds": refresh_seconds,
        "departments": [],
        "alerts": [],
    }
    if board is not None:
        payload["taken_at"] = board.taken_at.isoformat()
        payload["departments"] = [department_payload(d, board.taken_at) for d in board.departments]
        payload["alerts"] = [
            alert_payload(alert, board.zone_of(alert.department_id)) for alert in board.alerts
        ]
    return payload
