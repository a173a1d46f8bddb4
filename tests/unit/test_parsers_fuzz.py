"""Whatever bytes arrive, parse() returns events or raises RecordError with a known reason."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from processors.parsers import (
    AsteriskCdrCsvParser,
    ChatSessionJsonParser,
    CrmEventJsonParser,
    Parser,
    RecordError,
)
from salespulse.models import ActivityEvent, SourceRef

REASONS = {"decode_error", "malformed", "invalid", "bad_time", "too_large"}

SAMPLES: dict[str, list[bytes]] = {
    "asterisk-cdr-csv": [
        b'"","79161234567","101","from-trunk","""Client"" <79161234567>","SIP/provider-00000012",'
        b'"SIP/101-00000013","Dial","SIP/101,30","2026-11-26 09:15:02","2026-11-26 09:15:09",'
        b'"2026-11-26 09:17:40",158,151,"ANSWERED","DOCUMENTATION"',
        b'"","101","102","from-internal","""Anna"" <101>","SIP/101-00000050",'
        b'"Local/102@from-internal-00000051;1","Dial","","2026-10-25 02:59:30","",'
        b'"2026-10-25 02:00:30",60,0,"NO ANSWER","DOCUMENTATION"',
    ],
    "chat-session-json": [
        b'{"session_id":"wa-5521","operator_id":"op-101","channel":"whatsapp",'
        b'"started_at":"2026-11-26T10:02:11+03:00","first_response_at":"2026-11-26T10:03:05+03:00",'
        b'"closed_at":"2026-11-26T10:19:40+03:00","status":"closed","client_id":"c-88","messages":14}',
        b'{"session_id":"tg-1","operator_id":"op-7","channel":"Telegram",'
        b'"started_at":"2026-11-26T07:00:00.5Z","closed_at":"2026-11-26T07:10:00Z","status":"missed"}',
    ],
    "crm-event-json": [
        b'{"id":"evt-90817","type":"payment.received","user_id":"1101",'
        b'"occurred_at":"2026-11-26T15:40:00+03:00","entity":"deal:5531","amount":"125000.00",'
        b'"currency":"RUB"}',
        b'{"id":"v-9","type":"visit.visit_start","user_id":"1102","amount":99.5,"currency":"rub",'
        b'"occurred_at":"2026-11-26T11:00:00+03:00","ended_at":"2026-11-26T12:30:00+03:00",'
        b'"due_at":"2026-11-27T18:00:00-05:30","location":"visit","entity":"client:42"}',
    ],
}

PARSERS: dict[str, Parser] = {
    "asterisk-cdr-csv": AsteriskCdrCsvParser(timezone="Europe/Berlin"),
    "chat-session-json": ChatSessionJsonParser(),
    "crm-event-json": CrmEventJsonParser(),
}

SOURCE = SourceRef("fuzz", "salespulse.raw.fuzz", 0, 0)
FUZZ = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

# Bytes that matter to the formats: quotes, separators, digits, braces, and non-UTF-8.
INTERESTING = st.sampled_from(
    [b'"', b",", b"-", b":", b"0", b"9", b"{", b"}", b"[", b"\\", b"\xff", b"\xd0", b"\x00", b" "]
)


def check(parser: Parser, record: bytes) -> None:
    try:
        events = parser.parse(record, SOURCE)
    except RecordError as exc:
        reason = exc.reason
    else:
        assert isinstance(events, list)
        assert all(isinstance(event, ActivityEvent) for event in events)
        return
    assert reason in REASONS
    if reason != "decode_error":
        record.decode("utf-8")  # non-UTF-8 input is always reported as decode_error


@st.composite
def mutated(draw: st.DrawFn, samples: list[bytes]) -> bytes:
    data = bytearray(draw(st.sampled_from(samples)))
    for _ in range(draw(st.integers(1, 6))):
        if not data:
            break
        at = draw(st.integers(0, len(data) - 1))
        choice = draw(st.integers(0, 3))
        if choice == 0:
            data[at] = draw(st.integers(0, 255))
        elif choice == 1:
            del data[at]
        elif choice == 2:
            data[at:at] = draw(INTERESTING)
        else:
            data[at:at] = data[at : at + draw(st.integers(1, 12))]
    return bytes(data)


@st.composite
def truncated(draw: st.DrawFn, samples: list[bytes]) -> bytes:
    sample = draw(st.sampled_from(samples))
    start = draw(st.integers(0, len(sample)))
    end = draw(st.integers(start, len(sample)))
    return sample[start:end]


@pytest.mark.parametrize("format_name", sorted(PARSERS))
def test_samples_parse(format_name: str) -> None:
    for sample in SAMPLES[format_name]:
        assert PARSERS[format_name].parse(sample, SOURCE)


@pytest.mark.parametrize("format_name", sorted(PARSERS))
@FUZZ
@given(record=st.binary(max_size=512))
def test_random_bytes(format_name: str, record: bytes) -> None:
    check(PARSERS[format_name], record)


@pytest.mark.parametrize("format_name", sorted(PARSERS))
@FUZZ
@given(data=st.data())
def test_truncations(format_name: str, data: st.DataObject) -> None:
    check(PARSERS[format_name], data.draw(truncated(SAMPLES[format_name])))


@pytest.mark.parametrize("format_name", sorted(PARSERS))
@FUZZ
@given(data=st.data())
def test_mutations(format_name: str, data: st.DataObject) -> None:
    check(PARSERS[format_name], data.draw(mutated(SAMPLES[format_name])))


@pytest.mark.parametrize("format_name", sorted(PARSERS))
@FUZZ
@given(data=st.data())
def test_split_then_parse(format_name: str, data: st.DataObject) -> None:
    # Framing never raises, and every framed piece obeys the same contract.
    payload = b"\n".join(data.draw(st.lists(mutated(SAMPLES[format_name]), min_size=1, max_size=4)))
    for record in PARSERS[format_name].split(payload):
        check(PARSERS[format_name], record)


# Values of every JSON shape, with a bias towards near-valid times and amounts.
JSON_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.text(max_size=20),
    st.sampled_from(
        [
            "2026-11-26T10:02:11+03:00",
            "2026-11-26T10:02:11",
            "0001-01-01T00:00:00+01:00",
            "9999-12-31T23:59:59-01:00",
            "2026-02-29T10:00:00Z",
            "closed",
            "missed",
            "payment.received",
            "deal.won",
            "RUB",
            "12.345",
            "-0",
            "1e400",
        ]
    ),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)
JSON_FIELDS = {
    "chat-session-json": [
        "session_id",
        "operator_id",
        "channel",
        "started_at",
        "first_response_at",
        "closed_at",
        "status",
        "client_id",
        "messages",
    ],
    "crm-event-json": [
        "id",
        "type",
        "user_id",
        "occurred_at",
        "entity",
        "amount",
        "currency",
        "location",
        "due_at",
        "ended_at",
    ],
}


@pytest.mark.parametrize("format_name", sorted(JSON_FIELDS))
@FUZZ
@given(data=st.data())
def test_json_fields_of_any_shape(format_name: str, data: st.DataObject) -> None:
    base = json.loads(data.draw(st.sampled_from(SAMPLES[format_name])))
    for name in data.draw(st.lists(st.sampled_from(JSON_FIELDS[format_name]), max_size=4)):
        if data.draw(st.booleans()):
            base[name] = data.draw(JSON_VALUES)
        else:
            base.pop(name, None)
    check(PARSERS[format_name], json.dumps(base).encode())
