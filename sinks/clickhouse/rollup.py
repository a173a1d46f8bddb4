"""Dashboard rollups, recomputed from the exact events for the days that changed.

A rollup row is never incremented: the rows of a local day are recomputed from ``events FINAL``
and replace the previous ones by version. That keeps the rollups as exact as the events under
replays, late records, directory changes and counting-setting changes. Keys that existed and
have no activity any more (an event re-attributed to another manager) get an explicit zero row.

The recomputation runs inside ClickHouse: each rollup table gets one ``INSERT … SELECT``, so a
pass sends four statements and reads back one row, however busy the days were. (It used to read
every 15-minute row of the days into the worker and insert them back: under live traffic, the
whole of today every 5 s.)

Which days changed is durable: every batch logs its local days in ``ingest_batches``, and
``RollupUpdater`` advances a watermark over that log, so days touched just before a crash are
recomputed after the restart.

Days whose events the retention dropped (``sinks.clickhouse.retention``) are never recomputed:
their rollups are all that is left of them, and a recomputation would find no events and write
zeros (or only a late record's numbers) over them.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from salespulse.activity_metrics import ACTIVITY_METRIC_NAMES
from salespulse.sections import CountingSettings
from sinks.clickhouse.client import ClickHouse, ClickHouseError, as_date
from sinks.clickhouse.metric_sql import (
    ACTIVITY_METRICS,
    CALL_METRICS,
    consolidated_calls,
    conversation_threshold,
    day_params,
)
from sinks.clickhouse.worktime import WORKTIME_METRICS, working_time_sql

log = logging.getLogger(__name__)

ACTIVITY_TABLE = "activity_15m"
DAILY_TABLE = "activity_daily"
PAYMENTS_TABLE = "payments_daily"
STATE_TABLE = "rollup_state"
# What the retention dropped, written before it drops (migration 0013).
RETENTION_LOG = "retention_log"
_BUCKET = "toStartOfFifteenMinutes(local_time)"
# A backfill's days are recomputed ten at a time. Each pass is one statement per table, whose
# parts (the consolidated calls with their join, the other events, reading events FINAL) run
# together: a month of 4 million events went over the 4 GB per-query limit of our 18.16 users.xml.
_MAX_DAYS_PER_PASS = 10


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

# The rows of one pass are built as a UNION ALL of parts that each select the shape's keys as
# ``k_<name>`` and every metric as ``m_<name>`` (prefixed: old servers read an alias equal to a
# column name inside its own aggregate as a nested aggregate), then summed per key. Parts agree on
# types, which 18.16 requires: a metric a part does not count is a typed zero, and departments
# are plain strings (a consolidated call's department is not LowCardinality).
_ZERO = {"amount": "toDecimal64(0, 2)"}
_DAYS = "local_date >= %(low)s AND local_date <= %(high)s AND local_date IN %(days)s"
_UTC_DAYS = "toDate(occurred_at) >= %(utc_low)s AND toDate(occurred_at) <= %(utc_high)s"


def _keys(shape: RollupShape, bucket: str = "bucket") -> str:
    """The ``k_`` columns of ``shape``; ``bucket`` is the 15-minute bucket's expression."""
    sql = {"department_id": "CAST(department_id AS String)", "bucket": bucket}
    return ", ".join(f"{sql.get(key, key)} AS k_{key}" for key in shape.keys)


def _group(shape: RollupShape) -> str:
    return ", ".join(f"k_{key}" for key in shape.keys)


def _metrics(shape: RollupShape, values: Mapping[str, str]) -> str:
    """The ``m_`` columns of ``shape``: ``values`` where given, zeros elsewhere."""
    return ", ".join(
        f"{values[name]} AS m_{name}"
        if name in values
        else f"{_ZERO.get(name, 'toUInt64(0)')} AS m_{name}"
        for name in shape.metrics
    )


