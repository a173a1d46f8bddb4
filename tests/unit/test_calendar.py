"""The working calendar: working time, its amount between instants, and when it next changes."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from salespulse.calendar import (
    SEARCH_DAYS,
    Calendar,
    CalendarError,
    Holiday,
    load_calendar,
    parse_calendar,
)
from salespulse.calendar_ics import holidays_from_ics
from salespulse.directory_topic import absences_of

SAMPLES = Path(__file__).resolve().parent.parent / "samples" / "calendar"
MSK = ZoneInfo("Europe/Moscow")
VVO = ZoneInfo("Asia/Vladivostok")
BER = ZoneInfo("Europe/Berlin")
HOUR = 3600


@pytest.fixture(scope="module")
def cal() -> Calendar:
    return load_calendar(SAMPLES / "calendar.yaml")


def local(tz: ZoneInfo, text: str) -> datetime:
    """A local wall-clock time in ``tz``, as the UTC instant the calendar is asked about."""
    return datetime.fromisoformat(text).replace(tzinfo=tz).astimezone(UTC)


def test_morning_of_a_weekday_is_working_time(cal: Calendar) -> None:
    # 2026-11-26 is a Thursday.
    assert cal.is_working_time("sidorova", "msk", MSK, local(MSK, "2026-11-26T09:00"))
    assert cal.is_working_time("sidorova", "msk", MSK, local(MSK, "2026-11-26T12:59:59"))
    assert not cal.is_working_time("sidorova", "msk", MSK, local(MSK, "2026-11-26T08:59:59"))
    assert not cal.is_working_time("sidorova", "msk", MSK, local(MSK, "2026-11-26T18:00"))


def test_lunch_is_not_working_time(cal: Calendar) -> None:
    assert not cal.is_working_time("sidorova", "msk", MSK, local(MSK, "2026-11-26T13:00"))
    assert not cal.is_working_time("sidorova", "msk", MSK, local(MSK, "2026-11-26T13:59"))
    assert cal.is_working_time("sidorova", "msk", MSK, local(MSK, "2026-11-26T14:00"))


def test_department_without_lunch_works_through_it(cal: Calendar) -> None:
    assert cal.is_working_time("sidorova", "support", MSK, local(MSK, "2026-11-26T13:30"))
    assert cal.is_working_time("sidorova", "support", MSK, local(MSK, "2026-11-26T19:59"))


def test_weekend_is_not_working_time(cal: Calendar) -> None:
    assert not cal.is_working_time("sidorova", "msk", MSK, local(MSK, "2026-11-28T11:00"))  # Sat
    assert not cal.is_working_time("sidorova", "msk", MSK, local(MSK, "2026-11-29T11:00"))  # Sun
    # Support works on Saturdays.
    assert cal.is_working_time("sidorova", "support", MSK, local(MSK, "2026-11-28T11:00"))


def test_holiday_is_not_working_time(cal: Calendar) -> None:
    assert not cal.is_working_time("sidorova", "msk", MSK, local(MSK, "2026-11-04T11:00"))
    assert not cal.is_working_time("sidorova", "support", MSK, local(MSK, "2026-11-04T11:00"))
    # A department's own holiday closes that department only.
    assert not cal.is_working_time("sidorova", "msk", MSK, local(MSK, "2026-11-05T11:00"))
    assert cal.is_working_time("sidorova", "spb", MSK, local(MSK, "2026-11-05T11:00"))


def test_moved_saturday_is_working_time(cal: Calendar) -> None:
    assert cal.is_working_time("sidorova", "msk", MSK, local(MSK, "2026-11-07T11:00"))
    assert not cal.is_working_time("sidorova", "msk", MSK, local(MSK, "2026-11-07T13:30"))
    # A department's own working day (a Sunday) is for that department only.
    assert cal.is_working_time("sidorova", "support", MSK, local(MSK, "2026-11-15T11:00"))
    assert not cal.is_working_time("sidorova", "msk", MSK, local(MSK, "2026-11-15T11:00"))


def test_vacation_is_not_working_time(cal: Calendar) -> None:
    for day in range(23, 28):
        at = local(MSK, f"2026-11-{day}T11:00")
        assert not cal.is_working_time("ivanova", "msk", MSK, at)
        assert cal.is_working_time("sidorova", "msk", MSK, at)
    assert cal.is_working_time("ivanova", "msk", MSK, local(MSK, "2026-11-20T11:00"))
    assert cal.is_working_time("ivanova", "msk", MSK, local(MSK, "2026-11-30T11:00"))


def test_afternoon_business_trip_ends_working_time_at_14_local(cal: Calendar) -> None:
    assert cal.is_working_time("petrov", "vvo", VVO, local(VVO, "2026-11-26T11:00"))
    # Lunch ends at 14:00, exactly when the trip begins: working time stops at lunch.
    noon = local(VVO, "2026-11-26T12:00")
    assert cal.next_working_change("petrov", "vvo", VVO, noon) == local(VVO, "2026-11-26T13:00")
    lunch = local(VVO, "2026-11-26T13:30")
    assert cal.next_working_change("petrov", "vvo", VVO, lunch) == local(VVO, "2026-11-27T09:00")
    assert not cal.is_working_time("petrov", "vvo", VVO, local(VVO, "2026-11-26T14:00"))
    assert not cal.is_working_time("petrov", "vvo", VVO, local(VVO, "2026-11-26T17:59"))
    # In a department without lunch the trip itself ends working time at 14:00.
    at = local(VVO, "2026-11-26T12:00")
    assert cal.next_working_change("petrov", "support", VVO, at) == local(VVO, "2026-11-26T14:00")
    after = local(VVO, "2026-11-26T15:00")
    assert cal.next_working_change("petrov", "support", VVO, after) == local(
        VVO, "2026-11-26T18:00"
    )


def test_working_seconds_over_a_day_with_lunch_is_eight_hours(cal: Calendar) -> None:
    start, end = local(MSK, "2026-11-26T00:00"), local(MSK, "2026-11-27T00:00")
    assert cal.working_seconds("sidorova", "msk", MSK, start, end) == 8 * HOUR
    # Part of a day: 10:30 to 15:15 is 2.5 h + 1.25 h around lunch.
    start, end = local(MSK, "2026-11-26T10:30"), local(MSK, "2026-11-26T15:15")
    assert cal.working_seconds("sidorova", "msk", MSK, start, end) == int(3.75 * HOUR)


def test_working_seconds_across_a_weekend(cal: Calendar) -> None:
    # Friday 17:00 to Monday 10:00: one hour each side.
    start, end = local(MSK, "2026-11-27T17:00"), local(MSK, "2026-11-30T10:00")
    assert cal.working_seconds("sidorova", "msk", MSK, start, end) == 2 * HOUR
    # A whole week without holidays: five days of eight hours.
    start, end = local(MSK, "2026-11-30T00:00"), local(MSK, "2026-12-07T00:00")
    assert cal.working_seconds("sidorova", "msk", MSK, start, end) == 40 * HOUR
    # The week of Unity Day (Wed 4th) and the moved Saturday 7th.
    start, end = local(MSK, "2026-11-02T00:00"), local(MSK, "2026-11-09T00:00")
    assert cal.working_seconds("sidorova", "spb", MSK, start, end) == 40 * HOUR


def test_working_seconds_is_zero_for_an_empty_or_reversed_range(cal: Calendar) -> None:
    at = local(MSK, "2026-11-26T10:00")
    assert cal.working_seconds("sidorova", "msk", MSK, at, at) == 0
    assert cal.working_seconds("sidorova", "msk", MSK, at, at - timedelta(hours=1)) == 0


@pytest.mark.parametrize(
    ("friday", "monday", "day_length"),
    [("2026-03-27", "2026-03-30", 23), ("2026-10-23", "2026-10-26", 25)],
)
def test_hours_stay_local_across_berlin_dst_change(
    cal: Calendar, friday: str, monday: str, day_length: int
) -> None:
    # Before the change 09:00 is one UTC hour, after it another: the wall clock decides.
    for day in (friday, monday):
        opening = local(BER, f"{day}T09:00")
        assert cal.is_working_time("m", "ber", BER, opening)
        assert not cal.is_working_time("m", "ber", BER, opening - timedelta(seconds=1))
    assert local(BER, f"{friday}T09:00").hour != local(BER, f"{monday}T09:00").hour
    start, end = local(BER, f"{friday}T00:00"), local(BER, f"{monday}T23:59")
    assert cal.working_seconds("m", "ber", BER, start, end) == 16 * HOUR
    # A department working round the clock gets the short or long day as it is.
    sunday = date.fromisoformat(friday) + timedelta(days=2)
    start = local(BER, f"{sunday}T00:00")
    end = local(BER, f"{sunday + timedelta(days=1)}T00:00")
    assert cal.working_seconds("m", "round-the-clock", BER, start, end) == day_length * HOUR


def test_next_working_change_at_12_59_moscow_is_lunch(cal: Calendar) -> None:
    at = local(MSK, "2026-11-26T12:59")
    assert cal.next_working_change("sidorova", "msk", MSK, at) == local(MSK, "2026-11-26T13:00")
    assert cal.next_working_change("sidorova", "msk", MSK, local(MSK, "2026-11-26T13:00")) == (
        local(MSK, "2026-11-26T14:00")
    )
    # Friday evening: the next change is Monday morning.
    friday = local(MSK, "2026-11-27T18:00")
    assert cal.next_working_change("sidorova", "msk", MSK, friday) == local(MSK, "2026-11-30T09:00")
    # During the vacation the next change is the first morning after it.
    assert cal.next_working_change("ivanova", "msk", MSK, local(MSK, "2026-11-22T20:00")) == (
        local(MSK, "2026-11-30T09:00")
    )


def test_next_working_change_is_bounded_when_nothing_changes() -> None:
    cal = parse_calendar("defaults: {workdays: [], hours: '09:00-18:00'}")
    at = datetime(2026, 11, 26, tzinfo=UTC)
    assert cal.next_working_change("m", "d", MSK, at) == at + timedelta(days=SEARCH_DAYS)
    always = parse_calendar(
        "defaults: {workdays: [mon, tue, wed, thu, fri, sat, sun], hours: '00:00-24:00'}"
    )
    # Midnight is not a change when the next day's hours begin where the last day's end.
    assert always.next_working_change("m", "d", MSK, at) == at + timedelta(days=SEARCH_DAYS)


def test_naive_times_are_refused(cal: Calendar) -> None:
    with pytest.raises(ValueError, match="naive"):
        cal.is_working_time("m", "msk", MSK, datetime(2026, 11, 26, 10))


def test_ics_sample_is_parsed() -> None:
    holidays = holidays_from_ics((SAMPLES / "production-2026.ics").read_text(encoding="utf-8"))
    days = [holiday.date for holiday in holidays]
    # DTEND is exclusive: New Year holidays are 1 to 8 January; the timed event is ignored.
    assert days == [
        *(date(2026, 1, day) for day in range(1, 9)),
        date(2026, 2, 23),
        date(2026, 11, 4),
    ]
    assert holidays[0].name == "Новогодние каникулы, Рождество"
    assert holidays[8].name == "День защитника Отечества"  # a folded line, unfolded
    assert all(holiday.department is None for holiday in holidays)
    cal = parse_calendar("{}").with_holidays(holidays)
    at = local(MSK, "2026-02-23T11:00")  # a Monday
    assert not cal.is_working_time("m", "msk", MSK, at)
    assert cal.is_working_time("m", "msk", MSK, at + timedelta(days=1))


def test_ics_for_one_department_and_repeating_events() -> None:
    text = "BEGIN:VEVENT\nDTSTART;VALUE=DATE:20260312\nSUMMARY:Office move\nEND:VEVENT\n"
    (holiday,) = holidays_from_ics(text, department="msk")
    assert holiday == Holiday(date=date(2026, 3, 12), name="Office move", department="msk")
    repeating = text.replace("END:VEVENT", "RRULE:FREQ=YEARLY\nEND:VEVENT")
    with pytest.raises(CalendarError, match=r"Office move\) repeats"):
        holidays_from_ics(repeating)
    bad = text.replace("20260312", "20261312")
    with pytest.raises(CalendarError, match="'20261312' is not a date"):
        holidays_from_ics(bad)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("defaults: {hours: '9:00-25:00'}", r"defaults\.hours: '9:00-25:00' has a bad time"),
        ("defaults: {hours: '18:00-09:00'}", "ends before it starts"),
        ("defaults: {hours: nine to six}", "'nine to six' is not a time range"),
        ("defaults: {lunch: 13:00}", "780 is not a time range; quote it"),
        ("defaults: {workdays: [mon, mun]}", r"defaults\.workdays\[1\]: unknown weekday 'mun'"),
        (
            "departments: {late: {hours: '12:00-20:00'}}\ndefaults: {lunch: '11:00-12:00'}",
            r"departments\.late: lunch 11:00-12:00 lies outside hours 12:00-20:00",
        ),
        ("defaults: {hours: '09:00-18:00', lunch: '17:30-18:30'}", "lies outside hours"),
        ("holidays: [{date: 2026-13-01}]", r"holidays\[0\]\.date: .*2026-13-01"),
        ("holidays: [{date: 2026-11-04, nmae: x}]", r"holidays\[0\]\.nmae: Extra inputs"),
        ("weekends: [sat]", "weekends: Extra inputs"),
        (
            "absences: [{manager: ivanova, from: 2026-11-27, to: 2026-11-23, kind: vacation}]",
            r"absences\[0\]: .*'ivanova' from 2026-11-27 to 2026-11-23: 'to' is before 'from'",
        ),
        (
            "absences: [{manager: p, from: '2026-11-26T14:00:00+10:00',"
            " to: '2026-11-26T14:00:00+10:00', kind: other}]",
            "'to' is before 'from'",
        ),
        (
            "absences: [{manager: p, from: 2026-11-26, to: '2026-11-26T18:00:00Z', kind: other}]",
            "two dates or two times",
        ),
        (
            "absences: [{manager: p, from: '2026-11-26T14:00', to: 2026-11-27, kind: other}]",
            r"absences\[0\]\.from: '2026-11-26T14:00' needs a UTC offset",
        ),
        (
            "absences: [{manager: p, from: 2026-11-26, to: 2026-11-26, kind: holiday}]",
            r"absences\[0\]\.kind: .*'vacation'.*\(got 'holiday'\)",
        ),
        (
            "holidays: [2026-11-07]\nworking_days: [2026-11-07]",
            "2026-11-07 is both a holiday and a working day for all departments",
        ),
        ("- just a list", "must be a mapping"),
        ("defaults: {hours: [}", "does not parse: line 1"),
    ],
)
def test_bad_files_are_rejected_with_clear_messages(text: str, message: str) -> None:
    with pytest.raises(CalendarError, match=message):
        parse_calendar(text)


def test_load_calendar_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "calendar.yaml"
    path.write_text("defaults: {workdays: [funday]}", encoding="utf-8")
    with pytest.raises(CalendarError, match=r"calendar\.yaml: calendar is invalid: .*funday"):
        load_calendar(path)
    with pytest.raises(CalendarError, match="cannot read calendar"):
        load_calendar(tmp_path / "missing.yaml")


def test_documented_example_loads() -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "calendar.md").read_text("utf-8")
    example = doc.split("```yaml\n", 1)[1].split("```", 1)[0]
    cal = parse_calendar(example)
    assert cal.schedule_of("support").lunch is None
    assert [absence.kind.value for absence in cal.absences] == ["vacation", "business_trip"]


def without_absences(cal: Calendar) -> Calendar:
    return Calendar(cal.default, cal.departments, cal.holidays, cal.working_days)


# The sample file's two absences, as an HR system would publish them on the directory topic.
TOPIC_ABSENCES = {
    "absence:hr-1": b'{"manager": "ivanova", "from": "2026-11-23", "to": "2026-11-27",'
    b' "kind": "vacation"}',
    "absence:hr-2": b'{"manager": "petrov", "from": "2026-11-26T04:00:00Z",'
    b' "to": "2026-11-26T08:00:00Z", "kind": "business_trip"}',
}


@pytest.mark.parametrize(
    ("manager", "department", "tz"),
    [("ivanova", "msk", MSK), ("petrov", "vvo", VVO), ("petrov", "support", VVO)],
)
def test_absences_from_the_topic_remove_working_time_like_the_files(
    cal: Calendar, manager: str, department: str, tz: ZoneInfo
) -> None:
    bare = without_absences(cal)
    from_topic = bare.with_absences(absences_of(TOPIC_ABSENCES))
    start, end = local(tz, "2026-11-20T00:00"), local(tz, "2026-12-01T00:00")
    # The absences matter in this stretch, and the topic's remove exactly what the file's do.
    assert bare.working_time(manager, department, tz, start, end) > cal.working_time(
        manager, department, tz, start, end
    )
    assert from_topic.working_time(manager, department, tz, start, end) == cal.working_time(
        manager, department, tz, start, end
    )
    at = start
    while at < end:
        assert from_topic.is_working_time(manager, department, tz, at) == cal.is_working_time(
            manager, department, tz, at
        )
        assert from_topic.next_working_change(
            manager, department, tz, at
        ) == cal.next_working_change(manager, department, tz, at)
        at += timedelta(minutes=30)


def test_absences_from_the_topic_add_to_the_files(cal: Calendar) -> None:
    sick = (
        b'{"manager": "sidorova", "from": "2026-11-26", "to": "2026-11-26", "kind": "sick_leave"}'
    )
    both = cal.with_absences(absences_of({"absence:hr-3": sick, **TOPIC_ABSENCES}))
    day = local(MSK, "2026-11-26T00:00"), local(MSK, "2026-11-27T00:00")
    assert cal.working_seconds("sidorova", "msk", MSK, *day) == 8 * HOUR
    assert both.working_seconds("sidorova", "msk", MSK, *day) == 0
    assert both.working_seconds("sidorova", "msk", MSK, day[1], day[1] + timedelta(days=1)) == (
        8 * HOUR
    )
    # The file's absences stay, and one given twice (file and topic) removes its time once.
    assert both.working_seconds("ivanova", "msk", MSK, *day) == 0
    friday = local(MSK, "2026-11-27T00:00"), local(MSK, "2026-11-28T00:00")
    assert both.working_seconds("ivanova", "msk", MSK, *friday) == 0
    trip_day = local(VVO, "2026-11-26T00:00"), local(VVO, "2026-11-27T00:00")
    assert both.working_seconds("petrov", "support", VVO, *trip_day) == cal.working_seconds(
        "petrov", "support", VVO, *trip_day
    )
    assert cal.with_absences([]).absences == cal.absences


def test_department_inherits_what_it_does_not_override(cal: Calendar) -> None:
    support = cal.schedule_of("support")
    assert support.lunch is None
    assert str(support.hours) == "08:00-20:00"
    assert cal.schedule_of("unlisted") == cal.default
    assert str(cal.default.lunch) == "13:00-14:00"


# Instants from March to November 2026: both of Berlin's DST changes, the vacation and the trip.
_instants = st.integers(
    int(datetime(2026, 3, 20, tzinfo=UTC).timestamp()),
    int(datetime(2026, 12, 5, tzinfo=UTC).timestamp()),
).map(lambda seconds: datetime.fromtimestamp(seconds, UTC))
_who = st.sampled_from(
    [
        ("ivanova", "msk", MSK),
        ("petrov", "vvo", VVO),
        ("petrov", "support", VVO),
        ("m", "ber", BER),
        ("m", "round-the-clock", BER),
    ]
)


@settings(deadline=None)
@given(who=_who, instants=st.lists(_instants, min_size=3, max_size=3))
def test_working_seconds_is_additive(
    cal: Calendar, who: tuple[str, str, ZoneInfo], instants: list[datetime]
) -> None:
    a, b, c = sorted(instants)
    manager, department, tz = who
    first = cal.working_seconds(manager, department, tz, a, b)
    second = cal.working_seconds(manager, department, tz, b, c)
    assert first + second == cal.working_seconds(manager, department, tz, a, c)
    assert 0 <= first <= (b - a).total_seconds()


@settings(deadline=None)
@given(who=_who, at=_instants)
def test_next_working_change_flips_and_nothing_flips_before(
    cal: Calendar, who: tuple[str, str, ZoneInfo], at: datetime
) -> None:
    manager, department, tz = who
    change = cal.next_working_change(manager, department, tz, at)
    working = cal.is_working_time(manager, department, tz, at)
    assert change > at
    if change < at + timedelta(days=SEARCH_DAYS):
        assert cal.is_working_time(manager, department, tz, change) != working
    # Until the change the state holds, so working time is all or nothing of the stretch.
    seconds = cal.working_seconds(manager, department, tz, at, change)
    assert seconds == ((change - at).total_seconds() if working else 0)
