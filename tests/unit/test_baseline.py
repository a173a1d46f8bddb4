"""Baselines and expected counts: worked examples a person can check by hand (docs/baselines.md).

Ivanova, Sidorova and Novikova work in Moscow (UTC+3, no DST), 09:00-18:00 with lunch
13:00-14:00; Lebedev's department in Moscow has a short lunch, 13:30-14:00; Müller works in
Berlin (CET/CEST), and Weber in Berlin around the clock, every day. Today is Monday
30 November 2026 unless a test says otherwise; the Mondays before it are 23, 16, 9 and
2 November, 26 and 19 October...
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from processors.alerting.baseline import (
    Baselines,
    build_baselines,
    expected_between,
    local_today,
    working_window_start,
)
from salespulse.activity import HourRow
from salespulse.calendar import Calendar, parse_calendar
from salespulse.directory import parse_directory

MSK = ZoneInfo("Europe/Moscow")
BER = ZoneInfo("Europe/Berlin")
MONDAY, SUNDAY = 0, 6
TODAY = date(2026, 11, 30)
CALENDAR = parse_calendar(
    """
defaults: {hours: "09:00-18:00", lunch: "13:00-14:00"}
departments:
  short_lunch: {lunch: "13:30-14:00"}
  allday: {workdays: [mon, tue, wed, thu, fri, sat, sun], hours: "00:00-24:00", lunch: null}
holidays:
  - {date: 2026-11-16, department: holiday_msk}
absences:
  - {manager: sidorova, from: 2026-11-16, to: 2026-11-20, kind: vacation}
"""
)
DIRECTORY = parse_directory(
    """
departments:
  - {id: msk, timezone: Europe/Moscow}
  - {id: holiday_msk, timezone: Europe/Moscow}
  - {id: short_lunch, timezone: Europe/Moscow}
  - {id: ber, timezone: Europe/Berlin}
  - {id: allday, timezone: Europe/Berlin}
managers:
  - {id: ivanova, department: msk}
  - {id: sidorova, department: msk}
  - {id: novikova, department: msk}
  - {id: kozlov, department: holiday_msk}
  - {id: lebedev, department: short_lunch}
  - {id: mueller, department: ber}
  - {id: weber, department: allday}
