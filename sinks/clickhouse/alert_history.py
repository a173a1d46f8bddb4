"""The alert history table (``alerts``, migration 0009): one row per notice.

The alerting service records its notices here before it delivers them anywhere, synchronously:
it is the source of truth at restart (``open_notices``: the alerts that fired and did not
resolve, which must not fire again) and the listing behind the CLI. Recording the same notice
again is harmless: rows collapse by notice id, and every read here uses ``FINAL``.

Times go in and come out as aware UTC datetimes in whole seconds (the column type).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from salespulse.alert_model import Alert, AlertState, Notice, Severity, Suppression
from sinks.alerts.payload import utc
from sinks.clickhouse.client import ClickHouse, Row, as_datetime

TABLE = "alerts"
_NOTICE = ("notice_id", "alert_key", "state", "at", "suppressed", "reason")
_ALERT = (
    "rule",
    "kind",
    "severity",
    "manager_id",
    "manager_name",
    "department_id",
    "department_name",
    "metric",
    "actual",
    "expected",
    "since",
    "fired_at",
    "recipients",
    "summary_en",
    "summary_ru",
    "dashboard_url",
    "details",
)
COLUMNS = (*_NOTICE, *_ALERT, "recorded_at")
_SELECTED = ", ".join(COLUMNS[:-1])


def _second(value: datetime) -> datetime:
    return utc(value).replace(microsecond=0)


def _row(notice: Notice, recorded_at: datetime) -> Row:
    alert = notice.alert
    return (
        notice.notice_id,
        alert.key,
        notice.state.value,
        _second(notice.at),
        notice.suppressed.value,
        notice.reason,
        alert.rule,
        alert.kind,
        alert.severity.value,
        alert.manager_id,
        alert.manager_name,
        alert.department_id,
        alert.department_name,
        alert.metric,
        float(alert.actual),
        float(alert.expected),
        _second(alert.since),
        _second(alert.fired_at),
        list(alert.recipients),  # a list: the chDB path renders tuples as tuples, not arrays
        alert.summary_en,
        alert.summary_ru,
        alert.dashboard_url,
        json.dumps(alert.details, ensure_ascii=False, sort_keys=True),
        recorded_at,
    )


def record_notices(
    ch: ClickHouse, notices: Sequence[Notice], *, now: datetime | None = None
) -> None:
    """Write ``notices`` in one columnar insert (nothing for an empty list)."""
    if not notices:
        return
    recorded_at = _second(now or datetime.now(UTC))
    rows = [_row(notice, recorded_at) for notice in notices]
    ch.insert_columns(TABLE, COLUMNS, [list(column) for column in zip(*rows, strict=True)])


def _utc(value: object) -> datetime:
    return utc(as_datetime(value))


def _notice(row: Row) -> Notice:
    values: dict[str, Any] = dict(zip(COLUMNS, row, strict=False))
    alert = Alert(
        key=str(values["alert_key"]),
        rule=str(values["rule"]),
        kind=str(values["kind"]),
        severity=Severity(values["severity"]),
        manager_id=str(values["manager_id"]),
        manager_name=str(values["manager_name"]),
        department_id=str(values["department_id"]),
        department_name=str(values["department_name"]),
        metric=str(values["metric"]),
        actual=float(values["actual"]),
        expected=float(values["expected"]),
        since=_utc(values["since"]),
        fired_at=_utc(values["fired_at"]),
        recipients=tuple(str(r) for r in values["recipients"]),
        summary_en=str(values["summary_en"]),
        summary_ru=str(values["summary_ru"]),
        dashboard_url=str(values["dashboard_url"]),
        details={str(k): str(v) for k, v in json.loads(values["details"] or "{}").items()},
    )
    return Notice(
        alert=alert,
        state=AlertState(values["state"]),
        at=_utc(values["at"]),
        suppressed=Suppression(values["suppressed"]),
        reason=str(values["reason"]),
    )


def open_notices(ch: ClickHouse, since: datetime) -> list[Notice]:
    """The firing notices of alerts fired at or after ``since`` that have not resolved since:
    per alert key, the latest episode (fired_at), and in it a resolve beats its fire."""
    # Old servers compare DateTime with a number, not a time literal; the inner alias differs
    # from every column name, which old servers need inside aggregates.
    sql = f"""
        SELECT {_SELECTED}
        FROM {ch.database}.{TABLE} FINAL
        WHERE fired_at >= toDateTime(%(since)s) AND state = 'firing'
          AND notice_id IN (
              SELECT argMax(notice_id, toUInt64(fired_at) * 2 + (state = 'resolved')) AS last_id
              FROM {ch.database}.{TABLE}
              WHERE fired_at >= toDateTime(%(since)s)
              GROUP BY alert_key
          )
        ORDER BY fired_at, alert_key
    """
    rows = ch.execute(sql, {"since": int(utc(since).timestamp())})
    return [_notice(row) for row in rows]


def open_alerts(ch: ClickHouse, since: datetime) -> list[Alert]:
    """The alerts that fired at or after ``since`` and are still open: at restart, the engine
    takes these as firing already, so it does not fire them again."""
    return [notice.alert for notice in open_notices(ch, since)]


def recent_notices(ch: ClickHouse, since: datetime, limit: int = 100) -> list[Notice]:
    """Notices at or after ``since``, newest first, at most ``limit``: for listing."""
    sql = f"""
        SELECT {_SELECTED}
        FROM {ch.database}.{TABLE} FINAL
        WHERE at >= toDateTime(%(since)s)
        ORDER BY at DESC, alert_key, state DESC
        LIMIT %(limit)s
    """
    rows = ch.execute(sql, {"since": int(utc(since).timestamp()), "limit": int(limit)})
    return [_notice(row) for row in rows]


DELIVERIES = "alert_deliveries"


def record_delivery(ch: ClickHouse, notice_id: str, channel: str, at: datetime) -> None:
    """Note that ``channel`` took the notice (the delivery log, migration 0011)."""
    ch.insert_columns(
        DELIVERIES,
        ("notice_id", "channel", "delivered_at"),
        [[notice_id], [channel], [_second(at)]],
    )


def undelivered_notices(ch: ClickHouse, channel: str, since: datetime) -> list[Notice]:
    """Notices recorded at or after ``since`` that ``channel`` has not taken, oldest first."""
    sql = f"""
        SELECT {_SELECTED}
        FROM {ch.database}.{TABLE} FINAL
        WHERE at >= toDateTime(%(since)s)
          AND notice_id NOT IN (
              SELECT notice_id FROM {ch.database}.{DELIVERIES}
              WHERE channel = %(channel)s AND delivered_at >= toDateTime(%(since)s)
          )
        ORDER BY at, alert_key, state
    """
    rows = ch.execute(sql, {"since": int(utc(since).timestamp()), "channel": channel})
    return [_notice(row) for row in rows]