def _counted(metrics: Sequence[tuple[str, str]], threshold: str) -> dict[str, str]:
    return {name: f"toUInt64({sql.format(threshold=threshold)})" for name, sql in metrics}


def _quarter_parts(database: str, counting: CountingSettings) -> list[str]:
    """The 15-minute rows with activity: calls consolidated from their legs, and every other
    event (see queries.per_manager_metrics, whose numbers these are)."""
    keys, group = _keys(ACTIVITY, _BUCKET), _group(ACTIVITY)
    calls = _counted(CALL_METRICS, conversation_threshold(counting))
    activity = _counted(ACTIVITY_METRICS, "")
    return [
        f"SELECT {keys}, {_metrics(ACTIVITY, calls)} "
        f"FROM ({consolidated_calls(database)}) WHERE {_DAYS} GROUP BY {group}",
        f"SELECT {keys}, {_metrics(ACTIVITY, activity)} "
        f"FROM {database}.events FINAL WHERE kind != 'call' AND excluded = 0 AND {_DAYS} "
        f"AND {_UTC_DAYS} GROUP BY {group}",
    ]


def _day_parts(database: str) -> list[str]:
    """Day rows: the 15-minute rows this pass wrote (``version``), summed by the caller, and the
    working time. Reading the rows back costs the server a few thousand rows a day instead of
    a second pass over the events. A 15-minute zero row adds no day key of its own: the pass
    that counted that quarter counted its day too, so the day row has activity and is among
    the vanished keys anyway."""
    quarters = {name: f"toUInt64({name})" for name in ACTIVITY_METRIC_NAMES}
    worktime = {
        name: column
        for name, column in zip(
            WORKTIME_METRICS, ("w_office", "w_remote", "w_visit", "w_trips"), strict=True
        )
    }
    keys = _keys(DAILY)
    return [
        f"SELECT {keys}, {_metrics(DAILY, quarters)} FROM {database}.{ACTIVITY_TABLE} "
        "WHERE local_date IN %(days)s AND version = %(version)s",
        f"SELECT {keys}, {_metrics(DAILY, worktime)} FROM ({working_time_sql(database)})",
    ]


def _payment_parts(database: str) -> list[str]:
    values = {"payments": "toUInt64(1)", "amount": "amount"}
    return [
        f"SELECT {_keys(PAYMENTS)}, {_metrics(PAYMENTS, values)} "
        f"FROM {database}.events FINAL WHERE kind = 'payment' AND excluded = 0 AND {_DAYS} "
        f"AND {_UTC_DAYS}"
    ]


def _vanished(database: str, shape: RollupShape) -> str:
    """Zeros for every key of the days whose latest row has activity: summed with the fresh
    rows, a key whose activity moved away (an event re-attributed) gets an explicit zero row."""
    any_activity = " OR ".join(f"{name} != 0" for name in shape.metrics)
    return (
        f"SELECT {_keys(shape)}, {_metrics(shape, {})} "
        f"FROM {database}.{shape.table} FINAL WHERE local_date IN %(days)s AND ({any_activity})"
    )


def _replace(ch: ClickHouse, shape: RollupShape, parts: list[str], params: dict[str, Any]) -> None:
    """One statement: the sum per key of ``parts`` and of the vanished keys' zeros, written with
    the pass's version. The SELECT reads the table before the INSERT adds to it."""
    columns = ", ".join((*shape.keys, *shape.metrics))
    union = " UNION ALL ".join([*parts, _vanished(ch.database, shape)])
    ch.execute(
        f"INSERT INTO {ch.database}.{shape.table} ({columns}, version) "
        f"SELECT {_group(shape)}, {', '.join(f'sum(m_{name})' for name in shape.metrics)}, "
        f"%(version)s FROM ({union}) GROUP BY {_group(shape)}",
        params,
    )


