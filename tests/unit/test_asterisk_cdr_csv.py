"""Golden tests for Asterisk cdr_csv lines: each sample is a line Asterisk could have written,
with the expected events worked out by hand."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from processors.parsers import AsteriskCdrCsvParser, RecordError
from processors.parsers._common import Extensions
from processors.parsers.asterisk_cdr_csv import channel_endpoint
from salespulse.models import ActivityEvent, Actor, Direction, SourceFamily, derive_event_id
from tests.unit.parsing_helpers import (
    ASTERISK_INCOMING_CSV,
    asterisk_incoming_event,
    record_error,
    source_of,
    utc,
)

SOURCE = source_of(AsteriskCdrCsvParser, 0, 42)
PHONE = "79161234567"

# From docs/formats.md: a client calls the trunk, the call is answered on extension 101.
INCOMING_ANSWERED = ASTERISK_INCOMING_CSV


def cdr(
    *,
    src: str = PHONE,
    dst: str = "101",
    clid: str = '""Client"" <79161234567>',
    channel: str = "SIP/provider-00000012",
    dstchannel: str = "SIP/101-00000013",
    start: str = "2026-11-26 09:15:02",
    answer: str = "2026-11-26 09:15:09",
    end: str = "2026-11-26 09:17:40",
    duration: str = "158",
    billsec: str = "151",
    disposition: str = "ANSWERED",
    dcontext: str = "from-trunk",
) -> bytes:
    """A line in cdr_csv's layout. ``clid`` is given already CSV-escaped, as it appears."""
    line = (
        f'"","{src}","{dst}","{dcontext}","{clid}","{channel}","{dstchannel}","Dial",'
        f'"SIP/101,30","{start}","{answer}","{end}",{duration},{billsec},"{disposition}",'
        f'"DOCUMENTATION"'
    )
    return line.encode()


def parse(line: bytes, timezone: str = "UTC") -> list[ActivityEvent]:
    return AsteriskCdrCsvParser(timezone=timezone).parse(line, SOURCE)


def reason(line: bytes, timezone: str = "UTC") -> str:
    return record_error(parse, line, timezone).reason


def test_class_attributes() -> None:
    assert AsteriskCdrCsvParser.format_name == "asterisk-cdr-csv"
    assert AsteriskCdrCsvParser.family is SourceFamily.PBX


def test_helper_reproduces_the_documented_example() -> None:
    assert cdr() == INCOMING_ANSWERED


def test_answered_incoming_call_in_utc() -> None:
    [event] = parse(INCOMING_ANSWERED)
    assert event == asterisk_incoming_event(
        event_id=derive_event_id(
            "asterisk-cdr-csv",
            "SIP/provider-00000012",
            "SIP/101-00000013",
            "2026-11-26 09:15:02",
            "callee",
        ),
        source=SOURCE,
        occurred_at=utc("2026-11-26 09:15:02"),
        ended_at=utc("2026-11-26 09:17:40"),
    )
    assert event.channel is None
    assert event.external_ref is None


def test_moscow_local_time_is_converted_to_utc() -> None:
    # Moscow is UTC+3 all year, so 09:15:02 MSK is 06:15:02 UTC.
    [event] = parse(INCOMING_ANSWERED, timezone="Europe/Moscow")
    assert event.occurred_at == utc("2026-11-26 06:15:02")
    assert event.ended_at == utc("2026-11-26 06:17:40")


def test_event_id_ignores_the_configured_zone() -> None:
    [in_utc] = parse(INCOMING_ANSWERED)
    [in_moscow] = parse(INCOMING_ANSWERED, timezone="Europe/Moscow")
    assert in_utc.event_id == in_moscow.event_id


