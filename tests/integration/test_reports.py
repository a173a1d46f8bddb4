"""Reports read from the rollups give the numbers ``salespulse summary`` counts from the events,
on both ClickHouse engines; and ``salespulse report`` / ``rollups rebuild`` as a user types them."""

from __future__ import annotations

import csv
import io
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from ingest.generator import Traffic
from processors.alerting.rules import parse_rules
from salespulse.activity_metrics import ACTIVITY_METRIC_NAMES
from salespulse.calendar import parse_calendar
from salespulse.cli import main
from salespulse.directory import Directory, load_directory
from salespulse.reports.data import Report, query_report
from salespulse.reports.period import ReportPeriod
from salespulse.settings import Settings, to_environment
from salespulse.summary import query_summary
from sinks.clickhouse.client import ClickHouse, NativeClickHouse
from tests.conftest import LocalStack
from tests.integration.report_data import load_week, week_database

MONDAY = date(2026, 11, 16)


def report_of(ch: ClickHouse, directory: Directory, period: ReportPeriod) -> Report:
    return query_report(
        ch,
        directory,
        period,
        rules=parse_rules(""),
        calendar=parse_calendar(""),
        generated_at=datetime(2026, 11, 23, tzinfo=UTC),
    )


def reported(report: Report) -> dict[str, Counter[str]]:
    return {
        line.manager_id: +Counter({m: line.counts[m] for m in ACTIVITY_METRIC_NAMES})
        for line in report.managers
    }


def summarised(
    ch: ClickHouse, directory: Directory, last: date, days: int
) -> dict[str, Counter[str]]:
    rows = query_summary(ch, directory, last_day=last, days=days)
    return {row.manager_id: +Counter(row.counts) for row in rows}


def exact_payments(ch: ClickHouse, first: date, last: date) -> dict[str, dict[str, Decimal]]:
    rows = ch.execute(
        f"SELECT manager_id, currency, toString(sum(amount)) FROM {ch.database}.events FINAL "
        "WHERE kind = 'payment' AND local_date >= %(first)s AND local_date <= %(last)s "
        "GROUP BY manager_id, currency",
        {"first": first, "last": last},
    )
    amounts: dict[str, dict[str, Decimal]] = {}
    for manager, currency, amount in rows:
        amounts.setdefault(manager or "(unattributed)", {})[currency] = Decimal(amount)
    return amounts


def test_report_totals_equal_the_summary_of_the_same_days(
    clickhouse: ClickHouse, week_traffic: tuple[Traffic, Path]
) -> None:
    traffic, directory_path = week_traffic
    directory = load_directory(directory_path)
    assert load_week(clickhouse, traffic, directory) > 5000

    week = report_of(clickhouse, directory, ReportPeriod.containing("week", MONDAY))
    assert reported(week) == summarised(clickhouse, directory, date(2026, 11, 22), 7)
    assert week.total.counts["calls_out"] > 1000
    for line in week.managers:
        if line.manager_id in directory.managers:
            assert line.counts["work_office_seconds"] + line.counts["work_remote_seconds"] > 0
    payments = exact_payments(clickhouse, MONDAY, date(2026, 11, 22))
    assert {line.manager_id: line.amounts for line in week.managers if line.amounts} == payments
    assert sum(week.total.amounts.values()) == sum(
        sum(by_currency.values()) for by_currency in payments.values()
    )
    trend = dict(week.trend)
    assert sum(day["calls_out"] for day in trend.values()) == week.total.counts["calls_out"]

    for day in ReportPeriod.containing("week", MONDAY).days()[:5]:
        one = report_of(clickhouse, directory, ReportPeriod.containing("day", day))
        assert reported(one) == summarised(clickhouse, directory, day, 1), day
        assert one.total.counts["calls_out"] == trend[day]["calls_out"], day

    steps: list[tuple[int, int]] = []
    month = query_report(
        clickhouse,
        directory,
        ReportPeriod.containing("month", MONDAY),
        rules=parse_rules(""),
        calendar=parse_calendar(""),
        generated_at=datetime(2026, 12, 1, tzinfo=UTC),
        progress=lambda done, total: steps.append((done, total)),
    )
    assert steps == [(n, 30) for n in range(1, 31)]
    assert reported(month) == summarised(clickhouse, directory, date(2026, 11, 30), 30)


