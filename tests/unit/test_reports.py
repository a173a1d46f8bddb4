"""Reports from hand-made rollup rows: numbers a person can check, escaping, CSV columns."""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from processors.alerting.rules import parse_rules
from salespulse.calendar import parse_calendar
from salespulse.directory import parse_directory
from salespulse.progress import Progress
from salespulse.report_settings import ReportSchedule, ReportsSettings
from salespulse.reports.csv_table import CSV_COLUMNS, render_csv
from salespulse.reports.data import (
    METRICS,
    DayRow,
    PaymentRow,
    Report,
    ReportError,
    assemble_report,
)
from salespulse.reports.files import report_stem, write_atomically
from salespulse.reports.html import render_html
from salespulse.reports.make import render_both
from salespulse.reports.period import ReportPeriod
from salespulse.settings import Settings, to_environment

BOSS = 'Ann <b>"Boss"</b> & Co'
DIRECTORY = parse_directory(
    """
departments:
  - {id: msk, name: "Moscow <script>alert(1)</script>", timezone: Europe/Moscow}
  - {id: vvo, name: Vladivostok, timezone: Asia/Vladivostok}
managers:
  - {id: ivanova, name: 'Ann <b>"Boss"</b> & Co', department: msk}
  - {id: petrov, name: Pavel Petrov, department: vvo, role: telesales}
  - {id: formula, name: "=SUM(A1:A9)", department: msk}
""",
    suffix=".yaml",
)
# Wednesday 18 November is a holiday in Moscow; Petrov is away on Thursday and Friday.
CALENDAR = parse_calendar(
    """
holidays:
  - {date: 2026-11-18, department: msk}
absences:
  - {manager: petrov, from: 2026-11-19, to: 2026-11-20, kind: vacation}
"""
)
RULES = parse_rules(
    """
norms:
  - {metric: calls_out, per: day, at_least: 40}
  - {metric: offers, per: week, at_least: 5}
  - {metric: talk_seconds, per: day, at_least: 3600, role: telesales}
"""
)
WEEK = ReportPeriod.containing("week", date(2026, 11, 19))
MADE = datetime(2026, 11, 23, 6, 0, tzinfo=UTC)


def counts(**values: int) -> dict[str, int]:
    return dict.fromkeys(METRICS, 0) | values


ROWS = [
    DayRow("ivanova", "msk", date(2026, 11, 16), counts(calls_out=50, talk_seconds=1000)),
    DayRow("ivanova", "msk", date(2026, 11, 17), counts(calls_out=45, talk_seconds=3000)),
    DayRow("ivanova", "msk", date(2026, 11, 19), counts(calls_out=30, offers=2)),
    DayRow("petrov", "vvo", date(2026, 11, 16), counts(calls_out=70, talk_seconds=7000)),
    DayRow("petrov", "vvo", date(2026, 11, 17), counts(calls_out=60, talk_seconds=5000)),
    DayRow("", "", date(2026, 11, 18), counts(calls_in=2)),
    DayRow("petrov", "vvo", date(2026, 11, 23), counts(calls_out=999)),  # the next week
]
PAYMENTS = [
    PaymentRow("ivanova", "msk", "RUB", 2, Decimal("1500.50")),
    PaymentRow("petrov", "vvo", "RUB", 1, Decimal("100.25")),
    PaymentRow("petrov", "vvo", "USD", 1, Decimal("200.00")),
]


def week_report(**selection: str) -> Report:
    return assemble_report(
        WEEK,
        DIRECTORY,
        ROWS,
        PAYMENTS,
        rules=RULES,
        calendar=CALENDAR,
        generated_at=MADE,
        **selection,  # type: ignore[arg-type]
    )


def csv_rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_periods_are_the_day_the_iso_week_and_the_calendar_month() -> None:
    assert ReportPeriod.containing("day", date(2026, 11, 19)) == ReportPeriod(
        "day", date(2026, 11, 19), date(2026, 11, 19)
    )
    sunday = ReportPeriod.containing("week", date(2026, 11, 22))
    assert (sunday.first, sunday.last) == (date(2026, 11, 16), date(2026, 11, 22))
    february = ReportPeriod.containing("month", date(2028, 2, 29))
    assert (february.first, february.last) == (date(2028, 2, 1), date(2028, 2, 29))
    assert ReportPeriod.containing("month", date(2027, 1, 5)).previous().first == date(2026, 12, 1)
    assert WEEK.previous().first == date(2026, 11, 9)
    assert len(ReportPeriod.containing("month", date(2026, 12, 31)).days()) == 31
    assert WEEK.title("en") == "week 2026-W47: 2026-11-16 – 2026-11-22"
    assert report_stem(WEEK, department="msk") == "salespulse-week-2026-11-16-msk"
    assert report_stem(ReportPeriod.containing("month", date(2026, 11, 3))) == (
        "salespulse-month-2026-11"
    )
    assert report_stem(WEEK, manager="../etc/x y") == "salespulse-week-2026-11-16-etc_x_y"