def test_outgoing_no_answer_over_pjsip() -> None:
    line = (
        b'"","102","84951234567","from-internal","""Ivanov"" <102>","PJSIP/102-0000002a",'
        b'"PJSIP/provider-0000002b","Dial","PJSIP/84951234567@provider,60",'
        b'"2026-11-26 10:00:00","","2026-11-26 10:00:31",31,0,"NO ANSWER","DOCUMENTATION"'
    )
    [event] = parse(line)
    assert event.actor == Actor(SourceFamily.PBX, "102")
    assert event.direction is Direction.OUTGOING
    assert event.counterpart == "84951234567"
    assert event.answered is False
    assert (event.duration_seconds, event.talk_seconds) == (31, 0)
    assert event.occurred_at == utc("2026-11-26 10:00:00")
    assert event.event_id == derive_event_id(
        "asterisk-cdr-csv",
        "PJSIP/102-0000002a",
        "PJSIP/provider-0000002b",
        "2026-11-26 10:00:00",
        "caller",
    )


def test_outgoing_busy() -> None:
    line = cdr(
        src="103",
        dst="89031234567",
        clid='""Petrov"" <103>',
        channel="SIP/103-00000040",
        dstchannel="SIP/provider-00000041",
        dcontext="from-internal",
        answer="",
        end="2026-11-26 09:15:06",
        duration="4",
        billsec="0",
        disposition="BUSY",
    )
    [event] = parse(line)
    assert event.actor.id == "103"
    assert event.direction is Direction.OUTGOING
    assert event.answered is False
    assert event.counterpart == "89031234567"


def test_internal_call_yields_one_event_per_extension() -> None:
    line = (
        b'"","101","102","from-internal","""Anna"" <101>","SIP/101-00000050",'
        b'"SIP/102-00000051","Dial","SIP/102,30","2026-11-26 11:00:00","2026-11-26 11:00:04",'
        b'"2026-11-26 11:02:04",124,120,"ANSWERED","DOCUMENTATION"'
    )
    caller, callee = parse(line)
    assert caller.actor == Actor(SourceFamily.PBX, "101")
    assert caller.counterpart == "102"
    assert callee.actor == Actor(SourceFamily.PBX, "102")
    assert callee.counterpart == "101"
    assert caller.direction is callee.direction is Direction.INTERNAL
    assert caller.event_id == derive_event_id(
        "asterisk-cdr-csv", "SIP/101-00000050", "SIP/102-00000051", "2026-11-26 11:00:00", "caller"
    )
    assert callee.event_id == derive_event_id(
        "asterisk-cdr-csv", "SIP/101-00000050", "SIP/102-00000051", "2026-11-26 11:00:00", "callee"
    )
    assert caller.talk_seconds == callee.talk_seconds == 120


def test_queue_call_answered_through_a_local_channel() -> None:
    line = cdr(
        dst="700",
        dstchannel="Local/103@from-queue-00000021;1",
        answer="2026-11-26 09:15:30",
        duration="158",
        billsec="130",
    )
    [event] = parse(line)
    assert event.actor == Actor(SourceFamily.PBX, "103")
    assert event.direction is Direction.INCOMING
    assert event.counterpart == PHONE


def test_empty_answer_field_is_an_unanswered_call() -> None:
    line = cdr(answer="", billsec="0", disposition="NO ANSWER")
    [event] = parse(line)
    assert event.answered is False
    assert event.talk_seconds == 0


@pytest.mark.parametrize("disposition", ["NO ANSWER", "BUSY", "FAILED", "CONGESTION"])
def test_unanswered_leg_has_no_talk_time_whatever_its_billsec(disposition: str) -> None:
    # A FreePBX ring group dials through Local channels; the Local channel was answered by the
    # dialplan, so the leg to 101, whose phone only rang, carries billsec 18 as NO ANSWER.
    line = cdr(
        dst="600",
        dstchannel="Local/101@from-internal-0000000b;1",
        answer="2026-11-26 09:15:05",
        end="2026-11-26 09:15:23",
        duration="21",
        billsec="18",
        disposition=disposition,
    )
    [event] = parse(line)
    assert event.actor.id == "101"
    assert event.answered is False
    assert (event.duration_seconds, event.talk_seconds) == (21, 0)


