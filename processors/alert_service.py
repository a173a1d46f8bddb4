"""Alert evaluation as the worker runs it: once a second, on the group leader.

Each tick reads today's activity from ClickHouse (where the stream made it durable, exactly
counted), judges every rule at the current instant, records the resulting notices in the
``alerts`` table and hands them to the delivery channels. Evaluating from the stored events
rather than from the stream's own partitions means one evaluator sees every manager, whichever
partitions their events came through, and a restart or a leader change loses nothing: the
baselines are rebuilt from the rollups and the firing alerts restored from the history.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol

from aiokafka.errors import KafkaError

from processors.alerting.conditions import judged_metrics
from processors.alerting.engine import AlertEngine
from processors.alerting.evaluation import evaluate
from processors.alerting.rules import RuleKind, RulesError, RulesFile, load_rules
from processors.alerting.situation import QuietBook, Situation
from processors.alerting.workdays import Workdays
from processors.baseline_keeper import BaselineKeeper
from queries.alert_history import open_notices, undelivered_notices
from queries.todays_activity import TodaysActivity
from salespulse import metrics
from salespulse.alert_model import Notice
from salespulse.alert_settings import AlertsSettings
from salespulse.calendar import Absence, Calendar, CalendarError, load_calendar, parse_calendar
from salespulse.calendar_ics import holidays_from_ics
from salespulse.directory import Directory
from salespulse.sections import CountingSettings
from salespulse.watched_file import WatchedFile
from sinks.alerts.dispatch import AlertDispatcher
from sinks.clickhouse.alert_history import record_delivery, record_notices
from sinks.clickhouse.client import ClickHouse, ClickHouseError

log = logging.getLogger(__name__)
_RESTORE_DAYS = 3
# Overdue tasks stay open as long as their tasks are considered (OPEN_TASK_DAYS): their alerts,
# and the summaries of tasks from the past, are restored from that far back.
_RESTORE_TASK_DAYS = 45
UNDELIVERED_LOOKBACK = timedelta(
    days=1
)  # alerts firing longer than this are stale: their workday is long over


def load_working_calendar(settings: AlertsSettings) -> Calendar:
    """The calendar file (or the built-in Monday-Friday 09:00-18:00), plus ICS holidays."""
    path = settings.calendar_path
    calendar = load_calendar(path) if path is not None else parse_calendar("")
    if settings.holidays_ics_path is not None:
        try:
            text = settings.holidays_ics_path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise CalendarError(f"cannot read {settings.holidays_ics_path}: {exc}") from exc
        calendar = calendar.with_holidays(holidays_from_ics(text))
    return calendar


class AbsenceSource(Protocol):
    """Absences published on a topic (``DirectoryTopic``): ``version`` grows on every change,
    ``loaded`` turns true once the topic was read to its end."""

    @property
    def loaded(self) -> bool: ...
    @property
    def version(self) -> int: ...
    def absences(self) -> Sequence[Absence]: ...


class AlertEvaluator:
    """Rules, calendar, baselines and the engine: ``evaluate(now)`` returns the notices.

    Synchronous and blocking (ClickHouse queries): the worker runs it in a thread.
    """

    def __init__(
        self,
        settings: AlertsSettings,
        counting: CountingSettings,
        connect: Callable[[], ClickHouse],
        directory: Callable[[], Directory],
        dashboard_url: str,
        absences: AbsenceSource | None = None,
    ) -> None:
        self.settings = settings
        self._ch = connect()
        self._directory = directory
        self._dashboard_url = dashboard_url
        self.rules = WatchedFile(settings.rules_path, load_rules, (RulesError,))
        calendar_path = settings.calendar_path or Path("/dev/null")
        self.calendar = WatchedFile(
            calendar_path, lambda _: load_working_calendar(settings), (CalendarError,)
        )
        self._absences = absences
        self._absences_version: int | None = None
        self._config_lock = threading.Lock()
        self.working_calendar = self.calendar.current
        self._workdays = Workdays(self.working_calendar)
        self.engine = AlertEngine()
        self._quiet = QuietBook()
        self.baselines = BaselineKeeper(connect)
        self._counting = counting
        self._today = TodaysActivity(counting, ())
        self.last_cpu_seconds = 0.0  # this thread's CPU time of the last evaluation
        self._started: datetime | None = None  # when this evaluator's run began (restore)
        self._first = False  # the next evaluation is the first since the restore
        # While paused (catching up): the stored data is complete only up to this instant.
        self._paused_data_until: datetime | None = None

    def refresh_config(self) -> None:
        """Take up changes of the rules and calendar files and of the absences on the topic.

        Evaluation calls it every tick; the head of sales' page calls it too, from another
        thread and on workers that do not evaluate (``processors.web``)."""
        with self._config_lock:
            self._reload()

    def _reload(self) -> None:
        for name, watched in (("rules", self.rules), ("calendar", self.calendar)):
            if watched.refresh():
                metrics.ALERT_CONFIG_RELOADS.labels(name, "ok").inc()
                log.info("alert %s reloaded from %s", name, watched.path)
                if name == "calendar":
                    self._absences_version = None  # combine the new file with the topic's

            elif watched.last_error:
                metrics.ALERT_CONFIG_RELOADS.labels(name, "error").inc()
                log.error(
                    "alert %s not reloaded, the last good ones stay: %s", name, watched.last_error
                )
                watched.last_error = None
        source = self._absences
        if source is not None and source.version != self._absences_version:
            self._absences_version = source.version
            self.working_calendar = self.calendar.current.with_absences(source.absences())
        elif source is None:
            self.working_calendar = self.calendar.current
        if self._workdays.calendar is not self.working_calendar:
            self._workdays = Workdays(self.working_calendar)
            self.baselines.invalidate()

    def restore(self, now: datetime) -> list[Notice]:
        """Start from the history: the alerts still open are firing already (a restart or a
        new leader must not fire them again). Returns their firing notices, for the channels
        that keep re-sending open alerts."""
        recent = now - timedelta(days=_RESTORE_DAYS)
        notices = [
            notice
            for notice in open_notices(self._ch, now - timedelta(days=_RESTORE_TASK_DAYS))
            if notice.alert.kind == RuleKind.OVERDUE_TASK or notice.alert.fired_at >= recent
        ]
        self.engine = AlertEngine()
        self.engine.restore(notice.alert for notice in notices)
        if self._paused_data_until is not None:
            self.engine.pause(self._paused_data_until)  # a backlog came before this start
        self._quiet = QuietBook()
        self._started = now
        self._first = True
        log.info("alert evaluation starts with %d open alerts from the history", len(notices))
        return notices

    def pause(self, now: datetime, behind: float) -> None:
        """Evaluation is paused while the worker catches up, the stored data ``behind`` seconds
        behind: pending holds are forgotten (``AlertEngine.pause``)."""
        data_until = now - timedelta(seconds=behind)
        if self._paused_data_until is None or data_until < self._paused_data_until:
            self._paused_data_until = data_until
        self.engine.pause(data_until)

    def undelivered(self, channel: str, since: datetime) -> list[Notice]:
        return undelivered_notices(self._ch, channel, since)

    def evaluate(self, now: datetime) -> list[Notice]:
        """One evaluation at ``now``; raises ClickHouseError when the data cannot be read.

        The notices are recorded in the history before they are returned for delivery: the
        history is what a restart resumes from."""
        started = time.thread_time()
        try:
            return self._evaluate(now)
        finally:
            self.last_cpu_seconds = time.thread_time() - started

    def _evaluate(self, now: datetime) -> list[Notice]:
        if self._absences is not None and not self._absences.loaded:
            # Judging before the absences are read would alert about people on vacation.
            log.info("alerts wait for the directory topic to be read")
            return []
        self.refresh_config()
        rules: RulesFile = self.rules.current
        directory = self._directory()
        baselines = self.baselines.current(now, directory, self.working_calendar)
        snapshot = self._todays_activity(rules).read(self._ch, directory, now)
        situation = Situation(
            now,
            rules,
            directory,
            self._workdays,
            snapshot,
            baselines,
            self._dashboard_url,
            self._quiet,
            started=self._started,
        )
        # A new leader: holds that were running go on from their onsets (docs/alerts.md).
        notices = evaluate(self.engine, situation, resumed=self._first)
        self._first = False
        self._paused_data_until = None
        record_notices(self._ch, notices)
        return notices

    def _todays_activity(self, rules: RulesFile) -> TodaysActivity:
        """The reader of today's activity, for the metrics the rules judge by (a reader of
        every metric would decode several times more)."""
        wanted = judged_metrics(rules)
        if wanted != self._today.metrics:
            self._today = TodaysActivity(self._counting, wanted)
        return self._today


class DeliveryLog:
    """The delivery log (``alert_deliveries``) written as channels take notices, over a
    connection of its own: the evaluation's connection is busy in another thread."""

    def __init__(self, connect: Callable[[], ClickHouse]) -> None:
        self._ch = connect()
        self._lock = threading.Lock()

    def _record(self, channel: str, notice: Notice) -> None:
        with self._lock:
            record_delivery(self._ch, notice.notice_id, channel, datetime.now(UTC))

    async def __call__(self, channel: str, notice: Notice) -> None:
        await asyncio.to_thread(self._record, channel, notice)


