"""CEL calls as the AMI bridge groups them: golden calls, the grouping itself, and fuzzing."""

from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass, replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ingest.ami import CelCalls, CelOptions
from processors.parsers.asterisk_ami_cdr import AsteriskAmiCdrParser, split_blocks
from processors.parsers.asterisk_cel import CEL_MAX_RECORD_BYTES, AsteriskCelCallParser
from salespulse.models import ActivityEvent, Direction, SourceFamily, derive_event_id
from tests.unit.fuzzing import FUZZ, check, mutated, truncated
from tests.unit.parsing_helpers import asterisk_incoming_event, record_error, source_of, utc

SOURCE = source_of(AsteriskCelCallParser, 0, 7)
NS = "asterisk-cdr-csv"
DAY = "2026-11-26"


@dataclass(frozen=True)
class Channel:
    """A channel's identity and dialplan place; calling it gives one CEL event of it, with the
    fields and field order cel_manager writes."""

    name: str
    uniqueid: str
    linkedid: str
    number: str = ""
    caller_name: str = ""
    exten: str = ""
    context: str = ""

    def __call__(
        self,
        event: str,
        time: str,
        *,
        exten: str | None = None,
        app: str = "",
        data: str = "",
        peer: str = "",
        extra: str = "",
    ) -> bytes:
        lines = [
            "Event: CEL",
            "Privilege: call,all",
            f"EventName: {event}",
            "AccountCode: ",
            f"CallerIDnum: {self.number}",
            f"CallerIDname: {self.caller_name}",
            f"CallerIDani: {self.number}",
            "CallerIDrdnis: ",
            "CallerIDdnid: ",
            f"Exten: {self.exten if exten is None else exten}",
            f"Context: {self.context}",
            f"Channel: {self.name}",
            f"Application: {app}",
            f"AppData: {data}",
            f"EventTime: {time if ' ' in time or '.' in time else f'{DAY} {time}'}",
            "AMAFlags: DOCUMENTATION",
            f"UniqueID: {self.uniqueid}",
            f"LinkedID: {self.linkedid}",
            "Userfield: ",
            f"Peer: {peer}",
            "PeerAccount: ",
            f"Extra: {extra}",
        ]
        return ("\r\n".join(lines) + "\r\n\r\n").encode()


def hangup(cause: int, source: str = "", dialstatus: str = "") -> str:
    return f'{{"hangupcause":{cause},"hangupsource":"{source}","dialstatus":"{dialstatus}"}}'


# 1. A client calls the trunk, extension 101 answers: the call of the cdr_manager and
# Master.csv samples (Cdr: Channel SIP/provider-00000012, DestinationChannel SIP/101-00000013).
_trunk = Channel(
    "SIP/provider-00000012",
    "1795673702.45",
    "1795673702.45",
    "79161234567",
    "Client",
    "101",
    "from-trunk",
)
_ext101 = Channel(
    "SIP/101-00000013", "1795673702.46", "1795673702.45", "101", "", "s", "from-internal"
)
_bridge = '{"bridge_id":"5f1d2c3e-0a4b-4c6d-8e9f-0123456789ab","bridge_technology":"simple_bridge"}'
INCOMING_EVENTS = [
    _trunk("CHAN_START", "09:15:02"),
    _trunk("APP_START", "09:15:02", app="Dial", data="SIP/101,30"),
    _ext101("CHAN_START", "09:15:02"),
    _ext101("ANSWER", "09:15:09", app="AppDial", data="(Outgoing Line)"),
    _trunk("ANSWER", "09:15:09", app="Dial", data="SIP/101,30"),
    _ext101("BRIDGE_ENTER", "09:15:09", peer=_trunk.name, extra=_bridge),
    _trunk("BRIDGE_ENTER", "09:15:09", peer=_ext101.name, extra=_bridge),
    _ext101("BRIDGE_EXIT", "09:17:40", peer=_trunk.name, extra=_bridge),
    _ext101("HANGUP", "09:17:40", extra=hangup(16, _ext101.name)),
    _ext101("CHAN_END", "09:17:40"),
    _trunk("BRIDGE_EXIT", "09:17:40", extra=_bridge),
    _trunk("APP_END", "09:17:40", app="Dial", data="SIP/101,30"),
    _trunk("HANGUP", "09:17:40", extra=hangup(16, _ext101.name, "ANSWER")),
    _trunk("CHAN_END", "09:17:40"),
    _trunk("LINKEDID_END", "09:17:40"),
]
INCOMING = b"".join(INCOMING_EVENTS)

