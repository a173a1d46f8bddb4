"""The numbers the alert engine judges with, read from ClickHouse.

``query_hourly_history`` feeds the baselines (``processors.alerting.baseline``): weeks of hourly
activity from the 15-minute rollup. ``query_activity_snapshot`` is today's activity at minute
resolution from the exact events, read again and again while alerts are evaluated, so it is
six date-restricted queries and nothing else (their cost: docs/benchmarks.md).

Times travel as Unix seconds (``toUInt32``): old servers cannot compare a DateTime with a time
literal, and the two engines return DateTime values in different shapes.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Collection, Iterable, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any, NamedTuple, TypeVar, cast
from zoneinfo import ZoneInfo

from queries.minute_book import Group, MinuteBook
from salespulse.activity import (
    CHANNEL_UP_MAX,
    LOADED_AFTER,
    ActivitySnapshot,
    HourRow,
    MinuteCounts,
    OpenTask,
)
from salespulse.activity_metrics import ACTIVITY_METRIC_NAMES
from salespulse.directory import Directory
from salespulse.sections import CountingSettings
from sinks.clickhouse.client import ClickHouse, Row, as_date
from sinks.clickhouse.queries import (
    ACTIVITY_METRICS,
    CALL_METRICS,
    consolidated_calls,
    conversation_threshold,
    day_params,
)
from sinks.clickhouse.rollup import DAILY

# An open task older than this is a CRM's forgotten leftover, not today's work.
OPEN_TASK_DAYS = 45
# Daily rollup rows in the snapshot: a week back from every time zone's today.
SNAPSHOT_DAYS = 8
# Minute groups as Unix seconds of the local wall-clock minute (local_time is stored as UTC).
_MINUTE = "toUInt32(toStartOfMinute(local_time))"
_T = TypeVar("_T")


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
    ch: ClickHouse,
    directory: Directory,
    now: datetime,
    counting: CountingSettings,
    metrics: Collection[str] | None = None,
) -> ActivitySnapshot:
    """Today's activity of every manager, as of ``now`` (see ``ActivitySnapshot``), in one
    read; ``metrics`` limits the minute series to those (default: every metric).

    Local days from UTC yesterday to UTC tomorrow hold today of every time zone on Earth.
    """
    return TodaysActivity(counting, metrics).read(ch, directory, now, check_marker=False)


def _snapshot_params(now: datetime, counting: CountingSettings) -> dict[str, Any]:
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must carry a time zone; naive times are ambiguous")
    utc_today = now.astimezone(UTC).date()
    params = day_params(utc_today - timedelta(days=1), utc_today + timedelta(days=1), counting)
    since = now - timedelta(days=OPEN_TASK_DAYS)
    params |= {
        "days_low": utc_today - timedelta(days=SNAPSHOT_DAYS),
        "tasks_utc_low": since.astimezone(UTC).date(),
        "tasks_since": int(since.timestamp()),
        "loaded_after": int(LOADED_AFTER.total_seconds()),
        "busy_low": int((now - CHANNEL_UP_MAX).timestamp()),
    }
    return params


# The latest version of an event without FINAL, which old servers run in one thread (over 45
# days of task events at 200 managers: 580 ms with FINAL, 86 ms without): group by event id and
# take each field by the highest processed_at, as ReplacingMergeTree(processed_at) keeps it.
# Only fields a replay can change (attribution, exclusion, local day) need it; every copy of an
# event agrees on the rest.
_LATEST = "argMax({column}, processed_at)"


def _last_active(ch: ClickHouse, params: dict[str, Any]) -> list[Row]:
    # Per leg, not per consolidated call: each manager was busy until their own leg ended.
    # Calls to service numbers (excluded) are not work with a customer. A manager's channel
    # going up or down (never counted, so stored as excluded) is activity at that moment: a
    # Hangup seen before its CDR arrives ends the call as well.
    # Also, per manager, the latest of their records stored long after it ended (loaded after
    # the fact) and its local day: while a day is being loaded, inactivity is not judged. A
    # channel announced again after a reconnect is stored long after it came up, and says
    # nothing about a day being loaded.
    return ch.execute(
        "SELECT owner, max(busy_until), "
        "maxIf(stored, presence = 0 AND stored > busy_until + %(loaded_after)s) AS loaded_at, "
        "argMaxIf(owner_day, stored, presence = 0 AND stored > busy_until + %(loaded_after)s) "
        "AS loaded_day "
        "FROM ("
        f"SELECT event_id, {_LATEST.format(column='manager_id')} AS owner, "
        f"{_LATEST.format(column='excluded')} AS not_counted, "
        f"{_LATEST.format(column='local_date')} AS owner_day, "
        "toUInt64(max(processed_at)) AS stored, "
        "any(kind = 'channel') AS presence, "
        "any(if(kind = 'call', toUInt64(occurred_at) + duration_seconds, "
        "toUInt64(ifNull(ended_at, occurred_at)))) AS busy_until "
        f"FROM {ch.database}.events "
        "WHERE kind IN ('call', 'chat_session', 'channel') "
        "AND toDate(occurred_at) >= %(utc_low)s AND toDate(occurred_at) <= %(utc_high)s "
        "GROUP BY event_id) AS latest "
        "WHERE owner != '' AND (not_counted = 0 OR presence = 1) "
        "AND owner_day >= %(low)s AND owner_day <= %(high)s GROUP BY owner",
        params,
    )


def _busy(ch: ClickHouse, params: dict[str, Any]) -> list[Row]:
    # Per manager, since when the earliest of their channels still up came up: a channel with an
    # up row and no down row, up for less than CHANNEL_UP_MAX (a lost Hangup must not keep a
    # manager busy for ever). Channels are told apart by external_ref: an Asterisk channel's
    # uniqueid, a Bitrix24 CALL_ID (whose end, from the call-end event or the export, is its
    # down). Rows of one channel are few, so no FINAL: duplicates change neither count being
    # zero nor the min.
    return ch.execute(
        "SELECT owner, min(up_at) FROM ("
        "SELECT external_ref AS line, "
        f"{_LATEST.format(column='manager_id')} AS owner, "
        "minIf(toUInt64(occurred_at), action = 'up') AS up_at, "
        "countIf(action = 'up') AS ups, countIf(action = 'down') AS downs "
        f"FROM {ch.database}.events "
        "WHERE kind = 'channel' "
        "AND toDate(occurred_at) >= %(utc_low)s AND toDate(occurred_at) <= %(utc_high)s "
        "AND toUInt64(occurred_at) >= %(busy_low)s "
        "GROUP BY line) AS lines "
        "WHERE ups > 0 AND downs = 0 AND owner != '' GROUP BY owner",
        params,
    )


def _ends(rows: list[Row]) -> dict[str, datetime]:
    return {row[0]: datetime.fromtimestamp(int(row[1]), UTC) for row in rows}


def _loading(rows: list[Row]) -> dict[str, tuple[date, datetime]]:
    return {
        row[0]: (as_date(row[3]), datetime.fromtimestamp(int(row[2]), UTC))
        for row in rows
        if int(row[2])
    }


def _open_tasks(ch: ClickHouse, params: dict[str, Any]) -> list[Row]:
    # A task is its CRM entity (external_ref); without one its events cannot be tied together.
    # Without FINAL (see _LATEST): copies of one event agree on everything but attribution, so
    # the owner is taken by event time, then processed_at; the rest is unaffected by copies.
    # argMaxIf picks the deadline of the latest event that carries one (0: none did).
    latest = "toUInt64(toUInt32(occurred_at)) * 4294967296 + toUInt32(processed_at)"
    return ch.execute(
        f"SELECT external_ref AS task_ref, argMax(manager_id, {latest}) AS owner, "
        f"argMax(department_id, {latest}) AS owner_department, "
        "argMaxIf(ifNull(toUInt32(due_at), 0), occurred_at, isNotNull(due_at)) AS deadline, "
        "toUInt32(min(occurred_at)) AS first_seen, "
        "toUInt32(min(processed_at)) AS known, "
        "countIf(action = 'completed') AS completions "
        f"FROM {ch.database}.events "
        "WHERE kind = 'task' AND external_ref != '' AND toDate(occurred_at) >= %(tasks_utc_low)s "
        "GROUP BY task_ref "
        "HAVING completions = 0 AND deadline > 0 AND owner != '' "
        "AND first_seen >= %(tasks_since)s "
        "ORDER BY deadline, task_ref",
        params,
    )


def _tasks(rows: list[Row]) -> tuple[OpenTask, ...]:
    return tuple(
        OpenTask(
            task_id=task_id,
            manager_id=manager_id,
            department_id=department_id,
            due_at=datetime.fromtimestamp(int(due), UTC),
            created_at=datetime.fromtimestamp(int(created), UTC),
            known_at=datetime.fromtimestamp(int(known), UTC),
        )
        for task_id, manager_id, department_id, due, created, known, _ in rows
    )


def _days(ch: ClickHouse, params: dict[str, Any], names: Sequence[str]) -> list[Row]:
    if not names:
        return []
    sums = ", ".join(f"sum({name})" for name in names)
    return ch.execute(
        f"SELECT manager_id, local_date, {sums} FROM {ch.database}.{DAILY.table} FINAL "
        "WHERE local_date >= %(days_low)s AND local_date <= %(high)s AND manager_id != '' "
        "GROUP BY manager_id, local_date",
        params,
    )


def _day_totals(rows: list[Row], names: Sequence[str]) -> dict[str, dict[date, dict[str, int]]]:
    days: dict[str, dict[date, dict[str, int]]] = defaultdict(dict)
    for manager_id, day, *values in rows:
        days[manager_id][as_date(day)] = {
            name: int(value) for name, value in zip(names, values, strict=True) if value
        }
    return dict(days)


def ingest_marker(ch: ClickHouse) -> int:
    """Grows whenever a batch becomes durable: the batch log is written after its events, so
    an unchanged marker means no event was stored since it was last read (a cheap count)."""
    ((batches,),) = ch.execute(f"SELECT count() FROM {ch.database}.ingest_batches")
    return int(batches)


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


# Minutes before now read in full at every read; the earlier ones are checked by fingerprint
# (queries.minute_book). Most records arrive within this of their minute; a later
# one (a long call's CDR) costs a full read of that manager only.
RECENT_MINUTES = 5


class _Source(NamedTuple):
    """Consolidated calls or the other activity: an aggregate per manager, department, local
    date and wall-clock minute, with one ``v_<metric>`` column per metric."""

    name: str
    metrics: tuple[str, ...]
    sql: str


def _sources(database: str, counting: CountingSettings, wanted: Collection[str]) -> list[_Source]:
    keys = "manager_id, department_id, local_date, minute"
    days = "local_date >= %(low)s AND local_date <= %(high)s"
    threshold = conversation_threshold(counting)
    calls = [(name, sql.format(threshold=threshold)) for name, sql in CALL_METRICS]
    sources = []
    for name, metrics, source in (
        ("calls", calls, f"({consolidated_calls(database)}) WHERE {days}"),
        (
            "activity",
            list(ACTIVITY_METRICS),
            f"{database}.events FINAL WHERE kind != 'call' AND excluded = 0 AND {days} "
            "AND toDate(occurred_at) >= %(utc_low)s AND toDate(occurred_at) <= %(utc_high)s",
        ),
    ):
        chosen = [(metric, sql) for metric, sql in metrics if metric in wanted]
        if chosen:
            columns = ", ".join(f"{sql} AS v_{metric}" for metric, sql in chosen)
            sql = f"SELECT {keys.replace('minute', _MINUTE + ' AS minute')}, {columns} "
            sources.append(
                _Source(name, tuple(m for m, _ in chosen), f"{sql}FROM {source} GROUP BY {keys}")
            )
    return sources


def _minute_sql(source: _Source, *, split: bool, managers: bool = False) -> str:
    """The groups of ``source`` with any of its metrics: every one (``split`` false), or those
    from the cut on plus one fingerprint row per manager (wall minute 0) for the rest."""
    values = ", ".join(f"v_{metric}" for metric in source.metrics)
    digest = f"cityHash64(toString(department_id), local_date, minute, {values})"
    where = "manager_id != '' AND (" + " OR ".join(f"v_{m} != 0" for m in source.metrics) + ")"
    if managers:
        where += " AND manager_id IN %(managers)s"
    if not split:
        return (
            f"SELECT manager_id, toString(department_id), minute, {digest}, {values} "
            f"FROM ({source.sql}) WHERE {where}"
        )
    recent = (
        "minute >= transform(toString(department_id), %(cut_departments)s, %(cut_minutes)s, "
        "toUInt32(0))"
    )
    firsts = ", ".join(f"any(v_{metric})" for metric in source.metrics)
    return (
        f"SELECT manager_id, department, wall, groupBitXor(digest), {firsts} FROM ("
        f"SELECT manager_id, {recent} AS recent, if(recent, toString(department_id), '') "
        "AS department, if(recent, local_date, toDate(0)) AS day, "
        f"if(recent, minute, toUInt32(0)) AS wall, {digest} AS digest, {values} "
        f"FROM ({source.sql}) WHERE {where}) GROUP BY manager_id, department, day, wall"
    )


def _groups(rows: Iterable[Row]) -> dict[str, list[Group]]:
    found: dict[str, list[Group]] = defaultdict(list)
    for manager_id, department_id, wall, digest, *values in rows:
        found[manager_id].append(Group(department_id, int(wall), int(digest), tuple(values)))
    return found


def _wall(zone: ZoneInfo, unix: int) -> int:
    """Unix seconds to the zone's wall clock read as UTC, as ``local_time`` is stored."""
    return int(datetime.fromtimestamp(unix, zone).replace(tzinfo=UTC).timestamp())


