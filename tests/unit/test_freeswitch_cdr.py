"""Golden tests for the FreeSWITCH CDR formats.

The samples under tests/samples/freeswitch are CDRs FreeSWITCH could have written on 26 November
2026 for a Moscow office (UTC+3), with the stock mod_json_cdr settings (``encode-values=true``,
``log-b-leg=true``) and mod_cdr_csv's ``example`` template. The JSON files are pretty-printed
for reading; mod_json_cdr writes each document on one line, so the tests compact them first.

The calls:

* a customer (+79161234567) dials the company number 74951234567, the dialplan bridges to
  user/1001, who talks for 151 s: an a-leg from the gateway and a b-leg to 1001;
* manager 1002 calls 89031234567 from a desk phone, nobody answers in 41 s: an a-leg;
* manager 1001 calls colleague 1003, who talks for 120 s: an a-leg and a b-leg.
"""

from __future__ import annotations

import base64
import json
from typing import Any
from urllib.parse import quote_plus

import pytest

from processors.parsers.base import RecordError
from processors.parsers.freeswitch_cdr_csv import FreeswitchCdrCsvParser
from processors.parsers.freeswitch_json_cdr import (
    JSON_CDR_MAX_RECORD_BYTES,
    FreeswitchJsonCdrParser,
)
from salespulse.models import (
    ActivityEvent,
    ActivityKind,
    Actor,
    Direction,
    SourceFamily,
    derive_event_id,
)
from tests.unit.parsing_helpers import (
    SAMPLES_DIR,
    compact,
    json_sample,
    record_error,
    source_of,
    utc,
)

SAMPLES = SAMPLES_DIR / "freeswitch"
SOURCE = source_of(FreeswitchJsonCdrParser, 2, 310)
JSON = "freeswitch-json-cdr"
CSV = "freeswitch-cdr-csv"

GATEWAY_A = "5b1e2f3a-8c4d-4e6f-9a0b-1c2d3e4f5a6b"
GATEWAY_B = "c7d8e9f0-1a2b-4c3d-8e4f-5a6b7c8d9e0f"
OUTBOUND_A = "e1f2a3b4-c5d6-4e7f-8a9b-0c1d2e3f4a5b"
INTERNAL_A = "8a9b0c1d-2e3f-4a5b-8c6d-7e8f9a0b1c2d"
INTERNAL_B = "9b0c1d2e-3f4a-4b5c-9d7e-8f9a0b1c2d3e"


def document(name: str) -> dict[str, Any]:
    """A sample, to be written as one line by ``compact``, as mod_json_cdr's
    cJSON_PrintUnformatted writes it."""
    loaded: dict[str, Any] = json_sample(f"freeswitch/{name}")
    return loaded


def sample(name: str, **variables: str | None) -> bytes:
    """A sample document with some variables replaced; None removes one."""
    doc = document(name)
    for key, value in variables.items():
        if value is None:
            doc["variables"].pop(key, None)
        else:
            doc["variables"][key] = value
    return compact(doc)


def variables_only(name: str, **variables: str | None) -> bytes:
    """``sample`` without the callflow: the variables are then all there is to read."""
    doc = json.loads(sample(name, **variables))
    del doc["callflow"]
    return compact(doc)


def parse_json(record: bytes, **options: Any) -> list[ActivityEvent]:
    return FreeswitchJsonCdrParser(**options).parse(record, SOURCE)


def json_reason(record: bytes, **options: Any) -> RecordError:
    return record_error(parse_json, record, **options)


def summary(event: ActivityEvent) -> tuple[object, ...]:
    return (
        event.actor.id,
        event.direction,
        event.counterpart,
        event.answered,
        event.duration_seconds,
        event.talk_seconds,
        event.occurred_at,
        event.ended_at,
        event.call_id,
    )


def test_class_attributes() -> None:
    assert FreeswitchJsonCdrParser.format_name == JSON
    assert FreeswitchJsonCdrParser.family is SourceFamily.PBX
    assert FreeswitchCdrCsvParser.format_name == CSV
    assert FreeswitchCdrCsvParser.family is SourceFamily.PBX


# --- freeswitch-json-cdr: the samples ------------------------------------------------------


def test_gateway_a_leg_speaks_for_nobody_when_b_legs_are_logged() -> None:
    # The a-leg is the customer's channel; 1001's side of the call is the b-leg's to report.
    assert parse_json(compact(document("inbound-gateway-a-leg.cdr.json"))) == []


