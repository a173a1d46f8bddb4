"""Working time per manager and local day, from time-tracking and visit events.

A workday is ``start`` … ``pause`` / ``resume`` … ``stop``; the ``location`` of ``start`` and
``resume`` (``office`` or ``remote``; anything else counts as office) says where the time was
spent. Visits are ``visit_start`` … ``visit_end``. Business trips span days, so they are counted
as trips started, not seconds. Rules chosen for determinism (a recomputation must give the same
numbers whenever it runs): a segment still open at the last event of the day counts nothing
beyond that event, and a segment never crosses midnight — each local day is paired on its own.
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
    """``events`` ordered by manager, then time; returns the WORKTIME_METRICS per manager-day."""
    days: dict[tuple[str, str, date], list[TimeEvent]] = {}
    for event in events:
        days.setdefault((event.manager_id, event.department_id, event.local_date), []).append(event)
    return {key: _working_day(sorted(day, key=lambda e: e.local_time)) for key, day in days.items()}


def query_working_time(ch: ClickHouse, params: dict[str, Any]) -> dict[tuple[Any, ...], list[int]]:
    """Working time of the local days in ``params`` (see queries.day_params)."""
    rows = ch.execute(
        "SELECT manager_id, department_id, local_date, local_time, kind, action, location "
        f"FROM {ch.database}.events FINAL WHERE kind IN ('workday', 'visit') AND excluded = 0 "
        "AND local_date >= %(low)s AND local_date <= %(high)s "
        "AND toDate(occurred_at) >= %(utc_low)s AND toDate(occurred_at) <= %(utc_high)s "
        "ORDER BY manager_id, occurred_at",
        params,
    )
    events = (
        TimeEvent(m, d, as_date(day), as_datetime(at), k, a, loc)
        for m, d, day, at, k, a, loc in rows
    )
    return dict(working_time(events))
