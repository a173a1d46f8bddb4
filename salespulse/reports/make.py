"""Making a report from the configuration: the directory, the norms, the calendar, ClickHouse.

Shared by ``salespulse report`` and the scheduler; each call re-reads the files, so a report
made on a schedule sees the directory, rules and calendar as they are at that moment.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from processors.alert_service import load_working_calendar
from processors.alerting.rules import load_rules
from salespulse.directory import load_directory
from salespulse.reports.csv_table import render_csv
from salespulse.reports.data import Progress, Report, query_report
from salespulse.reports.files import report_stem
from salespulse.reports.html import render_html
from salespulse.reports.period import ReportPeriod
from salespulse.reports.words import phrase
from salespulse.settings import Settings
from sinks.clickhouse.client import NativeClickHouse


@dataclass(frozen=True)
class RenderedReport:
    """Both renderings of one report, ready to deliver."""

    stem: str  # file name without the extension
    subject: str
    html: str
    csv: str


def make_report(
    settings: Settings,
    period: ReportPeriod,
    *,
    now: datetime,
    department: str | None = None,
    manager: str | None = None,
    progress: Progress | None = None,
) -> Report:
    directory = load_directory(settings.directory_path)
    rules = load_rules(settings.alerts.rules_path)
    calendar = load_working_calendar(settings.alerts)
    client = NativeClickHouse(settings.clickhouse)
    try:
        return query_report(
            client,
            directory,
            period,
            rules=rules,
            calendar=calendar,
            generated_at=now,
            department=department,
            manager=manager,
            progress=progress,
        )
    finally:
        client.close()


def render_both(report: Report, language: str, *, csv_bom: bool = False) -> RenderedReport:
    period = report.period
    subject = f"{phrase('title', language)}: {period.title(language)}"
    if report.department is not None and report.departments:
        subject += f" — {report.departments[0].name}"
    if report.manager is not None and report.managers:
        subject += f" — {report.managers[0].name}"
    return RenderedReport(
        report_stem(period, department=report.department, manager=report.manager),
        subject,
        render_html(report, language),
        render_csv(report, bom=csv_bom),
    )
