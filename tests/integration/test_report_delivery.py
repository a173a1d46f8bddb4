"""Scheduled reports delivered for real: to a local SMTP server (aiosmtpd) over STARTTLS with a
login and over SSL, with retries on a 4xx answer, and into a folder; made from a ClickHouse
server holding a generated week, on a moved clock."""

from __future__ import annotations

import asyncio
import csv
import io
import os
import signal
import ssl
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from ingest.generator import Traffic
from salespulse.directory import load_directory
from salespulse.report_settings import ReportSchedule, ReportsSettings
from salespulse.reports.scheduler import build_scheduler
from salespulse.settings import Settings
from salespulse.stack_settings import free_ports
from tests.conftest import LocalStack
from tests.integration.report_data import week_database
from tests.smtp_inbox import Inbox
from tests.unit.test_report_schedule import MovedClock

# Weekdays at 19:00 in Moscow, the day's report; Mondays at 09:00, last week's.
ENTRIES = [
    ReportSchedule(
        name="daily",
        period="day",
        at="19:00",
        weekdays=("mon", "tue", "wed", "thu", "fri"),
    ),
    ReportSchedule(name="weekly", period="week", at="09:00", weekday="mon"),
]
FRIDAY_1800_MSK = datetime(2026, 11, 20, 15, 0, tzinfo=UTC)
MONDAY_1000_MSK = datetime(2026, 11, 23, 7, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1: the client trusts it as its CA file."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2"),
            *("-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1"),
            *("-addext", "subjectAltName=IP:127.0.0.1"),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


def server_context(certificate: tuple[Path, Path]) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*certificate)
    return context


@pytest.fixture(scope="module")
def week_settings(stack: LocalStack, week_traffic: tuple[Traffic, Path]) -> Iterator[Settings]:
    with week_database(stack, week_traffic, "delivery") as settings:
        yield settings


def with_reports(settings: Settings, **reports: Any) -> Settings:
    options: dict[str, Any] = {
        "schedule": ENTRIES,
        "timezone": "Europe/Moscow",
        "mail_from": "Sales reports <reports@example.com>",
        "mail_to": ["rop@example.com", "ceo@example.com"],
        "retry_initial_seconds": 30,
        **reports,
    }
    return settings.model_copy(update={"reports": ReportsSettings(**options)})


async def run_schedule(settings: Settings, until: datetime = MONDAY_1000_MSK) -> list[Any]:
    clock = MovedClock(FRIDAY_1800_MSK, until=until)
    scheduler = build_scheduler(settings, clock=clock)
    stop = asyncio.Event()
    task = asyncio.create_task(scheduler.run(stop))
    await asyncio.wait_for(clock.parked.wait(), 120)
    stop.set()
    await asyncio.wait_for(task, 30)
    return [clock, scheduler]


def parts(message: EmailMessage) -> tuple[str, str, bytes]:
    """(HTML body, CSV file name, CSV bytes)."""
    body = message.get_body(preferencelist=("html",))
    assert body is not None
    (attachment,) = list(message.iter_attachments())
    payload = attachment.get_payload(decode=True)
    assert isinstance(payload, bytes)
    return str(body.get_content()), str(attachment.get_filename()), payload


