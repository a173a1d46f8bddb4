"""The alert history read back (``sinks.clickhouse.alert_history`` writes it): the alerts still
open at a restart, the listing behind ``salespulse alerts list``, and the notices a channel
has not taken yet.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from salespulse.alert_model import Alert, AlertState, Notice, Severity, Suppression, utc
from sinks.clickhouse.alert_history import COLUMNS, DELIVERIES, TABLE
from sinks.clickhouse.client import ClickHouse, Row, as_datetime

_SELECTED = ", ".join(COLUMNS[:-1])


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
