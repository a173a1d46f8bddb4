"""Whatever bytes arrive, the telephony parsers return events or raise RecordError with a known
reason: random bytes, truncations and mutations of realistic records, and fields of any JSON
shape."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from processors.parsers.base import Parser, RecordError
from processors.parsers.bitrix24_telephony import (
    Bitrix24CallEndEventParser,
    Bitrix24VoximplantStatisticParser,
)
from processors.parsers.freeswitch_cdr_csv import FreeswitchCdrCsvParser
from processors.parsers.freeswitch_json_cdr import FreeswitchJsonCdrParser
from salespulse.models import ActivityEvent, SourceRef

REASONS = {"decode_error", "malformed", "invalid", "bad_time", "too_large"}
SAMPLES = Path(__file__).resolve().parent.parent / "samples"

# A small mod_json_cdr document: mutations of it land on the fields that matter.
SMALL_CDR = {
    "core-uuid": "0f1e2d3c-4b5a-4968-8776-655443322110",
    "channel_data": {"direction": "outbound"},
    "variables": {
        "direction": "outbound",
        "uuid": "c7d8e9f0-1a2b-4c3d-8e4f-5a6b7c8d9e0f",
        "originating_leg_uuid": "5b1e2f3a-8c4d-4e6f-9a0b-1c2d3e4f5a6b",
        "caller_id_number": "%2B79161234567",
        "destination_number": "1001",
        "dialed_user": "1001",
        "start_epoch": "1795673703",
        "answer_epoch": "1795673709",
        "end_epoch": "1795673860",
        "duration": "157",
        "billsec": "151",
        "hangup_cause": "NORMAL_CLEARING",
    },
}
SMALL_JSON = json.dumps(SMALL_CDR, separators=(",", ":"))


def _compact(path: Path) -> bytes:
    return json.dumps(json.loads(path.read_text()), separators=(",", ":")).encode()


SAMPLES_BY_FORMAT: dict[str, list[bytes]] = {
    "freeswitch-json-cdr": [
        SMALL_JSON.encode(),
        b"cdr=" + quote_plus(SMALL_JSON).encode(),
        b"cdr=" + base64.b64encode(SMALL_JSON.encode()),
        _compact(SAMPLES / "freeswitch" / "internal-a-leg.cdr.json"),
    ],
    "freeswitch-cdr-csv": (SAMPLES / "freeswitch" / "Master.csv").read_bytes().splitlines(),
    "bitrix24-voximplant-statistic": (
        (SAMPLES / "bitrix24" / "voximplant-statistic.jsonl").read_bytes().splitlines()[:3]
    ),
    "bitrix24-call-end-event": [
        (SAMPLES / "bitrix24" / "onvoximplantcallend.form").read_bytes(),
        (SAMPLES / "bitrix24" / "externalcall-finish.json").read_bytes().strip(),
    ],
}

PARSERS: dict[str, Parser] = {
    "freeswitch-json-cdr": FreeswitchJsonCdrParser(),
    "freeswitch-cdr-csv": FreeswitchCdrCsvParser(timezone="Europe/Berlin"),
    "bitrix24-voximplant-statistic": Bitrix24VoximplantStatisticParser(
        portal_timezone="Europe/Moscow"
    ),
    "bitrix24-call-end-event": Bitrix24CallEndEventParser(portal_timezone="Europe/Moscow"),
}

SOURCE = SourceRef("fuzz", "salespulse.raw.fuzz", 0, 0)
FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Bytes that matter to the formats: quotes, separators, percent escapes, digits, braces, and
# non-UTF-8.
INTERESTING = st.sampled_from(
    [b'"', b",", b'","', b"%", b"%2B", b"%FF", b"&", b"=", b"+", b"[", b"]", b"{", b"}",
     b"0", b"9", b".", b":", b"-", b"\\", b"\xff", b"\xd0", b"\x00", b" "]
)  # fmt: skip


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
            del data[at : at + draw(st.integers(1, 8))]
        elif choice == 2:
            data[at:at] = draw(INTERESTING)
        else:
            data[at:at] = data[at : at + draw(st.integers(1, 12))]
    return bytes(data)


@st.composite
def truncated(draw: st.DrawFn, samples: list[bytes]) -> bytes:
    sample = draw(st.sampled_from(samples))
    start = draw(st.integers(0, len(sample)))
    return sample[start : draw(st.integers(start, len(sample)))]


@pytest.mark.parametrize("format_name", sorted(PARSERS))
def test_samples_parse(format_name: str) -> None:
    for sample in SAMPLES_BY_FORMAT[format_name]:
        check(PARSERS[format_name], sample)


@pytest.mark.parametrize("format_name", sorted(PARSERS))
@FUZZ
@given(record=st.binary(max_size=512))
def test_random_bytes(format_name: str, record: bytes) -> None:
    check(PARSERS[format_name], record)


@pytest.mark.parametrize("format_name", sorted(PARSERS))
@FUZZ
@given(data=st.data())
def test_truncations(format_name: str, data: st.DataObject) -> None:
    check(PARSERS[format_name], data.draw(truncated(SAMPLES_BY_FORMAT[format_name])))


@pytest.mark.parametrize("format_name", sorted(PARSERS))
@FUZZ
@given(data=st.data())
def test_mutations(format_name: str, data: st.DataObject) -> None:
    check(PARSERS[format_name], data.draw(mutated(SAMPLES_BY_FORMAT[format_name])))


@pytest.mark.parametrize("format_name", sorted(PARSERS))
@FUZZ
@given(data=st.data())
def test_split_then_parse(format_name: str, data: st.DataObject) -> None:
    # Framing never raises, and every framed piece obeys the same contract.
    pieces = data.draw(st.lists(mutated(SAMPLES_BY_FORMAT[format_name]), min_size=1, max_size=4))
    for record in PARSERS[format_name].split(b"\n".join(pieces)):
        check(PARSERS[format_name], record)


# Values of every JSON shape, with a bias towards near-valid epochs, codes and dates.
JSON_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.text(max_size=20),
    st.sampled_from(
        ["0", "1795673703", "99999999999", "-1", "%2B7916", "%FF", "%", "inbound", "outbound",
         "200", "304", "603-S", "2", "5", "6", "26.11.2026 09:15:02", "31.02.2026 09:15:02",
         "2026-11-26T09:15:02+03:00", "2026-11-26T09:15:02", "0001-01-01T00:00:00+01:00",
         "1001", "NORMAL_CLEARING"]
    ),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)  # fmt: skip

FS_VARIABLES = [*SMALL_CDR["variables"], "call_uuid", "user_name", "sip_from_user"]
BITRIX_FIELDS = [
    "CALL_ID", "PORTAL_USER_ID", "PHONE_NUMBER", "CALL_TYPE", "CALL_DURATION",
    "CALL_START_DATE", "CALL_FAILED_CODE", "CRM_ENTITY_TYPE", "CRM_ENTITY_ID",
    "USER_ID", "DURATION", "STATUS_CODE", "TYPE",
]  # fmt: skip


def _reshape(data: st.DataObject, fields: dict[str, Any], names: list[str]) -> None:
    for name in data.draw(st.lists(st.sampled_from(names), max_size=4)):
        if data.draw(st.booleans()):
            fields[name] = data.draw(JSON_VALUES)
        else:
            fields.pop(name, None)


@FUZZ
@given(data=st.data())
def test_freeswitch_variables_of_any_shape(data: st.DataObject) -> None:
    document = json.loads(SMALL_JSON)
    _reshape(data, document["variables"], FS_VARIABLES)
    if data.draw(st.booleans()):
        document["channel_data"] = data.draw(JSON_VALUES)
    parser = FreeswitchJsonCdrParser(log_b_leg=data.draw(st.booleans()))
    check(parser, json.dumps(document).encode())


@pytest.mark.parametrize(
    "format_name", ["bitrix24-voximplant-statistic", "bitrix24-call-end-event"]
)
@FUZZ
@given(data=st.data())
def test_bitrix24_fields_of_any_shape(format_name: str, data: st.DataObject) -> None:
    fields = json.loads(SAMPLES_BY_FORMAT["bitrix24-voximplant-statistic"][1])
    _reshape(data, fields, BITRIX_FIELDS)
    check(PARSERS[format_name], json.dumps(fields).encode())