""",
    suffix=".yaml",
)


def row(manager: str, day: str, hour: int, **counts: int) -> HourRow:
    department = DIRECTORY.managers[manager].department
    return HourRow(manager, department, date.fromisoformat(day), hour, counts)


def at(tz: ZoneInfo, text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=tz)


def build(*rows: HourRow, today: date = TODAY, **options: int) -> Baselines:
    return build_baselines(rows, CALENDAR, DIRECTORY, lambda _: today, **options)


def expected(
    baselines: Baselines, manager: str, start: datetime, end: datetime, metric: str = "calls_out"
) -> float | None:
    department = DIRECTORY.managers[manager].department
    tz = DIRECTORY.timezone_of(department)
    return expected_between(baselines, CALENDAR, manager, department, tz, metric, start, end)


FOUR_MONDAYS = (
    row("ivanova", "2026-11-02", 10, calls_out=6),
    row("ivanova", "2026-11-09", 10, calls_out=8),
    row("ivanova", "2026-11-16", 10, calls_out=10),
    row("ivanova", "2026-11-23", 10, calls_out=12),
)


def test_four_mondays_give_the_median_rate_and_half_an_hour_expects_half_of_it() -> None:
    # Rates 6, 8, 10 and 12 per 3600 working seconds; the median is (8 + 10) / 2 = 9 per hour.
    baselines = build(*FOUR_MONDAYS)
    assert baselines.periods("ivanova", MONDAY, 10) == 4  # history began on 2 November
    assert baselines.rate("ivanova", "calls_out", MONDAY, 10) == pytest.approx(9 / 3600)
    start, end = at(MSK, "2026-11-30T10:00"), at(MSK, "2026-11-30T10:30")
    assert expected(baselines, "ivanova", start, end) == pytest.approx(4.5)


def test_hours_without_activity_are_zeros_and_other_metrics_are_zero() -> None:
    baselines = build(*FOUR_MONDAYS)
    # 11:00 had no calls on any of the four Mondays: a baseline of 0, not "no baseline".
    assert baselines.rate("ivanova", "calls_out", MONDAY, 11) == 0.0
    assert baselines.rate("ivanova", "chats", MONDAY, 10) == 0.0
    start, end = at(MSK, "2026-11-30T10:00"), at(MSK, "2026-11-30T12:00")
    assert expected(baselines, "ivanova", start, end) == pytest.approx(9.0)
    with pytest.raises(KeyError, match="calls_outgoing"):
        baselines.rate("ivanova", "calls_outgoing", MONDAY, 10)


def test_a_holiday_monday_is_skipped_not_a_zero() -> None:
    # Kozlov's department has 16 November off. Were it a zero, the five rates 0, 6, 8, 10, 12
    # would have the median 8; skipped, the four working Mondays give 9 as above.
    baselines = build(
        row("kozlov", "2026-10-26", 10, calls_out=6),
        row("kozlov", "2026-11-02", 10, calls_out=8),
        row("kozlov", "2026-11-09", 10, calls_out=10),
        row("kozlov", "2026-11-23", 10, calls_out=12),
    )
    assert baselines.periods("kozlov", MONDAY, 10) == 4
    assert baselines.rate("kozlov", "calls_out", MONDAY, 10) == pytest.approx(9 / 3600)


def test_a_vacation_week_is_skipped_and_a_silent_working_monday_is_a_zero() -> None:
    # Sidorova was on vacation 16-20 November; Novikova worked that Monday and made no calls.
    rows = []
    for manager in ("sidorova", "novikova"):
        for day, calls in (("2026-10-26", 6), ("2026-11-02", 8), ("2026-11-09", 10)):
            rows.append(row(manager, day, 10, calls_out=calls))
        rows.append(row(manager, "2026-11-23", 10, calls_out=12))
    baselines = build(*rows)
    assert baselines.periods("sidorova", MONDAY, 10) == 4
    assert baselines.rate("sidorova", "calls_out", MONDAY, 10) == pytest.approx(9 / 3600)
    # Novikova: 0, 6, 8, 10, 12 -> the median is 8.
    assert baselines.periods("novikova", MONDAY, 10) == 5
    assert baselines.rate("novikova", "calls_out", MONDAY, 10) == pytest.approx(8 / 3600)


def test_lunch_is_no_period_and_a_half_working_hour_is_scaled_by_its_working_seconds() -> None:
    rows = []
    for day in ("2026-11-02", "2026-11-09", "2026-11-16", "2026-11-23"):
        rows.append(row("ivanova", day, 13, calls_out=2))  # during a full-hour lunch
        rows.append(row("lebedev", day, 13, calls_out=3))  # 13:00-13:30 worked, then lunch
    baselines = build(*rows)
    assert baselines.periods("ivanova", MONDAY, 13) == 0
    assert baselines.rate("ivanova", "calls_out", MONDAY, 13) is None
    # 3 calls in 1800 working seconds: 6 per working hour.
    assert baselines.periods("lebedev", MONDAY, 13) == 4
    assert baselines.rate("lebedev", "calls_out", MONDAY, 13) == pytest.approx(3 / 1800)
    start, end = at(MSK, "2026-11-30T13:00"), at(MSK, "2026-11-30T15:00")
    # 13:00-13:30 expects 3; 14:00-15:00 had no calls on those Mondays.
    assert expected(baselines, "lebedev", start, end) == pytest.approx(3.0)
    # Ivanova's window lies in lunch (no working time, nothing expected) and 14:00-15:00.
    assert expected(baselines, "ivanova", start, end) == 0.0
    lunch_only = expected(baselines, "ivanova", start, at(MSK, "2026-11-30T14:00"))
    assert lunch_only == 0.0


def test_history_of_two_weeks_has_no_baseline_with_four_periods_required() -> None:
    rows = (
        row("ivanova", "2026-11-16", 10, calls_out=10),
        row("ivanova", "2026-11-23", 10, calls_out=12),
    )
    baselines = build(*rows)
    assert baselines.periods("ivanova", MONDAY, 10) == 2
    assert baselines.rate("ivanova", "calls_out", MONDAY, 10) is None
    start, end = at(MSK, "2026-11-30T10:00"), at(MSK, "2026-11-30T10:30")
    assert expected(baselines, "ivanova", start, end) is None
    assert build(*rows, min_periods=2).rate("ivanova", "calls_out", MONDAY, 10) == pytest.approx(
        11 / 3600
    )


def test_only_the_last_weeks_count_and_today_is_not_its_own_baseline() -> None:
    rows = (
        row("ivanova", "2026-10-05", 10, calls_out=100),  # 8 Mondays back: in with weeks=8
        *FOUR_MONDAYS,
        row("ivanova", "2026-11-30", 10, calls_out=50),  # today
    )
    assert build(*rows).periods("ivanova", MONDAY, 10) == 8
    four = build(*rows, weeks=4)
    assert four.periods("ivanova", MONDAY, 10) == 4
    assert four.rate("ivanova", "calls_out", MONDAY, 10) == pytest.approx(9 / 3600)


def test_the_same_local_hour_is_compared_across_a_dst_change() -> None:
    # Berlin left summer time on Sunday 25 October. 10:00 on 12 and 19 October was 08:00 UTC,
    # on 26 October and 2 November 09:00 UTC: still the same local hour, 4 calls each time.
    rows = [
        row("mueller", day, 10, calls_out=4)
        for day in ("2026-10-12", "2026-10-19", "2026-10-26", "2026-11-02")
    ]
    baselines = build(*rows, today=date(2026, 11, 9))
    assert baselines.periods("mueller", MONDAY, 10) == 4
    utc = datetime(2026, 11, 9, 9, tzinfo=UTC)  # 10:00 in Berlin
    assert expected(baselines, "mueller", utc, utc.replace(hour=10)) == pytest.approx(4.0)
    assert expected(baselines, "mueller", utc.replace(hour=8), utc) == 0.0


def test_the_hour_repeated_when_clocks_go_back_lasts_two_hours() -> None:
    # Weber works around the clock. On 25 October 02:00-03:00 happened twice, and the rollup
    # puts both in local hour 2: 7200 working seconds at 2 calls per hour expect 4 calls.
    rows = [
        row("weber", day, 2, calls_out=2)
        for day in ("2026-09-27", "2026-10-04", "2026-10-11", "2026-10-18")
    ]
    baselines = build(*rows, today=date(2026, 10, 25))
    assert baselines.rate("weber", "calls_out", SUNDAY, 2) == pytest.approx(2 / 3600)
    start, end = at(BER, "2026-10-25T00:00"), at(BER, "2026-10-25T04:00")
    assert (end.astimezone(UTC) - start.astimezone(UTC)).total_seconds() == 5 * 3600
    assert expected(baselines, "weber", start, end) == pytest.approx(4.0)


def test_working_window_start_steps_over_lunch() -> None:
    def start(end: str, minutes: int, not_before: str = "2026-11-30T00:00") -> datetime:
        return working_window_start(
            CALENDAR, "ivanova", "msk", MSK, at(MSK, end), minutes, at(MSK, not_before)
        )

    # Two working hours before 14:30: 14:00-14:30, lunch skipped, then 11:30-13:00.
    assert start("2026-11-30T14:30", 120) == at(MSK, "2026-11-30T11:30")
    # Exactly the half hour after lunch: the latest such start is 14:00, not 13:00.
    assert start("2026-11-30T14:30", 30) == at(MSK, "2026-11-30T14:00")
    # Less working time than asked for since not_before: not_before itself.
    assert start("2026-11-30T14:30", 120, "2026-11-30T12:00") == at(MSK, "2026-11-30T12:00")
    # Monday morning reaches back to Friday afternoon.
    friday = "2026-11-27T00:00"
    assert start("2026-11-30T09:30", 60, friday) == at(MSK, "2026-11-27T17:30")


def test_local_today_follows_each_managers_zone() -> None:
    now = datetime(2026, 11, 29, 22, 30, tzinfo=UTC)  # 01:30 on Monday in Moscow
    today = local_today(DIRECTORY, now)
    assert today["ivanova"] == date(2026, 11, 30)
    assert today["mueller"] == date(2026, 11, 29)


def test_managers_without_history_or_today_get_no_baseline() -> None:
    baselines = build_baselines(FOUR_MONDAYS, CALENDAR, DIRECTORY, {"ivanova": TODAY})
    assert baselines.rate("ivanova", "calls_out", MONDAY, 10) == pytest.approx(9 / 3600)
    assert baselines.periods("sidorova", MONDAY, 10) == 0
    assert baselines.rate("sidorova", "calls_out", MONDAY, 10) is None


def test_naive_times_are_refused() -> None:
    baselines = build(*FOUR_MONDAYS)
    with pytest.raises(ValueError, match="time zone"):
        expected(baselines, "ivanova", datetime(2026, 11, 30, 10), datetime(2026, 11, 30, 11))


def test_calendar_working_intervals_sum_to_the_days_working_time() -> None:
    cal: Calendar = CALENDAR
    day_start, day_end = at(MSK, "2026-11-30T00:00"), at(MSK, "2026-12-01T00:00")
    intervals = cal.working_intervals("ivanova", "msk", MSK, date(2026, 11, 30))
    assert [(s.astimezone(MSK).hour, e.astimezone(MSK).hour) for s, e in intervals] == [
        (9, 13),
        (14, 18),
    ]
    total = sum((e - s for s, e in intervals), start=day_end - day_end)
    assert total == cal.working_time("ivanova", "msk", MSK, day_start, day_end)
    assert cal.working_intervals("sidorova", "msk", MSK, date(2026, 11, 16)) == []


def _every_working_hour(manager: str, calls: Callable[[int], int]) -> list[HourRow]:
    """Rows for each working hour (09-13, 14-18) of the four working weeks from 2 November,
    ``calls(week)`` outgoing calls in each hour of week 0 to 3."""
    rows = []
    for offset in range(26):
        day = date(2026, 11, 2) + timedelta(days=offset)
        if day.weekday() < 5:
            for hour in (9, 10, 11, 12, 14, 15, 16, 17):
                rows.append(row(manager, day.isoformat(), hour, calls_out=calls(offset // 7)))
    return rows


def test_dispersion_is_one_for_steady_hours_and_measured_for_bursty_weeks() -> None:
    # Ivanova makes 5 calls in every working hour: no spread at all, so Poisson (1) at least.
    # Novikova makes 10 an hour in weeks 0 and 2 and none in weeks 1 and 3. Each of the 40
    # weekday-and-hour slots has 4 periods with mean 5, each 5 away from it: Σ (k - μ)² =
    # 160 × 25 = 4000 over Σ μ = 800 events, times n / (n - p) = 160 / 120 for the 40 slots
    # fitted: φ = 5 × 4/3 = 6.67.
    baselines = build(
        *_every_working_hour("ivanova", lambda week: 5),
        *_every_working_hour("novikova", lambda week: 10 if week % 2 == 0 else 0),
    )
    assert baselines.dispersion("ivanova", "calls_out") == 1.0
    assert baselines.dispersion("novikova", "calls_out") == pytest.approx(20 / 3)
    # A manager without history of their own is held to be as bursty as the middle of those
    # with it (of two, the higher: fewer false alarms); a metric nobody has is Poisson.
    assert baselines.dispersion("sidorova", "calls_out") == pytest.approx(20 / 3)
    assert baselines.dispersion("ivanova", "chats") == 1.0


def test_too_few_events_say_nothing_about_a_managers_dispersion() -> None:
    # Ivanova's 20 calls in four weeks (under 30) cannot tell her spread: she is held to be
    # as bursty as Novikova, the one manager measured.
    baselines = build(
        row("ivanova", "2026-11-02", 10, calls_out=20),
        *_every_working_hour("novikova", lambda week: 10 if week % 2 == 0 else 0),
    )
    assert baselines.dispersion("ivanova", "calls_out") == pytest.approx(20 / 3)
