"""The calendar file: its pydantic models and the schedule of a department.

Parsing and validation live here; ``salespulse.calendar`` computes working time from the result.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    model_validator,
)

from salespulse.errors import ConfigurationError

MAX_CALENDAR_BYTES = 4 * 1024 * 1024
# How far next_working_change looks ahead: a year and a bit covers the longest plausible leave.
SEARCH_DAYS = 400
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

Interval = tuple[datetime, datetime]


class CalendarError(ConfigurationError):
    """The calendar is unreadable or inconsistent; the message names the offending entry."""


@dataclass(frozen=True)
class Span:
    """A part of a local day, in minutes after midnight; ``end`` may be 1440 ("24:00")."""

    start: int
    end: int

    def __str__(self) -> str:
        return f"{_hhmm(self.start)}-{_hhmm(self.end)}"

    def contains(self, other: Span) -> bool:
        return self.start <= other.start and other.end <= self.end


def _hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


_SPAN = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")


def _parse_span(value: object) -> Span:
    if isinstance(value, Span):
        return value
    if isinstance(value, int):
        # YAML 1.1 reads an unquoted 13:00 as the base-60 number 780.
        raise ValueError(f'{value!r} is not a time range; quote it, e.g. "13:00-14:00"')
    match = _SPAN.match(value) if isinstance(value, str) else None
    if match is None:
        raise ValueError(f'{value!r} is not a time range like "09:00-18:00"')
    h1, m1, h2, m2 = (int(group) for group in match.groups())
    start, end = h1 * 60 + m1, h2 * 60 + m2
    if h1 > 23 or m1 > 59 or m2 > 59 or end > 24 * 60:
        raise ValueError(f"{value!r} has a bad time (00:00 to 24:00)")
    if end <= start:
        # A shift across midnight would need a local day of its own; it is not modelled.
        raise ValueError(f"{value!r} ends before it starts (night shifts are not supported)")
    return Span(start, end)


def _parse_weekday(value: object) -> int:
    name = value.strip().lower() if isinstance(value, str) else None
    if name not in WEEKDAYS:
        raise ValueError(f"unknown weekday {value!r} (use {', '.join(WEEKDAYS)})")
    return WEEKDAYS.index(name)


def _date_or_time(value: object) -> date | datetime:
    """A whole local day (a date) or an exact instant (RFC 3339 with an offset, kept as UTC)."""
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, date):
        return value
    elif isinstance(value, str):
        text = value.strip()
        try:
            if len(text) == 10:
                return date.fromisoformat(text)
            moment = datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(
                f"{value!r} is neither a date (2026-11-23) nor a time (2026-11-26T14:00:00+03:00)"
            ) from None
    else:
        raise ValueError(f"{value!r} is neither a date nor a time")
    if moment.tzinfo is None or moment.utcoffset() is None:
        # The manager's zone is not known here, and guessing it would shift the absence.
        raise ValueError(f"{value!r} needs a UTC offset, e.g. +03:00")
    return moment.astimezone(UTC)


SpanField = Annotated[Span, PlainValidator(_parse_span)]
Weekday = Annotated[int, PlainValidator(_parse_weekday)]


def _iso(value: date) -> str:
    # pydantic's own JSON serializer for the validated union warns about every value.
    return value.isoformat()


DateOrTime = Annotated[
    date | datetime,
    PlainValidator(_date_or_time),
    PlainSerializer(_iso, return_type=str, when_used="json"),
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ScheduleEntry(_Strict):
    """A working week; a key left out is inherited (department from defaults, defaults built in)."""

    workdays: list[Weekday] | None = None
    hours: SpanField | None = None
    lunch: SpanField | None = None


def _bare_date(value: Any) -> Any:
    """A day entry may be written as just its date."""
    return value if isinstance(value, dict) else {"date": value}


class Holiday(_Strict):
    date: date
    name: str = Field(default="", max_length=256)
    department: str | None = Field(default=None, min_length=1, max_length=64)

    _bare = model_validator(mode="before")(_bare_date)


class WorkingDay(_Strict):
    """A day worked although it is a weekend or a holiday (a moved working day)."""

    date: date
    name: str = Field(default="", max_length=256)
    department: str | None = Field(default=None, min_length=1, max_length=64)

    _bare = model_validator(mode="before")(_bare_date)


class AbsenceKind(StrEnum):
    VACATION = "vacation"
    SICK_LEAVE = "sick_leave"
    BUSINESS_TRIP = "business_trip"
    OTHER = "other"


class Absence(_Strict):
    """Whole local days (``from`` and ``to`` dates, inclusive) or exact times (``to`` excluded)."""

    manager: str = Field(min_length=1, max_length=64)
    from_: DateOrTime = Field(alias="from")
    to: DateOrTime
    kind: AbsenceKind

    @property
    def whole_days(self) -> bool:
        return not isinstance(self.from_, datetime)

    @model_validator(mode="after")
    def _ordered(self) -> Absence:
        what = f"absence of {self.manager!r} from {self.from_} to {self.to}"
        if isinstance(self.from_, datetime) != isinstance(self.to, datetime):
            raise ValueError(f"{what}: give two dates or two times, not one of each")
        if self.to < self.from_ or (not self.whole_days and self.to == self.from_):
            raise ValueError(f"{what}: 'to' is before 'from'")
        return self


class CalendarFile(_Strict):
    defaults: ScheduleEntry = ScheduleEntry()
    departments: dict[str, ScheduleEntry] = Field(default_factory=dict)
    holidays: list[Holiday] = Field(default_factory=list)
    working_days: list[WorkingDay] = Field(default_factory=list)
    absences: list[Absence] = Field(default_factory=list)


@dataclass(frozen=True)
class Schedule:
    workdays: frozenset[int]
    hours: Span
    lunch: Span | None

    @property
    def pieces(self) -> tuple[Span, ...]:
        """The working parts of a working day: the hours without the lunch break."""
        if self.lunch is None:
            return (self.hours,)
        parts = (Span(self.hours.start, self.lunch.start), Span(self.lunch.end, self.hours.end))
        return tuple(part for part in parts if part.end > part.start)


BUILT_IN_SCHEDULE = Schedule(frozenset(range(5)), Span(9 * 60, 18 * 60), None)


def _resolve(entry: ScheduleEntry, base: Schedule, where: str) -> Schedule:
    given = entry.model_fields_set
    schedule = Schedule(
        frozenset(entry.workdays) if entry.workdays is not None else base.workdays,
        entry.hours if entry.hours is not None else base.hours,
        entry.lunch if "lunch" in given else base.lunch,
    )
    if schedule.lunch is not None and not schedule.hours.contains(schedule.lunch):
        raise CalendarError(f"{where}: lunch {schedule.lunch} lies outside hours {schedule.hours}")
    return schedule
