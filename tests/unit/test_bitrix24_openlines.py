"""Bitrix24 Open Lines sessions: golden samples (tests/samples/bitrix24/openlines), rules."""

from __future__ import annotations

from typing import Any

import pytest

from processors.parsers.bitrix24_openlines import Bitrix24OpenLinesParser, channel_of
from salespulse.models import ActivityEvent, Actor, SourceFamily, derive_event_id
from tests.unit.parsing_helpers import (
    SAMPLES_DIR,
    changed,
    compact,
    json_sample,
    record_error,
    source_of,
)

SOURCE = source_of(Bitrix24OpenLinesParser, 0, 3)
PARSER = Bitrix24OpenLinesParser()
SAMPLE_NAMES = sorted(p.name for p in (SAMPLES_DIR / "bitrix24" / "openlines").glob("*.json"))
SAMPLE_NAMES.remove("expected.json")
EXPECTED: dict[str, list[dict[str, Any]]] = json_sample("bitrix24/openlines/expected.json")
SERVED: dict[str, Any] = json_sample("bitrix24/openlines/served_whatsapp.json")


def summary(event: ActivityEvent) -> dict[str, Any]:
    assert event.source == SOURCE
    return event.model_dump(mode="json", exclude_none=True, exclude={"source"})


def parse(fields: dict[str, Any]) -> list[ActivityEvent]:
    return PARSER.parse(compact(fields), SOURCE)


def served(**changes: Any) -> dict[str, Any]:
    """The WhatsApp sample with fields replaced; ``...`` removes one."""
    return changed(SERVED, **changes)


def reason(fields: dict[str, Any] | bytes) -> str:
    raw = fields if isinstance(fields, bytes) else compact(fields)
    return record_error(PARSER.parse, raw, SOURCE).reason


def test_every_sample_has_a_golden_answer() -> None:
    assert sorted(EXPECTED) == SAMPLE_NAMES


@pytest.mark.parametrize("name", SAMPLE_NAMES)
def test_golden_samples(name: str) -> None:
    events = parse(json_sample(f"bitrix24/openlines/{name}"))
    assert [summary(event) for event in events] == EXPECTED[name]


def test_served_session_in_detail() -> None:
    # 10:02:11+03:00 opened, first operator message 10:03:05 (54 s), closed 10:19:40.
    [event] = parse(SERVED)
    assert event.event_id == derive_event_id("bitrix24-openlines-session", "5521")
    assert event.action == "served"
    assert event.actor == Actor(SourceFamily.CRM, "1101")
    assert event.first_response_seconds == 54
    assert event.occurred_at.isoformat() == "2026-11-26T07:02:11+00:00"
    assert event.ended_at is not None
    assert event.ended_at.isoformat() == "2026-11-26T07:19:40+00:00"
    assert (event.channel, event.counterpart, event.external_ref) == (
        "whatsapp",
        "887",
        "chat:4410",
    )


def test_camel_case_keys_give_the_same_event() -> None:
    camel = {
        "id": 5521,
        "configId": 3,
        "source": "whatsappbyedna",
        "operatorId": 1101,
        "userId": 887,
        "chatId": 4410,
        "dateCreate": "2026-11-26T10:02:11+03:00",
        "dateClose": "2026-11-26T10:19:40+03:00",
        "dateFirstAnswer": "2026-11-26T10:03:05+03:00",
        "status": 60,
        "closed": True,
        "messageCount": 14,
        "queueTransfers": 0,
    }
    assert parse(camel) == parse(SERVED)


def test_redelivery_has_the_same_event_id() -> None:
    [first] = parse(SERVED)
    [again] = PARSER.parse(compact(served(MESSAGE_COUNT="15", VOTE="1")), SOURCE._replace(offset=9))
    assert first.event_id == again.event_id


