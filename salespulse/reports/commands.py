"""``salespulse report``, ``salespulse report schedule`` and ``salespulse rollups rebuild``."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from salespulse.directory import Directory, load_directory
from salespulse.progress import Progress
from salespulse.reports.data import ReportError
from salespulse.reports.period import ReportPeriod
from salespulse.settings import Settings
from sinks.clickhouse.client import ClickHouse, NativeClickHouse, as_date


def add_report_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    report = sub.add_parser(
        "report", help="per-manager and per-department report of a day, week or month"
    )
    report.add_argument(
        "action",
        nargs="?",
        choices=["schedule"],
        help="schedule: make the configured reports at their times and deliver them",
    )
    report.add_argument("--period", choices=["day", "week", "month"])
    report.add_argument(
        "--date", default="today", help="a day in the period: today, yesterday or YYYY-MM-DD"
    )
    report.add_argument(
        "--timezone",
        help="zone in which today and yesterday are meant (default: the department's, or the "
        "directory's when all departments share one, else UTC)",
    )
    report.add_argument("--department", metavar="ID", help="only this department")
    report.add_argument("--manager", metavar="ID", help="only this manager")
    report.add_argument("--format", choices=["html", "csv"])
    report.add_argument(
        "--out", help="file, or folder (existing, or ending in /) to write to (default: stdout)"
    )
    report.add_argument("--language", choices=["en", "ru"], help="default: configured")
    report.set_defaults(func=cmd_report)

    rollups = sub.add_parser("rollups", help="the dashboard rollups")
    rollups.add_argument("action", choices=["rebuild"])
    rollups.add_argument(
        "--from", dest="first", help="first local day, YYYY-MM-DD (default: the first stored)"
    )
    rollups.add_argument(
        "--to", dest="last", help="last local day, YYYY-MM-DD (default: the last stored)"
    )
    rollups.set_defaults(func=cmd_rollups)


def _fail(command: str, message: str) -> int:
    print(f"salespulse {command}: {message}", file=sys.stderr)
    return 2


def parse_day(text: str, today: date) -> date:
    if text == "today":
        return today
    if text == "yesterday":
        return today - timedelta(days=1)
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ReportError(f"a date must be today, yesterday or YYYY-MM-DD, not {text!r}") from None


def report_zone(
    directory: Directory, explicit: str | None, department: str | None, manager: str | None
) -> ZoneInfo:
    """Where "today" is meant: as asked, else the one zone the selection lives in, else UTC."""
    if explicit:
        try:
            return ZoneInfo(explicit)
        except (ZoneInfoNotFoundError, ValueError, OSError):
            raise ReportError(f"unknown time zone {explicit!r}") from None
    if manager is not None and manager in directory.managers:
        department = directory.managers[manager].department
    if department is not None and department in directory.departments:
        return directory.timezone_of(department)
    zones = {entry.timezone for entry in directory.departments.values()}
    return ZoneInfo(zones.pop()) if len(zones) == 1 else ZoneInfo("UTC")


def cmd_report(args: argparse.Namespace, settings: Settings) -> int:
    try:
        if args.action == "schedule":
            return _schedule(settings)
        return _report(args, settings)
    except ReportError as exc:
        return _fail("report", str(exc))


def _report(args: argparse.Namespace, settings: Settings) -> int:
    from salespulse.reports.csv_table import render_csv
    from salespulse.reports.files import report_stem, write_atomically
    from salespulse.reports.html import render_html
    from salespulse.reports.make import make_report

    if args.period is None or args.format is None:
        raise ReportError("--period day|week|month and --format html|csv are needed")
    now = datetime.now(UTC)
    directory = load_directory(settings.directory_path)
    zone = report_zone(directory, args.timezone, args.department, args.manager)
    period = ReportPeriod.containing(args.period, parse_day(args.date, now.astimezone(zone).date()))
    progress = Progress("report", "days read") if period.first != period.last else None
    try:
        report = make_report(
            settings,
            period,
            now=now,
            department=args.department,
            manager=args.manager,
            progress=progress,
        )
    finally:
        if progress is not None:
            progress.finish()
    language = args.language or settings.reports.language
    if args.format == "html":
        text = render_html(report, language)
    else:
        text = render_csv(report, bom=settings.reports.csv_bom)
    if args.out is None:
        sys.stdout.write(text)
        return 0
    path = Path(args.out)
    if path.is_dir() or args.out.endswith(("/", os.sep)):
        stem = report_stem(period, department=args.department, manager=args.manager)
        path = path / f"{stem}.{args.format}"
    write_atomically(path, text)
    print(f"wrote {path}")
    return 0


def _schedule(settings: Settings) -> int:
    from salespulse.reports.scheduler import build_scheduler

    scheduler = build_scheduler(settings)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await scheduler.run(stop)

    asyncio.run(main())
    return 0


def cmd_rollups(args: argparse.Namespace, settings: Settings) -> int:
    from sinks.clickhouse.rollup import rebuild

    today = datetime.now(UTC).date()
    client = NativeClickHouse(settings.clickhouse)
    try:
        try:
            first, last = _rebuild_range(client, args, today)
        except ReportError as exc:
            return _fail("rollups", str(exc))
        if first is None or last is None:
            print("no events stored: nothing to rebuild")
            return 0
        if last < first:
            return _fail("rollups", f"--to {last} is before --from {first}")
        progress = Progress("rollups rebuild", "days")
        try:
            written = rebuild(client, first, last, settings.counting, progress)
        finally:
            progress.finish()
    finally:
        client.close()
    print(f"rollups rebuilt for {first} to {last}: {written} rows written")
    return 0


def _rebuild_range(
    ch: ClickHouse, args: argparse.Namespace, today: date
) -> tuple[date | None, date | None]:
    """The days asked for; a bound not given is the first or last local day stored."""
    first = parse_day(args.first, today) if args.first else None
    last = parse_day(args.last, today) if args.last else None
    if first is None or last is None:
        ((low, high, events),) = ch.execute(
            f"SELECT min(local_date), max(local_date), count() FROM {ch.database}.events"
        )
        if not int(events):
            return first, last
        first = first or as_date(low)
        last = last or as_date(high)
    return first, last