# 2. A ring group 101+102 reached through Local channels (as FreePBX builds it); 102 answers
# after 8 s, 101 stops ringing then, the client talks with 102 until 10:03:00.
_t2 = Channel(
    "PJSIP/provider-00000020",
    "1795677600.50",
    "1795677600.50",
    "79161234567",
    "Client",
    "4951112233",
    "from-trunk",
)
_l101a = Channel("Local/101@from-queue-00000001;1", "1795677600.51", _t2.uniqueid, exten="101")
_l101b = Channel("Local/101@from-queue-00000001;2", "1795677600.52", _t2.uniqueid, exten="101")
_l102a = Channel("Local/102@from-queue-00000002;1", "1795677600.53", _t2.uniqueid, exten="102")
_l102b = Channel("Local/102@from-queue-00000002;2", "1795677600.54", _t2.uniqueid, exten="102")
_p101 = Channel("PJSIP/101-00000021", "1795677600.55", _t2.uniqueid, "101", exten="s")
_p102 = Channel("PJSIP/102-00000022", "1795677600.56", _t2.uniqueid, "102", exten="s")
RING_GROUP = b"".join(
    [
        _t2("CHAN_START", "10:00:00"),
        _t2("APP_START", "10:00:00", exten="600", app="Dial", data="Local/101@from-queue&..."),
        _l101a("CHAN_START", "10:00:00"),
        _l101b("CHAN_START", "10:00:00"),
        _l102a("CHAN_START", "10:00:00"),
        _l102b("CHAN_START", "10:00:00"),
        _p101("CHAN_START", "10:00:00"),
        _p102("CHAN_START", "10:00:00"),
        _p102("ANSWER", "10:00:08"),
        _l102b("ANSWER", "10:00:08"),
        _l102a("ANSWER", "10:00:08"),
        _t2("ANSWER", "10:00:08", exten="600"),
        _p101("HANGUP", "10:00:08", extra=hangup(26, "", "CANCEL")),
        _p101("CHAN_END", "10:00:08"),
        _l101b("HANGUP", "10:00:08"),
        _l101b("CHAN_END", "10:00:08"),
        _l101a("HANGUP", "10:00:08"),
        _l101a("CHAN_END", "10:00:08"),
        _t2("BRIDGE_ENTER", "10:00:08", exten="600", peer=_l102a.name),
        _l102a("LOCAL_OPTIMIZE", "10:00:09"),
        _p102("HANGUP", "10:03:00", extra=hangup(16, _p102.name)),
        _p102("CHAN_END", "10:03:00"),
        _l102b("HANGUP", "10:03:00"),
        _l102b("CHAN_END", "10:03:00"),
        _l102a("HANGUP", "10:03:00"),
        _l102a("CHAN_END", "10:03:00"),
        _t2("HANGUP", "10:03:00", exten="600", extra=hangup(16, _p102.name, "ANSWER")),
        _t2("CHAN_END", "10:03:00", exten="600"),
        _t2("LINKEDID_END", "10:03:00", exten="600"),
    ]
)

