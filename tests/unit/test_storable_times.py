"""Times no ClickHouse column can hold never reach an insert (issue 21, finding 1).

A task due "1900-01-01" or a chat closed in 2200 was accepted, and the worker then died on
``Column due_at: argument out of range`` — on every restart, on the same message. Deadlines
that are sentinels for "no deadline" are stored as no deadline; start and end times outside
what can be stored are dead letters with a reason; everything else is untouched.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from processors.parsers import build_parsers
from processors.pipeline import EVENT_COLUMNS, BatchProcessor, RawMessage
from processors.privacy import PhoneProtector
from salespulse.column_limits import (
    DATE_MAX,
    DATETIME_MAX,
    DATETIME_MIN,
    EARLIEST_EVENT,
    fits_date,
    fits_datetime,
    is_no_deadline,
)
from salespulse.directory import parse_directory
from salespulse.sections import LatenessSettings, ParsingSettings

NOW = datetime(2026, 11, 26, 18, 0, tzinfo=UTC)
CRM = [("sp-format", b"crm-event-json")]
CHAT = [("sp-format", b"chat-session-json")]
BACKFILL = [("sp-backfill", b"1")]
DIRECTORY = parse_directory(
    "departments: [{id: la, timezone: America/Los_Angeles}]\n"
    "managers: [{id: ivanova, department: la, identities: "
    "[{family: crm, id: '1101'}, {family: chat, id: op-7}]}]\n",
    suffix=".yaml",
)


def processor() -> BatchProcessor:
    return BatchProcessor(
        build_parsers(ParsingSettings()),
        lambda: DIRECTORY,
        PhoneProtector(None),
        max_message_bytes=65_536,
        grace=LatenessSettings().by_family(),
        clock=lambda: NOW,
    )


def task(due_at: str, occurred_at: str = "2026-11-26T09:00:00+03:00") -> bytes:
    return (
        f'{{"id":"t-5","type":"task.created","user_id":"1101",'
        f'"occurred_at":"{occurred_at}","due_at":"{due_at}"}}'
    ).encode()


def chat(closed_at: str) -> bytes:
    return (
        '{"session_id":"s-1","channel":"telegram","operator_id":"op-7",'
        '"started_at":"2026-11-26T10:00:00+03:00","first_response_at":"2026-11-26T10:00:30+03:00",'
        f'"closed_at":"{closed_at}","status":"closed","client_id":"c-88","messages":4}}'
    ).encode()


def stored_due_at(raw: bytes) -> object:
    result = processor().process([RawMessage("crm", 0, 1, CRM, raw)])
    assert result.dead_letters == []
    (row,) = result.rows
    return row[EVENT_COLUMNS.index("due_at")]


@pytest.mark.parametrize(
    "due_at",
    [
        "1900-01-01T00:00:00+00:00",  # the finding's poison pill
        "0001-01-01T00:00:00+00:00",
        "0001-01-01T00:00:00+03:00",  # before year 1 in UTC: off Python's calendar
        "1970-01-01T00:00:00Z",  # a zero timestamp
        "1969-12-31T23:59:59Z",
        "9999-12-31T23:59:59Z",
        "9999-12-31T23:59:59-05:00",  # after year 9999 in UTC
        "2200-01-01T00:00:00+03:00",
        "2106-02-07T06:28:16Z",  # one second past what a DateTime holds
    ],
)
def test_a_no_deadline_sentinel_is_stored_as_no_deadline(due_at: str) -> None:
    assert stored_due_at(task(due_at)) is None


@pytest.mark.parametrize(
    ("due_at", "stored"),
    [
        ("2026-11-27T18:00:00+03:00", datetime(2026, 11, 27, 15, 0, tzinfo=UTC)),
        ("1970-01-01T00:00:01Z", datetime(1970, 1, 1, 0, 0, 1, tzinfo=UTC)),
        ("2099-12-31T23:59:59Z", datetime(2099, 12, 31, 23, 59, 59, tzinfo=UTC)),
        ("2106-02-07T06:28:15Z", DATETIME_MAX),
    ],
)
def test_a_real_deadline_is_kept_however_far(due_at: str, stored: datetime) -> None:
    assert stored_due_at(task(due_at)) == stored


def test_a_chat_closed_in_2200_is_a_dead_letter_not_a_crash() -> None:
    raw = chat("2200-01-01T00:00:00+03:00")
    result = processor().process([RawMessage("chat", 0, 1, CHAT, raw)])
    assert result.rows == []
    ((reason, detail, original),) = [(d.reason, d.detail, d.original) for d in result.dead_letters]
    assert (reason, original) == ("future_time", raw)
    assert "2199-12-31T21:00:00+00:00" in detail


@pytest.mark.parametrize(
    "occurred_at",
    ["1900-01-01T00:00:00+00:00", "1970-01-01T00:00:00Z", "1970-01-01T13:59:59Z"],
)
def test_an_activity_before_1970_is_a_dead_letter_even_in_a_backfill(occurred_at: str) -> None:
    """A backfill switches the lateness check off; it cannot switch off what a column holds.
    The manager here is in Los Angeles: 13:59:59 UTC on the first day of 1970 is 1969 there."""
    raw = task("2026-11-27T18:00:00+03:00", occurred_at=occurred_at)
    result = processor().process([RawMessage("crm", 0, 1, CRM + BACKFILL, raw, NOW)])
    assert result.rows == []
    assert [(d.reason, d.original) for d in result.dead_letters] == [("bad_time", raw)]


def test_the_earliest_storable_activity_is_stored_with_its_local_time() -> None:
    raw = task("2026-11-27T18:00:00+03:00", occurred_at="1970-01-01T14:00:00Z")
    (row,) = processor().process([RawMessage("crm", 0, 1, CRM + BACKFILL, raw, NOW)]).rows
    local_time = row[EVENT_COLUMNS.index("local_time")]
    assert local_time == datetime(1970, 1, 1, 6, 0, tzinfo=UTC)  # 06:00 in Los Angeles
    assert fits_datetime(local_time)


def test_the_limits_follow_from_the_column_types() -> None:
    """DateTime: UInt32 seconds since the epoch; Date: UInt16 days since it."""
    assert (DATETIME_MIN.isoformat(), DATETIME_MAX.isoformat()) == (
        "1970-01-01T00:00:00+00:00",
        "2106-02-07T06:28:15+00:00",
    )
    assert DATE_MAX.isoformat() == "2149-06-06"
    assert fits_date(DATE_MAX)
    assert not fits_datetime(datetime(1969, 12, 31, 23, 59, 59, tzinfo=UTC))
    assert datetime(1970, 1, 1, 14, tzinfo=UTC) == EARLIEST_EVENT
    assert is_no_deadline(DATETIME_MIN)
    assert not is_no_deadline(DATETIME_MAX)
