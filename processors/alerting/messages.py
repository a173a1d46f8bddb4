"""Alert texts a head of sales understands, in English and Russian.

Who, which metric, the actual value against the expected one, since when. Counts are whole
numbers, talk time is hours and minutes, times are the manager's local wall clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from salespulse.activity_metrics import is_duration

# metric -> (English, Russian), both as "what was counted", lower case.
METRIC_NAMES: dict[str, tuple[str, str]] = {
    "calls_in": ("incoming calls", "входящие звонки"),
    "calls_in_answered": ("answered incoming calls", "принятые входящие звонки"),
    "calls_out": ("outgoing calls", "исходящие звонки"),
    "calls_out_answered": ("answered outgoing calls", "дозвоны"),
    "calls_internal": ("internal calls", "внутренние звонки"),
    "missed": ("missed calls", "пропущенные звонки"),
    "conversations": ("conversations", "разговоры"),
    "talk_seconds": ("talk time", "время разговоров"),
    "internal_talk_seconds": ("internal talk time", "время внутренних разговоров"),
    "chats": ("chats served", "обслуженные чаты"),
    "chats_missed": ("missed chats", "пропущенные чаты"),
    "chat_first_response_seconds": ("chat first-response time", "время первого ответа в чатах"),
    "chats_answered": ("chats answered", "чаты с ответом"),
    "meetings": ("meetings", "встречи"),
    "meetings_office": ("meetings in the office", "встречи в офисе"),
    "meetings_visit": ("visits", "выезды к клиентам"),
    "presentations": ("presentations", "презентации"),
    "offers": ("offers sent", "отправленные КП"),
    "leads": ("leads worked", "обработанные лиды"),
    "leads_created": ("leads created", "созданные лиды"),
    "deals_won": ("deals won", "выигранные сделки"),
    "deals_lost": ("deals lost", "проигранные сделки"),
    "payments": ("payments", "оплаты"),
    "tasks_created": ("tasks created", "созданные задачи"),
    "tasks_done": ("tasks done", "выполненные задачи"),
    "tasks_done_late": ("tasks done late", "задачи, выполненные с опозданием"),
}


def metric_name(metric: str, language: str) -> str:
    english, russian = METRIC_NAMES.get(metric, (metric, metric))
    return russian if language == "ru" else english


def amount(metric: str, value: float, language: str) -> str:
    """A metric's value as a reader says it: "12", "1 h 05 min" / "1 ч 05 мин"."""
    if not is_duration(metric):
        return f"{value:.0f}" if abs(value - round(value)) < 0.05 or value >= 10 else f"{value:.1f}"
    minutes = round(value / 60)
    hours, minutes = divmod(minutes, 60)
    h, m = ("ч", "мин") if language == "ru" else ("h", "min")
    return f"{hours} {h} {minutes:02d} {m}" if hours else f"{minutes} {m}"


def span(duration_seconds: float, language: str) -> str:
    """A length of working time: "2 working hours", "45 working minutes"."""
    minutes = round(duration_seconds / 60)
    if language == "ru":
        if minutes % 60 == 0:
            return f"{minutes // 60} раб. ч"
        return f"{minutes} раб. мин"
    if minutes % 60 == 0:
        hours = minutes // 60
        return f"{hours} working hour{'s' if hours != 1 else ''}"
    return f"{minutes} working minutes"


def clock(moment: datetime, zone: ZoneInfo) -> str:
    return moment.astimezone(zone).strftime("%H:%M")


@dataclass(frozen=True, slots=True)
class Who:
    manager_name: str
    department_name: str

    def text(self) -> str:
        if not self.manager_name:
            return self.department_name
        return f"{self.manager_name} ({self.department_name})"


