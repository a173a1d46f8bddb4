"""Report periods: a local day, an ISO week (Monday to Sunday) or a calendar month."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from salespulse.report_settings import PeriodName


@dataclass(frozen=True)
class ReportPeriod:
    kind: PeriodName
    first: date
    last: date

    @classmethod
    def containing(cls, kind: PeriodName, day: date) -> ReportPeriod:
        if kind == "day":
            return cls(kind, day, day)
        if kind == "week":
            monday = day - timedelta(days=day.weekday())
            return cls(kind, monday, monday + timedelta(days=6))
        first = day.replace(day=1)
        following = (first + timedelta(days=32)).replace(day=1)
        return cls(kind, first, following - timedelta(days=1))

    def previous(self) -> ReportPeriod:
        return ReportPeriod.containing(self.kind, self.first - timedelta(days=1))

    def days(self) -> list[date]:
        return [self.first + timedelta(days=n) for n in range((self.last - self.first).days + 1)]

    @property
    def slug(self) -> str:
        """For file names: ``day-2026-11-20``, ``week-2026-11-16``, ``month-2026-11``."""
        if self.kind == "month":
            return f"month-{self.first:%Y-%m}"
        return f"{self.kind}-{self.first.isoformat()}"

    def title(self, language: str) -> str:
        """``day 2026-11-20``, ``week 2026-W47: 2026-11-16 – 2026-11-22``, ``month 2026-11:
        …``: ISO dates and week numbers read the same in every language and locale."""
        kind = _KINDS[self.kind][1 if language == "ru" else 0]
        if self.kind == "day":
            return f"{kind} {self.first.isoformat()}"
        if self.kind == "week":
            year, week, _ = self.first.isocalendar()
            name = f"{year}-W{week:02d}"
        else:
            name = f"{self.first:%Y-%m}"
        return f"{kind} {name}: {self.first.isoformat()} – {self.last.isoformat()}"


_KINDS = {"day": ("day", "день"), "week": ("week", "неделя"), "month": ("month", "месяц")}