# 3. 101 calls a customer through the trunk; nobody answers, 101 gives up after 31 s.
_o101 = Channel(
    "SIP/101-0000002a",
    "1795676400.80",
    "1795676400.80",
    "101",
    "Ivanov",
    "84951234567",
    "from-internal",
)
_out = Channel("SIP/provider-0000002b", "1795676400.81", _o101.uniqueid, "101", "Ivanov")
OUTGOING_NO_ANSWER = b"".join(
    [
        _o101("CHAN_START", "10:00:00"),
        _o101("APP_START", "10:00:00", app="Dial", data="SIP/provider/84951234567,60"),
        _out("CHAN_START", "10:00:00", exten="s"),
        _out("HANGUP", "10:00:31", extra=hangup(16, _o101.name)),
        _out("CHAN_END", "10:00:31"),
        _o101("APP_END", "10:00:31", app="Dial"),
        _o101("HANGUP", "10:00:31", extra=hangup(16, _o101.name, "CANCEL")),
        _o101("CHAN_END", "10:00:31"),
        _o101("LINKEDID_END", "10:00:31"),
    ]
)

# 4. 101 calls colleague 201, who answers after 5 s; they talk for two minutes.
_i101 = Channel(
    "PJSIP/101-00000030", "1795680000.90", "1795680000.90", "101", "", "201", "from-internal"
)
_i201 = Channel("PJSIP/201-00000031", "1795680000.91", _i101.uniqueid, "201", exten="s")
INTERNAL = b"".join(
    [
        _i101("CHAN_START", "11:00:00"),
        _i201("CHAN_START", "11:00:00"),
        _i201("ANSWER", "11:00:05"),
        _i101("ANSWER", "11:00:05"),
        _i101("BRIDGE_ENTER", "11:00:05", peer=_i201.name),
        _i201("BRIDGE_ENTER", "11:00:05", peer=_i101.name),
        _i201("BRIDGE_EXIT", "11:02:05"),
        _i201("HANGUP", "11:02:05", extra=hangup(16, _i201.name)),
        _i201("CHAN_END", "11:02:05"),
        _i101("BRIDGE_EXIT", "11:02:05"),
        _i101("HANGUP", "11:02:05", extra=hangup(16, _i201.name, "ANSWER")),
        _i101("CHAN_END", "11:02:05"),
        _i101("LINKEDID_END", "11:02:05"),
    ]
)

# 5. A client reaches 101 (answered at 12:00:05), who blind-transfers the client to 102 at
# 12:01:00; the client's channel goes on in the dialplan at 102, which answers at 12:01:04.
_b = Channel(
    "SIP/provider-00000040",
    "1795683600.100",
    "1795683600.100",
    "79161234567",
    "Client",
    "101",
    "from-trunk",
)
_b101 = Channel("SIP/101-00000041", "1795683600.101", _b.uniqueid, "101", exten="s")
_b102 = Channel("SIP/102-00000042", "1795683600.102", _b.uniqueid, "102", exten="s")
_transfer = (
    '{"extension":"102","context":"from-internal","bridge_id":"9a0b","transferee_channel_name":'
    f'"{_b.name}","transferee_channel_uniqueid":"{_b.uniqueid}"}}'
)
BLIND_TRANSFER = b"".join(
    [
        _b("CHAN_START", "12:00:00"),
        _b101("CHAN_START", "12:00:00"),
        _b101("ANSWER", "12:00:05"),
        _b("ANSWER", "12:00:05"),
        _b("BRIDGE_ENTER", "12:00:05", peer=_b101.name),
        _b101("BRIDGE_ENTER", "12:00:05", peer=_b.name),
        _b101("BLINDTRANSFER", "12:01:00", extra=_transfer),
        _b("BRIDGE_EXIT", "12:01:00"),
        _b101("BRIDGE_EXIT", "12:01:00"),
        _b101("HANGUP", "12:01:00", extra=hangup(16, _b101.name)),
        _b101("CHAN_END", "12:01:00"),
        _b("APP_START", "12:01:00", exten="102", app="Dial", data="SIP/102,30"),
        _b102("CHAN_START", "12:01:00"),
        _b102("ANSWER", "12:01:04"),
        _b("BRIDGE_ENTER", "12:01:04", exten="102", peer=_b102.name),
        _b102("BRIDGE_ENTER", "12:01:04", peer=_b.name),
        _b102("BRIDGE_EXIT", "12:05:00"),
        _b102("HANGUP", "12:05:00", extra=hangup(16, _b102.name)),
        _b102("CHAN_END", "12:05:00"),
        _b("HANGUP", "12:05:00", exten="102", extra=hangup(16, _b102.name, "ANSWER")),
        _b("CHAN_END", "12:05:00", exten="102"),
        _b("LINKEDID_END", "12:05:00", exten="102"),
    ]
)