@pytest.mark.parametrize(
    ("closed", "status", "events"),
    [
        ("Y", "50", 1),  # the CLOSED flag alone means closed
        (..., "60", 1),
        (..., "75", 1),  # closed silently
        ("N", "60", 1),  # STATUS 60 or above means closed whatever the flag says
        ("N", "50", 0),  # waiting for the client's vote: not over yet
        ("N", "40", 0),
        (..., "0", 0),
        ("Y", ..., 1),
        ("Y", "65", 0),  # spam
        ("Y", "69", 0),  # duplicate of another session
    ],
)
def test_closed_flag_and_status(closed: object, status: object, events: int) -> None:
    assert len(parse(served(CLOSED=closed, STATUS=status))) == events


def test_unanswered_closed_session_is_missed() -> None:
    for empty in ("", None, ...):
        [event] = parse(served(DATE_FIRST_ANSWER=empty))
        assert event.action == "missed"
        assert event.first_response_seconds is None


def test_taking_the_dialog_is_not_answering_it() -> None:
    # DATE_OPERATOR_ANSWER is when the operator took the dialog; only a message counts.
    fields = served(DATE_FIRST_ANSWER="", DATE_OPERATOR_ANSWER="2026-11-26T10:02:58+03:00")
    assert parse(fields)[0].action == "missed"


def test_open_session_without_close_date_is_skipped() -> None:
    assert parse(served(CLOSED="N", STATUS="20", DATE_CLOSE="")) == []


def test_no_operator_is_kept_as_crm_user_zero() -> None:
    [event] = parse(served(OPERATOR_ID="0", DATE_FIRST_ANSWER=""))
    assert event.actor == Actor(SourceFamily.CRM, "0")
    assert event.action == "missed"


def test_no_chat_or_client_ids() -> None:
    [event] = parse(served(CHAT_ID="0", USER_ID=...))
    assert event.external_ref is None
    assert event.counterpart is None


@pytest.mark.parametrize(
    ("connector", "channel"),
    [
        ("whatsappbyedna", "whatsapp"),
        ("whatsappbytwilio", "whatsapp"),
        ("telegrambot", "telegram"),
        ("livechat", "webchat"),
        ("vkgroup", "vk"),
        ("vkgrouporder", "vk"),
        ("facebook", "facebook"),
        ("facebookcomments", "facebook"),
        ("fbinstagramdirect", "instagram"),
        ("avito", "avito"),
        ("viber", "viber"),
        ("network", "bitrix24_network"),
        ("Olx", "olx"),
        ("botframework.skype", "botframework.skype"),
    ],
)
def test_channels(connector: str, channel: str) -> None:
    assert channel_of(connector) == channel
    assert parse(served(SOURCE=connector))[0].channel == channel


def test_split_json_lines() -> None:
    one, two = compact(SERVED), compact(served(ID="5522"))
    assert PARSER.split(one + b"\r\n\n" + two + b"\n") == [one, two]


# --- dead letters ---------------------------------------------------------------------------


@pytest.mark.parametrize("field", ["DATE_CREATE", "DATE_CLOSE", "DATE_FIRST_ANSWER"])
def test_naive_or_garbage_times_are_bad_time(field: str) -> None:
    assert reason(served(**{field: "2026-11-26T10:02:11"})) == "bad_time"
    assert reason(served(**{field: "26.11.2026 10:02"})) == "bad_time"


def test_closed_session_without_close_date_is_invalid() -> None:
    assert reason(served(DATE_CLOSE="")) == "invalid"


def test_first_answer_before_creation_is_invalid() -> None:
    assert reason(served(DATE_FIRST_ANSWER="2026-11-26T10:02:10+03:00")) == "invalid"


def test_closed_before_creation_is_invalid() -> None:
    assert reason(served(DATE_CLOSE="2026-11-26T10:02:10+03:00")) == "invalid"


def test_neither_closed_nor_status_is_invalid() -> None:
    assert reason(served(CLOSED=..., STATUS=...)) == "invalid"