class TodaysActivity:
    """Today's snapshot, kept between reads and brought up to date by what changed.

    Read again only when a batch was stored since (the batch log grew), and then
    incrementally: the minutes from a few minutes back in full, the earlier ones checked by a
    fingerprint per manager and read again only for the managers whose fingerprint moved
    (``queries.minute_book``). A manager whose minutes did not change keeps the
    very same series objects, so their window sums stay indexed. The UTC day or the directory
    changing starts from scratch. ``metrics`` limits the minute series to those (the alert
    evaluator asks for the metrics its rules name; default: all).
    """

    def __init__(self, counting: CountingSettings, metrics: Collection[str] | None = None) -> None:
        self._counting = counting
        every = (name for name, _ in CALL_METRICS + ACTIVITY_METRICS)
        self._wanted = frozenset(every if metrics is None else metrics)
        self.metrics: frozenset[str] | None = None if metrics is None else self._wanted
        self._days_metrics = tuple(name for name in DAILY.metrics if name in self._wanted)
        self._snapshot: ActivitySnapshot | None = None
        self._key: tuple[object, ...] = ()
        self._scope: tuple[object, ...] = ()
        self._reset()

    def _reset(self) -> None:
        self._books: dict[str, MinuteBook] = {}
        self._metrics_of: dict[str, tuple[str, ...]] = {}
        self._cuts: dict[str, int] = {}
        self._minutes: dict[str, dict[str, MinuteCounts]] = {}
        self._parsed: dict[str, tuple[list[Row], Any]] = {}
        self._zones: dict[tuple[str, str], ZoneInfo | None] = {}
        self._clock = _WallClock()
        self._instants: dict[int, datetime] = {}

    def read(
        self, ch: ClickHouse, directory: Directory, now: datetime, *, check_marker: bool = True
    ) -> ActivitySnapshot:
        params = _snapshot_params(now, self._counting)
        scope = (now.astimezone(UTC).date(), id(directory))
        key = (ingest_marker(ch) if check_marker else None, *scope)
        if check_marker and self._snapshot is not None and key == self._key:
            return self._snapshot
        if scope != self._scope:
            self._reset()
            self._scope = scope
        last_active = _last_active(ch, params)
        snapshot = ActivitySnapshot(
            taken_at=now,
            minutes=self._read_minutes(ch, directory, now, params),
            last_active=self._parse("last_active", last_active, _ends),
            loading=self._parse("loading", last_active, _loading),
            busy=self._parse("busy", _busy(ch, params), _ends),
            open_tasks=self._parse("open_tasks", _open_tasks(ch, params), _tasks),
            days=self._parse(
                "days",
                _days(ch, params, self._days_metrics),
                lambda rows: _day_totals(rows, self._days_metrics),
            ),
        )
        if self._snapshot is not None:
            snapshot.carry_series_from(self._snapshot)
        self._snapshot, self._key = snapshot, key
        return snapshot

    def _parse(self, name: str, rows: list[Row], parse: Callable[[list[Row]], _T]) -> _T:
        """Rows equal to the last read's give the last read's value (no objects rebuilt)."""
        previous = self._parsed.get(name)
        if previous is not None and previous[0] == rows:
            return cast(_T, previous[1])
        value = parse(rows)
        self._parsed[name] = (rows, value)
        return value

    def _read_minutes(
        self, ch: ClickHouse, directory: Directory, now: datetime, params: dict[str, Any]
    ) -> dict[str, dict[str, MinuteCounts]]:
        cut = (int(now.timestamp()) // 60 - RECENT_MINUTES) * 60
        cuts = {d: _wall(directory.timezone_of(d), cut) for d in directory.departments}
        if any(cuts.get(d, 0) < wall for d, wall in self._cuts.items()):
            self._books = {}  # the clock went back (or a wall clock did, at a DST change)
        self._cuts = cuts
        changed: set[str] = set()
        for source in _sources(ch.database, self._counting, self._wanted):
            self._metrics_of[source.name] = source.metrics
            book = self._books.get(source.name)
            if book is None:
                book = self._books[source.name] = MinuteBook()
                stale = set(self._minutes) | book.managers()
                found = _groups(ch.execute(_minute_sql(source, split=False), params))
                stale |= set(found)
            else:
                rows = ch.execute(
                    _minute_sql(source, split=True),
                    params | {"cut_departments": list(cuts), "cut_minutes": list(cuts.values())},
                )
                prints = {row[0]: int(row[3]) for row in rows if not row[2]}
                recent = _groups(row for row in rows if row[2])
                stale, moved = book.advance(cuts, recent, prints)
                changed |= moved
                found = {}
                if stale:
                    sql = _minute_sql(source, split=False, managers=True)
                    found = _groups(ch.execute(sql, params | {"managers": tuple(sorted(stale))}))
            for manager_id in stale:
                book.fill(manager_id, found.get(manager_id, ()), cuts)
            changed |= stale
        for manager_id in changed:
            minutes = self._manager_minutes(directory, manager_id)
            if minutes:
                self._minutes[manager_id] = minutes
            else:
                self._minutes.pop(manager_id, None)
        return dict(self._minutes)

    def _manager_minutes(self, directory: Directory, manager_id: str) -> dict[str, MinuteCounts]:
        per_metric: dict[str, dict[int, int]] = defaultdict(dict)
        for source, book in self._books.items():
            metrics = self._metrics_of[source]
            for group in book.groups(manager_id):
                tz = self._zone(directory, manager_id, group.department_id)
                if tz is None:
                    continue
                minute = self._clock.to_unix(tz, group.wall_minute)
                for name, value in zip(metrics, group.values, strict=True):
                    if value:
                        series = per_metric[name]
                        series[minute] = series.get(minute, 0) + int(value)
        return {name: self._pairs(series) for name, series in per_metric.items()}

    def _zone(self, directory: Directory, manager_id: str, department_id: str) -> ZoneInfo | None:
        # The department the activity was attributed to says which wall clock local_time is
        # on; if it has left the directory since, the manager's current one is the best guess.
        key = (manager_id, department_id)
        if key not in self._zones:
            if department_id in directory.departments:
                self._zones[key] = directory.timezone_of(department_id)
            elif manager_id in directory.managers:
                self._zones[key] = directory.timezone_of(directory.managers[manager_id].department)
            else:
                self._zones[key] = None  # nobody knows which clock it was on
        return self._zones[key]

    def _pairs(self, series: dict[int, int]) -> MinuteCounts:
        instants = self._instants
        pairs = []
        for minute in sorted(series):
            instant = instants.get(minute)
            if instant is None:
                instant = instants[minute] = datetime.fromtimestamp(minute, UTC)
            pairs.append((instant, series[minute]))
        return tuple(pairs)
