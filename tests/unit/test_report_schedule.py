"""The report scheduler on a moved clock: when reports run, what they cover, retries, stopping."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from salespulse.report_settings import ReportSchedule, ReportsSettings
from salespulse.reports.data import ReportError
from salespulse.reports.delivery import DirectoryDelivery, ReportDeliveryError
from salespulse.reports.make import RenderedReport
from salespulse.reports.period import ReportPeriod
from salespulse.reports.scheduler import (
    ReportScheduler,
    build_scheduler,
    next_run,
    period_of_run,
)
from salespulse.settings import Settings

MSK = ZoneInfo("Europe/Moscow")
DAILY = ReportSchedule(name="daily", period="day", at="19:00")
WEEKLY = ReportSchedule(name="weekly", period="week", at="09:00", weekday="mon")
MONTHLY = ReportSchedule(name="monthly", period="month", at="09:00", day_of_month=1)


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


class MovedClock:
    """Time passes only when the scheduler sleeps; at ``until`` it parks until stopped."""

    def __init__(self, start: datetime, until: datetime) -> None:
        self.at = start
        self.until = until
        self.naps: list[float] = []
        self.parked = asyncio.Event()

    def now(self) -> datetime:
        return self.at

    async def sleep(self, seconds: float) -> None:
        if self.at >= self.until:
            self.parked.set()
            await asyncio.Event().wait()  # cancelled when the scheduler stops
        self.naps.append(seconds)
        self.at += timedelta(seconds=seconds)
        await asyncio.sleep(0)


class Recorder:
    """A render and both channels that record what they were given."""

    def __init__(self) -> None:
        self.renders: list[tuple[str, str, datetime]] = []
        self.mails: list[tuple[str, list[str]]] = []
        self.failures: list[Exception] = []  # raised by the next deliveries, in order

    def render(self, entry: ReportSchedule, period: ReportPeriod, at: datetime) -> RenderedReport:
        self.renders.append((entry.name, period.slug, at))
        return RenderedReport(f"salespulse-{period.slug}", f"report {period.slug}", "<p>", "a\r\n")

    def deliver(self, report: RenderedReport, recipients: list[str]) -> list[str]:
        if self.failures:
            raise self.failures.pop(0)
        self.mails.append((report.stem, recipients))
        return recipients


def scheduler(
    entries: list[ReportSchedule],
    clock: MovedClock,
    recorder: Recorder,
    folder: Path | None = None,
    render: Callable[..., RenderedReport] | None = None,
    **options: Any,
) -> ReportScheduler:
    settings = ReportsSettings(
        schedule=entries, timezone="Europe/Moscow", mail_to=["rop@example.com"], **options
    )
    return ReportScheduler(
        settings,
        render or recorder.render,
        clock=clock,
        email=recorder,  # type: ignore[arg-type]
        folder=DirectoryDelivery(folder) if folder else None,
    )


async def run_until_parked(target: ReportScheduler, clock: MovedClock) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(target.run(stop))
    await asyncio.wait_for(clock.parked.wait(), 10)
    stop.set()
    await asyncio.wait_for(task, 10)


def test_runs_are_at_local_wall_clock_times() -> None:
    # Friday 20 November 2026, 18:00 in Moscow.
    friday = utc("2026-11-20T15:00:00")
    assert next_run(DAILY, MSK, friday) == utc("2026-11-20T16:00:00")
    assert next_run(DAILY, MSK, utc("2026-11-20T16:00:00")) == utc("2026-11-21T16:00:00")
    workdays = DAILY.model_copy(update={"weekdays": ("mon", "tue", "wed", "thu", "fri")})
    assert next_run(workdays, MSK, utc("2026-11-20T16:00:00")) == utc("2026-11-23T16:00:00")
    assert next_run(WEEKLY, MSK, friday) == utc("2026-11-23T06:00:00")
    assert next_run(MONTHLY, MSK, friday) == utc("2026-12-01T06:00:00")
    # 19:00 in Berlin stays 19:00 across the spring-forward change of 29 March 2026.
    berlin = ZoneInfo("Europe/Berlin")
    assert next_run(DAILY, berlin, utc("2026-03-28T12:00:00")) == utc("2026-03-28T18:00:00")
    assert next_run(DAILY, berlin, utc("2026-03-28T18:00:00")) == utc("2026-03-29T17:00:00")


def test_a_run_covers_its_day_or_the_week_and_month_before() -> None:
    monday = utc("2026-11-23T06:00:00")
    assert period_of_run(DAILY, MSK, utc("2026-11-20T16:00:00")).slug == "day-2026-11-20"
    assert period_of_run(WEEKLY, MSK, monday).slug == "week-2026-11-16"
    assert period_of_run(MONTHLY, MSK, utc("2026-12-01T06:00:00")).slug == "month-2026-11"
    yesterday = DAILY.model_copy(update={"covers": "previous", "at": "08:00"})
    assert period_of_run(yesterday, MSK, monday).slug == "day-2026-11-22"
    # The local date decides: 00:30 in Vladivostok is still the day before in UTC.
    vvo = ZoneInfo("Asia/Vladivostok")
    assert period_of_run(DAILY, vvo, utc("2026-11-22T14:30:00")).slug == "day-2026-11-23"


async def test_each_entry_runs_at_its_time_and_is_delivered(tmp_path: Path) -> None:
    clock = MovedClock(utc("2026-11-29T12:00:00"), until=utc("2026-12-02T00:00:00"))
    recorder = Recorder()
    target = scheduler([DAILY, WEEKLY, MONTHLY], clock, recorder, folder=tmp_path)
    await run_until_parked(target, clock)
    assert recorder.renders == [
        ("daily", "day-2026-11-29", utc("2026-11-29T16:00:00")),
        ("weekly", "week-2026-11-23", utc("2026-11-30T06:00:00")),
        ("daily", "day-2026-11-30", utc("2026-11-30T16:00:00")),
        ("monthly", "month-2026-11", utc("2026-12-01T06:00:00")),
        ("daily", "day-2026-12-01", utc("2026-12-01T16:00:00")),
    ]
    assert [stem for stem, _ in recorder.mails] == [
        f"salespulse-{slug}" for _, slug, _ in recorder.renders
    ]
    assert all(to == ["rop@example.com"] for _, to in recorder.mails)
    assert (tmp_path / "salespulse-month-2026-11.html").read_text() == "<p>"
    assert (tmp_path / "salespulse-month-2026-11.csv").read_bytes() == b"a\r\n"
    assert len(list(tmp_path.iterdir())) == 2 * 5  # noqa: ASYNC240 - a test's own folder
    assert max(clock.naps) <= 60  # the wall clock is looked at every minute at least


async def test_failed_deliveries_are_retried_with_backoff_then_given_up(
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Each wait at its ceiling (no jitter): the doubling is what is checked here.
    monkeypatch.setattr("salespulse.backoff.random.uniform", lambda _low, high: high)
    clock = MovedClock(utc("2026-11-20T15:59:00"), until=utc("2026-11-21T00:00:00"))
    recorder = Recorder()
    recorder.failures = [
        ReportDeliveryError("421 try later", retriable=True),
        ReportDeliveryError("connection refused", retriable=True),
    ]
    target = scheduler([DAILY], clock, recorder, retry_initial_seconds=10)
    await run_until_parked(target, clock)
    assert [stem for stem, _ in recorder.mails] == ["salespulse-day-2026-11-20"]
    first_retry = clock.naps.index(10.0)
    assert clock.naps[first_retry : first_retry + 2] == [10.0, 20.0]
    assert target.delivered == [("daily", "day-2026-11-20", "email")]

    clock = MovedClock(utc("2026-11-20T15:59:00"), until=utc("2026-11-21T00:00:00"))
    recorder = Recorder()
    recorder.failures = [ReportDeliveryError("550 no such user", retriable=False)]
    target = scheduler([DAILY], clock, recorder)
    with caplog.at_level(logging.ERROR, logger="salespulse.reports.scheduler"):
        await run_until_parked(target, clock)
    assert recorder.mails == []
    assert "giving up): 550 no such user" in caplog.text


async def test_a_report_that_cannot_be_made_never_stops_the_schedule() -> None:
    clock = MovedClock(utc("2026-11-20T15:59:00"), until=utc("2026-11-22T00:00:00"))
    recorder = Recorder()
    calls: list[str] = []

    def flaky(entry: ReportSchedule, period: ReportPeriod, at: datetime) -> RenderedReport:
        calls.append(period.slug)
        if period.slug == "day-2026-11-20":
            raise RuntimeError("ClickHouse is down")
        return recorder.render(entry, period, at)

    target = scheduler(
        [DAILY], clock, recorder, render=flaky, delivery_attempts=3, retry_initial_seconds=5
    )
    await run_until_parked(target, clock)
    assert calls == ["day-2026-11-20"] * 3 + ["day-2026-11-21"]
    assert [stem for stem, _ in recorder.mails] == ["salespulse-day-2026-11-21"]


async def test_runs_over_a_day_late_are_skipped_but_a_late_one_is_made() -> None:
    class Suspended(MovedClock):
        async def sleep(self, seconds: float) -> None:
            if not self.naps:
                self.at += timedelta(days=3)  # the machine slept through three evenings
            await super().sleep(seconds)

    clock = Suspended(utc("2026-11-20T12:00:00"), until=utc("2026-11-23T17:00:00"))
    recorder = Recorder()
    await run_until_parked(scheduler([DAILY], clock, recorder), clock)
    # Made on waking up: the 22nd (less than a day late); then the 23rd on time.
    assert [slug for _, slug, _ in recorder.renders] == ["day-2026-11-22", "day-2026-11-23"]


async def test_stop_ends_a_retry_wait_at_once() -> None:
    clock = MovedClock(utc("2026-11-20T15:59:00"), until=utc("2026-11-20T16:00:00"))
    recorder = Recorder()
    recorder.failures = [ReportDeliveryError("421", retriable=True)]
    target = scheduler([DAILY], clock, recorder, retry_initial_seconds=3600)
    # The clock parks on the first retry wait; stopping then gives up the delivery.
    await run_until_parked(target, clock)
    assert recorder.mails == []


def test_a_schedule_that_delivers_nowhere_is_refused(tmp_path: Path) -> None:
    nowhere = Settings(reports=ReportsSettings(schedule=[DAILY]))
    with pytest.raises(ReportError, match="go nowhere"):
        build_scheduler(nowhere)
    no_sender = Settings(reports=ReportsSettings(schedule=[DAILY], smtp_host="mail"))
    with pytest.raises(ReportError, match="MAIL_FROM"):
        build_scheduler(no_sender)
    no_one = Settings(
        reports=ReportsSettings(schedule=[DAILY], smtp_host="mail", mail_from="r@example.com")
    )
    with pytest.raises(ReportError, match="no recipients for daily"):
        build_scheduler(no_one)
    folder_only = Settings(reports=ReportsSettings(schedule=[DAILY], directory=tmp_path))
    assert build_scheduler(folder_only).email is None