@pytest.fixture(scope="module")
def loaded_settings(stack: LocalStack, week_traffic: tuple[Traffic, Path]) -> Iterator[Settings]:
    """A server database of its own holding the generated week, shared by this module's
    read-only command tests."""
    with week_database(stack, week_traffic, "reports") as settings:
        yield settings


@pytest.fixture
def report_env(loaded_settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    for name, value in to_environment(loaded_settings).items():
        monkeypatch.setenv(name, value)
    return loaded_settings


def test_report_command_writes_csv_and_html_files_with_progress(
    report_env: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["report", "--period", "week", "--date", "2026-11-18", "--format", "csv"]
    assert main([*argv, "--out", str(tmp_path)]) == 0
    out, err = capsys.readouterr()
    written = tmp_path / "salespulse-week-2026-11-16.csv"
    assert out.strip() == f"wrote {written}"
    assert [line.split(" (")[0] for line in err.splitlines()] == [
        f"report: {n}/7 days read" for n in range(1, 8)
    ]
    rows = list(csv.DictReader(io.StringIO(written.read_text(encoding="utf-8"))))
    directory = load_directory(report_env.directory_path)
    managers = [row for row in rows if row["row_type"] == "manager"]
    assert {row["manager_id"] for row in managers} >= set(directory.managers)
    client = NativeClickHouse(report_env.clickhouse)
    try:
        summary = query_summary(client, directory, last_day=date(2026, 11, 22), days=7)
    finally:
        client.close()
    total = next(row for row in rows if row["row_type"] == "total")
    for metric in ("calls_out", "conversations", "talk_seconds", "chats", "payments"):
        assert int(total[metric]) == sum(r.counts.get(metric, 0) for r in summary), metric
    assert all(
        int(row["working_days"]) == 5 for row in managers if row["manager_id"] != "(unattributed)"
    )

    page = tmp_path / "month.html"
    html_argv = ["report", "--period", "month", "--date", "2026-11-18", "--format", "html"]
    assert main([*html_argv, "--out", str(page), "--language", "ru"]) == 0
    out, err = capsys.readouterr()
    assert len(err.splitlines()) == 30  # a line per day read: stderr is not a terminal here
    text = page.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>")
    assert "месяц 2026-11" in text
    assert all(entry.name in text for entry in directory.managers.values())

    department = next(iter(directory.departments))
    day_argv = ["report", "--period", "day", "--date", "2026-11-18", "--format", "csv"]
    assert main([*day_argv, "--department", department]) == 0
    out, err = capsys.readouterr()
    assert err == ""  # one day: no progress to show
    day_rows = list(csv.DictReader(io.StringIO(out)))
    assert {row["department_id"] for row in day_rows if row["row_type"] != "total"} == {department}

    assert main([*day_argv, "--manager", "m-0001", "--out", f"{tmp_path}/daily/"]) == 0
    (one,) = (tmp_path / "daily").iterdir()
    assert one.name == "salespulse-day-2026-11-18-m-0001.csv"
    rows = list(csv.DictReader(io.StringIO(one.read_text(encoding="utf-8"))))
    assert [row["row_type"] for row in rows] == ["manager", "department", "total"]
    assert rows[0]["manager_id"] == "m-0001"


def test_report_command_user_errors_are_one_line(
    report_env: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["report", "--period", "day"]) == 2
    assert capsys.readouterr().err.startswith("salespulse report: --period day|week|month and")
    argv = ["report", "--period", "day", "--format", "csv", "--manager", "nobody"]
    assert main(argv) == 2
    assert "no manager 'nobody'" in capsys.readouterr().err
    assert main(["report", "--period", "day", "--format", "csv", "--date", "soon"]) == 2
    assert "a date must be today, yesterday or YYYY-MM-DD" in capsys.readouterr().err


def test_rollups_rebuild_prints_progress_and_defaults_to_the_stored_days(
    report_env: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["rollups", "rebuild", "--from", "2026-11-14", "--to", "2026-11-22"]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("rollups rebuilt for 2026-11-14 to 2026-11-22: ")
    assert err.startswith("rollups rebuild: 9/9 days (")
    assert main(["rollups", "rebuild"]) == 0
    out, _ = capsys.readouterr()
    first, last = out.split("rollups rebuilt for ")[1].split(":")[0].split(" to ")
    assert date.fromisoformat(first) <= date(2026, 11, 16)
    assert date.fromisoformat(last) >= date(2026, 11, 20)
    assert main(["rollups", "rebuild", "--from", "2026-11-22", "--to", "2026-11-14"]) == 2
    assert "is before --from" in capsys.readouterr().err
