"""DateTime values travel to the native client as Unix seconds, exactly as the driver would
have converted them."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

from sinks.clickhouse.client import epoch_seconds


def test_aware_datetimes_become_unix_seconds_whatever_their_zone() -> None:
    moscow = timezone(timedelta(hours=3))
    column = [
        datetime(1970, 1, 1, 0, 1, 40, tzinfo=UTC),
        datetime(2026, 11, 27, 12, 0, 0, 900000, tzinfo=moscow),  # 09:00:00.9 UTC
        None,
    ]
    assert epoch_seconds(column) == [100, 1_795_770_000, None]


def test_naive_datetimes_are_left_to_the_driver() -> None:
    # The driver reads a naive datetime in the server's zone; guessing here could shift it.
    column = [datetime(2026, 11, 27, 12, 0, tzinfo=UTC), datetime(2026, 11, 27, 12, 0)]
    assert epoch_seconds(column) is column


def test_other_columns_are_untouched() -> None:
    dates = [date(2026, 11, 27)]
    assert epoch_seconds(dates) is dates
    assert epoch_seconds(["a", "b"]) == ["a", "b"]
