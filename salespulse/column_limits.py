"""What a ClickHouse column can hold, derived from its type: the one place the limits live.

A value beyond them is refused by the client (``argument out of range``) or the server, and the
whole insert fails with it: one record with a date in 1900 or 2200 would stop every batch after
it. The pipeline checks event times against these limits before a row is built, and the tests
prove each limit on both engines by inserting the last value that fits and the first that does
not.

``DateTime`` is seconds since the Unix epoch in a UInt32; ``Date`` is days since the epoch in a
UInt16 (ClickHouse's documented ranges: 1970-01-01 00:00:00 to 2106-02-07 06:28:15, and
1970-01-01 to 2149-06-06).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

_UINT32_MAX = (1 << 32) - 1
_UINT16_MAX = (1 << 16) - 1
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

DATETIME_MIN = EPOCH
DATETIME_MAX = EPOCH + timedelta(seconds=_UINT32_MAX)
DATE_MIN = EPOCH.date()
DATE_MAX = DATE_MIN + timedelta(days=_UINT16_MAX)

# A manager's local wall-clock time is stored in a DateTime too, up to 14 hours west or east of
# UTC (Pacific/Kiritimati is UTC+14, Etc/GMT+12 is UTC-12): an event this close to either end
# could not have its local time stored in every zone.
LOCAL_TIME_MARGIN = timedelta(hours=14)
EARLIEST_EVENT = DATETIME_MIN + LOCAL_TIME_MARGIN
LATEST_EVENT = DATETIME_MAX - LOCAL_TIME_MARGIN


def fits_datetime(value: datetime) -> bool:
    """Whether a time-zone-aware ``value`` fits a ``DateTime`` column."""
    return DATETIME_MIN <= value <= DATETIME_MAX


def fits_date(value: date) -> bool:
    """Whether ``value`` fits a ``Date`` column."""
    return DATE_MIN <= value <= DATE_MAX


def is_no_deadline(due_at: datetime) -> bool:
    """Whether a deadline is a sentinel for "no deadline", not a moment.

    CRMs write "none" as a date at one end of their own range: ``0001-01-01``, ``1900-01-01``,
    the Unix epoch itself (a zero timestamp), ``9999-12-31``, ``2200-01-01``. None of these is a
    deadline anyone works to, and a task due in 1900 would otherwise be "overdue" for ever.
    Everything at or before the epoch or beyond what a ``DateTime`` holds means no deadline;
    any moment in between is a real deadline, however far away.
    """
    return not DATETIME_MIN < due_at <= DATETIME_MAX