def test_gateway_b_leg_is_the_answering_managers_incoming_call() -> None:
    [event] = parse_json(compact(document("inbound-gateway-b-leg.cdr.json")))
    assert event.event_id == derive_event_id(JSON, GATEWAY_B, "callee")
    assert event.kind is ActivityKind.CALL
    assert event.action == "leg"
    assert event.actor == Actor(SourceFamily.PBX, "1001")
    assert event.source == SOURCE
    # caller_id_number arrives as %2B79161234567 (encode-values=true); call_uuid was reset to
    # the b-leg's own uuid when the customer hung up, originating_leg_uuid still names the a-leg.
    assert summary(event) == (
        "1001",
        Direction.INCOMING,
        "+79161234567",
        True,
        157,
        151,
        utc("2026-11-26T06:15:03"),
        utc("2026-11-26T06:17:40"),
        GATEWAY_A,
    )


def test_gateway_a_leg_speaks_for_the_dialed_user_when_b_legs_are_not_logged() -> None:
    [event] = parse_json(compact(document("inbound-gateway-a-leg.cdr.json")), log_b_leg=False)
    assert event.event_id == derive_event_id(JSON, GATEWAY_A, "callee")
    assert summary(event) == (
        "1001",
        Direction.INCOMING,
        "+79161234567",
        True,
        158,
        151,
        utc("2026-11-26T06:15:02"),
        utc("2026-11-26T06:17:40"),
        GATEWAY_A,
    )


@pytest.mark.parametrize("log_b_leg", [True, False])
def test_unanswered_outgoing_call_from_a_desk_phone(log_b_leg: bool) -> None:
    [event] = parse_json(
        compact(document("outbound-unanswered-a-leg.cdr.json")), log_b_leg=log_b_leg
    )
    assert event.event_id == derive_event_id(JSON, OUTBOUND_A, "caller")
    assert summary(event) == (
        "1002",
        Direction.OUTGOING,
        "89031234567",
        False,
        41,
        0,
        utc("2026-11-26T07:30:00"),
        utc("2026-11-26T07:30:41"),
        OUTBOUND_A,
    )


def test_internal_call_gives_each_manager_one_event_from_their_own_leg() -> None:
    [caller] = parse_json(compact(document("internal-a-leg.cdr.json")))
    [callee] = parse_json(compact(document("internal-b-leg.cdr.json")))
    assert caller.event_id == derive_event_id(JSON, INTERNAL_A, "caller")
    assert callee.event_id == derive_event_id(JSON, INTERNAL_B, "callee")
    assert summary(caller) == (
        "1001",
        Direction.INTERNAL,
        "1003",
        True,
        124,
        120,
        utc("2026-11-26T08:00:00"),
        utc("2026-11-26T08:02:04"),
        INTERNAL_A,
    )
    assert summary(callee) == (
        "1003",
        Direction.INTERNAL,
        "1001",
        True,
        123,
        120,
        utc("2026-11-26T08:00:01"),
        utc("2026-11-26T08:02:04"),
        INTERNAL_A,
    )


def test_internal_a_leg_gives_two_events_when_b_legs_are_not_logged() -> None:
    events = parse_json(compact(document("internal-a-leg.cdr.json")), log_b_leg=False)
    assert [(e.actor.id, e.direction, e.counterpart) for e in events] == [
        ("1001", Direction.INTERNAL, "1003"),
        ("1003", Direction.INTERNAL, "1001"),
    ]
    assert [e.event_id for e in events] == [
        derive_event_id(JSON, INTERNAL_A, "caller"),
        derive_event_id(JSON, INTERNAL_A, "callee"),
    ]


def test_event_ids_are_the_documented_ones() -> None:
    # Quoted in docs/sources/freeswitch.md.
    assert derive_event_id(JSON, GATEWAY_B, "callee") == "048d3b883d977e805687fe36392f40ae"


# --- freeswitch-json-cdr: encodings ---------------------------------------------------------


def test_encode_true_form_body() -> None:
    raw = compact(document("inbound-gateway-b-leg.cdr.json"))
    body = b"cdr=" + quote_plus(raw.decode()).encode()
    assert parse_json(body) == parse_json(raw)


def test_encode_true_form_body_plus_is_a_space() -> None:
    doc = document("inbound-gateway-b-leg.cdr.json")
    body = "cdr=" + quote_plus(json.dumps(doc)).replace("%20", "+")
    assert parse_json(body.encode()) == parse_json(compact(doc))


def test_encode_base64_body() -> None:
    raw = compact(document("inbound-gateway-b-leg.cdr.json"))
    assert parse_json(b"cdr=" + base64.b64encode(raw)) == parse_json(raw)


def test_unencoded_values_keep_a_literal_plus() -> None:
    # encode-values=false: the number is written as is, and "+" must not become a space.
    record = sample("inbound-gateway-b-leg.cdr.json", caller_id_number="+79161234567")
    [event] = parse_json(record)
    assert event.counterpart == "+79161234567"


def test_percent_encoded_non_ascii_is_utf8() -> None:
    record = variables_only(
        "inbound-gateway-b-leg.cdr.json", caller_id_number="%D0%90%D0%BD%D0%BD%D0%B0"
    )
    [event] = parse_json(record)
    assert event.counterpart == "Анна"