# 6. A client calls the DID, listens to the IVR and hangs up: no phone ever rang.
_ivr = Channel(
    "SIP/provider-00000050",
    "1795687200.110",
    "1795687200.110",
    "79161234567",
    "Client",
    "4951112233",
    "from-trunk",
)
IVR_ONLY = b"".join(
    [
        _ivr("CHAN_START", "13:00:00"),
        _ivr("ANSWER", "13:00:01", app="Answer"),
        _ivr("APP_START", "13:00:01", exten="s", app="Background", data="welcome"),
        _ivr("HANGUP", "13:00:20", exten="s", extra=hangup(16, _ivr.name)),
        _ivr("CHAN_END", "13:00:20", exten="s"),
        _ivr("LINKEDID_END", "13:00:20", exten="s"),
    ]
)

SAMPLES = [INCOMING, RING_GROUP, OUTGOING_NO_ANSWER, INTERNAL, BLIND_TRANSFER, IVR_ONLY]
PARSER = AsteriskCelCallParser(timezone="Europe/Moscow")


def events_of(record: bytes) -> list[bytes]:
    """The record's AMI messages, each with its closing empty line as the bridge keeps it."""
    return [block + b"\r\n" for block in split_blocks(record)]


def parse(record: bytes, timezone: str = "Europe/Moscow") -> list[ActivityEvent]:
    return AsteriskCelCallParser(timezone=timezone).parse(record, SOURCE)


def reason(record: bytes) -> str:
    return record_error(parse, record).reason


def key(uniqueid: str, dstchannel: str, start: str, side: str) -> str:
    return derive_event_id(NS, uniqueid, dstchannel, start, side)


def summary(event: ActivityEvent) -> tuple[object, ...]:
    return (
        event.actor.id,
        event.direction,
        event.answered,
        event.duration_seconds,
        event.talk_seconds,
        event.counterpart,
        event.call_id,
    )


def test_class_attributes() -> None:
    assert AsteriskCelCallParser.format_name == "asterisk-cel-call"
    assert AsteriskCelCallParser.family is SourceFamily.PBX
    assert PARSER.split(INCOMING) == [INCOMING]  # one call, one record
    assert PARSER.split(b" \r\n") == []


def test_answered_incoming_call_is_the_cdr_of_the_same_call() -> None:
    # The CDR cdr_manager raises for this call (read without Sequence) is the same event:
    # Party A's uniqueid, the dialled channel and the start text make the id either way.
    [event] = parse(INCOMING)
    assert event == asterisk_incoming_event(
        event_id="09150baf1b8d1d1ca9c272679146bf99",
        source=SOURCE,
        occurred_at=utc("2026-11-26 06:15:02"),
        ended_at=utc("2026-11-26 06:17:40"),
        call_id="1795673702.45",
    )
    cdr = (
        b"Event: Cdr\r\nSource: 79161234567\r\nDestination: 101\r\n"
        b"Channel: SIP/provider-00000012\r\nDestinationChannel: SIP/101-00000013\r\n"
        b"StartTime: 2026-11-26 09:15:02\r\nAnswerTime: 2026-11-26 09:15:09\r\n"
        b"EndTime: 2026-11-26 09:17:40\r\nDuration: 158\r\nBillableSeconds: 151\r\n"
        b"Disposition: ANSWERED\r\nUniqueID: 1795673702.45\r\nLinkedID: 1795673702.45\r\n\r\n"
    )
    [from_cdr] = AsteriskAmiCdrParser(timezone="Europe/Moscow").parse(cdr, SOURCE)
    assert event == from_cdr