async def test_scheduled_reports_are_mailed_over_starttls_with_a_login(
    week_settings: Settings, certificate: tuple[Path, Path], tmp_path: Path
) -> None:
    (port,) = free_ports(1)
    inbox = Inbox()
    controller = Controller(
        inbox,
        hostname="127.0.0.1",
        port=port,
        tls_context=server_context(certificate),
        require_starttls=True,
        auth_required=True,
        authenticator=inbox.authenticate,
    )
    controller.start()
    try:
        settings = with_reports(
            week_settings,
            smtp_host="127.0.0.1",
            smtp_port=port,
            smtp_security="starttls",
            smtp_user="reports",
            smtp_password="s3cret",
            smtp_cafile=certificate[0],
            directory=tmp_path,
        )
        _, scheduler = await run_schedule(settings)
    finally:
        controller.stop()

    assert scheduler.delivered == [
        ("daily", "day-2026-11-20", "email"),
        ("daily", "day-2026-11-20", "folder"),
        ("weekly", "week-2026-11-16", "email"),
        ("weekly", "week-2026-11-16", "folder"),
    ]
    assert inbox.logins == [b"reports", b"reports"]
    (sender, to, day), (_, _, week) = inbox.messages
    assert sender == "reports@example.com"
    assert to == ["rop@example.com", "ceo@example.com"]
    assert day["Subject"] == "Activity report: day 2026-11-20"
    assert week["Subject"] == "Activity report: week 2026-W47: 2026-11-16 – 2026-11-22"

    directory = load_directory(week_settings.directory_path)
    html, name, data = parts(week)
    assert name == "salespulse-week-2026-11-16.csv"
    assert html.startswith("<!DOCTYPE html>")
    assert all(manager.name in html for manager in directory.managers.values())
    rows = list(csv.DictReader(io.StringIO(data.decode("utf-8"))))
    assert {row["manager_id"] for row in rows if row["row_type"] == "manager"} >= set(
        directory.managers
    )
    total = next(row for row in rows if row["row_type"] == "total")
    assert int(total["calls_out"]) > 1000

    # The folder holds the same two reports, each as an HTML and a CSV file, and nothing else.
    files = sorted(path.name for path in tmp_path.iterdir())  # noqa: ASYNC240
    assert files == [
        "salespulse-day-2026-11-20.csv",
        "salespulse-day-2026-11-20.html",
        "salespulse-week-2026-11-16.csv",
        "salespulse-week-2026-11-16.html",
    ]
    assert (tmp_path / name).read_bytes() == data
    # Mail travels with CRLF line ends; the file keeps the report's own.
    assert (tmp_path / "salespulse-week-2026-11-16.html").read_text() == html.replace("\r\n", "\n")


async def test_a_refused_mail_is_retried_with_backoff_over_ssl(
    week_settings: Settings,
    certificate: tuple[Path, Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Each wait at its ceiling (no jitter): the doubling is what is checked here.
    monkeypatch.setattr("salespulse.backoff.random.uniform", lambda _low, high: high)
    (port,) = free_ports(1)
    inbox = Inbox(refuse=2)
    controller = Controller(
        inbox, hostname="127.0.0.1", port=port, ssl_context=server_context(certificate)
    )
    controller.start()
    try:
        settings = with_reports(
            week_settings,
            schedule=ENTRIES[:1],
            smtp_host="127.0.0.1",
            smtp_port=port,
            smtp_security="ssl",
            smtp_cafile=certificate[0],
            mail_to=["rop@example.com"],
        )
        clock, scheduler = await run_schedule(settings, until=FRIDAY_1800_MSK.replace(hour=17))
    finally:
        controller.stop()
    assert scheduler.delivered == [("daily", "day-2026-11-20", "email")]
    assert len(inbox.messages) == 1
    first_retry = clock.naps.index(30.0)
    assert clock.naps[first_retry : first_retry + 2] == [30.0, 60.0]  # 451, 451, then 250


async def test_an_unreachable_mail_server_is_given_up_and_the_folder_still_written(
    week_settings: Settings, tmp_path: Path
) -> None:
    (port,) = free_ports(1)  # nothing listens there
    settings = with_reports(
        week_settings,
        schedule=ENTRIES[:1],
        smtp_host="127.0.0.1",
        smtp_port=port,
        smtp_security="none",
        delivery_attempts=2,
        directory=tmp_path,
    )
    _, scheduler = await run_schedule(settings, until=FRIDAY_1800_MSK.replace(hour=17))
    assert scheduler.delivered == [("daily", "day-2026-11-20", "folder")]
    csv_file = tmp_path / "salespulse-day-2026-11-20.csv"
    assert csv_file.read_text(encoding="utf-8").startswith("row_type,period,")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_the_schedule_command_stops_cleanly_on_a_signal(
    sig: signal.Signals, tmp_path: Path
) -> None:
    env = {
        **os.environ,
        "SALESPULSE_REPORTS__DIRECTORY": str(tmp_path),
        "SALESPULSE_REPORTS__SCHEDULE": '[{"name": "daily", "period": "day", "at": "19:00"}]',
    }
    with subprocess.Popen(
        [sys.executable, "-m", "salespulse", "report", "schedule"],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    ) as process:
        try:
            assert process.stderr is not None
            assert "report daily: next at" in process.stderr.readline()
            process.send_signal(sig)
            assert process.wait(timeout=10) == 0
        finally:
            if process.poll() is None:
                process.kill()
