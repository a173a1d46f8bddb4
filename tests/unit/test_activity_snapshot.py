"""The activity snapshot's sums over windows of minutes, and its day totals."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from salespulse.activity import ActivitySnapshot

T0 = datetime(2026, 11, 30, 7, 0, tzinfo=UTC)


def minute(n: int) -> datetime:
    return T0 + timedelta(minutes=n)


SNAPSHOT = ActivitySnapshot(
    taken_at=minute(60),
    minutes={"ivanova": {"calls_out": ((minute(0), 2), (minute(5), 1), (minute(30), 3))}},
    days={"ivanova": {date(2026, 11, 27): {"calls_out": 41}}},
)


def test_count_sums_minutes_from_start_inclusive_to_end_exclusive() -> None:
    assert SNAPSHOT.count("ivanova", "calls_out", minute(0), minute(60)) == 6
    assert SNAPSHOT.count("ivanova", "calls_out", minute(0), minute(5)) == 2
    assert SNAPSHOT.count("ivanova", "calls_out", minute(5), minute(30)) == 1
    assert SNAPSHOT.count("ivanova", "calls_out", minute(1), minute(31)) == 4
    # A window inside a minute that has a count: the minute starts before it, so nothing.
    assert SNAPSHOT.count("ivanova", "calls_out", minute(5) + timedelta(seconds=1), minute(6)) == 0


def test_count_is_zero_for_unknown_managers_metrics_and_empty_windows() -> None:
    assert SNAPSHOT.count("sidorova", "calls_out", minute(0), minute(60)) == 0
    assert SNAPSHOT.count("ivanova", "chats", minute(0), minute(60)) == 0
    assert SNAPSHOT.count("ivanova", "calls_out", minute(60), minute(0)) == 0


def test_count_accepts_any_time_zone() -> None:
    moscow = minute(0).astimezone(ZoneInfo("Europe/Moscow"))
    assert SNAPSHOT.count("ivanova", "calls_out", moscow, moscow + timedelta(hours=1)) == 6


def test_day_totals_and_the_empty_snapshot() -> None:
    assert SNAPSHOT.day_total("ivanova", "calls_out", date(2026, 11, 27)) == 41
    assert SNAPSHOT.day_total("ivanova", "calls_out", date(2026, 11, 26)) == 0
    assert SNAPSHOT.day_total("ivanova", "chats", date(2026, 11, 27)) == 0
    empty = ActivitySnapshot.empty(minute(60))
    assert empty.taken_at == minute(60)
    assert empty.count("ivanova", "calls_out", minute(0), minute(60)) == 0
    assert empty.open_tasks == ()
    assert empty.last_active == {}