def test_ring_group_gives_a_leg_per_phone_that_rang_and_skips_local_channels() -> None:
    # Every dial attempt is a leg, as cdr.conf unanswered=yes would log it: 101 rang for 8 s
    # and did not answer, 102 answered; the Local halves between are plumbing, not phones.
    # Consolidation by call_id then applies the ring-group rule.
    events = parse(RING_GROUP)
    assert [summary(e) for e in events] == [
        ("101", Direction.INCOMING, False, 8, 0, "79161234567", "1795677600.50"),
        ("102", Direction.INCOMING, True, 180, 172, "79161234567", "1795677600.50"),
    ]
    assert [e.event_id for e in events] == [
        key("1795677600.50", "PJSIP/101-00000021", "2026-11-26 10:00:00", "callee"),
        key("1795677600.50", "PJSIP/102-00000022", "2026-11-26 10:00:00", "callee"),
    ]
    assert {e.occurred_at for e in events} == {utc("2026-11-26 07:00:00")}


def test_outgoing_call_nobody_answered() -> None:
    # The dialled number is the caller's Exten when it dialled; the trunk's channel is no
    # manager's, so the call is 101's outgoing one.
    [event] = parse(OUTGOING_NO_ANSWER, timezone="UTC")
    assert summary(event) == (
        "101",
        Direction.OUTGOING,
        False,
        31,
        0,
        "84951234567",
        "1795676400.80",
    )
    assert event.occurred_at == utc("2026-11-26 10:00:00")
    assert event.ended_at == utc("2026-11-26 10:00:31")
    assert event.event_id == key(
        "1795676400.80", "SIP/provider-0000002b", "2026-11-26 10:00:00", "caller"
    )


def test_internal_call_is_one_event_per_colleague() -> None:
    events = parse(INTERNAL)
    assert [summary(e) for e in events] == [
        ("101", Direction.INTERNAL, True, 125, 120, "201", "1795680000.90"),
        ("201", Direction.INTERNAL, True, 125, 120, "101", "1795680000.90"),
    ]
    assert events[0].event_id != events[1].event_id


def test_blind_transfer_gives_each_colleague_a_leg_of_one_call() -> None:
    # 101 talked from 12:00:05 until the transfer at 12:01:00; 102 from 12:01:04 to 12:05:00.
    # A leg is timed from the call's start (the client's CHAN_START), so 102's duration covers
    # the whole call while its talk time is exactly its own; both share the call id.
    events = parse(BLIND_TRANSFER)
    assert [summary(e) for e in events] == [
        ("101", Direction.INCOMING, True, 60, 55, "79161234567", "1795683600.100"),
        ("102", Direction.INCOMING, True, 300, 236, "79161234567", "1795683600.100"),
    ]
    assert [e.ended_at for e in events] == [utc("2026-11-26 09:01:00"), utc("2026-11-26 09:05:00")]


def test_a_call_nobody_rang_is_the_originating_channel_alone() -> None:
    # Like a CDR with no destination channel: attributed to the dialled DID, which attribution
    # later reports as nobody's. Only the IVR answered it, so nobody took the call, and its
    # 19 s are nobody's talk.
    [event] = parse(IVR_ONLY)
    assert summary(event) == (
        "4951112233",
        Direction.INCOMING,
        False,
        20,
        0,
        "79161234567",
        "1795687200.110",
    )
    # No dialled channel: the CDR key adds the leg's outcome (answer, end, duration, billsec,
    # disposition), as for a CDR with an empty dstchannel.
    assert event.event_id == derive_event_id(
        NS,
        "1795687200.110",
        "",
        "2026-11-26 13:00:00",
        "2026-11-26 13:00:01",
        "2026-11-26 13:00:20",
        "20",
        "19",
        "ANSWERED",
        "callee",
    )


