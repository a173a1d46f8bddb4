"""A manager's norm for a report period: what the company expects over the days they worked.

The alert rules file states norms per day or per week (``RulesFile.norm_for``). Over a period,
a day norm counts once per working day of the manager in the working calendar (holidays, moved
working days and whole-day absences of the calendar file taken into account); a week norm
counts in proportion, its share of the department's working week per working day. A period
without working days (a weekend, a vacation) expects nothing.
"""

from __future__ import annotations

from zoneinfo import ZoneInfo

from processors.alerting.rules import Period, RulesFile
from processors.alerting.workdays import Workdays
from salespulse.reports.period import ReportPeriod


def working_days(
    workdays: Workdays, manager_id: str, department_id: str, zone: ZoneInfo, period: ReportPeriod
) -> int:
    """Local days of the period with any working time left after absences."""
    return sum(
        1 for day in period.days() if workdays.intervals(manager_id, department_id, zone, day)
    )


def period_norms(
    rules: RulesFile, workdays: Workdays, department_id: str, role: str, days_worked: int
) -> dict[str, float]:
    """metric -> the norm over ``days_worked`` working days, for every metric with a norm."""
    week_length = len(workdays.calendar.schedule_of(department_id).workdays) or 5
    norms: dict[str, float] = {}
    for metric in sorted({norm.metric for norm in rules.norms}):
        daily = rules.norm_for(metric, Period.DAY, department_id, role)
        if daily is not None:
            norms[metric] = daily.at_least * days_worked
            continue
        weekly = rules.norm_for(metric, Period.WEEK, department_id, role)
        if weekly is not None:
            norms[metric] = weekly.at_least * days_worked / week_length
    return norms
