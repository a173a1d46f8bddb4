"""The numbers the alert engine judges with, read from ClickHouse.

``query_hourly_history`` feeds the baselines (``processors.alerting.baseline``): weeks of hourly
activity from the 15-minute rollup. ``query_activity_snapshot`` is today's activity at minute
resolution from the exact events, read again and again while alerts are evaluated, so it is
five date-restricted queries and nothing else (their cost: docs/benchmarks.md).

Times travel as Unix seconds (``toUInt32``): old servers cannot compare a DateTime with a time
literal, and the two engines return DateTime values in different shapes.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from itertools import compress
from typing import Any
from zoneinfo import ZoneInfo

from processors.alerting.activity import ActivitySnapshot, HourRow, MinuteCounts, OpenTask
from salespulse.directory import Directory
from salespulse.settings import CountingSettings
from sinks.clickhouse.client import ClickHouse, as_date
from sinks.clickhouse.queries import ACTIVITY_METRICS, CALL_METRICS, day_params, per_manager_metrics
from sinks.clickhouse.rollup import ACTIVITY_METRIC_NAMES, DAILY

# An open task older than this is a CRM's forgotten leftover, not today's work.
OPEN_TASK_DAYS = 45
# Daily rollup rows in the snapshot: a week back from every time zone's today.
SNAPSHOT_DAYS = 8
# Minute groups as Unix seconds of the local wall-clock minute (local_time is stored as UTC).
_MINUTE = "toUInt32(toStartOfMinute(local_time))"


def query_hourly_history(ch: ClickHouse, first_day: date, last_day: date) -> list[HourRow]:
    """Every manager's activity per local hour of local days ``first_day``..``last_day``.

    Hours without activity and unattributed activity are left out.
    """
    sums = ", ".join(f"sum({name})" for name in ACTIVITY_METRIC_NAMES)
    # The hour of a bucket from its seconds: bucket is wall-clock time stored as UTC, so this is
    # the local hour without any time-zone function (whose handling differs across versions).
    rows = ch.execute(
        f"SELECT manager_id, department_id, local_date, "
        f"intDiv(modulo(toUInt32(bucket), 86400), 3600) AS local_hour, {sums} "
        f"FROM {ch.database}.activity_15m FINAL "
        "WHERE local_date >= %(first)s AND local_date <= %(last)s AND manager_id != '' "
        "GROUP BY manager_id, department_id, local_date, local_hour",
        {"first": first_day, "last": last_day},
    )
    history = []
    for manager_id, department_id, day, hour, *values in rows:
        counts = {
            name: int(value)
            for name, value in zip(ACTIVITY_METRIC_NAMES, values, strict=True)
            if value
        }
        if counts:  # zero rows are left by activity that moved to another manager
            history.append(HourRow(manager_id, department_id, as_date(day), int(hour), counts))
    return history


def query_activity_snapshot(
    ch: ClickHouse, directory: Directory, now: datetime, counting: CountingSettings
) -> ActivitySnapshot:
    """Today's activity of every manager, as of ``now`` (see ``ActivitySnapshot``).

    Local days from UTC yesterday to UTC tomorrow hold today of every time zone on Earth.
    """
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must carry a time zone; naive times are ambiguous")
    utc_today = now.astimezone(UTC).date()
    params = day_params(utc_today - timedelta(days=1), utc_today + timedelta(days=1), counting)
    since = now - timedelta(days=OPEN_TASK_DAYS)
    params |= {
        "days_low": utc_today - timedelta(days=SNAPSHOT_DAYS),
        "tasks_utc_low": since.astimezone(UTC).date(),
        "tasks_since": int(since.timestamp()),
    }
    return ActivitySnapshot(
        taken_at=now,
        minutes=_minutes(ch, directory, params, counting),
        last_active=_last_active(ch, params),
        open_tasks=_open_tasks(ch, params),
        days=_days(ch, params),
    )


class _WallClock:
    """Local wall-clock seconds (as stored in local_time) to Unix seconds, in a zone, fold=0.

    A minute of the hour repeated when clocks go back is taken as its first occurrence: the
    stored wall-clock time no longer tells the two apart. Offsets are looked up once per zone
    and wall-clock hour (tens of thousands of rows share a few hundred); an hour whose start
    and end differ in offset holds a change and is converted minute by minute.
    """

    def __init__(self) -> None:
        self._hours: dict[tuple[ZoneInfo, int], int | None] = {}

    def to_unix(self, tz: ZoneInfo, wall: int) -> int:
        key = (tz, wall // 3600)
        if key not in self._hours:
            first, last = _offset(tz, key[1] * 3600), _offset(tz, key[1] * 3600 + 3599)
            self._hours[key] = first if first == last else None
        offset = self._hours[key]
        return wall - (_offset(tz, wall) if offset is None else offset)


def _offset(tz: ZoneInfo, wall: int) -> int:
    offset = datetime.fromtimestamp(wall, UTC).replace(tzinfo=tz).utcoffset()
    assert offset is not None  # a ZoneInfo always has one
    return int(offset.total_seconds())


def _minutes(
    ch: ClickHouse, directory: Directory, params: dict[str, Any], counting: CountingSettings
) -> dict[str, dict[str, MinuteCounts]]:
    zones: dict[tuple[str, str], ZoneInfo | None] = {}

    def zone(manager_id: str, department_id: str) -> ZoneInfo | None:
        # The department the activity was attributed to says which wall clock local_time is
        # on; if it has left the directory since, the manager's current one is the best guess.
        key = (manager_id, department_id)
        if key not in zones:
            if not manager_id:
                zones[key] = None  # unattributed: not about anyone
            elif department_id in directory.departments:
                zones[key] = directory.timezone_of(department_id)
            elif manager_id in directory.managers:
                zones[key] = directory.timezone_of(directory.managers[manager_id].department)
            else:
                zones[key] = None  # nobody knows which clock it was on
        return zones[key]

    clock = _WallClock()
    per_minute: dict[str, dict[str, dict[int, int]]] = defaultdict(lambda: defaultdict(dict))
    calls_sql, activity_sql = per_manager_metrics(ch.database, _MINUTE, counting)
    for sql, metrics in ((calls_sql, CALL_METRICS), (activity_sql, ACTIVITY_METRICS)):
        rows = ch.execute(sql, params)
        if not rows:
            continue
        # Column by column: most cells are zero, and compress() skips them at C speed (tens of
        # thousands of rows times twenty metrics arrive every time the engine looks).
        managers, departments, _days, walls, *values = zip(*rows, strict=True)
        minutes = [
            None if tz is None else clock.to_unix(tz, int(wall))
            for tz, wall in zip(map(zone, managers, departments), walls, strict=True)
        ]
        for (name, _), column in zip(metrics, values, strict=True):
            for i in compress(range(len(rows)), column):
                minute = minutes[i]
                if minute is not None:
                    series = per_minute[managers[i]][name]
                    series[minute] = series.get(minute, 0) + int(column[i])
    # Sorted as Unix seconds (aware datetimes compare slowly), then one datetime per distinct
    # minute, shared by every series.
    distinct = {
        m for by_metric in per_minute.values() for series in by_metric.values() for m in series
    }
    instants = {minute: datetime.fromtimestamp(minute, UTC) for minute in distinct}
    return {
        manager_id: {name: _pairs(series, instants) for name, series in by_metric.items()}
        for manager_id, by_metric in per_minute.items()
    }


def _pairs(series: dict[int, int], instants: dict[int, datetime]) -> MinuteCounts:
    ordered = sorted(series)
    starts, counts = map(instants.__getitem__, ordered), map(series.__getitem__, ordered)
    return tuple(zip(starts, counts, strict=True))


# The latest version of an event without FINAL, which old servers run in one thread (over 45
# days of task events at 200 managers: 580 ms with FINAL, 86 ms without): group by event id and
# take each field by the highest processed_at, as ReplacingMergeTree(processed_at) keeps it.
# Only fields a replay can change (attribution, exclusion, local day) need it; every copy of an
# event agrees on the rest.
_LATEST = "argMax({column}, processed_at)"


def _last_active(ch: ClickHouse, params: dict[str, Any]) -> dict[str, datetime]:
    # Per leg, not per consolidated call: each manager was busy until their own leg ended.
    # Calls to service numbers (excluded) are not work with a customer.
    rows = ch.execute(
        "SELECT owner, max(busy_until) FROM ("
        f"SELECT event_id, {_LATEST.format(column='manager_id')} AS owner, "
        f"{_LATEST.format(column='excluded')} AS not_counted, "
        f"{_LATEST.format(column='local_date')} AS owner_day, "
        "any(if(kind = 'call', toUInt64(occurred_at) + duration_seconds, "
        "toUInt64(ifNull(ended_at, occurred_at)))) AS busy_until "
        f"FROM {ch.database}.events "
        "WHERE kind IN ('call', 'chat_session') "
        "AND toDate(occurred_at) >= %(utc_low)s AND toDate(occurred_at) <= %(utc_high)s "
        "GROUP BY event_id) AS latest "
        "WHERE owner != '' AND not_counted = 0 "
        "AND owner_day >= %(low)s AND owner_day <= %(high)s GROUP BY owner",
        params,
    )
    return {manager_id: datetime.fromtimestamp(int(at), UTC) for manager_id, at in rows}


def _open_tasks(ch: ClickHouse, params: dict[str, Any]) -> tuple[OpenTask, ...]:
    # A task is its CRM entity (external_ref); without one its events cannot be tied together.
    # Without FINAL (see _LATEST): copies of one event agree on everything but attribution, so
    # the owner is taken by event time, then processed_at; the rest is unaffected by copies.
    # argMaxIf picks the deadline of the latest event that carries one (0: none did).
    latest = "toUInt64(toUInt32(occurred_at)) * 4294967296 + toUInt32(processed_at)"
    rows = ch.execute(
        f"SELECT external_ref AS task_ref, argMax(manager_id, {latest}) AS owner, "
        f"argMax(department_id, {latest}) AS owner_department, "
        "argMaxIf(ifNull(toUInt32(due_at), 0), occurred_at, isNotNull(due_at)) AS deadline, "
        "toUInt32(min(occurred_at)) AS first_seen, "
        "countIf(action = 'completed') AS completions "
        f"FROM {ch.database}.events "
        "WHERE kind = 'task' AND external_ref != '' AND toDate(occurred_at) >= %(tasks_utc_low)s "
        "GROUP BY task_ref "
        "HAVING completions = 0 AND deadline > 0 AND owner != '' "
        "AND first_seen >= %(tasks_since)s "
        "ORDER BY deadline, task_ref",
        params,
    )
    return tuple(
        OpenTask(
            task_id=task_id,
            manager_id=manager_id,
            department_id=department_id,
            due_at=datetime.fromtimestamp(int(due), UTC),
            created_at=datetime.fromtimestamp(int(created), UTC),
        )
        for task_id, manager_id, department_id, due, created, _ in rows
    )


def _days(ch: ClickHouse, params: dict[str, Any]) -> dict[str, dict[date, dict[str, int]]]:
    sums = ", ".join(f"sum({name})" for name in DAILY.metrics)
    rows = ch.execute(
        f"SELECT manager_id, local_date, {sums} FROM {ch.database}.{DAILY.table} FINAL "
        "WHERE local_date >= %(days_low)s AND local_date <= %(high)s AND manager_id != '' "
        "GROUP BY manager_id, local_date",
        params,
    )
    days: dict[str, dict[date, dict[str, int]]] = defaultdict(dict)
    for manager_id, day, *values in rows:
        days[manager_id][as_date(day)] = {
            name: int(value) for name, value in zip(DAILY.metrics, values, strict=True) if value
        }
    return dict(days)


def ingest_marker(ch: ClickHouse) -> int:
    """Grows whenever a batch becomes durable: the batch log is written after its events, so
    an unchanged marker means no event was stored since it was last read (a cheap count)."""
    ((batches,),) = ch.execute(f"SELECT count() FROM {ch.database}.ingest_batches")
    return int(batches)


class TodaysActivity:
    """Today's snapshot, read again only when a batch was stored since, the UTC day changed or
    the directory changed: a snapshot costs up to a second on a large team, and the readers
    (alert evaluation every second, the page every few) mostly find nothing new."""

    def __init__(self, counting: CountingSettings) -> None:
        self._counting = counting
        self._snapshot: ActivitySnapshot | None = None
        self._key: tuple[object, ...] = ()

    def read(self, ch: ClickHouse, directory: Directory, now: datetime) -> ActivitySnapshot:
        key = (ingest_marker(ch), now.astimezone(UTC).date(), id(directory))
        if self._snapshot is None or key != self._key:
            self._snapshot = query_activity_snapshot(ch, directory, now, self._counting)
            self._key = key
        return self._snapshot