def test_totals_working_days_and_norms_add_up() -> None:
    report = week_report()
    by_id = {line.manager_id: line for line in report.managers}
    ivanova, petrov = by_id["ivanova"], by_id["petrov"]
    # Ivanova: Monday, Tuesday, Thursday, Friday (Wednesday is a Moscow holiday).
    assert ivanova.working_days == 4
    assert ivanova.counts["calls_out"] == 50 + 45 + 30
    assert ivanova.norms == {"calls_out": 160, "offers": 4.0}  # 40 × 4; 5 a week × 4/5
    # Petrov: Monday to Wednesday (away Thursday and Friday); telesales have a talk-time norm.
    assert petrov.working_days == 3
    assert petrov.counts["calls_out"] == 130  # the next week's 999 is not in this one
    assert petrov.norms == {"calls_out": 120, "offers": 3.0, "talk_seconds": 10800}
    assert petrov.amounts == {"RUB": Decimal("100.25"), "USD": Decimal("200.00")}
    assert by_id["(unattributed)"].counts["calls_in"] == 2
    assert by_id["(unattributed)"].working_days is None
    assert [d.department_id for d in report.departments] == ["msk", "vvo", ""]
    msk = report.departments[0]
    assert (msk.members, msk.counts["calls_out"], msk.norms["calls_out"]) == (2, 125, 320)
    assert report.total.counts["calls_out"] == 255
    # Only Petrov has a talk-time norm: the sums show none rather than his against everyone's.
    assert report.departments[1].norms["talk_seconds"] == 10800
    assert report.total.norms == {"calls_out": 440, "offers": 11.0}
    assert report.total.counts["calls_in"] == 2
    assert report.total.amounts == {"RUB": Decimal("1600.75"), "USD": Decimal("200.00")}
    assert report.total.members == 4
    trend = dict(report.trend)
    assert len(trend) == 7
    assert trend[date(2026, 11, 16)]["calls_out"] == 120
    assert trend[date(2026, 11, 22)]["calls_out"] == 0


def test_a_holiday_expects_nothing() -> None:
    day = ReportPeriod.containing("day", date(2026, 11, 18))
    report = assemble_report(
        day, DIRECTORY, ROWS, [], rules=RULES, calendar=CALENDAR, generated_at=MADE
    )
    by_id = {line.manager_id: line for line in report.managers}
    assert (by_id["ivanova"].working_days, by_id["ivanova"].norms["calls_out"]) == (0, 0)
    assert (by_id["petrov"].working_days, by_id["petrov"].norms["calls_out"]) == (1, 40)


def test_selection_by_department_and_by_manager() -> None:
    msk = week_report(department="msk")
    assert [line.manager_id for line in msk.managers] == ["formula", "ivanova"]
    assert msk.total.counts["calls_out"] == 125
    assert dict(msk.trend)[date(2026, 11, 16)]["calls_out"] == 50
    petrov = week_report(manager="petrov")
    assert [line.manager_id for line in petrov.managers] == ["petrov"]
    assert [d.department_id for d in petrov.departments] == ["vvo"]
    with pytest.raises(ReportError, match="no manager 'nobody'"):
        week_report(manager="nobody")
    with pytest.raises(ReportError, match="no department 'nowhere'"):
        week_report(department="nowhere")


def test_html_shows_value_against_norm_and_escapes_every_name() -> None:
    html = render_html(week_report())
    assert "<script" not in html
    assert "<b>" not in html
    assert "Ann &lt;b&gt;&quot;Boss&quot;&lt;/b&gt; &amp; Co" in html
    assert "Moscow &lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert '<td class="below">125 / 160</td>' in html  # Ivanova under her norm
    assert '<td class="met">130 / 120</td>' in html  # Petrov over his
    assert '<td class="met">3 h 20 min / 3 h 00 min</td>' in html  # talk time
    assert "1\u202f500.50 RUB" in html
    assert "<h2>Day by day</h2>" in html
    assert html.count("<svg") == 4 + 9  # a chart per manager line, one per trend metric
    for tag in ("http://", "https://"):  # nothing to fetch but the SVG namespace
        assert {u for u in re.findall(tag + r"[^\"' )]+", html)} <= {"http://www.w3.org/2000/svg"}


def test_html_in_russian_and_for_a_day_has_no_trend() -> None:
    day = ReportPeriod.containing("day", date(2026, 11, 17))
    report = assemble_report(
        day, DIRECTORY, ROWS, [], rules=RULES, calendar=CALENDAR, generated_at=MADE
    )
    html = render_html(report, "ru")
    assert "Отчёт об активности: день 2026-11-17" in html
    assert "исходящие звонки" in html
    assert "По дням" not in html