def test_no_internal_endpoint_attributes_to_the_dialled_number() -> None:
    # The client hung up in the IVR: nobody's phone rang, the DID is all we know.
    line = cdr(
        dst="74951112233",
        dstchannel="",
        answer="2026-11-26 09:15:02",
        billsec="0",
        duration="12",
        end="2026-11-26 09:15:14",
        disposition="ANSWERED",
    )
    [event] = parse(line)
    assert event.actor == Actor(SourceFamily.PBX, "74951112233")
    assert event.direction is Direction.INCOMING
    assert event.counterpart == PHONE
    # No dialled channel to tell this CDR from the channel's others: the key adds its outcome.
    assert event.event_id == derive_event_id(
        "asterisk-cdr-csv",
        "SIP/provider-00000012",
        "",
        "2026-11-26 09:15:02",
        "2026-11-26 09:15:02",
        "2026-11-26 09:15:14",
        "12",
        "0",
        "ANSWERED",
        "callee",
    )


def test_no_internal_endpoint_and_no_dst_is_invalid() -> None:
    assert reason(cdr(dst="", dstchannel="")) == "invalid"


def test_anonymous_caller_has_no_counterpart() -> None:
    [event] = parse(cdr(src=""))
    assert event.counterpart is None


def test_call_across_midnight() -> None:
    line = cdr(
        start="2026-11-26 23:59:50",
        answer="2026-11-26 23:59:55",
        end="2026-11-27 00:01:10",
        duration="80",
        billsec="75",
    )
    [event] = parse(line)
    assert event.occurred_at == utc("2026-11-26 23:59:50")
    assert event.ended_at == utc("2026-11-27 00:01:10")


def test_local_midnight_crossing_is_the_same_utc_day_in_moscow() -> None:
    line = cdr(
        start="2026-11-27 00:00:20",
        answer="2026-11-27 00:00:25",
        end="2026-11-27 00:01:10",
        duration="50",
        billsec="45",
    )
    [event] = parse(line, timezone="Europe/Moscow")
    assert event.occurred_at == utc("2026-11-26 21:00:20")


def test_quoting_quirks_in_clid_and_lastdata() -> None:
    # clid is: "Smith, John ""JJ""" <79161234567> -- embedded comma and doubled quotes.
    line = cdr(clid='""Smith, John """"JJ"""""" <79161234567>')
    [event] = parse(line)
    assert event.actor.id == "101"
    assert event.talk_seconds == 151


def test_dst_fold_is_read_as_the_first_occurrence() -> None:
    # Berlin falls back at 03:00 CEST on 2026-10-25; 02:30 happens twice. fold=0 picks CEST.
    line = cdr(
        start="2026-10-25 02:30:00",
        answer="2026-10-25 02:30:05",
        end="2026-10-25 02:31:00",
        duration="60",
        billsec="55",
    )
    [event] = parse(line, timezone="Europe/Berlin")
    assert event.occurred_at == utc("2026-10-25 00:30:00")


def test_dst_gap_uses_the_offset_before_the_transition() -> None:
    # Berlin springs forward at 02:00 CET on 2026-03-29; 02:30 never happens locally.
    line = cdr(
        start="2026-03-29 02:30:00",
        answer="2026-03-29 02:30:05",
        end="2026-03-29 03:31:00",
        duration="60",
        billsec="55",
    )
    [event] = parse(line, timezone="Europe/Berlin")
    assert event.occurred_at == utc("2026-03-29 01:30:00")
    assert event.ended_at == utc("2026-03-29 01:31:00")


def test_call_spanning_fall_back_keeps_its_end_after_its_start() -> None:
    # Starts 02:59:30 CEST, ends 02:00:30 CET: a minute later, though the wall clock went back.
    line = cdr(
        start="2026-10-25 02:59:30",
        answer="2026-10-25 02:59:40",
        end="2026-10-25 02:00:30",
        duration="60",
        billsec="50",
    )
    [event] = parse(line, timezone="Europe/Berlin")
    assert event.occurred_at == utc("2026-10-25 00:59:30")
    assert event.ended_at == utc("2026-10-25 01:00:30")


def test_same_line_twice_has_the_same_event_id() -> None:
    parser = AsteriskCdrCsvParser()
    [first] = parser.parse(INCOMING_ANSWERED, SOURCE)
    [again] = parser.parse(INCOMING_ANSWERED, SOURCE._replace(offset=9000, position=3))
    assert first.event_id == again.event_id