def dip(who: Who, metric: str, actual: float, expected: float, window: float, since: str) -> Text:
    share = f"{actual / expected:.0%}" if expected else "—"
    return Text(
        f"{who.text()}: {metric_name(metric, 'en')} {amount(metric, actual, 'en')} in the last "
        f"{span(window, 'en')} against the usual {amount(metric, expected, 'en')} ({share}), "
        f"since {since}",
        f"{who.text()}: {metric_name(metric, 'ru')} — {amount(metric, actual, 'ru')} за "
        f"последние {span(window, 'ru')} при обычных {amount(metric, expected, 'ru')} "
        f"({share}), с {since}",
    )


def drop(who: Who, metric: str, actual: float, expected: float, window: float, since: str) -> Text:
    """A count too far under its expectation to be chance: the window it was judged over and
    the count expected there, as a reader can weigh them."""
    return Text(
        f"{who.text()}: {amount(metric, actual, 'en')} {metric_name(metric, 'en')} in the last "
        f"{span(window, 'en')}, about {amount(metric, expected, 'en')} expected, since {since}",
        f"{who.text()}: {metric_name(metric, 'ru')} — {amount(metric, actual, 'ru')} за "
        f"последние {span(window, 'ru')}, ожидалось около {amount(metric, expected, 'ru')}, "
        f"с {since}",
    )


def pace(who: Who, metric: str, actual: float, projected: float, norm: float, week: bool) -> Text:
    end_en, end_ru = ("the week", "конца недели") if week else ("the day", "конца дня")
    return Text(
        f"{who.text()}: {metric_name(metric, 'en')} {amount(metric, actual, 'en')} so far; at "
        f"this pace {amount(metric, projected, 'en')} of the norm {amount(metric, norm, 'en')} "
        f"by the end of {end_en}",
        f"{who.text()}: {metric_name(metric, 'ru')} — пока {amount(metric, actual, 'ru')}; "
        f"в таком темпе {amount(metric, projected, 'ru')} из нормы {amount(metric, norm, 'ru')} "
        f"до {end_ru}",
    )


def inactivity(who: Who, idle_seconds: float, since: str, started: bool) -> Text:
    if started:
        return Text(
            f"{who.text()}: no calls or chats for {span(idle_seconds, 'en')}, since {since}",
            f"{who.text()}: нет звонков и чатов {span(idle_seconds, 'ru')}, с {since}",
        )
    return Text(
        f"{who.text()}: no calls or chats since the workday began ({since}), "
        f"{span(idle_seconds, 'en')}",
        f"{who.text()}: нет звонков и чатов с начала рабочего дня ({since}), "
        f"{span(idle_seconds, 'ru')}",
    )


def overdue(who: Who, task_id: str, due: str) -> Text:
    return Text(
        f"{who.text()}: task {task_id} is overdue, the deadline was {due}",
        f"{who.text()}: задача {task_id} просрочена, срок был {due}",
    )


def overdue_from_the_past(who: Who, count: int, oldest_due: str) -> Text:
    return Text(
        f"{who.text()}: {count} open tasks were already overdue when salespulse learnt of them "
        f"(loaded after their deadlines, or while alerts were not evaluated); the oldest "
        f"deadline was {oldest_due}. They are not alerted one by one",
        f"{who.text()}: {count} открытых задач уже были просрочены, когда salespulse узнал о "
        f"них (загружены после срока или пока оповещения не работали); самый ранний срок — "
        f"{oldest_due}. По отдельности о них не сообщается",
    )


def threshold(who: Who, metric: str, actual: float, limit: float, window: float) -> Text:
    minutes = round(window / 60)
    return Text(
        f"{who.text()}: {amount(metric, actual, 'en')} {metric_name(metric, 'en')} in the last "
        f"{minutes} minutes (alert from {amount(metric, limit, 'en')})",
        f"{who.text()}: {metric_name(metric, 'ru')} — {amount(metric, actual, 'ru')} за "
        f"последние {minutes} мин (порог {amount(metric, limit, 'ru')})",
    )


@dataclass(frozen=True, slots=True)
class Text:
    en: str
    ru: str

    def in_language(self, language: str) -> str:
        return self.ru if language == "ru" else self.en
