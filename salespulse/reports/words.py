"""The words and number formats of a report, in English and Russian."""

from __future__ import annotations

from decimal import Decimal

from processors.alerting.messages import METRIC_NAMES, amount
from salespulse.summary import TABLE_COLUMNS

# Working time is not an alert metric, so it has no alert label: its own here.
_WORKTIME_NAMES: dict[str, tuple[str, str]] = {
    "work_office_seconds": ("time in the office", "время в офисе"),
    "work_remote_seconds": ("remote work", "удалённая работа"),
    "visit_seconds": ("time on visits", "время на выездах"),
    "trips_started": ("business trips", "командировки"),
}
# The per-manager table: the summary's columns, then working time.
TABLE_METRICS: tuple[str, ...] = (
    *(metric for metric, _ in TABLE_COLUMNS),
    "work_office_seconds",
    "work_remote_seconds",
    "visit_seconds",
)
# The charts: what a head of sales looks at first.
CHART_METRICS: tuple[str, ...] = (
    "calls_out",
    "calls_out_answered",
    "calls_in_answered",
    "conversations",
    "talk_seconds",
    "chats",
    "meetings",
    "offers",
    "deals_won",
)

_PHRASES: dict[str, tuple[str, str]] = {
    "title": ("Activity report", "Отчёт об активности"),
    "department": ("department", "отдел"),
    "departments": ("Departments", "Отделы"),
    "manager": ("manager", "менеджер"),
    "managers": ("Managers", "Менеджеры"),
    "managers_count": ("managers", "менеджеров"),
    "working_days": ("working days", "рабочих дней"),
    "amounts": ("payments received", "сумма оплат"),
    "total": ("Total", "Итого"),
    "charts": ("Main metrics per manager", "Основные показатели по менеджерам"),
    "charts_note": (
        "A bar's full length is the highest value in the report; the black mark is the "
        "manager's norm for the period; red: below it.",
        "Полная длина полосы — наибольшее значение в отчёте; чёрная метка — норма менеджера "
        "за период; красным — ниже нормы.",
    ),
    "trend": ("Day by day", "По дням"),
    "norm_note": (
        "Where a norm applies a cell reads value / norm: the day norm times the manager's "
        "working days in the period, per the working calendar.",
        "Где есть норма, в ячейке «значение / норма»: дневная норма, умноженная на рабочие дни "
        "менеджера в периоде по рабочему календарю.",
    ),
    "local_days": (
        "Local days: each manager's own calendar days in their department's time zone.",
        "Дни — местные: календарные дни менеджера в часовом поясе его отдела.",
    ),
    "generated": ("made", "сформирован"),
    "no_managers": ("No managers in this selection.", "В выборке нет менеджеров."),
}


def phrase(key: str, language: str) -> str:
    english, russian = _PHRASES[key]
    return russian if language == "ru" else english


def metric_label(metric: str, language: str) -> str:
    english, russian = METRIC_NAMES.get(metric) or _WORKTIME_NAMES.get(metric, (metric, metric))
    return russian if language == "ru" else english


def value_text(metric: str, value: float, language: str) -> str:
    """A count as a whole number; seconds as hours and minutes (``3 h 05 min``)."""
    return amount(metric, value, language)  # the alerts' way of saying a count or a duration


def money_text(value: Decimal, currency: str) -> str:
    """``1 234 567.50 RUB``: thin spaces between thousands, whatever the locale."""
    whole = f"{value:,.2f}".replace(",", "\u202f")
    return f"{whole} {currency}"