def test_internal_extension_pattern_is_configurable() -> None:
    # Only 1xx are managers; 201 is a fax, so the call is attributed to the dialled number.
    parser = AsteriskCdrCsvParser(internal_extension_pattern=r"^1\d\d$")
    [event] = parser.parse(cdr(dst="201", dstchannel="SIP/201-00000013"), SOURCE)
    assert event.actor.id == "201"
    assert event.direction is Direction.INCOMING
    [event] = parser.parse(cdr(), SOURCE)
    assert event.actor.id == "101"


# Channel names as each channel driver writes them (ast_channel_alloc formats in the Asterisk
# sources; TELCHAN and BRCM from the iopsys routers' drivers), and the endpoint they name.
CHANNEL_NAMES = [
    # SIP, PJSIP: "<peer>-%08x"; a peer name may contain dashes and underscores.
    ("SIP/101-00000013", "101"),
    ("SIP/provider-00000012", "provider"),
    ("SIP/trunk_name-000000ab", "trunk_name"),
    ("SIP/192.168.1.20-0000001f", "192.168.1.20"),
    ("PJSIP/201-0000001a", "201"),
    ("PJSIP/101-0000002a", "101"),
    ("PJSIP/my-trunk-0000002b", "my-trunk"),
    # IAX2: "<peer>-<call number>"; Asterisk 1.0 wrote "<peer>/<call number>".
    ("IAX2/101-5678", "101"),
    ("IAX2/peer/123", "peer"),
    ("IAX2/101/123", "101"),
    # Local: "<exten>@<context>-%08x;1" (",1" before Asterisk 1.6): the extension.
    ("Local/201@from-internal-00000012;1", "201"),
    ("Local/101@from-internal-0000001;2", "101"),
    ("Local/101@from-queue-4f2a,1", "101"),
    # Skinny, MGCP: "<line>@<device>-<n>".
    ("Skinny/102@SEP001122334455-3", "102"),
    ("MGCP/aaln/1@iptel-gw-1", "aaln/1"),
    # Hardware keeps its technology: DAHDI channel 1, ISDN span 1 (the number is the far end's),
    # a Zaptel channel, a pseudo channel, a router's phone line 5, the console's sound card.
    ("DAHDI/1-1", "DAHDI/1"),
    ("DAHDI/12-2", "DAHDI/12"),
    ("DAHDI/i1/79161234567-1", "DAHDI/i1"),
    ("DAHDI/i2/101-1a", "DAHDI/i2"),
    ("DAHDI/pseudo-1804289383", "DAHDI/pseudo"),
    ("Zap/3-1", "Zap/3"),
    ("TELCHAN/5/1", "TELCHAN/5"),
    ("BRCM/4/0", "BRCM/4"),
    ("Console/dsp", "Console/dsp"),
    # No counter, a masqueraded channel (Asterisk 1.4 to 11), nothing to attribute.
    ("SIP/101", "101"),
    ("SIP/my-trunk", "my-trunk"),
    ("SIP/101-0000000a<ZOMBIE>", "101"),
    ("", None),
    ("garbage", None),
    ("SIP/", None),
    ("SIP/-00000012", None),
    ("DAHDI/-1", None),
]


@pytest.mark.parametrize(("channel", "endpoint"), CHANNEL_NAMES)
def test_channel_endpoint(channel: str, endpoint: str | None) -> None:
    assert channel_endpoint(channel) == endpoint