# --- freeswitch-json-cdr: who the leg belongs to -------------------------------------------


def test_call_id_falls_back_to_call_uuid_then_uuid() -> None:
    # Without originating_leg_uuid the originator profile names the a-leg; without either,
    # call_uuid, then the leg's own uuid.
    [event] = parse_json(sample("inbound-gateway-b-leg.cdr.json", originating_leg_uuid=None))
    assert event.call_id == GATEWAY_A
    [event] = parse_json(
        variables_only(
            "inbound-gateway-b-leg.cdr.json", originating_leg_uuid=None, call_uuid=GATEWAY_A
        )
    )
    assert event.call_id == GATEWAY_A
    [event] = parse_json(
        variables_only("inbound-gateway-b-leg.cdr.json", originating_leg_uuid=None, call_uuid=None)
    )
    assert event.call_id == GATEWAY_B


def test_direction_falls_back_to_channel_data() -> None:
    [event] = parse_json(sample("inbound-gateway-b-leg.cdr.json", direction=None))
    assert event.actor.id == "1001"


def test_direction_without_either_copy_comes_from_the_call_flow() -> None:
    """Exports that drop both copies (the CGRateS fixture of the real corpus): a b-leg has an
    originator, so it is outbound and still 1001's answered leg; an a-leg has none."""
    doc = document("inbound-gateway-b-leg.cdr.json")
    del doc["variables"]["direction"], doc["channel_data"]
    [event] = parse_json(compact(doc))
    assert event.actor.id == "1001"
    doc["variables"]["direction"] = "sideways"
    assert json_reason(compact(doc)).reason == "invalid"


def test_inbound_leg_caller_is_the_registered_user_first() -> None:
    # user_name is who the phone authenticated as, even if it presents another caller id.
    record = sample(
        "outbound-unanswered-a-leg.cdr.json", caller_id_number="74951234567", sip_from_user=None
    )
    [event] = parse_json(record)
    assert (event.actor.id, event.direction) == ("1002", Direction.OUTGOING)


def test_outbound_leg_ignores_user_name() -> None:
    # On a leg the switch placed, the caller is the presented caller id only.
    record = sample("inbound-gateway-b-leg.cdr.json", user_name="1005")
    [event] = parse_json(record)
    assert (event.actor.id, event.direction) == ("1001", Direction.INCOMING)


def test_trunk_leg_without_any_extension() -> None:
    # Without the callflow: its originatee profile would name 1001.
    record = variables_only("inbound-gateway-a-leg.cdr.json", dialed_user=None)
    assert parse_json(record) == []
    # Without b-legs it goes to the dialled number, which attribution reports as unattributed.
    [event] = parse_json(record, log_b_leg=False)
    assert (event.actor.id, event.direction, event.counterpart) == (
        "74951234567",
        Direction.INCOMING,
        "+79161234567",
    )
    empty = variables_only(
        "inbound-gateway-a-leg.cdr.json", dialed_user=None, destination_number=""
    )
    assert json_reason(empty, log_b_leg=False).reason == "invalid"


def test_custom_extension_pattern() -> None:
    record = sample("inbound-gateway-b-leg.cdr.json")
    assert parse_json(record, internal_extension_pattern=r"^2\d{3}$") == []


def test_answered_by_answer_epoch_alone() -> None:
    [event] = parse_json(sample("inbound-gateway-b-leg.cdr.json", billsec="0"))
    assert event.answered is True
    assert event.talk_seconds == 0


# --- freeswitch-json-cdr: parties from the callflow (issue 14) -----------------------------

QUEUE_MEMBER_A = "3f6a1c2e-9b7d-4e15-8a2c-6d4e8f0a1b3c"


def stock(name: str, **variables: str | None) -> bytes:
    """A sample as a stock FreeSWITCH writes it: the caller and the dialled number only in the
    callflow's caller profile, not among the channel variables."""
    return sample(name, caller_id_number=None, destination_number=None, **variables)


def test_b_leg_counterpart_comes_from_the_caller_profile() -> None:
    [event] = parse_json(stock("inbound-gateway-b-leg.cdr.json"))
    assert (event.actor.id, event.direction, event.counterpart) == (
        "1001",
        Direction.INCOMING,
        "+79161234567",
    )


def test_b_leg_of_a_plain_bridge_is_the_dialled_phones() -> None:
    # bridge sofia/internal/1003@... sets no dialed_user: only the caller profile names 1003.
    [event] = parse_json(stock("internal-b-leg.cdr.json", dialed_user=None))
    assert event.event_id == derive_event_id(JSON, INTERNAL_B, "callee")
    assert (event.actor.id, event.direction, event.counterpart, event.call_id) == (
        "1003",
        Direction.INTERNAL,
        "1001",
        INTERNAL_A,
    )


