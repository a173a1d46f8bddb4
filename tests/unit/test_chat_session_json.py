"""Golden tests for chat-session JSON records, with the expected events worked out by hand."""

from __future__ import annotations

from typing import Any

import pytest

from processors.parsers import ChatSessionJsonParser
from salespulse.models import ActivityEvent, ActivityKind, Actor, SourceFamily, derive_event_id
from tests.unit.parsing_helpers import changed_record, record_error, source_of, utc

SOURCE = source_of(ChatSessionJsonParser, 1, 7)

# From docs/formats.md: a WhatsApp session answered after 54 s and closed 17.5 min later.
SERVED = (
    b'{"session_id":"wa-5521","operator_id":"op-101","channel":"whatsapp",'
    b'"started_at":"2026-11-26T10:02:11+03:00","first_response_at":"2026-11-26T10:03:05+03:00",'
    b'"closed_at":"2026-11-26T10:19:40+03:00","status":"closed","client_id":"c-88","messages":14}'
)


def record(**changes: Any) -> bytes:
    """The example with some fields replaced; a value of ``...`` removes the field."""
    return changed_record(SERVED, **changes)


def parse(raw: bytes) -> ActivityEvent:
    [event] = ChatSessionJsonParser().parse(raw, SOURCE)
    return event


def reason(raw: bytes) -> str:
    return record_error(ChatSessionJsonParser().parse, raw, SOURCE).reason


def test_class_attributes() -> None:
    assert ChatSessionJsonParser.format_name == "chat-session-json"
    assert ChatSessionJsonParser.family is SourceFamily.CHAT


def test_served_session() -> None:
    assert parse(SERVED) == ActivityEvent(
        event_id=derive_event_id("chat-session-json", "wa-5521"),
        kind=ActivityKind.CHAT_SESSION,
        action="served",
        occurred_at=utc("2026-11-26 07:02:11"),
        ended_at=utc("2026-11-26 07:19:40"),
        actor=Actor(SourceFamily.CHAT, "op-101"),
        source=SOURCE,
        first_response_seconds=54,
        channel="whatsapp",
        counterpart="c-88",
    )


def test_missed_session() -> None:
    event = parse(record(status="missed", first_response_at=...))
    assert event.action == "missed"
    assert event.first_response_seconds is None


def test_closed_without_a_response_is_missed() -> None:
    event = parse(record(first_response_at=None))
    assert event.action == "missed"


def test_missed_status_wins_over_a_response() -> None:
    event = parse(record(status="missed"))
    assert event.action == "missed"
    assert event.first_response_seconds == 54


def test_first_response_seconds_round_down() -> None:
    # 10:00:00.900 to 10:00:02.100 is 1.2 s: reported as 1.
    event = parse(
        record(
            started_at="2026-11-26T10:00:00.900+03:00",
            first_response_at="2026-11-26T07:00:02.100Z",
        )
    )
    assert event.first_response_seconds == 1


def test_offsets_and_z_mean_the_same_instant() -> None:
    event = parse(record(started_at="2026-11-26T07:02:11Z", closed_at="2026-11-26t07:19:40z"))
    assert event.occurred_at == utc("2026-11-26 07:02:11")
    assert event.ended_at == utc("2026-11-26 07:19:40")
    assert event.first_response_seconds == 54


def test_channel_is_lowercased() -> None:
    assert parse(record(channel="Telegram")).channel == "telegram"


def test_optional_fields_may_be_absent() -> None:
    event = parse(record(client_id=..., messages=..., first_response_at=...))
    assert event.counterpart is None
    assert event.action == "missed"


def test_unknown_fields_are_ignored() -> None:
    assert parse(record(rating=5, tags=["vip"])).event_id == parse(SERVED).event_id


def test_same_session_twice_has_the_same_event_id() -> None:
    parser = ChatSessionJsonParser()
    [first] = parser.parse(SERVED, SOURCE)
    [again] = parser.parse(record(messages=15), SOURCE._replace(offset=99))
    assert first.event_id == again.event_id


def test_split_json_lines() -> None:
    payload = SERVED + b"\n\n" + record(session_id="tg-1") + b"\n"
    assert ChatSessionJsonParser().split(payload) == [SERVED, record(session_id="tg-1")]


# --- dead letters ---------------------------------------------------------------------------


def test_naive_time_is_bad_time() -> None:
    assert reason(record(started_at="2026-11-26T10:02:11")) == "bad_time"


@pytest.mark.parametrize(
    "value",
    [
        "yesterday",
        "2026-11-26",
        "2026-11-26T25:00:00+03:00",
        "1764140531",
        "2026-11-26T10:02+03:00",
    ],
)
def test_garbage_time_is_bad_time(value: str) -> None:
    assert reason(record(closed_at=value)) == "bad_time"


def test_naive_first_response_is_bad_time() -> None:
    assert reason(record(first_response_at="2026-11-26T10:03:05")) == "bad_time"


def test_invalid_json_is_malformed() -> None:
    assert reason(SERVED[:-1]) == "malformed"


def test_array_is_malformed() -> None:
    assert reason(b"[" + SERVED + b"]") == "malformed"


def test_two_objects_on_one_line_are_malformed() -> None:
    assert reason(SERVED + b" " + SERVED) == "malformed"


def test_non_utf8_is_decode_error() -> None:
    raw = record(client_id="CLIENT").replace(b"CLIENT", "Иван".encode("cp1251"))
    assert reason(raw) == "decode_error"


@pytest.mark.parametrize(
    "changes",
    [
        {"session_id": ...},
        {"operator_id": ...},
        {"channel": ...},
        {"closed_at": ...},
        {"status": ...},
        {"session_id": ""},
        {"session_id": "s" * 129},
        {"session_id": 5521},
        {"status": "open"},
        {"messages": -1},
        {"messages": "14"},
        {"started_at": 1764140531},
    ],
)
def test_schema_violations_are_invalid(changes: dict[str, Any]) -> None:
    assert reason(record(**changes)) == "invalid"


def test_response_before_start_is_invalid() -> None:
    assert reason(record(first_response_at="2026-11-26T10:02:10+03:00")) == "invalid"


def test_closed_before_start_is_invalid() -> None:
    assert reason(record(closed_at="2026-11-26T10:02:10+03:00")) == "invalid"


def test_too_large() -> None:
    error = record_error(ChatSessionJsonParser(max_record_bytes=64).parse, SERVED, SOURCE)
    assert error.reason == "too_large"


def test_details_do_not_echo_client_numbers() -> None:
    raw = record(client_id="+7 916 123-45-67" * 20)
    error = record_error(ChatSessionJsonParser().parse, raw, SOURCE)
    assert error.reason == "invalid"
    assert "916" not in error.detail
