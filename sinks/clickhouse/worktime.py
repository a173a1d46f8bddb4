"""Working time per manager and local day, from time-tracking and visit events.

A workday is ``start`` … ``pause`` / ``resume`` … ``stop``; the ``location`` of ``start`` and
``resume`` (``office`` or ``remote``; anything else counts as office) says where the time was
spent. Visits are ``visit_start`` … ``visit_end``. Business trips span days, so they are counted
as trips started, not seconds. Rules chosen for determinism (a recomputation must give the same
numbers whenever it runs): a segment still open at the last event of the day counts nothing
beyond that event, and a segment never crosses midnight — each local day is paired on its own.
Events of one instant are taken in the order of their UTC time, then of their event id.

The rollups compute working time in ClickHouse (``working_time_sql``), so that the worker decodes
no events; ``working_time`` is the same rules in Python, the reference the tests hold the SQL to.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime
from typing import Any, NamedTuple

from sinks.clickhouse.client import ClickHouse, as_date, as_datetime

WORKTIME_METRICS: tuple[str, ...] = (
    "work_office_seconds",
    "work_remote_seconds",
    "visit_seconds",
    "trips_started",
)


class TimeEvent(NamedTuple):
    manager_id: str
    department_id: str
    local_date: date
    local_time: datetime
    kind: str
    action: str
    location: str


def _working_day(events: list[TimeEvent]) -> list[int]:
    office = remote = visit = trips = 0
    work_since: datetime | None = None
    work_remote = False
    visit_since: datetime | None = None
    for event in events:
        at = event.local_time
        if event.kind == "workday":
            if event.action in ("start", "resume") and work_since is None:
                work_since, work_remote = at, event.location == "remote"
            elif event.action in ("pause", "stop") and work_since is not None:
                seconds = int((at - work_since).total_seconds())
                remote, office = (
                    (remote + seconds, office) if work_remote else (remote, office + seconds)
                )
                work_since = None
        elif event.action == "visit_start" and visit_since is None:
            visit_since = at
        elif event.action == "visit_end" and visit_since is not None:
            visit += int((at - visit_since).total_seconds())
            visit_since = None
        elif event.action == "trip_start":
            trips += 1
    return [office, remote, visit, trips]


def working_time(events: Iterable[TimeEvent]) -> dict[tuple[str, str, date], list[int]]:
    """``events`` ordered by manager, then UTC time, then event id; returns the
    WORKTIME_METRICS per manager-day."""
    days: dict[tuple[str, str, date], list[TimeEvent]] = {}
    for event in events:
        days.setdefault((event.manager_id, event.department_id, event.local_date), []).append(event)
    return {key: _working_day(sorted(day, key=lambda e: e.local_time)) for key, day in days.items()}


# The events of a day that open or close a span: (local time, UTC time, event id, opens, remote),
# sorted. Business trips are only counted.
_SPANS = (
    "arraySort(groupArrayIf((toUInt32(local_time), toUInt32(occurred_at), event_id, "
    "toUInt8(action IN ({opening})), toUInt8(location = 'remote')), {condition}))"
)


def _spans(events: str, prefix: str) -> str:
    """SQL over the sorted array ``events`` (see _SPANS) naming the spans it holds:
    ``{prefix}_seconds`` (their lengths) and ``{prefix}_remote`` (whether each was opened
    remote). An opening event opens a span only when none is open, and a closing one closes the
    open span, if any; so openings and closings alternate, and the n-th closing ends the span of
    the n-th opening. A last opening with no closing counts nothing."""
    p = prefix
    return f"""
        arrayMap(e -> tupleElement(e, 1), {events}) AS {p}_at,
        arrayMap(e -> tupleElement(e, 4), {events}) AS {p}_opens,
        arrayFilter((t, o, i) -> o = 1 AND {p}_opens[i - 1] = 0,
                    {p}_at, {p}_opens, arrayEnumerate({p}_opens)) AS {p}_open_at,
        arrayFilter((r, o, i) -> o = 1 AND {p}_opens[i - 1] = 0,
                    arrayMap(e -> tupleElement(e, 5), {events}), {p}_opens,
                    arrayEnumerate({p}_opens)) AS {p}_open_remote,
        arrayFilter((t, o, i) -> o = 0 AND {p}_opens[i - 1] = 1,
                    {p}_at, {p}_opens, arrayEnumerate({p}_opens)) AS {p}_close_at,
        arrayMap((opened, closed) -> toUInt64(closed - opened),
                 arraySlice({p}_open_at, 1, length({p}_close_at)), {p}_close_at) AS {p}_seconds,
        arraySlice({p}_open_remote, 1, length({p}_close_at)) AS {p}_remote"""


def working_time_sql(database: str) -> str:
    """Working time in ClickHouse, by the rules above: one row per manager, department and local
    day of %(low)s..%(high)s in %(days)s with time events, selecting ``manager_id,
    department_id, local_date`` then the WORKTIME_METRICS as ``w_office, w_remote, w_visit,
    w_trips`` (UInt64). Arrays and lambdas, not window functions, so 18.16 runs it too; a
    missing element (index 0) reads as 0, which makes the first event open a span."""
    work = _SPANS.format(
        opening="'start', 'resume'",
        condition="kind = 'workday' AND action IN ('start', 'resume', 'pause', 'stop')",
    )
    visits = _SPANS.format(
        opening="'visit_start'",
        condition="kind != 'workday' AND action IN ('visit_start', 'visit_end')",
    )
    return f"""
SELECT manager_id, department_id, local_date,
       arraySum(arrayMap((s, r) -> if(r = 1, 0, s), work_seconds, work_remote)) AS w_office,
       arraySum(arrayMap((s, r) -> if(r = 1, s, 0), work_seconds, work_remote)) AS w_remote,
       arraySum(visit_seconds) AS w_visit,
       trips AS w_trips
FROM
(
    SELECT manager_id, department_id, local_date, trips, {_spans("work_events", "work")},
           {_spans("visit_events", "visit")}
    FROM
    (
        SELECT manager_id, department_id, local_date,
               {work} AS work_events,
               {visits} AS visit_events,
               toUInt64(countIf(kind != 'workday' AND action = 'trip_start')) AS trips
        FROM {database}.events FINAL
        WHERE kind IN ('workday', 'visit') AND excluded = 0
          AND local_date >= %(low)s AND local_date <= %(high)s AND local_date IN %(days)s
          AND toDate(occurred_at) >= %(utc_low)s AND toDate(occurred_at) <= %(utc_high)s
        GROUP BY manager_id, department_id, local_date
    )
)"""


def query_working_time(ch: ClickHouse, params: dict[str, Any]) -> dict[tuple[Any, ...], list[int]]:
    """Working time of the local days %(low)s..%(high)s (see queries.day_params) computed in
    Python by ``working_time``: the reference for ``working_time_sql``."""
    rows = ch.execute(
        "SELECT manager_id, department_id, local_date, local_time, kind, action, location "
        f"FROM {ch.database}.events FINAL WHERE kind IN ('workday', 'visit') AND excluded = 0 "
        "AND local_date >= %(low)s AND local_date <= %(high)s "
        "AND toDate(occurred_at) >= %(utc_low)s AND toDate(occurred_at) <= %(utc_high)s "
        "ORDER BY manager_id, occurred_at, event_id",
        params,
    )
    events = (
        TimeEvent(m, d, as_date(day), as_datetime(at), k, a, loc)
        for m, d, day, at, k, a, loc in rows
    )
    return dict(working_time(events))