def test_unix_seconds_give_the_same_times() -> None:
    # cel.conf without dateformat writes Unix seconds with microseconds; the zone is not needed.
    moscow = {
        "09:15:02": "1795673702.000123",
        "09:15:09": "1795673709.5",
        "09:17:40": "1795673860.999",
    }
    record = INCOMING
    for local, epoch in moscow.items():
        record = record.replace(
            f"EventTime: {DAY} {local}".encode(), f"EventTime: {epoch}".encode()
        )
    [event] = parse(record, timezone="America/New_York")
    [wall_clock] = parse(INCOMING)
    assert (event.occurred_at, event.ended_at) == (wall_clock.occurred_at, wall_clock.ended_at)
    assert summary(event) == summary(wall_clock)
    # Keyed on the UTC wall clock: the same id as a usegmtime=yes CDR without a sequence.
    assert event.event_id == key(
        "1795673702.45", "SIP/101-00000013", "2026-11-26 06:15:02", "callee"
    )


def test_ids_do_not_depend_on_arrival_order_or_on_a_resend() -> None:
    blocks = events_of(BLIND_TRANSFER)
    shuffled = b"".join(blocks[::2] + blocks[1::2])
    ids = {e.event_id for e in parse(BLIND_TRANSFER)}
    assert (
        ids == {e.event_id for e in parse(shuffled)} == {e.event_id for e in parse(BLIND_TRANSFER)}
    )


def test_lf_line_ends() -> None:
    assert parse(RING_GROUP.replace(b"\r\n", b"\n")) == parse(RING_GROUP)


def test_an_incomplete_call_keeps_the_legs_that_ended() -> None:
    # Flushed by the bridge before 102 hung up: 101's unanswered leg is complete, 102's is not.
    record = b"".join(b for b in events_of(RING_GROUP) if b"10:03:00" not in b)
    [event] = parse(record)
    assert summary(event)[:3] == ("101", Direction.INCOMING, False)
    assert event.event_id == parse(RING_GROUP)[0].event_id


def test_an_incomplete_call_with_no_complete_leg_is_invalid() -> None:
    record = b"".join(events_of(INCOMING)[:8])  # nobody has hung up yet
    error = record_error(parse, record)
    assert error.reason == "invalid"
    assert "no complete leg" in error.detail
    # Channel names may hold phone numbers: the detail masks them.
    assert error.detail == "no complete leg: 'SIP/<digits>' has no HANGUP or CHAN_END"


def _drop(record: bytes, event: str, channel: Channel) -> bytes:
    return b"".join(
        block
        for block in events_of(record)
        if not (f"EventName: {event}\r".encode() in block and channel.uniqueid.encode() in block)
    )


def test_chan_end_stands_in_for_a_missing_hangup() -> None:
    [event] = parse(_drop(INCOMING, "HANGUP", _ext101))
    assert event.ended_at == utc("2026-11-26 06:17:40")


def test_a_caller_name_in_cp1251_does_not_cost_the_call() -> None:
    # The trunk sent the caller's name in CP1251; cel_manager passes the bytes on. The name is
    # not read, so the call counts as it would without it.
    named = INCOMING.replace(b"CallerIDname: ", "CallerIDname: Иванов".encode("cp1251"))
    assert named != INCOMING
    assert [summary(e) for e in parse(named)] == [summary(e) for e in parse(INCOMING)]
    # Read in the PBX's encoding when the operator names it.
    parser = AsteriskCelCallParser(timezone="Europe/Moscow", encoding="cp1251")
    assert [summary(e) for e in parser.parse(named, SOURCE)] == [
        summary(e) for e in parse(INCOMING)
    ]