# (channel, dstchannel, src, dst) → (direction, actor, counterpart), default extension pattern.
CHANNEL_DIRECTIONS = [
    # Today's names: a phone calls out, a trunk's call reaches a phone (also through Local).
    (
        ("PJSIP/201-0000001a", "SIP/trunk_name-000000ab", "201", "84951234567"),
        (Direction.OUTGOING, "201", "84951234567"),
    ),
    (
        ("SIP/trunk_name-000000ab", "Local/201@from-internal-00000012;1", PHONE, "201"),
        (Direction.INCOMING, "201", PHONE),
    ),
    # Asterisk 1.0's IAX2: peer 101 calls out.
    (
        ("IAX2/101/123", "SIP/provider-00000001", "101", "84951234567"),
        (Direction.OUTGOING, "101", "84951234567"),
    ),
    # DAHDI channel 12 (a city line) is not extension 12; nor is ISDN span 1 dialling 112.
    (
        ("DAHDI/12-1", "PJSIP/201-0000001a", PHONE, "201"),
        (Direction.INCOMING, "201", PHONE),
    ),
    (
        ("DAHDI/i1/79161234567-1", "Local/201@from-internal-00000012;1", PHONE, "201"),
        (Direction.INCOMING, "201", PHONE),
    ),
    (
        ("PJSIP/201-0000001a", "DAHDI/i1/112-1", "201", "112"),
        (Direction.OUTGOING, "201", "112"),
    ),
    # An iopsys router: its phone on line 5 is extension 8001, its trunk is SIP account sip0.
    (
        ("TELCHAN/5/1", "SIP/sip0-00000001", "8001", "84951234567"),
        (Direction.OUTGOING, "8001", "84951234567"),
    ),
    (
        ("SIP/sip0-00000015", "TELCHAN/5/25", PHONE, "8001"),
        (Direction.INCOMING, "8001", PHONE),
    ),
]


@pytest.mark.parametrize(("fields", "expected"), CHANNEL_DIRECTIONS)
def test_channel_names_decide_direction(
    fields: tuple[str, str, str, str], expected: tuple[Direction, str, str]
) -> None:
    channel, dstchannel, src, dst = fields
    # A phone's own call enters the dialplan in an internal context, a trunk's in from-trunk.
    dcontext = "from-internal" if expected[0] is Direction.OUTGOING else "from-trunk"
    line = cdr(src=src, dst=dst, channel=channel, dstchannel=dstchannel, dcontext=dcontext)
    [event] = parse(line)
    assert (event.direction, event.actor.id, event.counterpart) == expected


def test_hardware_channels_are_extensions_when_the_pattern_names_them() -> None:
    # A phone on DAHDI channel 3 (an FXS port): the operator names the port in the pattern.
    parser = AsteriskCdrCsvParser(internal_extension_pattern=r"^(\d{2,6}|DAHDI/3)$")
    line = cdr(
        src="102",
        dst="84951234567",
        channel="DAHDI/3-1",
        dstchannel="SIP/provider-1f",
        dcontext="from-internal",
    )
    [event] = parser.parse(line, SOURCE)
    assert (event.direction, event.actor.id) == (Direction.OUTGOING, "DAHDI/3")


def test_split_one_cdr_per_line_skipping_blanks() -> None:
    payload = INCOMING_ANSWERED + b"\r\n\r\n" + INCOMING_ANSWERED + b"\n"
    assert AsteriskCdrCsvParser().split(payload) == [INCOMING_ANSWERED, INCOMING_ANSWERED]


# --- dead letters ---------------------------------------------------------------------------


def test_fifteen_columns_is_malformed() -> None:
    line = INCOMING_ANSWERED.rsplit(b",", 1)[0]
    assert reason(line) == "malformed"


def test_loguniqueid_columns_are_malformed() -> None:
    assert reason(INCOMING_ANSWERED + b',"1764148502.18",""') == "malformed"


def test_stray_quote_is_malformed() -> None:
    assert reason(INCOMING_ANSWERED.replace(b'"Dial"', b'"Di"al"')) == "malformed"


def test_empty_record_is_malformed() -> None:
    assert reason(b"") == "malformed"


def test_billsec_above_duration_is_invalid() -> None:
    assert reason(cdr(duration="100", billsec="151")) == "invalid"


@pytest.mark.parametrize("value", ["-5", "abc", "", "1.5", "1_000", "٣"])
def test_bad_duration_is_invalid(value: str) -> None:
    assert reason(cdr(duration=value)) == "invalid"


def test_end_before_start_is_invalid() -> None:
    assert reason(cdr(end="2026-11-26 09:15:01")) == "invalid"


