"""The alert history tables (``alerts``, migration 0009: one row per notice; ``alert_deliveries``,
migration 0011: which channel took which notice), written here and read in
``queries.alert_history``.

The alerting service records its notices here before it delivers them anywhere, synchronously:
it is the source of truth at restart (the alerts that fired and did not resolve, which must not
fire again) and the listing behind the CLI. Recording the same notice again is harmless: rows
collapse by notice id, and every read uses ``FINAL``.

Times go in and come out as aware UTC datetimes in whole seconds (the column type).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime

from salespulse.alert_model import Notice, utc
from sinks.clickhouse.client import ClickHouse, Row

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


DELIVERIES = "alert_deliveries"


def record_delivery(ch: ClickHouse, notice_id: str, channel: str, at: datetime) -> None:
    """Note that ``channel`` took the notice (the delivery log, migration 0011)."""
    ch.insert_columns(
        DELIVERIES,
        ("notice_id", "channel", "delivered_at"),
        [[notice_id], [channel], [_second(at)]],
    )