@pytest.mark.parametrize(
    ("record", "expected", "detail"),
    [
        (b"", "invalid", "no CEL event"),
        (b"Event: FullyBooted\r\nStatus: Fully Booted\r\n\r\n", "invalid", "no CEL event"),
        (b"Response: Success\r\nActionID: 1\r\n\r\n", "invalid", "no Event field"),
        (INCOMING.replace(b"Channel: SIP/101-00000013", b"no colon here", 1), "malformed", ""),
        (
            INCOMING.replace(b"UniqueID: 1795673702.46", b"UniqueID: 1795673702.46\xff", 1),
            "decode_error",
            "uniqueid: not UTF-8",
        ),
        (INCOMING.replace(b"UniqueID: 1795673702.46", b"UniqueID: ", 1), "invalid", "UniqueID"),
        (INCOMING.replace(b"LinkedID: 1795673702.45", b"LinkedID: 1", 1), "invalid", "more than"),
        (_drop(INCOMING, "CHAN_START", _trunk), "invalid", "no CHAN_START"),
        (
            b"".join(events_of(INCOMING)[2:]).replace(b"45\r\nLinkedID", b"4\r\nLinkedID"),
            "invalid",
            "originating",
        ),
        (INCOMING.replace(b"2026-11-26 09:15:09", b"26.11.2026 09:15:09", 1), "bad_time", ""),
        (INCOMING.replace(b"2026-11-26 09:17:40", b"1795673860.5", 1), "bad_time", "mixes"),
        (INCOMING.replace(b"2026-11-26 09:15:09", b"2026-11-31 09:15:09", 1), "bad_time", ""),
        (
            INCOMING.replace(b"EventTime: 2026-11-26 09:15:09", b"EventTime: 2026-11-26 09:18:00"),
            "invalid",
            "",
        ),  # answered after the hang-up
    ],
)
def test_bad_records(record: bytes, expected: str, detail: str) -> None:
    error = record_error(parse, record)
    assert error.reason == expected
    assert detail in error.detail


def test_a_call_started_by_a_local_channel_is_invalid() -> None:
    # Originate through Local/... (click-to-call): no phone is the originating channel.
    record = INCOMING.replace(b"SIP/provider-00000012", b"Local/101@from-internal-00000003;1")
    assert record_error(parse, record).detail == "the originating channel is a Local channel"


def test_too_large() -> None:
    small = AsteriskCelCallParser(max_record_bytes=1000)
    assert record_error(small.parse, INCOMING, SOURCE).reason == "too_large"
    assert len(INCOMING) < CEL_MAX_RECORD_BYTES


def test_details_do_not_leak_phone_numbers() -> None:
    record = INCOMING.replace(b"2026-11-26 09:15:09", b"79161234567", 1)
    assert "79161234567" not in record_error(parse, record).detail


# --- grouping in the bridge -------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def fields(block: bytes) -> dict[str, str]:
    from ingest.ami_protocol import fields_of

    return fields_of(block)


def feed(calls: CelCalls, blocks: list[bytes]) -> list[tuple[bytes | None, bytes]]:
    out = []
    for block in blocks:
        out += [(r.key, r.value) for r in calls.add(block, fields(block))]
    return out


def test_interleaved_calls_are_written_one_record_each_at_linkedid_end() -> None:
    first, second = events_of(INCOMING), events_of(INTERNAL)
    # As the AMI sends them: the blocks of both calls interleaved.
    blocks = [b for pair in itertools.zip_longest(first, second) for b in pair if b is not None]
    calls = CelCalls(CelOptions(), Clock())
    written = feed(calls, blocks)
    assert written == [(b"1795680000.90", INTERNAL), (b"1795673702.45", INCOMING)]
    assert len(calls) == 0


