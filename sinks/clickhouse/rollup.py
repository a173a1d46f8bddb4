"""Dashboard rollups, recomputed from the exact events for the days that changed.

A rollup row is never incremented: the rows of a local day are recomputed from ``events FINAL``
and replace the previous ones by version. That keeps the rollups as exact as the events under
replays, late records, directory changes and counting-setting changes. Keys that existed and
have no activity any more (an event re-attributed to another manager) get an explicit zero row.

Which days changed is durable: every batch logs its local days in ``ingest_batches``, and
``RollupUpdater`` advances a watermark over that log, so days touched just before a crash are
recomputed after the restart.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from salespulse.settings import CountingSettings
from sinks.clickhouse.client import ClickHouse, as_date
from sinks.clickhouse.queries import (
    ACTIVITY_METRICS,
    CALL_METRICS,
    day_params,
    per_manager_metrics,
)
from sinks.clickhouse.worktime import WORKTIME_METRICS, query_working_time

log = logging.getLogger(__name__)

ACTIVITY_TABLE = "activity_15m"
DAILY_TABLE = "activity_daily"
PAYMENTS_TABLE = "payments_daily"
STATE_TABLE = "rollup_state"
ACTIVITY_METRIC_NAMES: tuple[str, ...] = tuple(n for n, _ in CALL_METRICS + ACTIVITY_METRICS)
_BUCKET = "toStartOfFifteenMinutes(local_time)"
_MAX_DAYS_PER_PASS = 31  # a backfill's days are recomputed a month at a time


@dataclass(frozen=True)
class RollupShape:
    table: str
    keys: tuple[str, ...]
    metrics: tuple[str, ...]


ACTIVITY = RollupShape(
    ACTIVITY_TABLE, ("manager_id", "department_id", "local_date", "bucket"), ACTIVITY_METRIC_NAMES
)
DAILY = RollupShape(
    DAILY_TABLE,
    ("manager_id", "department_id", "local_date"),
    ACTIVITY_METRIC_NAMES + WORKTIME_METRICS,
)
PAYMENTS = RollupShape(
    PAYMENTS_TABLE,
    ("manager_id", "department_id", "local_date", "currency"),
    ("payments", "amount"),
)


def _key(row: Sequence[Any]) -> tuple[Any, ...]:
    """A rollup key as read back: the local date as a ``date`` whichever client read it (chDB
    returns text), so keys of every query, and of working time, match."""
    return (row[0], row[1], as_date(row[2]), *row[3:])


def _params(days: Sequence[date], counting: CountingSettings) -> dict[str, Any]:
    return {**day_params(min(days), max(days), counting), "days": tuple(days)}


def _activity_rows(
    ch: ClickHouse, params: dict[str, Any], counting: CountingSettings
) -> dict[tuple[Any, ...], list[int | Decimal]]:
    merged: dict[tuple[Any, ...], list[int | Decimal]] = {}
    position = {name: i for i, name in enumerate(ACTIVITY_METRIC_NAMES)}
    calls_sql, activity_sql = per_manager_metrics(ch.database, _BUCKET, counting)
    for sql, metrics in ((calls_sql, CALL_METRICS), (activity_sql, ACTIVITY_METRICS)):
        for row in ch.execute(sql, params):
            vector = merged.setdefault(_key(row[:4]), [0] * len(ACTIVITY_METRIC_NAMES))
            for (name, _), value in zip(metrics, row[4:], strict=True):
                vector[position[name]] = int(value)
    return merged


def _by_day(
    quarters: dict[tuple[Any, ...], list[int | Decimal]],
    worktime: dict[tuple[Any, ...], list[int]],
) -> dict[tuple[Any, ...], list[int | Decimal]]:
    """Day rows: the day's 15-minute rows summed, then its working time."""
    width = len(ACTIVITY_METRIC_NAMES)
    days: dict[tuple[Any, ...], list[int | Decimal]] = {}
    for (manager, department, day, _bucket), values in quarters.items():
        total = days.setdefault((manager, department, day), [0] * width)
        for i, value in enumerate(values):
            total[i] += value
    for key in worktime:
        days.setdefault(key, [0] * width)
    for key, total in days.items():
        total.extend(worktime.get(key, [0] * len(WORKTIME_METRICS)))
    return days