def test_unknown_disposition_is_invalid() -> None:
    assert reason(cdr(disposition="MAYBE")) == "invalid"


def test_absurd_duration_is_invalid() -> None:
    assert reason(cdr(duration="999999999", billsec="1")) == "invalid"


@pytest.mark.parametrize(
    "value",
    ["yesterday", "2026-11-26T09:15:02", "2026-13-01 09:15:02", "2026-11-26 25:00:00", ""],
)
def test_garbage_start_is_bad_time(value: str) -> None:
    assert reason(cdr(start=value)) == "bad_time"


def test_garbage_answer_is_bad_time() -> None:
    assert reason(cdr(answer="soon")) == "bad_time"


def test_time_beyond_the_calendar_after_conversion_is_bad_time() -> None:
    line = cdr(
        start="0001-01-01 00:00:00",
        answer="",
        end="0001-01-01 00:00:10",
        duration="10",
        billsec="0",
    )
    assert reason(line, timezone="Europe/Moscow") == "bad_time"


# --- text encodings ---------------------------------------------------------------------------


def test_a_caller_name_in_cp1251_does_not_cost_the_cdr() -> None:
    # A Russian installation: Master.csv is UTF-8, but the dialplan set CALLERID(name) from a
    # CP1251 phone book, and cdr_csv copies clid byte for byte.
    line = cdr(clid="CLIENT").replace(b"CLIENT", '""Иванов Пётр"" <79161234567>'.encode("cp1251"))
    assert parse(line) == parse(INCOMING_ANSWERED)


@pytest.mark.parametrize(
    ("field", "line"),
    [
        ("src", cdr(src="X")),
        ("dstchannel", cdr(dstchannel="SIP/X-00000013")),
        ("disposition", cdr(disposition="X")),
        ("start", cdr(start="X")),
    ],
)
def test_a_field_read_that_is_not_utf8_is_decode_error(field: str, line: bytes) -> None:
    error = record_error(parse, line.replace(b"X", "ж".encode("cp1251")))
    assert (error.reason, error.detail) == ("decode_error", f"{field}: not UTF-8")


def test_fields_not_read_may_hold_any_bytes() -> None:
    line = INCOMING_ANSWERED.replace(b'"Dial"', b'"\xff\xfe"').replace(b'"SIP/101,30"', b'"\xd0"')
    assert parse(line) == parse(INCOMING_ANSWERED)


@pytest.mark.parametrize("encoding", ["cp1251", "koi8-r", "CP1251", "windows-1251"])
def test_fields_read_are_decoded_in_the_configured_encoding(encoding: str) -> None:
    # sip.conf written in the PBX's 8-bit encoding names the trunk peer in Cyrillic.
    line = cdr(channel="SIP/Офис-00000012", clid='""Иванов"" <79161234567>')
    parser = AsteriskCdrCsvParser(encoding=encoding)
    [event] = parser.parse(line.decode().encode(encoding), SOURCE)
    assert event.actor.id == "101"
    assert event.event_id == derive_event_id(
        "asterisk-cdr-csv", "SIP/Офис-00000012", "SIP/101-00000013", "2026-11-26 09:15:02", "callee"
    )
    assert reason(line.decode().encode(encoding)) == "decode_error"  # not UTF-8


@pytest.mark.parametrize("encoding", ["no-such-codec", "utf-16", "rot13", "cp037"])
def test_encodings_that_cannot_frame_csv_are_refused(encoding: str) -> None:
    with pytest.raises(ValueError, match=r"not a text encoding|not ASCII-compatible"):
        AsteriskCdrCsvParser(encoding=encoding)


def test_too_large() -> None:
    parser = AsteriskCdrCsvParser(max_record_bytes=100)
    assert record_error(parser.parse, INCOMING_ANSWERED, SOURCE).reason == "too_large"


