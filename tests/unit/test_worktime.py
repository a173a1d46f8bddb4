"""Working time from workday and visit events: worked examples on plain values."""

from __future__ import annotations

from datetime import date, datetime

from sinks.clickhouse.worktime import TimeEvent, working_time

DAY = date(2026, 11, 26)


def at(hhmm: str, kind: str, action: str, location: str = "") -> TimeEvent:
    hours, minutes = map(int, hhmm.split(":"))
    return TimeEvent(
        "m1", "d1", DAY, datetime(2026, 11, 26, hours, minutes), kind, action, location
    )


def test_office_day_with_lunch_and_an_afternoon_visit() -> None:
    events = [
        at("09:00", "workday", "start", "office"),
        at("13:00", "workday", "pause"),  # lunch
        at("14:00", "workday", "resume", "office"),
        at("15:00", "visit", "visit_start"),
        at("16:30", "visit", "visit_end"),
        at("18:00", "workday", "stop"),
    ]
    # 4 h before lunch + 4 h after; the visit lies inside the workday and is reported apart.
    assert working_time(events)[("m1", "d1", DAY)] == [8 * 3600, 0, 90 * 60, 0]


def test_remote_morning_office_afternoon() -> None:
    events = [
        at("08:30", "workday", "start", "remote"),
        at("12:30", "workday", "pause"),
        at("13:30", "workday", "resume", "office"),
        at("17:30", "workday", "stop"),
    ]
    assert working_time(events)[("m1", "d1", DAY)] == [4 * 3600, 4 * 3600, 0, 0]


def test_an_unclosed_day_counts_only_up_to_its_last_event_and_duplicates_change_nothing() -> None:
    events = [
        at("09:00", "workday", "start", "office"),
        at("09:00", "workday", "start", "office"),  # sent twice
        at("11:00", "workday", "pause"),
        at("12:00", "workday", "resume", "office"),  # never stopped
        at("10:00", "visit", "trip_start"),
    ]
    assert working_time(events)[("m1", "d1", DAY)] == [2 * 3600, 0, 0, 1]