def _payment_rows(
    ch: ClickHouse, params: dict[str, Any]
) -> dict[tuple[Any, ...], list[int | Decimal]]:
    rows = ch.execute(
        "SELECT manager_id, department_id, local_date, currency, count(), sum(amount) "
        f"FROM {ch.database}.events FINAL WHERE kind = 'payment' "
        "AND local_date >= %(low)s AND local_date <= %(high)s "
        "AND toDate(occurred_at) >= %(utc_low)s AND toDate(occurred_at) <= %(utc_high)s "
        "AND excluded = 0 GROUP BY manager_id, department_id, local_date, currency",
        params,
    )
    return {_key(row[:4]): [int(row[4]), Decimal(str(row[5]))] for row in rows}


def _replace(
    ch: ClickHouse,
    shape: RollupShape,
    fresh: dict[tuple[Any, ...], list[int | Decimal]],
    params: dict[str, Any],
    version: int,
) -> int:
    days = set(params["days"])
    rows = {key: values for key, values in fresh.items() if as_date(key[2]) in days}
    any_activity = " OR ".join(f"{name} != 0" for name in shape.metrics)
    existing = ch.execute(
        f"SELECT {', '.join(shape.keys)} FROM {ch.database}.{shape.table} FINAL "
        f"WHERE local_date IN %(days)s AND ({any_activity})",
        params,
    )
    for key in existing:
        rows.setdefault(_key(key), [0] * len(shape.metrics))  # activity that moved away
    if rows:
        data = [(*key, *values, version) for key, values in rows.items()]
        columns = [list(column) for column in zip(*data, strict=True)]
        ch.insert_columns(shape.table, (*shape.keys, *shape.metrics, "version"), columns)
    return len(rows)


def recompute_days(
    ch: ClickHouse,
    days: Iterable[date],
    counting: CountingSettings | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> int:
    """Recompute every rollup for the given local days; returns the rows written.

    ``progress(days done, days in all)`` is called after each pass (up to a month of days)."""
    ordered = sorted(set(days))
    written = 0
    counting = counting or CountingSettings()
    for start in range(0, len(ordered), _MAX_DAYS_PER_PASS):
        chunk = ordered[start : start + _MAX_DAYS_PER_PASS]
        params = _params(chunk, counting)
        version = time.time_ns()
        quarters = _activity_rows(ch, params, counting)
        written += _replace(ch, ACTIVITY, quarters, params, version)
        daily = _by_day(quarters, query_working_time(ch, params))
        written += _replace(ch, DAILY, daily, params, version)
        written += _replace(ch, PAYMENTS, _payment_rows(ch, params), params, version)
        if progress is not None:
            progress(start + len(chunk), len(ordered))
    return written


class RollupUpdater:
    """Consumes the ``ingest_batches`` log: recomputes the days batches touched since the
    watermark, then advances it. Safe to run in several workers at once (recomputation is
    idempotent), and after a crash it resumes from the stored watermark."""

    name = "activity"

    def __init__(self, ch: ClickHouse, counting: CountingSettings) -> None:
        # One connection, used by one pass at a time; the native client reconnects by itself
        # after a network error.
        self._ch = ch
        self._counting = counting

    def run_once(self) -> int:
        """One pass; returns the rollup rows written."""
        ch = self._ch
        db = ch.database
        state = ch.execute(
            f"SELECT toUInt32(watermark) FROM {db}.{STATE_TABLE} FINAL WHERE name = %(name)s",
            {"name": self.name},
        )
        watermark = int(state[0][0]) if state else 0
        # The watermark's own second is read again: batches logged in it after the last pass
        # would otherwise be skipped. Recomputing a day twice is harmless. Times travel as Unix
        # seconds: old servers cannot compare a time literal with a partition key.
        ((latest, days),) = ch.execute(
            "SELECT toUInt32(max(inserted_at)), groupUniqArrayArray(local_dates) "
            f"FROM {db}.ingest_batches WHERE inserted_at >= toDateTime(%(watermark)s)",
            {"watermark": watermark},
        )
        if not days:
            return 0
        written = recompute_days(ch, [as_date(d) for d in days], self._counting)
        ch.insert_columns(
            STATE_TABLE,
            ("name", "watermark", "version"),
            [[self.name], [datetime.fromtimestamp(int(latest), UTC)], [time.time_ns()]],
        )
        log.debug("rollups: %d days recomputed, %d rows", len(days), written)
        return written


def rebuild(
    ch: ClickHouse,
    first: date,
    last: date,
    counting: CountingSettings | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> int:
    """Recompute the rollups of every local day from ``first`` to ``last`` (after a change of
    counting settings, or to fill them for history loaded before they existed)."""
    days = [first + timedelta(days=n) for n in range((last - first).days + 1)]
    return recompute_days(ch, days, counting, progress)