@pytest.mark.parametrize(
    "line",
    [
        cdr(disposition=PHONE),
        cdr(duration=PHONE + "x"),
        cdr(start=PHONE),
        INCOMING_ANSWERED + b',"79161234567"',
        cdr(src="7" * 300),  # counterpart longer than the model allows
    ],
)
def test_details_do_not_leak_phone_numbers(line: bytes) -> None:
    detail = record_error(parse, line).detail
    assert PHONE not in detail
    assert "7" * 11 not in detail


def outcome(parser: AsteriskCdrCsvParser, line: bytes) -> list[ActivityEvent] | str:
    try:
        return parser.parse(line, SOURCE)
    except RecordError as exc:
        return f"{exc.reason}: {exc.detail}"


# Lines that share minutes, so that one parser reads most of their times from what it converted
# before: valid and invalid seconds in a known minute, answer times, DST folds and gaps.
SHARED_MINUTES = [
    cdr(),
    cdr(start="2026-11-26 09:15:59", answer="2026-11-26 09:16:00", end="2026-11-26 09:17:00"),
    cdr(start="2026-11-26 09:15:60"),
    cdr(end="2026-11-26 09:17:61"),
    cdr(answer="2026-11-26 09:15:99"),
    cdr(answer="2026-11-26 09:15:5"),
    cdr(answer="2026-11-26 09:15:0x"),
    cdr(start="2026-11-26 09:15:02 "),
    cdr(start="2026-11-26T09:15:02"),
    cdr(answer="2026-11-26 09:17:40", end="2026-11-26 09:15:02"),
    cdr(start="2026-10-25 02:30:00", answer="2026-10-25 02:30:05", end="2026-10-25 02:31:00"),
    cdr(start="2026-10-25 02:30:10", answer="", end="2026-10-25 02:30:50", billsec="0"),
    cdr(start="2026-10-25 02:59:30", answer="2026-10-25 02:59:40", end="2026-10-25 02:00:30"),
    cdr(start="2026-10-25 02:00:10", answer="", end="2026-10-25 02:00:40", billsec="0"),
    cdr(start="2026-03-29 02:30:00", answer="2026-03-29 02:30:05", end="2026-03-29 03:31:00"),
    cdr(start="2026-03-29 02:30:30", answer="", end="2026-03-29 03:30:59", billsec="0"),
    cdr(start="0001-01-01 00:00:00", answer="", end="0001-01-01 00:00:10", billsec="0"),
    cdr(start="0001-01-01 00:00:05", answer="", end="0001-01-01 00:00:10", billsec="0"),
    cdr(start="9999-12-31 23:59:00", answer="", end="9999-12-31 23:59:59", billsec="0"),
    cdr(start="9999-12-31 23:59:30", answer="9999-12-31 23:59:31", end="9999-12-31 23:59:59"),
]


@pytest.mark.parametrize("timezone", ["UTC", "Europe/Berlin", "Europe/Moscow", "America/New_York"])
def test_one_parser_reads_every_line_as_a_fresh_parser_would(timezone: str) -> None:
    shared = AsteriskCdrCsvParser(timezone=timezone)
    for _ in range(2):
        for line in SHARED_MINUTES:
            assert outcome(shared, line) == outcome(AsteriskCdrCsvParser(timezone=timezone), line)


def test_the_minutes_remembered_are_bounded() -> None:
    parser = AsteriskCdrCsvParser(timezone="Europe/Berlin")
    for minute in range(5000):
        start = f"2026-11-{1 + minute // 1440:02d} {minute // 60 % 24:02d}:{minute % 60:02d}:07"
        [event] = parser.parse(cdr(start=start, answer="", billsec="0", end=start), SOURCE)
        assert event.occurred_at == utc(start) - timedelta(hours=1)
    assert len(parser._cdr._minutes) <= 4096


def test_extensions_remembered_answer_as_the_pattern_does() -> None:
    extensions = Extensions(r"^1\d\d$")
    candidates = [f"{n}" for n in range(5000)] + ["provider", "1O1", "", None]
    for _ in range(2):
        for candidate in candidates:
            expected = candidate if candidate and re.search(r"^1\d\d$", candidate) else None
            assert extensions.first(candidate) == expected
    assert extensions.first(None, "provider", "", "150", "101") == "150"