@pytest.mark.parametrize(
    "changes",
    [
        {"ID": ...},
        {"ID": ""},
        {"ID": "s-5521"},
        {"ID": -1},
        {"ID": True},
        {"OPERATOR_ID": ...},
        {"OPERATOR_ID": [1101]},
        {"SOURCE": ...},
        {"SOURCE": ""},
        {"SOURCE": "   "},
        {"SOURCE": "x" * 65},
        {"DATE_CREATE": ...},
        {"DATE_CREATE": 1764140531},
        {"STATUS": "sixty"},
        {"STATUS": 60.5},
        {"CLOSED": "yes"},
        {"MESSAGE_COUNT": -1},
        {"TRANSFER_COUNT": "many"},
    ],
)
def test_schema_violations_are_invalid(changes: dict[str, Any]) -> None:
    assert reason(served(**changes)) == "invalid"


def test_structure_errors() -> None:
    raw = compact(SERVED)
    assert reason(raw[:-1]) == "malformed"
    assert reason(b"[" + raw + b"]") == "malformed"
    assert reason(raw.replace(b"whatsappbyedna", "Иван".encode("cp1251"))) == ("decode_error")
    too_large = record_error(Bitrix24OpenLinesParser(max_record_bytes=256).parse, raw, SOURCE)
    assert too_large.reason == "too_large"


def test_details_do_not_echo_phone_numbers() -> None:
    error = record_error(PARSER.parse, compact(served(DATE_CREATE="+7 916 123-45-67")), SOURCE)
    assert error.reason == "bad_time"
    assert "916" not in error.detail


# --- sessions as imopenlines.v2.Session.list returns them ----------------------------------

# The answer the enrichment of ONSESSIONFINISH gets for line 128 (the documented shape; the
# real event is tests/samples/real/bitrix24/onsessionfinish.event.json, session 42).
V2_SESSIONS: list[dict[str, Any]] = json_sample(
    "bitrix24/rest/imopenlines.v2.Session.list/128.json"
)["result"]["sessions"]


def test_sessions_as_the_v2_list_returns_them() -> None:
    session_42, spam_41, unanswered_40 = (parse(session) for session in V2_SESSIONS)
    # 42: status "closed", operatorId 1101, opened 14:21:07+03:00, first answer 14:21:50 (43 s),
    # closed 14:33:49; livechat is the web chat; client 1984 in chat 10585.
    assert [summary(event) for event in session_42] == [
        {
            "event_id": derive_event_id("bitrix24-openlines-session", "42"),
            "kind": "chat_session",
            "action": "served",
            "occurred_at": "2024-05-02T11:21:07Z",
            "ended_at": "2024-05-02T11:33:49Z",
            "actor": ["crm", "1101"],
            "first_response_seconds": 43,
            "channel": "webchat",
            "counterpart": "1984",
            "external_ref": "chat:10585",
        }
    ]
    # 41: status "spam": not a conversation.
    assert spam_41 == []
    # 40: closed by timeout, operatorId null (no operator ever took it), no first answer: a
    # missed chat of nobody, kept as (crm, "0") like OPERATOR_ID 0.
    assert [summary(event) for event in unanswered_40] == [
        {
            "event_id": derive_event_id("bitrix24-openlines-session", "40"),
            "kind": "chat_session",
            "action": "missed",
            "occurred_at": "2024-05-02T10:40:00Z",
            "ended_at": "2024-05-02T10:58:01Z",
            "actor": ["crm", "0"],
            "channel": "webchat",
            "counterpart": "1969",
            "external_ref": "chat:10560",
        }
    ]


@pytest.mark.parametrize(
    ("status", "events"),
    [("closed", 1), ("spam", 0), ("new", 0), ("answered", 0), ("paused", 0)],
)
def test_v2_status_names(status: str, events: int) -> None:
    assert len(parse(changed(V2_SESSIONS[0], status=status))) == events


def test_unknown_v2_status_name_is_invalid() -> None:
    assert reason(changed(V2_SESSIONS[0], status="archived")) == "invalid"