def test_a_leg_counterpart_is_the_phone_it_was_bridged_to() -> None:
    [event] = parse_json(stock("internal-a-leg.cdr.json", dialed_user=None))
    assert (event.actor.id, event.direction, event.counterpart) == (
        "1001",
        Direction.INTERNAL,
        "1003",
    )


def test_queue_agent_leg_is_the_agents_call_with_the_customer() -> None:
    # mod_callcenter originates the agent's leg on its own (no originating_leg_uuid; call_uuid is
    # the leg's own uuid), then bridges it to the waiting caller: the originator profile and
    # cc_member_session_uuid name the caller's leg, so both legs are one call.
    [event] = parse_json(compact(document("queue-agent-b-leg.cdr.json")))
    assert summary(event) == (
        "1005",
        Direction.INCOMING,
        "+79161234567",
        True,
        186,  # 10:00:40 to 10:03:46 local
        180,  # answered 10:00:46, so 186 - 6
        utc("2026-11-26T07:00:40"),
        utc("2026-11-26T07:03:46"),
        QUEUE_MEMBER_A,
    )


def test_queue_member_leg_is_the_customers_when_b_legs_are_logged() -> None:
    # The queue's number 3000 is no manager's: with the agent's leg logged, nothing to report.
    assert parse_json(compact(document("queue-member-a-leg.cdr.json"))) == []


def test_queue_member_leg_credits_the_agent_when_it_is_the_only_cdr() -> None:
    # log-b-leg=false: the caller's leg is the call's only CDR. The agent is its originatee; the
    # agent talked from the bridge (10:00:46) to the end (10:03:46): 1795676626 - 1795676446 =
    # 180 s, not the leg's billsec of 225 s, 45 of which the customer spent waiting in the queue.
    [event] = parse_json(compact(document("queue-member-a-leg.cdr.json")), log_b_leg=False)
    assert event.event_id == derive_event_id(JSON, QUEUE_MEMBER_A, "callee")
    assert summary(event) == (
        "1005",
        Direction.INCOMING,
        "+79161234567",
        True,
        226,
        180,
        utc("2026-11-26T07:00:00"),
        utc("2026-11-26T07:03:46"),
        QUEUE_MEMBER_A,
    )


def test_queue_member_leg_without_originatee_names_the_agent_not_the_queue() -> None:
    doc = document("queue-member-a-leg.cdr.json")
    del doc["callflow"][0]["caller_profile"]["originatee"]
    [event] = parse_json(compact(doc), log_b_leg=False)
    assert (event.actor.id, event.talk_seconds) == ("1005", 180)


def test_a_leg_alone_is_not_dead_lettered_without_dialed_user() -> None:
    # A stock a-leg bridged to sofia/internal/1001@... : before, no destination -> invalid.
    [event] = parse_json(stock("inbound-gateway-a-leg.cdr.json", dialed_user=None), log_b_leg=False)
    assert (event.actor.id, event.direction, event.counterpart, event.talk_seconds) == (
        "1001",
        Direction.INCOMING,
        "+79161234567",
        151,
    )


def test_b_leg_is_left_to_the_a_leg_when_b_legs_are_not_logged() -> None:
    # mod_json_cdr with log-b-leg=false never writes it; if one comes, the a-leg spoke for it.
    assert parse_json(compact(document("queue-agent-b-leg.cdr.json")), log_b_leg=False) == []
    assert parse_json(compact(document("internal-b-leg.cdr.json")), log_b_leg=False) == []


def test_after_a_transfer_the_newest_profile_counts() -> None:
    # callflow lists the newest profile first: the call was transferred from 3000 to 1001.
    doc = json.loads(stock("inbound-gateway-a-leg.cdr.json", dialed_user=None))
    newest = doc["callflow"][0]["caller_profile"]
    del newest["originatee"]
    older = json.loads(json.dumps(doc["callflow"][0]))
    newest["destination_number"] = "1001"
    older["caller_profile"]["destination_number"] = "3000"
    doc["callflow"].append(older)
    [event] = parse_json(compact(doc), log_b_leg=False)
    assert event.actor.id == "1001"


def test_old_single_object_callflow_is_read() -> None:
    doc = json.loads(stock("inbound-gateway-b-leg.cdr.json"))
    doc["callflow"] = doc["callflow"][0]
    [event] = parse_json(compact(doc))
    assert event.counterpart == "+79161234567"


# --- talk time only for a party that answered -----------------------------------------------


