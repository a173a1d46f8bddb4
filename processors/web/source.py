"""Today's board for the pages, read from ClickHouse at most every few seconds.

However many browsers poll, one reading serves every request for ``max_age_seconds``: the
first request after that reads again (one at a time, in a thread of its own, so the worker's
event loop never waits on ClickHouse) and the others wait for it. Baselines come from a
``BaselineKeeper`` of the page's own, built at the first reading and rebuilt in the background.

The rules, the working calendar (with the absences published on the directory topic) and the
directory are the alert evaluator's (``EvaluatorConfig``), so the page and the alerts judge
by the same; with alerting switched off, the files are read once (``FileConfig``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import NamedTuple, Protocol

from processors.alert_service import AlertEvaluator, load_working_calendar
from processors.alerting.rules import RulesError, RulesFile, load_rules
from processors.alerting.today import DipBook, TodayBoard, today_board
from processors.alerting.workdays import Workdays
from processors.baseline_keeper import BaselineKeeper
from queries.alert_history import open_notices
from queries.todays_activity import TodaysActivity
from salespulse.alert_settings import AlertsSettings
from salespulse.calendar import Calendar, CalendarError, parse_calendar
from salespulse.directory import Directory
from salespulse.sections import CountingSettings
from sinks.clickhouse.client import ClickHouse, ClickHouseError

log = logging.getLogger(__name__)
OPEN_ALERT_DAYS = 3  # as the evaluator restores them: older ones belong to a finished workday


class BoardConfig(Protocol):
    def current(self) -> tuple[RulesFile, Calendar, Directory]:
        """The rules, the working calendar and the directory in force now."""
        ...


class EvaluatorConfig:
    """The alert evaluator's rules and calendar, refreshed from their files and the topic
    here too: a worker that does not lead the group never evaluates, but serves the page."""

    def __init__(self, evaluator: AlertEvaluator, directory: Callable[[], Directory]) -> None:
        self._evaluator = evaluator
        self._directory = directory

    def current(self) -> tuple[RulesFile, Calendar, Directory]:
        self._evaluator.refresh_config()
        return self._evaluator.rules.current, self._evaluator.working_calendar, self._directory()


class FileConfig:
    """Alerting switched off: the rules (for their norms) and the calendar are read once. A
    missing or broken file means no norms, or the built-in Monday-Friday 09:00-18:00."""

    def __init__(self, settings: AlertsSettings, directory: Callable[[], Directory]) -> None:
        self._directory = directory
        try:
            self._rules = load_rules(settings.rules_path)
        except RulesError as exc:
            log.warning("the today page shows no norms: %s", exc)
            self._rules = RulesFile()
        try:
            self._calendar = load_working_calendar(settings)
        except CalendarError as exc:
            log.warning("the today page uses the built-in working hours: %s", exc)
            self._calendar = parse_calendar("")

    def current(self) -> tuple[RulesFile, Calendar, Directory]:
        return self._rules, self._calendar, self._directory()


class Reading(NamedTuple):
    """The latest board (None until one was read) and why the last attempt failed ('' when
    it did not): after a failure the previous board stays, marked stale by the pages."""

    board: TodayBoard | None
    error: str


class TodaySource:
    def __init__(
        self,
        connect: Callable[[], ClickHouse],
        config: BoardConfig,
        counting: CountingSettings,
        *,
        max_age_seconds: float = 5.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._connect = connect
        self._ch: ClickHouse | None = None
        self._config = config
        self.max_age_seconds = max_age_seconds
        self._clock = clock
        self._baselines = BaselineKeeper(connect)
        self._workdays: Workdays | None = None
        self._today = TodaysActivity(counting)
        self._dips = DipBook()  # read() runs in the one thread of _executor
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="today-page")
        self._lock = asyncio.Lock()
        self._read_at: float | None = None  # time.monotonic() of the last attempt
        self._reading = Reading(None, "")

    async def reading(self) -> Reading:
        """The board, read again when the last one is older than ``max_age_seconds``."""
        async with self._lock:
            last = self._read_at
            if last is None or time.monotonic() - last >= self.max_age_seconds:
                loop = asyncio.get_running_loop()
                self._reading = await loop.run_in_executor(self._executor, self._refresh)
                self._read_at = time.monotonic()
        return self._reading

    def _refresh(self) -> Reading:
        try:
            return Reading(self.read(self._clock()), "")
        except ClickHouseError as exc:
            log.warning("today page not refreshed: %s", exc)
            return Reading(self._reading.board, str(exc))
        except Exception as exc:  # a page must not die with one bad reading; say why
            log.exception("today page not refreshed")
            return Reading(self._reading.board, f"internal error: {exc}")

    def read(self, now: datetime) -> TodayBoard:
        """One reading at ``now`` (blocking)."""
        rules, calendar, directory = self._config.current()
        if self._workdays is None or self._workdays.calendar is not calendar:
            self._workdays = Workdays(calendar)
        if self._ch is None:
            self._ch = self._connect()
        baselines = self._baselines.current(now, directory, calendar)
        snapshot = self._today.read(self._ch, directory, now)
        notices = open_notices(self._ch, now - timedelta(days=OPEN_ALERT_DAYS))
        return today_board(
            now,
            rules,
            directory,
            self._workdays,
            snapshot,
            baselines,
            [notice.alert for notice in notices],
            dips=self._dips,
        )

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
        self._baselines.close()
        if self._ch is not None:
            self._ch.close()
