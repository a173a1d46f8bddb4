"""The time limits the pipeline keeps to are what the columns really hold, on both engines.

``salespulse.column_limits`` derives them from the column types; here the last value inside
each limit is stored and read back unchanged, and the first value outside is refused (or, on
an engine that does not refuse it, not stored as given). And every time column of ``events``
has a rule that keeps its values in range, so a column added later cannot slip past.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest

from processors.pipeline import TIME_COLUMNS_KEPT_IN_RANGE
from salespulse.column_limits import DATE_MAX, DATE_MIN, DATETIME_MAX, DATETIME_MIN
from sinks.clickhouse.client import ClickHouse, ClickHouseError, as_date, as_datetime
from sinks.clickhouse.migrations import apply_migrations


def stores_unchanged(clickhouse: ClickHouse, when: datetime, day: date) -> bool:
    """Whether a row with ``when`` and ``day`` is stored and reads back as given."""
    db = clickhouse.database
    clickhouse.execute(f"DROP TABLE IF EXISTS {db}.limits")
    clickhouse.execute(f"CREATE TABLE {db}.limits (at DateTime('UTC'), day Date) ENGINE = Memory")
    try:
        clickhouse.insert_columns("limits", ("at", "day"), [[when], [day]])
    except ClickHouseError:
        return False
    ((at, stored_day),) = clickhouse.execute(f"SELECT at, day FROM {db}.limits")
    return (as_datetime(at).replace(tzinfo=when.tzinfo), as_date(stored_day)) == (when, day)


def test_the_last_values_inside_the_limits_are_stored(clickhouse: ClickHouse) -> None:
    clickhouse.execute(f"CREATE DATABASE IF NOT EXISTS {clickhouse.database}")
    assert stores_unchanged(clickhouse, DATETIME_MAX, DATE_MAX)
    assert stores_unchanged(clickhouse, DATETIME_MIN, DATE_MIN)


@pytest.mark.parametrize(
    ("when", "day"),
    [
        (DATETIME_MAX + timedelta(seconds=1), DATE_MIN),
        (DATETIME_MIN - timedelta(seconds=1), DATE_MIN),
        (DATETIME_MIN, DATE_MAX + timedelta(days=1)),
    ],
    ids=["datetime-after", "datetime-before", "date-after"],
)
def test_the_first_values_outside_are_not_stored_as_given(
    clickhouse: ClickHouse, when: datetime, day: date
) -> None:
    clickhouse.execute(f"CREATE DATABASE IF NOT EXISTS {clickhouse.database}")
    assert not stores_unchanged(clickhouse, when, day)


def test_every_time_column_of_events_is_kept_in_range(clickhouse: ClickHouse) -> None:
    clickhouse.execute(f"CREATE DATABASE IF NOT EXISTS {clickhouse.database}")
    apply_migrations(clickhouse)
    rows = clickhouse.execute(
        "SELECT name, type FROM system.columns WHERE database = %(db)s AND table = 'events'",
        {"db": clickhouse.database},
    )
    time_columns = {str(name) for name, kind in rows if "Date" in str(kind)}
    assert time_columns == set(TIME_COLUMNS_KEPT_IN_RANGE)