def test_ivr_time_before_the_bridge_is_not_the_managers_talk() -> None:
    # log-b-leg=false. The IVR answered the customer at 09:15:04 (1795673704), the call was
    # bridged to 1001 at 09:15:09 (1795673709) and ended at 09:17:40 (1795673860): the a-leg's
    # billsec is 1795673860 - 1795673704 = 156, 1001 talked 1795673860 - 1795673709 = 151.
    record = sample("inbound-gateway-a-leg.cdr.json", answer_epoch="1795673704", billsec="156")
    [event] = parse_json(record, log_b_leg=False)
    assert (event.actor.id, event.answered, event.talk_seconds) == ("1001", True, 151)


def test_billsec_of_a_bridge_nobody_answered_is_not_talk() -> None:
    # log-b-leg=false. The IVR answered (billsec 40), then user/1001 rang unanswered: no bridge,
    # so 1001 neither answered nor talked.
    doc = json.loads(
        sample(
            "inbound-gateway-a-leg.cdr.json",
            answer_epoch="1795673820",
            bridge_epoch="0",
            billsec="40",
            hangup_cause="NO_ANSWER",
        )
    )
    del doc["callflow"][0]["caller_profile"]["originatee"]
    [event] = parse_json(compact(doc), log_b_leg=False)
    assert (event.actor.id, event.answered, event.talk_seconds) == ("1001", False, 0)


# --- freeswitch-json-cdr: dead letters ------------------------------------------------------


@pytest.mark.parametrize(
    ("record", "expected"),
    [
        (b"", "malformed"),
        (b"[]", "malformed"),
        (b'{"variables": ', "malformed"),
        (b"cdr=!!!not-base64!!!", "malformed"),
        (b"\xff{}", "decode_error"),
        (b"cdr=%7B%FF%7D", "decode_error"),
        (b"{}", "invalid"),
        (b'{"variables": []}', "invalid"),
    ],
)
def test_structure_dead_letters(record: bytes, expected: str) -> None:
    assert json_reason(record).reason == expected


@pytest.mark.parametrize(
    ("variables", "expected"),
    [
        ({"uuid": None}, "invalid"),
        ({"uuid": ""}, "invalid"),
        ({"start_epoch": None}, "invalid"),
        ({"direction": "sideways"}, "invalid"),
        ({"duration": "15.5"}, "invalid"),
        ({"billsec": "-1"}, "invalid"),
        ({"billsec": "999"}, "invalid"),
        ({"duration": "900000", "billsec": "0"}, "invalid"),
        ({"end_epoch": "1795673000"}, "invalid"),
        ({"hangup_cause": "normal clearing"}, "invalid"),
        ({"caller_id_number": "7" * 300}, "invalid"),
        ({"start_epoch": "0"}, "bad_time"),
        ({"start_epoch": "2026-11-26"}, "bad_time"),
        ({"end_epoch": "17956738601"}, "bad_time"),
        ({"answer_epoch": "soon"}, "bad_time"),
        ({"caller_id_number": "%FF%FE"}, "decode_error"),
    ],
)
def test_field_dead_letters(variables: dict[str, str | None], expected: str) -> None:
    # Without the callflow, so that the variables' caller_id_number is the one read.
    record = variables_only("inbound-gateway-b-leg.cdr.json", **variables)
    assert json_reason(record).reason == expected


def test_number_where_a_string_belongs_is_invalid() -> None:
    doc = document("inbound-gateway-b-leg.cdr.json")
    doc["variables"]["billsec"] = 151
    assert json_reason(compact(doc)).reason == "invalid"


def test_too_large_is_checked_first() -> None:
    assert JSON_CDR_MAX_RECORD_BYTES == 262_144
    record = b"\xff" * 2048
    assert json_reason(record, max_record_bytes=1024).reason == "too_large"


def test_details_do_not_quote_phone_numbers() -> None:
    error = json_reason(sample("inbound-gateway-b-leg.cdr.json", duration="79161234567x"))
    assert "79161234567" not in error.detail
    assert "duration" in error.detail


def test_split_one_document_per_line() -> None:
    first = compact(document("internal-a-leg.cdr.json"))
    second = compact(document("internal-b-leg.cdr.json"))
    parser = FreeswitchJsonCdrParser()
    assert parser.split(first + b"\n\n" + second + b"\n") == [first, second]


# --- freeswitch-json-cdr: framing -----------------------------------------------------------


def test_split_one_pretty_printed_document_is_one_record() -> None:
    # The sample file as FreeSWITCH's cJSON_Print (or a user's paste) lays it out: 180 lines.
    pretty = (SAMPLES / "inbound-gateway-b-leg.cdr.json").read_bytes()
    assert pretty.count(b"\n") > 100
    [record] = FreeswitchJsonCdrParser().split(pretty)
    assert parse_json(record) == parse_json(compact(document("inbound-gateway-b-leg.cdr.json")))


