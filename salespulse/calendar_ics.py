"""Holidays from an iCalendar (RFC 5545) file, the form production calendars are published in.

Only all-day events are read: ``DTSTART;VALUE=DATE``, an optional ``DTEND;VALUE=DATE`` (exclusive,
so a multi-day holiday yields each of its days) and ``SUMMARY`` as the name. Timed events and all
other properties are ignored. A repeating event (``RRULE``/``RDATE``) is rejected rather than read
as its first day alone, which would silently drop every later occurrence.
"""

from __future__ import annotations

import re
from datetime import date, timedelta

from salespulse.calendar_file import CalendarError, Holiday

# A guard against an endless event from a typo in DTEND (a holiday is days long, not years).
MAX_EVENT_DAYS = 366
_DATE = re.compile(r"^(\d{4})(\d{2})(\d{2})$")
_ESCAPES = {"n": "\n", "N": "\n", ",": ",", ";": ";", "\\": "\\"}


def holidays_from_ics(text: str, *, department: str | None = None) -> list[Holiday]:
    """The holidays of the all-day events in ``text``, for ``department`` or for all."""
    holidays: list[Holiday] = []
    event: dict[str, tuple[str, str]] | None = None
    for number, line in _unfolded(text):
        name, params, value = _split(line)
        if name == "BEGIN" and value.upper() == "VEVENT":
            event = {}
        elif name == "END" and value.upper() == "VEVENT" and event is not None:
            holidays.extend(_holidays(event, number, department))
            event = None
        elif event is not None and name in ("DTSTART", "DTEND", "SUMMARY", "RRULE", "RDATE"):
            event[name] = (params.upper(), value)
    return holidays


def _holidays(
    event: dict[str, tuple[str, str]], line: int, department: str | None
) -> list[Holiday]:
    if "DTSTART" not in event:
        return []
    params, value = event["DTSTART"]
    if "VALUE=DATE" not in params.split(";") or "VALUE=DATE-TIME" in params.split(";"):
        return []
    name = _unescape(event.get("SUMMARY", ("", ""))[1])
    where = f"event ending on line {line} ({name or 'no SUMMARY'})"
    if "RRULE" in event or "RDATE" in event:
        raise CalendarError(f"{where} repeats; list each occurrence as an event of its own")
    first = _date(value, where)
    last = first
    if "DTEND" in event:
        # DTEND of an all-day event is the day after the last one.
        last = _date(event["DTEND"][1], where) - timedelta(days=1)
        if last < first:
            raise CalendarError(f"{where}: DTEND is not after DTSTART")
        if (last - first).days >= MAX_EVENT_DAYS:
            raise CalendarError(f"{where}: over {MAX_EVENT_DAYS} days long")
    days = (last - first).days + 1
    return [
        Holiday(date=first + timedelta(days=n), name=name[:256], department=department)
        for n in range(days)
    ]


def _date(value: str, where: str) -> date:
    match = _DATE.match(value.strip())
    try:
        if match is None:
            raise ValueError(value)
        return date(*(int(group) for group in match.groups()))
    except ValueError:
        raise CalendarError(f"{where}: {value!r} is not a date YYYYMMDD") from None


def _unfolded(text: str) -> list[tuple[int, str]]:
    """Logical lines with the number of their first physical line.

    RFC 5545 folds long lines by a line break followed by one space or tab, which is removed.
    """
    lines: list[tuple[int, str]] = []
    # Only CR/LF end lines: str.splitlines would also split at U+2028 inside a SUMMARY.
    for number, physical in enumerate(re.split(r"\r\n|\r|\n", text), start=1):
        if physical[:1] in (" ", "\t") and lines:
            first, previous = lines[-1]
            lines[-1] = (first, previous + physical[1:])
        elif physical.strip():
            lines.append((number, physical))
    return lines


def _split(line: str) -> tuple[str, str, str]:
    """``NAME;PARAMS:VALUE`` into its parts; a colon inside a quoted parameter is not the end."""
    quoted = False
    for position, char in enumerate(line):
        if char == '"':
            quoted = not quoted
        elif char == ":" and not quoted:
            head, value = line[:position], line[position + 1 :]
            name, _, params = head.partition(";")
            return name.strip().upper(), params, value
    return line.strip().upper(), "", ""


def _unescape(value: str) -> str:
    return re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), m.group(1)), value).strip()
