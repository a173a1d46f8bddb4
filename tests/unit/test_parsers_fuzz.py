"""Whatever bytes arrive, parse() returns events or raises RecordError with a known reason: random
bytes, truncations and mutations of realistic records, and fields of any JSON shape."""

from __future__ import annotations

import base64
import json
from typing import Any
from urllib.parse import quote_plus

import pytest
from hypothesis import given
from hypothesis import strategies as st

from processors.parsers import (
    AsteriskAmiCdrParser,
    AsteriskAmiPresenceParser,
    AsteriskCdrCsvParser,
    AsteriskCdrDbParser,
    AsteriskCelCallParser,
    Bitrix24CallEndEventParser,
    Bitrix24CallStartEventParser,
    Bitrix24CrmRestParser,
    Bitrix24OpenLinesParser,
    Bitrix24VoximplantStatisticParser,
    ChatSessionJsonParser,
    CrmEventJsonParser,
    FreeswitchCdrCsvParser,
    FreeswitchJsonCdrParser,
    Parser,
    build_parsers,
)
from salespulse.sections import ParsingSettings
from tests.unit import test_asterisk_ami_cdr, test_asterisk_cdr_db, test_asterisk_cel
from tests.unit.fuzzing import FUZZ, SOURCE, check, json_values, mutated, reshaped, truncated
from tests.unit.parsing_helpers import ASTERISK_INCOMING_CSV, SAMPLES_DIR, compact, json_sample

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

CRM_CASES: list[dict[str, Any]] = json_sample("bitrix24/crm_expected.json")
OPENLINES_SAMPLES = sorted(
    path.name
    for path in (SAMPLES_DIR / "bitrix24" / "openlines").glob("*.json")
    if path.name != "expected.json"
)

