"""Baselines kept fresh without stalling evaluation.

Building baselines reads eight weeks of hourly history and takes seconds for a large team, while
evaluation runs every second. The first build happens before anything is judged (a manager must
not be held against a norm only because the history was not read yet); later ones run in a
thread of their own while evaluation goes on with the previous baselines. They are rebuilt when
the day changes, when the calendar changes, and every ``refresh`` so that history loaded
meanwhile (a backfill, late records) counts the same day.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime, timedelta

from processors.alerting.baseline import Baselines, build_baselines, local_today
from queries.history import query_hourly_history
from salespulse.calendar import Calendar
from salespulse.directory import Directory
from sinks.clickhouse.client import ClickHouse, ClickHouseError

log = logging.getLogger(__name__)
BASELINE_WEEKS = 8
BASELINE_MIN_PERIODS = 4


class BaselineKeeper:
    def __init__(
        self, connect: Callable[[], ClickHouse], refresh: timedelta = timedelta(minutes=15)
    ) -> None:
        self._connect = connect
        self._ch: ClickHouse | None = None
        self._refresh = refresh.total_seconds()
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="baselines")
        self._pending: Future[Baselines] | None = None
        self._current: Baselines | None = None
        self._built_at = 0.0
        self._built_for: tuple[object, ...] = ()

    def invalidate(self) -> None:
        """Rebuild at the next ``current`` (the calendar changed)."""
        self._built_for = ()

    def current(self, now: datetime, directory: Directory, calendar: Calendar) -> Baselines:
        """Baselines for ``now``; blocks only for the very first build."""
        self._collect()
        wanted = (now.date(), id(calendar))
        stale = wanted != self._built_for or time.monotonic() - self._built_at > self._refresh
        if self._current is None:
            self._current = self._build(now, directory, calendar)
            self._mark_built(wanted)
        elif stale and self._pending is None:
            self._mark_built(wanted)  # a failed rebuild is retried after ``refresh``
            self._pending = self._executor.submit(self._build, now, directory, calendar)
        return self._current

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)

    def _mark_built(self, wanted: tuple[object, ...]) -> None:
        self._built_for = wanted
        self._built_at = time.monotonic()

    def _collect(self) -> None:
        if self._pending is None or not self._pending.done():
            return
        future, self._pending = self._pending, None
        try:
            self._current = future.result()
        except ClickHouseError as exc:
            log.warning("baselines not rebuilt, the previous ones stay: %s", exc)

    def _build(self, now: datetime, directory: Directory, calendar: Calendar) -> Baselines:
        started = time.monotonic()
        if self._ch is None:
            self._ch = self._connect()
        # A day of margin each side: every manager's local "before today" lies inside (east of
        # UTC, local yesterday can be UTC today); days from each manager's today on are
        # ignored by build_baselines.
        today = now.date()
        history = query_hourly_history(
            self._ch, today - timedelta(weeks=BASELINE_WEEKS, days=2), today + timedelta(days=1)
        )
        baselines = build_baselines(
            history,
            calendar,
            directory,
            local_today(directory, now),
            weeks=BASELINE_WEEKS,
            min_periods=BASELINE_MIN_PERIODS,
        )
        log.info("baselines built in %.1f s", time.monotonic() - started)
        return baselines