def test_split_concatenated_documents_one_record_each() -> None:
    a_leg = (SAMPLES / "internal-a-leg.cdr.json").read_bytes().strip()
    b_leg = (SAMPLES / "internal-b-leg.cdr.json").read_bytes().strip()
    one_line = compact(document("outbound-unanswered-a-leg.cdr.json"))
    # Files joined by cat with no newline in between ("}{"), CRLF line ends, a compact document.
    payload = a_leg + b_leg + b"\r\n\r\n" + one_line + b"\n" + one_line
    records = FreeswitchJsonCdrParser().split(payload)
    assert [json.loads(r)["variables"]["uuid"] for r in records] == [
        INTERNAL_A,
        INTERNAL_B,
        OUTBOUND_A,
        OUTBOUND_A,
    ]


def test_split_brackets_inside_strings_do_not_count() -> None:
    doc = document("internal-a-leg.cdr.json")
    doc["variables"]["last_arg"] = '}{ ] [ {{ \\" }'
    pretty = json.dumps(doc, indent=2).encode()
    assert FreeswitchJsonCdrParser().split(pretty + b"\n" + pretty) == [pretty, pretty]


def test_split_a_cut_document_does_not_swallow_the_next() -> None:
    whole = compact(document("internal-b-leg.cdr.json"))
    cut = whole[:500]
    records = FreeswitchJsonCdrParser().split(cut + b"\n" + whole + b"\n")
    assert records == [cut, whole]
    assert json_reason(records[0]).reason == "malformed"


def test_split_non_json_lines_are_records_of_their_own() -> None:
    assert FreeswitchJsonCdrParser().split(b"garbage\n\n}\n{}\n") == [b"garbage", b"}", b"{}"]


def test_too_large_pretty_document_is_one_dead_letter() -> None:
    pretty = (SAMPLES / "inbound-gateway-b-leg.cdr.json").read_bytes()
    parser = FreeswitchJsonCdrParser(max_record_bytes=1024)
    [record] = parser.split(pretty)
    assert record_error(parser.parse, record, SOURCE).reason == "too_large"


def test_split_is_linear_in_the_payload() -> None:
    # 2,000 documents of 20 lines each: a quadratic framer would take minutes here.
    doc = json.dumps({"variables": {"uuid": "x", "app": "${a}{b}"}, "callflow": [{}]}, indent=4)
    payload = (doc.encode() + b"\n") * 2000
    records = FreeswitchJsonCdrParser().split(payload)
    assert len(records) == 2000
    assert records[0] == doc.encode()


# --- freeswitch-cdr-csv ---------------------------------------------------------------------

MASTER = (SAMPLES / "Master.csv").read_bytes()
CSV_SOURCE = source_of(FreeswitchCdrCsvParser, 0, 77)


def csv_line(
    *,
    name: str = "Ivan Sidorov",
    caller: str = "1001",
    destination: str = "89031234567",
    start: str = "2026-11-26 11:00:00",
    answer: str = "2026-11-26 11:00:04",
    end: str = "2026-11-26 11:02:04",
    duration: str = "124",
    billsec: str = "120",
    cause: str = "NORMAL_CLEARING",
    uuid: str = INTERNAL_A,
) -> bytes:
    fields = [name, caller, destination, "default", start, answer, end, duration, billsec]
    fields += [cause, uuid, "", "1001", "PCMA", "PCMA"]
    return ('"' + '","'.join(fields) + '"').encode()


def parse_csv(line: bytes, timezone: str = "Europe/Moscow") -> list[ActivityEvent]:
    return FreeswitchCdrCsvParser(timezone=timezone).parse(line, CSV_SOURCE)


def csv_reason(line: bytes, timezone: str = "Europe/Moscow") -> str:
    return record_error(parse_csv, line, timezone).reason


def test_master_csv_sample() -> None:
    parser = FreeswitchCdrCsvParser(timezone="Europe/Moscow")
    lines = parser.split(MASTER)
    assert len(lines) == 5
    events = [[summary(e)[:6] for e in parser.parse(line, CSV_SOURCE)] for line in lines]
    assert events == [
        # Transferred from the DID to 1001 before the bridge: destination_number is 1001.
        [("1001", Direction.INCOMING, "+79161234567", True, 158, 151)],
        [("1002", Direction.OUTGOING, "89031234567", False, 41, 0)],
        [
            ("1001", Direction.INTERNAL, "1003", True, 124, 120),
            ("1003", Direction.INTERNAL, "1001", True, 124, 120),
        ],
        # Answered by the IVR, no extension involved: the DID, unattributed later, unless the
        # directory holds the caller's number (the candidate that follows: settle_sides).
        [
            ("74951234567", Direction.INCOMING, "+79035550011", True, 22, 22),
            ("+79035550011", Direction.OUTGOING, "74951234567", True, 22, 22),
        ],
        # mod_cdr_csv does not escape the quotes in "OOO "Romashka"".
        [("1002", Direction.INCOMING, "+74991112233", False, 25, 0)],
    ]