# OnVoximplantCallStart as Bitrix24's documentation shows the body.
CALL_START_JSON = {
    "event": "ONVOXIMPLANTCALLSTART",
    "event_handler_id": "1059",
    "data": {
        "CALL_ID": "externalCall.7b0c7de811455ef32b18dc5917e4306a.1773239327",
        "USER_ID": "1269",
    },
    "ts": "1773239326",
}
SAMPLES: dict[str, list[bytes]] = {
    # The AMI formats have fuzz tests of their own (field reshuffles, CEL event orders); here
    # they take the same generic mutations as every other format.
    "asterisk-ami-cdr": test_asterisk_ami_cdr.SAMPLES,
    "asterisk-cel-call": test_asterisk_cel.SAMPLES,
    "asterisk-ami-presence": [
        b'{"event":"Newstate","channel":"PJSIP/101-0000001a","uniqueid":"1795680000.7",'
        b'"linkedid":"1795680000.6","channel_state":6,"at":1795680000.0,"duration":null}',
        b'{"event":"CoreShowChannel","channel":"SIP/102-00000003","uniqueid":"1795680000.9",'
        b'"linkedid":null,"channel_state":6,"at":1795680100.5,"duration":100}',
    ],
    "asterisk-cdr-db": [json.dumps(test_asterisk_cdr_db.ROW).encode()],
    "asterisk-cdr-csv": [
        ASTERISK_INCOMING_CSV,
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
    "freeswitch-json-cdr": [
        SMALL_JSON.encode(),
        b"cdr=" + quote_plus(SMALL_JSON).encode(),
        b"cdr=" + base64.b64encode(SMALL_JSON.encode()),
        compact(json_sample("freeswitch/internal-a-leg.cdr.json")),
    ],
    "freeswitch-cdr-csv": (SAMPLES_DIR / "freeswitch" / "Master.csv").read_bytes().splitlines(),
    "bitrix24-voximplant-statistic": (
        (SAMPLES_DIR / "bitrix24" / "voximplant-statistic.jsonl").read_bytes().splitlines()[:3]
    ),
    "bitrix24-call-end-event": [
        (SAMPLES_DIR / "bitrix24" / "onvoximplantcallend.form").read_bytes(),
        (SAMPLES_DIR / "bitrix24" / "externalcall-finish.json").read_bytes().strip(),
    ],
    "bitrix24-call-start-event": [
        (SAMPLES_DIR / "bitrix24" / "onvoximplantcallstart.form").read_bytes(),
        compact(CALL_START_JSON),
    ],
    "bitrix24-crm-rest": [
        compact(
            {
                **{key: case[key] for key in ("event", "ts", "entity")},
                "result": json_sample(f"bitrix24/rest/{case['rest']}")["result"],
            }
        )
        for case in CRM_CASES
    ],
    "bitrix24-openlines-session": [
        compact(json_sample(f"bitrix24/openlines/{name}")) for name in OPENLINES_SAMPLES
    ],
}
# Formats with samples that are no activity (yet): a planned meeting, an open session, an AMI
# event other than a CDR, a call that only reached the IVR.
NOT_ALL_ACTIVITY = {
    "bitrix24-crm-rest",
    "bitrix24-openlines-session",
    "asterisk-ami-cdr",
    "asterisk-cel-call",
}

PARSERS: dict[str, Parser] = {
    "asterisk-ami-cdr": AsteriskAmiCdrParser(timezone="Europe/Berlin"),
    "asterisk-cel-call": AsteriskCelCallParser(timezone="Europe/Moscow"),
    "asterisk-ami-presence": AsteriskAmiPresenceParser(),
    "asterisk-cdr-csv": AsteriskCdrCsvParser(timezone="Europe/Berlin"),
    "asterisk-cdr-db": AsteriskCdrDbParser(timezone="Europe/Moscow"),
    "chat-session-json": ChatSessionJsonParser(),
    "crm-event-json": CrmEventJsonParser(),
    "freeswitch-json-cdr": FreeswitchJsonCdrParser(),
    "freeswitch-cdr-csv": FreeswitchCdrCsvParser(timezone="Europe/Berlin"),
    "bitrix24-voximplant-statistic": Bitrix24VoximplantStatisticParser(
        portal_timezone="Europe/Moscow"
    ),
    "bitrix24-call-end-event": Bitrix24CallEndEventParser(portal_timezone="Europe/Moscow"),
    "bitrix24-call-start-event": Bitrix24CallStartEventParser(),
    "bitrix24-crm-rest": Bitrix24CrmRestParser(),
    "bitrix24-openlines-session": Bitrix24OpenLinesParser(),
}


def test_every_parser_the_worker_runs_is_fuzzed() -> None:
    # A new format added to build_parsers without samples here fails this first.
    assert set(build_parsers(ParsingSettings())) == set(PARSERS) == set(SAMPLES)


@pytest.mark.parametrize("format_name", sorted(PARSERS))
def test_samples_parse(format_name: str) -> None:
    for sample in SAMPLES[format_name]:
        assert PARSERS[format_name].parse(sample, SOURCE) or format_name in NOT_ALL_ACTIVITY


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
    pieces = data.draw(st.lists(mutated(SAMPLES[format_name]), min_size=1, max_size=4))
    for record in PARSERS[format_name].split(b"\n".join(pieces)):
        check(PARSERS[format_name], record)


# --- fields of any JSON shape ---------------------------------------------------------------

# Biased towards near-valid times, amounts, epochs, codes and Bitrix24 spellings.
JSON_VALUES = json_values(
    ["", "0", "-0", "-1", "2", "5", "6", "60", "65", "200", "304", "603-S", "1001", "12.345",
     "1e400", "1795673703", "99999999999", "Y", "N", "WON", "C1:LOSE", "RUB", "closed", "missed",
     "payment.received", "deal.won", "inbound", "outbound", "NORMAL_CLEARING", "%", "%FF",
     "%2B7916", "2026-11-26T10:02:11+03:00", "2026-11-26T10:02:11", "2026-02-29T10:00:00Z",
     "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00", "26.11.2026 09:15:02",
     "31.02.2026 09:15:02"]
)  # fmt: skip

BITRIX24_CALL_FIELDS = [
    "CALL_ID", "PORTAL_USER_ID", "PHONE_NUMBER", "CALL_TYPE", "CALL_DURATION",
    "CALL_START_DATE", "CALL_FAILED_CODE", "CRM_ENTITY_TYPE", "CRM_ENTITY_ID",
    "USER_ID", "DURATION", "STATUS_CODE", "TYPE",
]  # fmt: skip
# Format → (JSON objects to start from, the fields to reshape).
FLAT_JSON: dict[str, tuple[list[bytes], list[str]]] = {
    "chat-session-json": (
        SAMPLES["chat-session-json"],
        [
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
    ),
    "crm-event-json": (
        SAMPLES["crm-event-json"],
        [
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
    ),
    "bitrix24-voximplant-statistic": (
        SAMPLES["bitrix24-voximplant-statistic"],
        BITRIX24_CALL_FIELDS,
    ),
    # Flat finish parameters, under either name of a field.
    "bitrix24-call-end-event": (SAMPLES["bitrix24-voximplant-statistic"], BITRIX24_CALL_FIELDS),
    # The envelope's members; the data's own shapes: tests/unit/test_bitrix24_call_start.py.
    "bitrix24-call-start-event": (
        [compact(CALL_START_JSON)],
        ["event", "event_handler_id", "data", "ts"],
    ),
    "bitrix24-openlines-session": (
        SAMPLES["bitrix24-openlines-session"],
        sorted(
            set(json_sample("bitrix24/openlines/served_whatsapp.json"))
            | set(json_sample("bitrix24/openlines/missed_telegram_camel.json"))
        ),
    ),
}
FS_VARIABLES = [*SMALL_CDR["variables"], "call_uuid", "user_name", "sip_from_user"]
CRM_REST_RESULT_FIELDS = sorted(
    {name for raw in SAMPLES["bitrix24-crm-rest"] for name in json.loads(raw)["result"]}
)


@pytest.mark.parametrize("format_name", sorted(FLAT_JSON))
@FUZZ
@given(data=st.data())
def test_json_fields_of_any_shape(format_name: str, data: st.DataObject) -> None:
    samples, fields = FLAT_JSON[format_name]
    sample = json.loads(data.draw(st.sampled_from(samples)))
    record = data.draw(reshaped(sample, fields, JSON_VALUES))
    check(PARSERS[format_name], json.dumps(record, ensure_ascii=data.draw(st.booleans())).encode())


@FUZZ
@given(data=st.data())
def test_freeswitch_variables_of_any_shape(data: st.DataObject) -> None:
    document = json.loads(SMALL_JSON)
    document["variables"] = data.draw(reshaped(document["variables"], FS_VARIABLES, JSON_VALUES))
    if data.draw(st.booleans()):
        document["channel_data"] = data.draw(JSON_VALUES)
    parser = FreeswitchJsonCdrParser(log_b_leg=data.draw(st.booleans()))
    check(parser, json.dumps(document).encode())


@FUZZ
@given(data=st.data())
def test_bitrix24_crm_rest_fields_of_any_shape(data: st.DataObject) -> None:
    sample = json.loads(data.draw(st.sampled_from(SAMPLES["bitrix24-crm-rest"])))
    sample = data.draw(reshaped(sample, ["event", "ts", "entity", "result"], JSON_VALUES))
    if isinstance(sample.get("result"), dict):
        sample["result"] = data.draw(
            reshaped(sample["result"], CRM_REST_RESULT_FIELDS, JSON_VALUES)
        )
    check(PARSERS["bitrix24-crm-rest"], compact(sample))