def test_oldest_call_is_written_incomplete_past_the_open_limit(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls = CelCalls(CelOptions(max_open_calls=1), Clock())
    one, two = INCOMING_EVENTS[0], INTERNAL[: INTERNAL.index(b"\r\n\r\n") + 4]
    assert feed(calls, [one]) == []
    assert feed(calls, [two]) == [(b"1795673702.45", one)]
    assert [(r.key, r.value) for r in calls.drain()] == [(b"1795680000.90", two)]
    assert "more than 1 calls open" in caplog.text


def test_calls_older_than_the_max_age_are_written() -> None:
    clock = Clock()
    calls = CelCalls(CelOptions(max_age_seconds=60), clock)
    feed(calls, INCOMING_EVENTS[:2])
    clock.now = 59.0
    assert calls.expired() == []
    clock.now = 60.0
    assert [(r.key, r.value) for r in calls.expired()] == [
        (b"1795673702.45", b"".join(INCOMING_EVENTS[:2]))
    ]


def test_a_call_over_the_byte_limit_is_written_in_parts() -> None:
    # One byte short of the whole call: all but LINKEDID_END, then LINKEDID_END alone.
    limit = len(INCOMING) - 1
    calls = CelCalls(CelOptions(max_call_bytes=limit), Clock())
    written = feed(calls, INCOMING_EVENTS)
    assert [value for _, value in written] == [
        INCOMING[: -len(INCOMING_EVENTS[-1])],
        INCOMING_EVENTS[-1],
    ]


def test_an_event_without_linkedid_is_written_alone(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    block = INCOMING_EVENTS[0].replace(b"LinkedID: 1795673702.45\r\n", b"")
    calls = CelCalls(CelOptions(), Clock())
    assert feed(calls, [block]) == [(b"1795673702.45", block)]  # keyed by its UniqueID
    assert reason(block) == "invalid"


def test_options_default_to_off_for_settings_without_cel_fields() -> None:
    from ingest.ami_settings import AmiSettings

    ami = AmiSettings(username="u", secret="s")
    assert CelOptions.of(ami) == CelOptions()
    assert replace(CelOptions(), enabled=True).enabled


# --- fuzzing ----------------------------------------------------------------------------------

MUTATED = mutated(
    SAMPLES,
    st.sampled_from(
        [b":", b": ", b"\r\n", b"\r\n\r\n", b"0", b"9", b".", b"-", b" ", b"\xff", b"Local/"]
    ),
    max_cut=24,
    max_copy=200,
)


@st.composite
def reshuffled(draw: st.DrawFn) -> bytes:
    """A call with events dropped, repeated or reordered, and some times replaced."""
    blocks = events_of(draw(st.sampled_from(SAMPLES)))
    blocks = draw(st.lists(st.sampled_from(blocks), max_size=len(blocks) + 3))
    odd = st.sampled_from(
        [b"", b"0", b"1795673702.5", b"2026-02-29 10:00:00", b"0001-01-01 00:00:00",
         b"9999-12-31 23:59:59", b"99999999999.9", b"2026-11-26 09:15:02"]
    )  # fmt: skip
    out = []
    for block in blocks:
        if draw(st.integers(0, 4)) == 0:
            start = block.index(b"EventTime: ") + len(b"EventTime: ")
            block = block[:start] + draw(odd) + block[block.index(b"\r\n", start) :]
        out.append(block + b"\r\n\r\n")
    return b"".join(out)


@FUZZ
@given(record=st.binary(max_size=600))
def test_random_bytes(record: bytes) -> None:
    check(PARSER, record)


@FUZZ
@given(record=MUTATED)
def test_mutated_calls(record: bytes) -> None:
    check(PARSER, record)


@FUZZ
@given(record=truncated(SAMPLES))
def test_truncated_calls(record: bytes) -> None:
    check(PARSER, record)


@FUZZ
@given(record=reshuffled())
def test_reshuffled_calls(record: bytes) -> None:
    check(PARSER, record)
    for timezone in ("UTC", "Europe/Moscow"):
        check(AsteriskCelCallParser(timezone=timezone), record)
