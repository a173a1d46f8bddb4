"""The working calendar: when a manager is expected to be at work.

Alerts about a dip in activity make sense only inside the manager's working time, so this module
answers three questions for a manager, their department and the department's time zone: is this
instant working time, how much working time lies between two instants, and when does the answer
next change. The calendar is data, loaded from YAML (the shape is in ``docs/calendar.md``).

Everything is computed from local wall-clock intervals of each local day, converted to UTC day by
day: "09:00-18:00" stays 09:00-18:00 local across a DST change, and a day of 23 or 25 hours
counts as such. All three answers are derived from one merged list of UTC intervals, so they can
never disagree with each other.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import yaml
from pydantic import ValidationError

from salespulse.calendar_file import (
    BUILT_IN_SCHEDULE,
    MAX_CALENDAR_BYTES,
    SEARCH_DAYS,
    Absence,
    AbsenceKind,
    CalendarError,
    CalendarFile,
    Holiday,
    Interval,
    Schedule,
    WorkingDay,
    _resolve,
)
from salespulse.config_text import describe_validation, read_config_text
from salespulse.yaml_limits import BoundedLoaderMixin, yaml_problem

__all__ = [
    "SEARCH_DAYS",
    "Absence",
    "AbsenceKind",
    "Calendar",
    "CalendarError",
    "Holiday",
    "Schedule",
    "WorkingDay",
    "load_calendar",
    "parse_calendar",
]


class Calendar:
    """Working weeks per department, holidays, moved working days and managers' absences."""

    def __init__(
        self,
        default: Schedule,
        departments: Mapping[str, Schedule],
        holidays: Iterable[Holiday] = (),
        working_days: Iterable[WorkingDay] = (),
        absences: Iterable[Absence] = (),
    ) -> None:
        self.default = default
        self.departments = dict(departments)
        self.holidays = tuple(holidays)
        self.working_days = tuple(working_days)
        self.absences = tuple(absences)
        self._off: dict[str | None, set[date]] = {}
        self._on: dict[str | None, set[date]] = {}
        for holiday in self.holidays:
            self._off.setdefault(holiday.department, set()).add(holiday.date)
        for day in self.working_days:
            if day.date in self._off.get(day.department, ()):
                scope = f"department {day.department!r}" if day.department else "all departments"
                raise CalendarError(f"{day.date} is both a holiday and a working day for {scope}")
            self._on.setdefault(day.department, set()).add(day.date)
        self._absent_days: dict[str, list[tuple[date, date]]] = {}
        self._absent_times: dict[str, list[Interval]] = {}
        for absence in self.absences:
            if absence.whole_days:
                days = (absence.from_, absence.to)
                self._absent_days.setdefault(absence.manager, []).append(days)
            else:
                assert isinstance(absence.from_, datetime)
                assert isinstance(absence.to, datetime)
                moments = (absence.from_, absence.to)
                self._absent_times.setdefault(absence.manager, []).append(moments)
        for spans in self._absent_times.values():
            spans.sort()

    @classmethod
    def from_model(cls, data: CalendarFile) -> Calendar:
        default = _resolve(data.defaults, BUILT_IN_SCHEDULE, "defaults")
        departments = {
            name: _resolve(entry, default, f"departments.{name}")
            for name, entry in data.departments.items()
        }
        return cls(default, departments, data.holidays, data.working_days, data.absences)

    def with_holidays(self, holidays: Iterable[Holiday]) -> Calendar:
        """This calendar with more holidays, e.g. from ``calendar_ics.holidays_from_ics``."""
        return Calendar(
            self.default,
            self.departments,
            (*self.holidays, *holidays),
            self.working_days,
            self.absences,
        )

    def with_absences(self, absences: Iterable[Absence]) -> Calendar:
        """This calendar with more absences, e.g. ``directory_topic.absences_of(entries)``.

        They count exactly like the file's; an absence given twice, or overlapping another,
        removes its time once.
        """
        return Calendar(
            self.default,
            self.departments,
            self.holidays,
            self.working_days,
            (*self.absences, *absences),
        )

    def schedule_of(self, department_id: str) -> Schedule:
        return self.departments.get(department_id, self.default)

    def is_working_day(self, department_id: str, day: date) -> bool:
        """Whether ``day`` is a working day of the department (absences aside).

        A department's own entries win over global ones, and a moved working day over a holiday.
        """
        for scope in (department_id, None):
            if day in self._on.get(scope, ()):
                return True
            if day in self._off.get(scope, ()):
                return False
        return day.weekday() in self.schedule_of(department_id).workdays

    def is_working_time(
        self, manager_id: str, department_id: str, tz: ZoneInfo, at: datetime
    ) -> bool:
        at = _utc(at)
        return any(
            start <= at < end
            for start, end in self._intervals(manager_id, department_id, tz, at, at)
        )

    def working_time(
        self, manager_id: str, department_id: str, tz: ZoneInfo, start: datetime, end: datetime
    ) -> timedelta:
        """The exact working time in [start, end); zero when ``end`` is not after ``start``."""
        start, end = _utc(start), _utc(end)
        total = timedelta(0)
        if end <= start:
            return total
        for low, high in self._intervals(manager_id, department_id, tz, start, end):
            overlap = min(high, end) - max(low, start)
            if overlap > timedelta(0):
                total += overlap
        return total

    def working_seconds(
        self, manager_id: str, department_id: str, tz: ZoneInfo, start: datetime, end: datetime
    ) -> int:
        """``working_time`` in whole seconds (rounded down)."""
        return self.working_time(manager_id, department_id, tz, start, end) // timedelta(seconds=1)

    def next_working_change(
        self, manager_id: str, department_id: str, tz: ZoneInfo, at: datetime
    ) -> datetime:
        """The first instant after ``at`` at which ``is_working_time`` flips.

        When nothing flips within ``SEARCH_DAYS`` days, ``at`` plus that many days: the answer
        does not change until then, so a timer waking up at it simply asks again.
        """
        at = _utc(at)
        horizon = at + timedelta(days=SEARCH_DAYS)
        for start, end in self._intervals(manager_id, department_id, tz, at, horizon):
            if end <= at:
                continue
            return min(start if start > at else end, horizon)
        return horizon

    def working_intervals(
        self, manager_id: str, department_id: str, tz: ZoneInfo, day: date
    ) -> list[Interval]:
        """The UTC working intervals of one local day, in order, absences removed.

        For callers that walk many days (baselines over weeks of history): one call per day
        instead of one ``working_time`` per hour. Their total is that day's ``working_time``.
        """
        return [
            part
            for piece in self._day_intervals(manager_id, department_id, tz, day)
            for part in self._present(manager_id, piece)
        ]

    def _intervals(
        self, manager_id: str, department_id: str, tz: ZoneInfo, low: datetime, high: datetime
    ) -> Iterator[Interval]:
        """Merged working intervals, in order, of the local days around [low, high].

        A day more on each side: an odd DST rule may put a day's interval a little outside it.
        """
        day = low.astimezone(tz).date() - timedelta(days=1)
        last = high.astimezone(tz).date() + timedelta(days=1)
        current: Interval | None = None
        while day <= last:
            for start, end in self._day_intervals(manager_id, department_id, tz, day):
                if current is not None and start <= current[1]:
                    # Touching intervals (24:00 and the next 00:00) are one: no flip between.
                    current = (current[0], max(current[1], end))
                    continue
                if current is not None:
                    yield from self._present(manager_id, current)
                current = (start, end)
            day += timedelta(days=1)
        if current is not None:
            yield from self._present(manager_id, current)

    def _day_intervals(
        self, manager_id: str, department_id: str, tz: ZoneInfo, day: date
    ) -> list[Interval]:
        if not self.is_working_day(department_id, day):
            return []
        if any(first <= day <= last for first, last in self._absent_days.get(manager_id, ())):
            return []
        midnight = datetime.combine(day, time(), tzinfo=tz)
        intervals = []
        for piece in self.schedule_of(department_id).pieces:
            # Aware datetime + timedelta is wall-clock arithmetic: 09:00 local on this very day.
            start = (midnight + timedelta(minutes=piece.start)).astimezone(UTC)
            end = (midnight + timedelta(minutes=piece.end)).astimezone(UTC)
            # A piece inside a spring-forward gap may map to nothing; it is not working time.
            if end > start:
                intervals.append((start, end))
        return intervals

    def _present(self, manager_id: str, interval: Interval) -> Iterator[Interval]:
        """``interval`` without the manager's exact-time absences."""
        start, end = interval
        for away_from, away_to in self._absent_times.get(manager_id, ()):
            if away_to <= start or away_from >= end:
                continue
            if away_from > start:
                yield (start, away_from)
            start = max(start, away_to)
            if start >= end:
                return
        yield (start, end)


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("time must carry a time zone; naive times are ambiguous")
    return moment.astimezone(UTC)


class _Loader(BoundedLoaderMixin, yaml.SafeLoader):
    """YAML without implicit timestamps: PyYAML would fail on a bad date without saying where,
    so dates stay strings and the validation reports a bad one with its entry."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def parse_calendar(text: str) -> Calendar:
    try:
        raw = yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise CalendarError(f"calendar YAML does not parse: {yaml_problem(exc)}") from exc
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise CalendarError("calendar YAML must be a mapping (defaults, departments, holidays...)")
    try:
        data = CalendarFile.model_validate(raw)
    except ValidationError as exc:
        raise CalendarError(f"calendar is invalid: {describe_validation(exc)}") from exc
    return Calendar.from_model(data)


def load_calendar(path: Path) -> Calendar:
    text = read_config_text(path, MAX_CALENDAR_BYTES, "calendar", CalendarError)
    try:
        return parse_calendar(text)
    except CalendarError as exc:
        raise CalendarError(f"{path}: {exc}") from exc