def test_csv_first_line_in_detail() -> None:
    [event] = parse_csv(FreeswitchCdrCsvParser().split(MASTER)[0])
    assert event.event_id == derive_event_id(CSV, GATEWAY_A, "callee")
    assert event.event_id == "9bc7cdfb160bdbfdf9a5e13190acc524"
    assert event.occurred_at == utc("2026-11-26T06:15:02")
    assert event.ended_at == utc("2026-11-26T06:17:40")
    assert event.call_id == GATEWAY_A
    assert event.source == CSV_SOURCE


def test_csv_default_zone_is_utc() -> None:
    [event] = FreeswitchCdrCsvParser().parse(csv_line(), CSV_SOURCE)
    assert event.occurred_at == utc("2026-11-26T11:00:00")


def test_csv_answer_stamp_without_billsec_is_answered() -> None:
    [event] = parse_csv(csv_line(end="2026-11-26 11:00:04", duration="4", billsec="0"))
    assert event.answered is True


def test_csv_call_across_the_end_of_dst() -> None:
    # Berlin, 25 October 2026: 02:59:30 CEST to 02:00:30 CET is one minute.
    line = csv_line(
        start="2026-10-25 02:59:30",
        answer="",
        end="2026-10-25 02:00:30",
        duration="60",
        billsec="0",
    )
    [event] = parse_csv(line, "Europe/Berlin")
    assert event.occurred_at == utc("2026-10-25T00:59:30")
    assert event.ended_at == utc("2026-10-25T01:00:30")
    assert csv_reason(csv_line(end="2026-11-26 10:59:00")) == "invalid"


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (b"", "malformed"),
        (b'"', "malformed"),
        (csv_line()[:-1], "malformed"),
        (csv_line() + b',"extra"', "malformed"),
        (csv_line(name='a","b'), "malformed"),
        (csv_line().replace(b'","PCMA","PCMA"', b'","PCMA"'), "malformed"),
        # A value read that is not UTF-8 (a caller name is not read: see the test below).
        (csv_line(uuid="X").replace(b'"X"', '"ж"'.encode("cp1251")), "decode_error"),
        (csv_line(start="26.11.2026 11:00:00"), "bad_time"),
        (csv_line(start="2026-02-30 11:00:00"), "bad_time"),
        (csv_line(end=""), "bad_time"),
        (csv_line(answer="yes"), "bad_time"),
        (csv_line(duration="1e3"), "invalid"),
        (csv_line(billsec="125"), "invalid"),
        (csv_line(cause=""), "invalid"),
        (csv_line(uuid=""), "invalid"),
        (csv_line(caller="+79161234567", destination=""), "invalid"),
    ],
)
def test_csv_dead_letters(line: bytes, expected: str) -> None:
    assert csv_reason(line) == expected


def test_csv_caller_name_in_cp1251_does_not_cost_the_call() -> None:
    # A trunk sent the caller's name in CP1251 and mod_cdr_csv wrote the bytes as they came;
    # the name is not read, so the call counts.
    line = '"Иван Сидоров"'.encode("cp1251") + csv_line()[len(b'"Ivan Sidorov"') :]
    [event] = parse_csv(line)
    assert (event.actor.id, event.talk_seconds) == ("1001", 120)


def test_csv_values_read_are_decoded_in_the_configured_encoding() -> None:
    # An extension named in Cyrillic, written in the switch's KOI8-R.
    line = csv_line(caller="X").replace(b'"X"', '"отдел"'.encode("koi8-r"))
    parser = FreeswitchCdrCsvParser(timezone="Europe/Moscow", encoding="koi8-r")
    assert record_error(parse_csv, line).detail == "caller_id_number: not UTF-8"
    # The dialled number's call, then the caller's as the candidate a directory may hold.
    event, candidate = parser.parse(line, CSV_SOURCE)
    assert event.counterpart == "отдел"  # decoded as KOI8-R, not mojibake
    assert candidate.actor.id == "отдел"


def test_csv_too_large() -> None:
    parser = FreeswitchCdrCsvParser(max_record_bytes=100)
    assert record_error(parser.parse, csv_line(), CSV_SOURCE).reason == "too_large"


# --- freeswitch-cdr-csv: legs=ab, queues, talk time (issue 14) ------------------------------

QUEUE_AGENT = "7c2e4a6b-1d3f-4a5b-9c8d-0e1f2a3b4c5d"


def parse_ab(line: bytes) -> list[ActivityEvent]:
    return FreeswitchCdrCsvParser(timezone="Europe/Moscow", legs="ab").parse(line, CSV_SOURCE)