def test_csv_has_fixed_columns_raw_numbers_and_marked_sum_rows() -> None:
    text = render_csv(week_report())
    assert text.splitlines()[0].split(",") == list(CSV_COLUMNS)
    rows = csv_rows(text)
    assert [row["row_type"] for row in rows] == ["manager"] * 4 + ["department"] * 3 + ["total"]
    ivanova = next(row for row in rows if row["manager_id"] == "ivanova")
    assert ivanova["manager_name"] == BOSS
    assert (ivanova["period"], ivanova["first_day"], ivanova["last_day"]) == (
        "week",
        "2026-11-16",
        "2026-11-22",
    )
    assert ivanova["calls_out"] == "125"
    assert ivanova["talk_seconds"] == "4000"  # seconds, not 1:06
    assert ivanova["working_days"] == "4"
    assert ivanova["payment_amounts"] == "RUB=1500.50"
    assert ivanova["norms"] == "calls_out=160;offers=4"
    petrov = next(row for row in rows if row["manager_id"] == "petrov")
    assert petrov["payment_amounts"] == "RUB=100.25;USD=200.00"
    assert petrov["norms"] == "calls_out=120;offers=3;talk_seconds=10800"
    formula = next(row for row in rows if row["manager_id"] == "formula")
    assert formula["manager_name"] == "'=SUM(A1:A9)"  # not a formula to a spreadsheet
    total = rows[-1]
    assert (total["calls_out"], total["calls_in"], total["managers"]) == ("255", "2", "4")
    assert total["payment_amounts"] == "RUB=1600.75;USD=200.00"
    assert total["norms"] == "calls_out=440;offers=11"
    department = next(row for row in rows if row["row_type"] == "department")
    assert (department["department_id"], department["calls_out"]) == ("msk", "125")
    assert render_csv(week_report(), bom=True).startswith("\ufeffrow_type,")


def test_both_renderings_share_a_stem_and_a_subject() -> None:
    rendered = render_both(week_report(department="msk"), "en")
    assert rendered.stem == "salespulse-week-2026-11-16-msk"
    assert rendered.subject.startswith("Activity report: week 2026-W47")
    assert rendered.csv.startswith("row_type,")


def test_atomic_write_replaces_whole_files_and_leaves_no_temporaries(tmp_path: Path) -> None:
    folder = tmp_path / "reports"
    target = folder / "a.csv"
    write_atomically(target, "old\n")
    write_atomically(target, "новый\n")
    assert target.read_text(encoding="utf-8") == "новый\n"
    assert sorted(p.name for p in folder.iterdir()) == ["a.csv"]


def test_schedule_settings_travel_through_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    reports = ReportsSettings(
        schedule=[
            ReportSchedule(name="daily", period="day", at="19:00", weekdays=("mon", "fri")),
            ReportSchedule(name="monthly", period="month", at="09:00", to=("rop@example.com",)),
        ],
        mail_to=["a@example.com"],
    )
    for name, value in to_environment(Settings(reports=reports)).items():
        if name.startswith("SALESPULSE_REPORTS__"):
            monkeypatch.setenv(name, value)
    assert Settings().reports == reports
    assert reports.schedule[0].previous is False
    assert reports.schedule[1].previous is True


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        ({"name": "x", "period": "day", "at": "7pm"}, "not a local time"),
        ({"name": "X Y", "period": "day", "at": "19:00"}, "not a report name"),
        ({"name": "x", "period": "year", "at": "19:00"}, "period"),
        ({"name": "x", "period": "day", "at": "19:00", "to": ["nobody"]}, "e-mail address"),
    ],
)
def test_bad_schedule_entries_are_refused(entry: dict[str, object], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        ReportsSettings.model_validate({"schedule": [entry]})


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_rewrites_one_line_on_a_terminal_and_writes_lines_elsewhere() -> None:
    terminal = _Terminal()
    progress = Progress("report", "days read", terminal)
    for done in (1, 2, 3):
        progress(done, 3)
    shown = terminal.getvalue()
    assert shown.count("\r\x1b[K") == 3
    assert shown.endswith("\n")
    assert shown.count("\n") == 1
    assert re.sub(r" \(\d+\.\d s\)", "", shown.split("\r\x1b[K")[-1]) == "report: 3/3 days read\n"

    stopped = _Terminal()
    early = Progress("rollups rebuild", "days", stopped)
    early.step(1, 4)
    early.finish()  # the command failed half-way: the terminal line is ended all the same
    assert stopped.getvalue().endswith("\n")

    log = io.StringIO()
    lines = Progress("report", "days read", log)
    for done in (1, 2):
        lines(done, 2)
    assert [line.split(" (")[0] for line in log.getvalue().splitlines()] == [
        "report: 1/2 days read",
        "report: 2/2 days read",
    ]