def _written(ch: ClickHouse, params: dict[str, Any]) -> int:
    counts = " + ".join(
        f"(SELECT count() FROM {ch.database}.{shape.table} "
        "WHERE local_date IN %(days)s AND version = %(version)s)"
        for shape in (ACTIVITY, DAILY, PAYMENTS)
    )
    ((written,),) = ch.execute(f"SELECT {counts}", params)
    return int(written)


def _params(days: Sequence[date], counting: CountingSettings) -> dict[str, Any]:
    return {**day_params(min(days), max(days), counting), "days": tuple(days)}


def frozen_through(ch: ClickHouse) -> date | None:
    """The last local day whose rollups must never be recomputed, because the retention dropped
    events it needs; None while no events were dropped.

    Events are partitioned by UTC month; a local day starts up to 14 hours before its UTC day
    (UTC+14), so the first kept UTC day is not whole in every zone: it is frozen too."""
    try:
        ((kept_from,),) = ch.execute(
            f"SELECT toUInt32(max(kept_from)) FROM {ch.database}.{RETENTION_LOG} "
            "WHERE table_name = 'events'"
        )
    except ClickHouseError as exc:
        # A schema from before migration 0013 (the rollups of an upgrade in progress): no
        # retention has run on it.
        if _NO_TABLE.search(str(exc)):
            return None
        raise
    # max() of no rows is the zero date (day 0), which also means "nothing dropped".
    return date.fromordinal(_EPOCH + int(kept_from)) if int(kept_from) else None


_EPOCH = date(1970, 1, 1).toordinal()
_NO_TABLE = re.compile(r"doesn't exist|UNKNOWN_TABLE")


def watermark(ch: ClickHouse, name: str = "activity") -> int | None:
    """The rollup watermark (Unix seconds of ``ingest_batches.inserted_at`` consumed), or None
    before the first pass (or after a migration recreated ``rollup_state``)."""
    state = ch.execute(
        f"SELECT toUInt32(watermark) FROM {ch.database}.{STATE_TABLE} FINAL WHERE name = %(name)s",
        {"name": name},
    )
    return int(state[0][0]) if state else None


def recompute_days(
    ch: ClickHouse,
    days: Iterable[date],
    counting: CountingSettings | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> int:
    """Recompute every rollup for the given local days; returns the rows written.

    Days the retention froze (``frozen_through``) are left as they are.
    ``progress(days done, days in all)`` is called after each pass (up to a month of days)."""
    ordered = sorted(set(days))
    frozen = frozen_through(ch) if ordered else None
    if frozen is not None and ordered[0] <= frozen:
        kept = [day for day in ordered if day <= frozen]
        log.info(
            "rollups of %d days from %s to %s left as they are: their events were dropped",
            len(kept),
            kept[0],
            kept[-1],
        )
        ordered = ordered[len(kept) :]
    written = 0
    counting = counting or CountingSettings()
    db = ch.database
    for start in range(0, len(ordered), _MAX_DAYS_PER_PASS):
        chunk = ordered[start : start + _MAX_DAYS_PER_PASS]
        # One version for every row of the pass; the day rows read the 15-minute rows by it.
        params = {**_params(chunk, counting), "version": time.time_ns()}
        _replace(ch, ACTIVITY, _quarter_parts(db, counting), params)
        _replace(ch, DAILY, _day_parts(db), params)
        _replace(ch, PAYMENTS, _payment_parts(db), params)
        written += _written(ch, params)
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
        consumed = watermark(ch, self.name) or 0
        # The watermark's own second is read again: batches logged in it after the last pass
        # would otherwise be skipped. Recomputing a day twice is harmless. Times travel as Unix
        # seconds: old servers cannot compare a time literal with a partition key.
        ((latest, days),) = ch.execute(
            "SELECT toUInt32(max(inserted_at)), groupUniqArrayArray(local_dates) "
            f"FROM {db}.ingest_batches WHERE inserted_at >= toDateTime(%(watermark)s)",
            {"watermark": consumed},
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