async def _send_undelivered(
    evaluator: AlertEvaluator, dispatcher: AlertDispatcher, now: datetime
) -> None:
    """Notices recorded in the last day that a channel never took (a leader died between
    recording and delivering, or gave up on a receiver that was down): that channel gets them
    now, with their original notice ids."""
    since = now - UNDELIVERED_LOOKBACK
    for channel in dispatcher.queue_sizes():
        notices = await asyncio.to_thread(evaluator.undelivered, channel, since)
        if notices:
            log.info("sending %d notices %s never took", len(notices), channel)
            dispatcher.submit_to(channel, notices)


async def run_alerting(
    evaluator: AlertEvaluator,
    dispatcher: AlertDispatcher,
    is_leader: Callable[[], bool],
    behind_seconds: Callable[[], Awaitable[float]],
    clock: Callable[[], datetime] = lambda: datetime.now(UTC).replace(microsecond=0),
) -> None:
    """Evaluate every ``tick_seconds`` while this worker leads, until cancelled.

    Leadership can move between workers: on gaining it, the engine restarts from the history,
    so what the previous leader fired is neither lost nor fired again. Times are whole UTC
    seconds, as the history stores them, so notice ids stay the same across a restart.

    While the worker is more than ``max_lag_seconds`` behind the raw topics, the stored
    activity is not today's yet (a backlog after a restart or an outage): judging it would
    report managers inactive who are not. Evaluation pauses until the worker has caught up.

    Evaluation shares the interpreter (one core) with the stream: a tick that took a lot of
    CPU time (a large team, a burst of late records) delays the next one so that evaluation
    takes at most ``max_cpu_share`` of the core; a tick that is cheap enough keeps the pace."""
    settings = evaluator.settings
    tick_seconds = settings.tick_seconds
    restored = False
    while True:
        started = time.monotonic()
        if not is_leader():
            if restored:
                # The new leader owns the open alerts now: stop re-posting ours to Alertmanager,
                # or an alert it resolves would come back with our next resend; and leave it
                # what we have not delivered, which it sends from the history.
                dispatcher.hand_over()
            restored = False
        else:
            try:
                behind = await behind_seconds()
                if behind > settings.max_lag_seconds:
                    metrics.ALERT_EVALUATIONS.labels("paused_lag").inc()
                    log.info("alerts paused: the worker is %.0f s behind", behind)
                    evaluator.pause(clock(), behind)
                    await asyncio.sleep(tick_seconds)
                    continue
                if not restored:
                    now = clock()
                    dispatcher.resume(await asyncio.to_thread(evaluator.restore, now))
                    await _send_undelivered(evaluator, dispatcher, now)
                    restored = True
                notices = await asyncio.to_thread(evaluator.evaluate, clock())
            except (ClickHouseError, KafkaError) as exc:
                metrics.ALERT_EVALUATIONS.labels("error").inc()
                log.warning("alerts not evaluated this time: %s", exc)
            else:
                metrics.ALERT_EVALUATIONS.labels("ok").inc()
                metrics.ALERT_EVALUATION_SECONDS.observe(time.monotonic() - started)
                for notice in notices:
                    metrics.ALERT_NOTICES.labels(notice.alert.rule, notice.state).inc()
                    log.info(
                        "alert %s %s: %s", notice.state, notice.alert.key, notice.alert.summary_en
                    )
                dispatcher.submit(notices)
        interval = max(tick_seconds, evaluator.last_cpu_seconds / settings.max_cpu_share)
        evaluator.last_cpu_seconds = 0.0
        await asyncio.sleep(max(0.0, interval - (time.monotonic() - started)))
