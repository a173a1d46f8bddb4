"""``salespulse report schedule``: make the configured reports at their local times, deliver them.

Each entry of ``SALESPULSE_REPORTS__SCHEDULE`` has a local wall-clock time in a time zone (19:00
in Moscow stays 19:00 across a DST change) and a period; at that time the report of the period
containing the run's local date, or of the one before, is made and delivered. A run made late
(the machine slept, a delivery before it kept retrying) is still made for its own date, unless
it is more than a day late; missed runs before the process started are not made up.

Making and delivering are retried with capped exponential backoff; a failure is logged and the
loop goes on with the next run. The clock is injected: tests move time, they never sleep.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Protocol, TypeVar
from zoneinfo import ZoneInfo

from salespulse.backoff import Backoff
from salespulse.report_settings import WEEKDAY_NAMES, ReportSchedule, ReportsSettings
from salespulse.reports.data import ReportError
from salespulse.reports.delivery import DirectoryDelivery, EmailDelivery
from salespulse.reports.make import RenderedReport, make_report, render_both
from salespulse.reports.period import ReportPeriod
from salespulse.settings import Settings

log = logging.getLogger(__name__)
_T = TypeVar("_T")
_MAX_NAP_SECONDS = 60.0  # the wall clock is looked at again at least this often
_MAX_LATE = timedelta(days=1)
Render = Callable[[ReportSchedule, ReportPeriod, datetime], RenderedReport]


class Clock(Protocol):
    def now(self) -> datetime: ...

    async def sleep(self, seconds: float) -> None: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


def _runs_on(entry: ReportSchedule, day: date) -> bool:
    weekday = WEEKDAY_NAMES[day.weekday()]
    if entry.period == "day":
        return not entry.weekdays or weekday in entry.weekdays
    if entry.period == "week":
        return weekday == entry.weekday
    return day.day == entry.day_of_month


def next_run(entry: ReportSchedule, zone: ZoneInfo, after: datetime) -> datetime:
    """The first instant strictly after ``after`` at which the entry runs (UTC)."""
    day = after.astimezone(zone).date() - timedelta(days=1)
    for _ in range(32 + 2):
        at = datetime.combine(day, entry.local_time, tzinfo=zone).astimezone(UTC)
        if at > after and _runs_on(entry, day):
            return at
        day += timedelta(days=1)
    raise AssertionError("every entry runs at least once a month")  # pragma: no cover


def period_of_run(entry: ReportSchedule, zone: ZoneInfo, at: datetime) -> ReportPeriod:
    period = ReportPeriod.containing(entry.period, at.astimezone(zone).date())
    return period.previous() if entry.previous else period


class ReportScheduler:
    def __init__(
        self,
        settings: ReportsSettings,
        render: Render,
        *,
        clock: Clock | None = None,
        email: EmailDelivery | None = None,
        folder: DirectoryDelivery | None = None,
    ) -> None:
        self.settings = settings
        self.render = render
        self.clock = clock or SystemClock()
        self.email = email
        self.folder = folder
        # (entry name, period slug, channel) of every delivery made, for logs and tests.
        self.delivered: list[tuple[str, str, str]] = []

    def zone(self, entry: ReportSchedule) -> ZoneInfo:
        return ZoneInfo(entry.timezone or self.settings.timezone)

    async def run(self, stop: asyncio.Event) -> None:
        entries = self.settings.schedule
        if not entries:
            log.warning("no reports scheduled (SALESPULSE_REPORTS__SCHEDULE is empty)")
            await stop.wait()
            return
        now = self.clock.now()
        due = {entry.name: next_run(entry, self.zone(entry), now) for entry in entries}
        for entry in entries:
            log.info("report %s: next at %s", entry.name, due[entry.name].isoformat())
        while not stop.is_set():
            now = self.clock.now()
            ready = sorted((e for e in entries if due[e.name] <= now), key=lambda e: due[e.name])
            for entry in ready:
                if stop.is_set():
                    return
                at = due[entry.name]
                if now - at > _MAX_LATE:
                    log.warning("report %s of %s skipped: over a day late", entry.name, at)
                else:
                    await self.run_entry(entry, at, stop)
                due[entry.name] = next_run(entry, self.zone(entry), at)
            if ready:
                continue
            nap = (min(due.values()) - now).total_seconds()
            await self._pause(min(max(nap, 0.0), _MAX_NAP_SECONDS), stop)

    async def run_entry(self, entry: ReportSchedule, at: datetime, stop: asyncio.Event) -> None:
        """Make one run's report and deliver it everywhere configured; never raises."""
        period = period_of_run(entry, self.zone(entry), at)
        what = f"report {entry.name} ({period.slug})"
        rendered = await self._attempt(what, lambda: self.render(entry, period, at), stop)
        if rendered is None:
            return
        recipients = list(entry.to or self.settings.mail_to)
        if self.email is not None and recipients:
            email = self.email
            accepted = await self._attempt(
                f"e-mail of {what}", lambda: email.deliver(rendered, recipients), stop
            )
            if accepted:
                self.delivered.append((entry.name, period.slug, "email"))
                log.info("%s e-mailed to %s", what, ", ".join(accepted))
        if self.folder is not None:
            folder = self.folder
            paths = await self._attempt(f"files of {what}", lambda: folder.deliver(rendered), stop)
            if paths:
                self.delivered.append((entry.name, period.slug, "folder"))
                log.info("%s written to %s", what, ", ".join(map(str, paths)))

    async def _attempt(self, what: str, action: Callable[[], _T], stop: asyncio.Event) -> _T | None:
        """``action`` in a thread, retried with backoff; None when it did not succeed."""
        settings = self.settings
        waits = Backoff(first=settings.retry_initial_seconds, cap=settings.retry_max_seconds)
        for attempt in range(1, settings.delivery_attempts + 1):
            try:
                return await asyncio.to_thread(action)
            except Exception as exc:  # a report must never stop the schedule
                retriable = getattr(exc, "retriable", not isinstance(exc, ReportError))
                last = attempt == settings.delivery_attempts or not retriable
                if last:
                    log.error("%s failed (attempt %d, giving up): %s", what, attempt, exc)
                    return None
                delay = waits.next()
                log.warning(
                    "%s failed (attempt %d, again in %.0f s): %s", what, attempt, delay, exc
                )
            if await self._pause(delay, stop):
                log.warning("%s not retried: stopping", what)
                return None
        return None

    async def _pause(self, seconds: float, stop: asyncio.Event) -> bool:
        """Sleep on the clock unless stopped first; returns whether stop was asked."""
        sleeper = asyncio.ensure_future(self.clock.sleep(seconds))
        stopper = asyncio.ensure_future(stop.wait())
        _, pending = await asyncio.wait({sleeper, stopper}, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        return stop.is_set()


def build_scheduler(settings: Settings, *, clock: Clock | None = None) -> ReportScheduler:
    """The scheduler of the configured reports; ReportError when they cannot be delivered."""
    reports = settings.reports
    if reports.schedule and not (reports.email_enabled or reports.directory):
        raise ReportError(
            "reports are scheduled but go nowhere: set SALESPULSE_REPORTS__SMTP_HOST (with "
            "__MAIL_FROM and __MAIL_TO) or SALESPULSE_REPORTS__DIRECTORY"
        )
    email = None
    if reports.email_enabled:
        if not reports.mail_from:
            raise ReportError("SALESPULSE_REPORTS__MAIL_FROM is needed to send reports")
        unaddressed = [e.name for e in reports.schedule if not (e.to or reports.mail_to)]
        if unaddressed and not reports.directory:
            raise ReportError(
                f"no recipients for {', '.join(unaddressed)}: set SALESPULSE_REPORTS__MAIL_TO "
                "or the entries' to"
            )
        email = EmailDelivery(reports)
    folder = DirectoryDelivery(reports.directory) if reports.directory else None

    def render(entry: ReportSchedule, period: ReportPeriod, at: datetime) -> RenderedReport:
        report = make_report(
            settings, period, now=at, department=entry.department, manager=entry.manager
        )
        return render_both(report, reports.language, csv_bom=reports.csv_bom)

    return ReportScheduler(reports, render, clock=clock, email=email, folder=folder)
