"""AMI Cdr events as cdr_manager raises them: golden blocks, framing, and fuzzing."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from processors.parsers import AsteriskCdrCsvParser, RecordError
from processors.parsers.asterisk_ami_cdr import AsteriskAmiCdrParser, message_fields, split_blocks
from salespulse.models import ActivityEvent, Actor, Direction, SourceFamily, derive_event_id
from salespulse.sections import AsteriskCdrColumns
from tests.unit.fuzzing import check, fuzz_settings, mutated
from tests.unit.parsing_helpers import (
    ASTERISK_INCOMING_CSV,
    asterisk_incoming_event,
    record_error,
    source_of,
    utc,
)

SOURCE = source_of(AsteriskAmiCdrParser, 1, 99)
NS = "asterisk-cdr-csv"

# The Master.csv sample of the dialect tests, raised by cdr_manager with the [mappings]
# linkedid => LinkedID, sequence => Sequence, peeraccount => PeerAccount.
INCOMING = (
    b"Event: Cdr\r\n"
    b"Privilege: cdr,all\r\n"
    b"AccountCode: \r\n"
    b"Source: 79161234567\r\n"
    b"Destination: 101\r\n"
    b"DestinationContext: from-trunk\r\n"
    b'CallerID: "Client" <79161234567>\r\n'
    b"Channel: SIP/provider-00000012\r\n"
    b"DestinationChannel: SIP/101-00000013\r\n"
    b"LastApplication: Dial\r\n"
    b"LastData: SIP/101,30\r\n"
    b"StartTime: 2026-11-26 09:15:02\r\n"
    b"AnswerTime: 2026-11-26 09:15:09\r\n"
    b"EndTime: 2026-11-26 09:17:40\r\n"
    b"Duration: 158\r\n"
    b"BillableSeconds: 151\r\n"
    b"Disposition: ANSWERED\r\n"
    b"AMAFlags: DOCUMENTATION\r\n"
    b"UniqueID: 1795673702.45\r\n"
    b"UserField: \r\n"
    b"PeerAccount: \r\n"
    b"LinkedID: 1795673702.45\r\n"
    b"Sequence: 12\r\n"
    b"\r\n"
)
# What cdr_manager raises without [mappings]: no LinkedID, PeerAccount or Sequence.
INCOMING_PLAIN = INCOMING.replace(
    b"PeerAccount: \r\nLinkedID: 1795673702.45\r\nSequence: 12\r\n", b""
)
# An outgoing call nobody answered: AnswerTime is empty.
OUTGOING_NO_ANSWER = (
    b"Event: Cdr\r\n"
    b"Privilege: cdr,all\r\n"
    b"AccountCode: sales\r\n"
    b"Source: 102\r\n"
    b"Destination: 84951234567\r\n"
    b"DestinationContext: from-internal\r\n"
    b'CallerID: "Ivanov, Petr" <102>\r\n'
    b"Channel: PJSIP/102-0000002a\r\n"
    b"DestinationChannel: PJSIP/provider-0000002b\r\n"
    b"LastApplication: Dial\r\n"
    b"LastData: PJSIP/84951234567@provider,60,tT\r\n"
    b"StartTime: 2026-11-26 10:00:00\r\n"
    b"AnswerTime: \r\n"
    b"EndTime: 2026-11-26 10:00:31\r\n"
    b"Duration: 31\r\n"
    b"BillableSeconds: 0\r\n"
    b"Disposition: NO ANSWER\r\n"
    b"AMAFlags: DOCUMENTATION\r\n"
    b"UniqueID: 1795676400.80\r\n"
    b"UserField: \r\n"
    b"LinkedID: 1795676400.80\r\n"
    b"Sequence: 44\r\n"
    b"\r\n"
)
NEWCHANNEL = (
    b"Event: Newchannel\r\n"
    b"Privilege: call,all\r\n"
    b"Channel: SIP/101-00000013\r\n"
    b"ChannelState: 0\r\n"
    b"ChannelStateDesc: Down\r\n"
    b"CallerIDNum: 101\r\n"
    b"Uniqueid: 1795673702.46\r\n"
    b"Linkedid: 1795673702.45\r\n"
    b"\r\n"
)

REQUIRED = [
    "Source",
    "Destination",
    "Channel",
    "DestinationChannel",
    "StartTime",
    "AnswerTime",
    "EndTime",
    "Duration",
    "BillableSeconds",
    "Disposition",
    "UniqueID",
]


def parse(block: bytes, timezone: str = "Europe/Moscow") -> list[ActivityEvent]:
    return AsteriskAmiCdrParser(timezone=timezone).parse(block, SOURCE)


def reason(block: bytes) -> str:
    return record_error(parse, block).reason


def without(block: bytes, field: str) -> bytes:
    lines = block.split(b"\r\n")
    return b"\r\n".join(line for line in lines if not line.startswith(field.encode() + b":"))


def test_class_attributes() -> None:
    assert AsteriskAmiCdrParser.format_name == "asterisk-ami-cdr"
    assert AsteriskAmiCdrParser.family is SourceFamily.PBX


def test_answered_incoming_call_with_mapped_linkedid_and_sequence() -> None:
    [event] = parse(INCOMING)
    assert event == asterisk_incoming_event(
        event_id=derive_event_id(NS, "1795673702.45", "12", "callee"),
        source=SOURCE,
        occurred_at=utc("2026-11-26 06:15:02"),
        ended_at=utc("2026-11-26 06:17:40"),
        call_id="1795673702.45",
    )


def test_plain_cdr_event_has_its_uniqueid_as_call_id_and_key() -> None:
    # No LinkedID mapped: Party A's uniqueid is the best call id the event carries.
    [event] = parse(INCOMING_PLAIN)
    assert event.call_id == "1795673702.45"
    assert event.event_id == derive_event_id(
        NS, "1795673702.45", "SIP/101-00000013", "2026-11-26 09:15:02", "callee"
    )


@pytest.mark.parametrize(
    ("block", "line", "columns"),
    [
        (INCOMING, ASTERISK_INCOMING_CSV + b',"1795673702.45","","","1795673702.45",12', "all"),
        (INCOMING_PLAIN, ASTERISK_INCOMING_CSV + b',"1795673702.45"', "uniqueid"),
    ],
)
def test_same_cdr_from_master_csv_has_the_same_events(
    block: bytes, line: bytes, columns: AsteriskCdrColumns
) -> None:
    # Master.csv can fill a gap in the AMI stream without counting a call twice.
    from_ami = parse(block)
    from_csv = AsteriskCdrCsvParser(timezone="Europe/Moscow", columns=columns).parse(line, SOURCE)
    assert from_ami == from_csv


def test_outgoing_call_nobody_answered() -> None:
    [event] = parse(OUTGOING_NO_ANSWER, timezone="UTC")
    assert event.actor == Actor(SourceFamily.PBX, "102")
    assert event.direction is Direction.OUTGOING
    assert event.answered is False
    assert event.counterpart == "84951234567"
    assert (event.duration_seconds, event.talk_seconds) == (31, 0)
    assert event.occurred_at == utc("2026-11-26 10:00:00")
    assert event.event_id == derive_event_id(NS, "1795676400.80", "44", "caller")


def test_lf_line_ends_and_no_trailing_blank_line() -> None:
    block = INCOMING.replace(b"\r\n", b"\n").rstrip(b"\n")
    assert parse(block) == parse(INCOMING)


def test_keys_are_case_insensitive_and_the_first_of_a_repeat_counts() -> None:
    block = INCOMING.replace(b"LinkedID:", b"linkedid:").replace(
        b"Duration: 158\r\n", b"DURATION: 158\r\nDuration: 999\r\n"
    )
    [event] = parse(block)
    assert event.call_id == "1795673702.45"
    assert event.duration_seconds == 158


def test_value_may_follow_the_colon_without_a_space() -> None:
    [event] = parse(INCOMING.replace(b"Destination: 101", b"Destination:101"))
    assert event.actor.id == "101"


def test_internal_call_is_two_events() -> None:
    block = (
        INCOMING.replace(b"Channel: SIP/provider-00000012", b"Channel: SIP/102-00000050")
        .replace(b"Source: 79161234567", b"Source: 102")
        .replace(b"DestinationContext: from-trunk", b"DestinationContext: from-internal")
        .replace(b"Event: Cdr", b"Event: cdr")
    )
    caller, callee = parse(block)
    assert (caller.actor.id, caller.direction) == ("102", Direction.INTERNAL)
    assert (callee.actor.id, callee.direction) == ("101", Direction.INTERNAL)
    assert caller.call_id == callee.call_id == "1795673702.45"


# --- other AMI messages ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "block",
    [
        NEWCHANNEL,
        b"Event: FullyBooted\r\nPrivilege: system,all\r\nStatus: Fully Booted\r\n\r\n",
        b"Event: Hangup\r\nChannel: SIP/101-00000013\r\nCause: 16\r\n\r\n",
        b"Event: CEL\r\nEventName: HANGUP\r\n\r\n",
    ],
)
def test_events_other_than_cdr_are_ignored(block: bytes) -> None:
    assert parse(block) == []


def test_a_response_is_not_an_event() -> None:
    assert reason(b"Response: Success\r\nPing: Pong\r\n\r\n") == "invalid"


# --- dead letters -------------------------------------------------------------------------------


@pytest.mark.parametrize("field", REQUIRED)
def test_missing_field_is_invalid(field: str) -> None:
    error = record_error(parse, without(INCOMING, field))
    assert error.reason == "invalid"
    assert error.detail == f"Cdr event lacks {field}"


@pytest.mark.parametrize("field", ["AccountCode", "CallerID", "LastData", "UserField", "LinkedID"])
def test_fields_not_read_may_be_missing(field: str) -> None:
    assert len(parse(without(INCOMING, field))) == 1


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (b"Duration: 158", b"Duration: -158", "invalid"),
        (b"Disposition: ANSWERED", b"Disposition: MAYBE", "invalid"),
        (b"Sequence: 12", b"Sequence: twelve", "invalid"),
        (b"StartTime: 2026-11-26 09:15:02", b"StartTime: 1795673702", "bad_time"),
        (b"StartTime: 2026-11-26 09:15:02", b"StartTime: ", "bad_time"),
        (b"AnswerTime: 2026-11-26 09:15:09", b"AnswerTime: soon", "bad_time"),
        (b"Privilege: cdr,all", b"Privilege cdr,all", "malformed"),
        (b"Privilege: cdr,all", b": cdr,all", "malformed"),
        (b"Privilege: cdr,all\r\n", b"\r\n", "malformed"),  # a blank line inside
    ],
)
def test_bad_values(old: bytes, new: bytes, expected: str) -> None:
    assert reason(INCOMING.replace(old, new)) == expected


@pytest.mark.parametrize("record", [b"", b"\r\n\r\n", b"  \r\n"])
def test_empty_record_is_malformed(record: bytes) -> None:
    assert reason(record) == "malformed"


def test_a_caller_name_in_another_encoding_does_not_cost_the_cdr() -> None:
    # A Russian installation: the dialplan set CALLERID(name) from a CP1251 phone book.
    block = INCOMING.replace(b'"Client"', '"Иванов Пётр"'.encode("cp1251"))
    assert parse(block) == parse(INCOMING)


@pytest.mark.parametrize("field", ["Source", "DestinationChannel", "Disposition", "LinkedID"])
def test_a_field_read_that_is_not_utf8_is_decode_error(field: str) -> None:
    lines = INCOMING.split(b"\r\n")
    block = b"\r\n".join(
        line + "ж".encode("cp1251") if line.startswith(field.encode() + b":") else line
        for line in lines
    )
    error = record_error(parse, block)
    assert error.reason == "decode_error"
    assert "not UTF-8" in error.detail


@pytest.mark.parametrize("encoding", ["cp1251", "koi8-r"])
def test_fields_read_are_decoded_in_the_configured_encoding(encoding: str) -> None:
    # sip.conf written in the PBX's 8-bit encoding names a trunk peer in Cyrillic.
    block = INCOMING.replace(b"SIP/provider-", "SIP/Офис-".encode(encoding)).replace(
        b'"Client"', '"Иванов"'.encode(encoding)
    )
    parser = AsteriskAmiCdrParser(timezone="Europe/Moscow", encoding=encoding)
    [event] = parser.parse(block, SOURCE)
    assert event == parse(INCOMING)[0]
    assert reason(block) == "decode_error"  # the same bytes are not UTF-8


def test_too_large() -> None:
    parser = AsteriskAmiCdrParser(max_record_bytes=256)
    assert record_error(parser.parse, INCOMING, SOURCE).reason == "too_large"


def test_details_do_not_leak_phone_numbers() -> None:
    error = record_error(
        parse, INCOMING.replace(b"Disposition: ANSWERED", b"Disposition: 79161234567")
    )
    assert "79161234567" not in error.detail


# --- framing --------------------------------------------------------------------------------------


def test_split_keeps_each_block_byte_for_byte() -> None:
    payload = INCOMING + NEWCHANNEL + OUTGOING_NO_ANSWER
    blocks = split_blocks(payload)
    assert blocks == [
        INCOMING.removesuffix(b"\r\n"),
        NEWCHANNEL.removesuffix(b"\r\n"),
        OUTGOING_NO_ANSWER.removesuffix(b"\r\n"),
    ]
    assert AsteriskAmiCdrParser().split(payload) == blocks


def test_split_accepts_lf_extra_blank_lines_and_no_final_blank_line() -> None:
    first = INCOMING.replace(b"\r\n", b"\n").removesuffix(b"\n")
    second = NEWCHANNEL.removesuffix(b"\r\n\r\n")
    payload = b"\r\n \r\n" + first + b"\n\t\n\n" + second
    assert split_blocks(payload) == [first, second]


def test_split_then_parse_yields_the_cdrs_only() -> None:
    parser = AsteriskAmiCdrParser(timezone="Europe/Moscow")
    payload = NEWCHANNEL + INCOMING + NEWCHANNEL + OUTGOING_NO_ANSWER
    events = [event for block in parser.split(payload) for event in parser.parse(block, SOURCE)]
    assert [event.actor.id for event in events] == ["101", "102"]


def test_split_of_nothing() -> None:
    assert split_blocks(b"") == split_blocks(b"\r\n\r\n") == []


def test_lenient_fields_skip_what_strict_refuses() -> None:
    text = "Event: Cdr\r\ngarbage\r\n\r\nUniqueID: 1.2\r\n"
    assert message_fields(text, strict=False) == {"event": "Cdr", "uniqueid": "1.2"}
    with pytest.raises(RecordError):
        message_fields(text)


# --- whatever the bytes, only RecordError -------------------------------------------------------

PARSER = AsteriskAmiCdrParser(timezone="Europe/Berlin")
SAMPLES = [INCOMING, INCOMING_PLAIN, OUTGOING_NO_ANSWER, NEWCHANNEL]
MORE_FUZZ = fuzz_settings(300)
# Blocks with line breaks, colons and digits inserted where they break or shift fields.
MUTATED_BLOCKS = mutated(
    SAMPLES,
    st.sampled_from(
        [b":", b": ", b"\r\n", b"\n", b"\r", b"\r\n\r\n", b"0", b"9", b"-", b".", b"\xff", b"\x00"]
    ),
    max_cut=1,
    max_copy=24,
)


@st.composite
def reshuffled(draw: st.DrawFn) -> bytes:
    """A Cdr block with fields dropped, duplicated or given odd values."""
    lines = draw(st.sampled_from(SAMPLES[:3])).split(b"\r\n")[:-2]
    header, fields = lines[:1], lines[1:]
    fields = draw(st.permutations(fields))
    fields = fields[: draw(st.integers(0, len(fields)))]
    odd = st.sampled_from(
        [b"", b"0", b"-1", b"2026-02-29 10:00:00", b"0001-01-01 00:00:00", b"ANSWERED", b"x"]
    )
    for index in draw(st.lists(st.integers(0, max(len(fields) - 1, 0)), max_size=3)):
        if fields:
            fields[index] = fields[index].split(b":")[0] + b": " + draw(odd)
    return b"\r\n".join(header + fields) + b"\r\n\r\n"


@MORE_FUZZ
@given(record=st.binary(max_size=600))
def test_random_bytes(record: bytes) -> None:
    check(PARSER, record)


@MORE_FUZZ
@given(record=MUTATED_BLOCKS)
def test_mutated_blocks(record: bytes) -> None:
    check(PARSER, record)


@MORE_FUZZ
@given(record=reshuffled())
def test_reshuffled_fields(record: bytes) -> None:
    check(PARSER, record)


@MORE_FUZZ
@given(records=st.lists(MUTATED_BLOCKS, min_size=1, max_size=4))
def test_split_then_parse(records: list[bytes]) -> None:
    # Framing never raises, and every framed piece obeys the same contract.
    for record in PARSER.split(b"".join(records)):
        assert record.strip()
        check(PARSER, record)