def talk_per_manager(events: list[ActivityEvent]) -> dict[str, int]:
    """Talk seconds per manager as storage counts them: one row per event id (the last written
    wins), legs summed per manager within a call."""
    rows = {event.event_id: event for event in events}
    totals: dict[str, int] = {}
    for event in rows.values():
        totals[event.actor.id] = totals.get(event.actor.id, 0) + event.talk_seconds
    return totals


def test_csv_both_legs_of_an_internal_call_count_once_per_manager() -> None:
    # legs=ab: 1001 calls 1003. The a-leg's line names the b-leg in bleg_uuid; the b-leg's line
    # has no bleg_uuid. Both speak for 1001 under derive_event_id(csv, b-leg uuid, "caller"), so
    # storage keeps one row for 1001 and one for 1003: 120 s each, not 240.
    a_leg = csv_line(caller="1001", destination="1003", uuid=INTERNAL_A).replace(
        b'"","1001","PCMA"', f'"{INTERNAL_B}","1001","PCMA"'.encode()
    )
    b_leg = csv_line(
        caller="1001",
        destination="1003",
        start="2026-11-26 11:00:01",
        duration="123",
        uuid=INTERNAL_B,
    )
    [caller] = parse_ab(a_leg)
    b_events = parse_ab(b_leg)
    assert caller.event_id == derive_event_id(CSV, INTERNAL_B, "caller")
    assert [(e.actor.id, e.direction, e.event_id) for e in b_events] == [
        ("1001", Direction.INTERNAL, derive_event_id(CSV, INTERNAL_B, "caller")),
        ("1003", Direction.INTERNAL, derive_event_id(CSV, INTERNAL_B, "callee")),
    ]
    assert {e.call_id for e in [caller, *b_events]} == {INTERNAL_B}
    assert talk_per_manager([caller, *b_events]) == {"1001": 120, "1003": 120}


def test_csv_queue_call_is_the_agents_not_the_queue_numbers() -> None:
    # legs=ab: a customer calls queue 3000, agent 1005 answers. The caller's line is the
    # customer's (no extension calls); the agent's leg, named by the caller's bleg_uuid, is
    # 1005's incoming call with the customer. With legs=a the queue number 3000 would be credited.
    member = csv_line(
        name="+79161234567",
        caller="+79161234567",
        destination="3000",
        start="2026-11-26 10:00:00",
        answer="2026-11-26 10:00:01",
        end="2026-11-26 10:03:46",
        duration="226",
        billsec="225",
        uuid=QUEUE_MEMBER_A,
    ).replace(b'"","1001","PCMA"', f'"{QUEUE_AGENT}","","PCMA"'.encode())
    agent = csv_line(
        name="Support",
        caller="+79161234567",
        destination="1005",
        start="2026-11-26 10:00:40",
        answer="2026-11-26 10:00:46",
        end="2026-11-26 10:03:46",
        duration="186",
        billsec="180",
        uuid=QUEUE_AGENT,
    )
    assert parse_ab(member) == []
    [event] = parse_ab(agent)
    assert (event.actor.id, event.direction, event.counterpart, event.talk_seconds) == (
        "1005",
        Direction.INCOMING,
        "+79161234567",
        180,
    )
    assert event.call_id == QUEUE_AGENT


def test_csv_ab_trunk_end_of_a_b_leg_is_not_an_unattributed_call() -> None:
    # legs=ab: 1002's call went out with the company's caller id; the gateway b-leg's line has
    # no extension on either side. 1002's a-leg already counted the call.
    line = csv_line(caller="74951234567", destination="89031234567", uuid=INTERNAL_B)
    assert parse_ab(line) == []
    # legs=a: the dialled number, and the caller's as the candidate a directory may hold.
    assert [e.actor.id for e in parse_csv(line)] == ["89031234567", "74951234567"]


def test_csv_legs_a_keeps_the_a_legs_own_uuid() -> None:
    # legs=a (the default): the line is the call's only record; its ids do not change.
    line = csv_line().replace(b'"","1001","PCMA"', f'"{INTERNAL_B}","1001","PCMA"'.encode())
    events = parse_csv(line)
    assert [e.event_id for e in events] == [
        derive_event_id(CSV, INTERNAL_A, "caller"),
    ]
    assert events[0].call_id == INTERNAL_A


def test_csv_voicemail_answer_is_not_the_managers_talk() -> None:
    # legs=a: the customer's call was transferred to 1001, rang out and went to 1001's voicemail,
    # which answered: billsec 30, but no bridge (empty bleg_uuid), so 1001 missed the call.
    line = csv_line(
        name="+79161234567",
        caller="+79161234567",
        destination="1001",
        answer="2026-11-26 11:01:34",
        duration="124",
        billsec="30",
    )
    [event] = parse_csv(line)
    assert (event.actor.id, event.direction, event.answered, event.talk_seconds) == (
        "1001",
        Direction.INCOMING,
        False,
        0,
    )
