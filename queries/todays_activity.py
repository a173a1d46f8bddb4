"""Today's activity at minute resolution from the exact events, for the alert rules and the
page: read again and again while alerts are evaluated, so it is a few date-restricted queries
brought up to date by what changed (their cost: docs/benchmarks.md).

Times travel as Unix seconds (``toUInt32``): old servers cannot compare a DateTime with a time
literal, and the two engines return DateTime values in different shapes.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Collection, Iterable
from datetime import UTC, datetime
from typing import Any, NamedTuple, TypeVar, cast
from zoneinfo import ZoneInfo

from queries.manager_state import (
    parse_day_totals,
    parse_ends,
    parse_loading,
    parse_tasks,
    read_busy,
    read_day_totals,
    read_last_active,
    read_open_tasks,
    snapshot_params,
)
from queries.minute_book import Group, MinuteBook
from salespulse.activity import ActivitySnapshot, MinuteCounts
from salespulse.directory import Directory
from salespulse.sections import CountingSettings
from sinks.clickhouse.client import ClickHouse, Row
from sinks.clickhouse.metric_sql import (
    ACTIVITY_METRICS,
    CALL_METRICS,
    consolidated_calls,
    conversation_threshold,
)
from sinks.clickhouse.rollup import DAILY

# Minute groups as Unix seconds of the local wall-clock minute (local_time is stored as UTC).
_MINUTE = "toUInt32(toStartOfMinute(local_time))"


_T = TypeVar("_T")


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
        params = snapshot_params(now, self._counting)
        scope = (now.astimezone(UTC).date(), id(directory))
        key = (ingest_marker(ch) if check_marker else None, *scope)
        if check_marker and self._snapshot is not None and key == self._key:
            return self._snapshot
        if scope != self._scope:
            self._reset()
            self._scope = scope
        last_active = read_last_active(ch, params)
        snapshot = ActivitySnapshot(
            taken_at=now,
            minutes=self._read_minutes(ch, directory, now, params),
            last_active=self._parse("last_active", last_active, parse_ends),
            loading=self._parse("loading", last_active, parse_loading),
            busy=self._parse("busy", read_busy(ch, params), parse_ends),
            open_tasks=self._parse("open_tasks", read_open_tasks(ch, params), parse_tasks),
            days=self._parse(
                "days",
                read_day_totals(ch, params, self._days_metrics),
                lambda rows: parse_day_totals(rows, self._days_metrics),
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
