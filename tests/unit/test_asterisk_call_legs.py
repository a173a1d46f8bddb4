"""Legs of one Asterisk call as real PBXs write them (issue 14): which CDRs are distinct legs,
which legs make one call, and which side of a leg is a manager.

The corpus files are in tests/samples/real/asterisk-cdr-csv (see its README for provenance).
"""

from __future__ import annotations

from pathlib import Path

from processors.parsers import AsteriskAmiCdrParser, AsteriskCdrCsvParser
from processors.pipeline import settle_sides
from salespulse.models import ActivityEvent
from tests.unit.parsing_helpers import source_of

CORPUS = Path(__file__).resolve().parents[1] / "samples" / "real" / "asterisk-cdr-csv"
SOURCE = source_of(AsteriskCdrCsvParser, 0, 3)


def corpus_lines(name: str) -> list[bytes]:
    return AsteriskCdrCsvParser().split((CORPUS / name).read_bytes())


def events_of(lines: list[bytes]) -> list[ActivityEvent]:
    """The events of ``lines`` as the pipeline keeps them with nobody in the directory: a CDR
    that names no channel also offers its caller's side, which only a directory can keep."""
    parser = AsteriskCdrCsvParser(columns="auto")
    return [
        event
        for line in lines
        for event in settle_sides(parser.parse(line, SOURCE), lambda _actor, _at: None)
    ]


# --- event ids: distinct legs, one id per CDR ------------------------------------------------


def test_every_distinct_cdr_of_a_ring_group_file_keeps_its_own_id() -> None:
    # fafeitsch-mockdata-cdr: 40 CDRs, channels pseudonymised to NOT_AVAILABLE, so the
    # destination channel tells no leg from another. 11 calls have two CDRs with the same
    # uniqueid and start (e.g. 1497952162.0: NO ANSWER 10 s, then ANSWERED 524/514 s); two of
    # those pairs (1497962869.27, 1498035997.0) are byte-identical lines, which nothing can
    # tell apart. So 40 - 2 = 38 distinct CDRs, one event each (no extension on either side:
    # the event goes to dst), and 38 ids. The old key (uniqueid, dstchannel, start) gave 29:
    # one per call, the other leg lost in storage.
    lines = corpus_lines("fafeitsch-mockdata-cdr.Master.csv")
    assert (len(lines), len(set(lines))) == (40, 38)
    events = events_of(lines)
    assert len(events) == 40
    assert len({event.event_id for event in events}) == 38


def test_the_answered_leg_no_longer_shares_the_id_of_its_unanswered_twin() -> None:
    first, second = events_of(corpus_lines("fafeitsch-mockdata-cdr.Master.csv")[:2])
    assert (first.answered, first.talk_seconds) == (False, 0)
    assert (second.answered, second.talk_seconds) == (True, 514)
    assert first.event_id != second.event_id


def test_cdrs_with_an_empty_destination_channel_differ_by_outcome() -> None:
    # asterisk-testsuite cdrlib-good: one call's CDR repeated with each disposition and an
    # empty dstchannel; line 2 (billsec 7 > duration 5) is invalid. 4 CDRs, 4 ids (was 1).
    lines = corpus_lines("asterisk-testsuite-cdrlib-good.Master.csv")
    events = events_of(lines[:1] + lines[2:])
    assert len(events) == 4
    assert len({event.event_id for event in events}) == 4


def test_a_cdr_read_twice_keeps_one_id() -> None:
    [line] = corpus_lines("asterisk-testsuite-cdrlib-good.Master.csv")[:1]
    parser = AsteriskCdrCsvParser(columns="auto")
    [once] = parser.parse(line, SOURCE)
    [again] = AsteriskCdrCsvParser(columns="uniqueid+userfield").parse(
        line, SOURCE._replace(offset=99, position=4)
    )
    assert once.event_id == again.event_id


def test_the_same_cdr_from_ami_and_from_master_csv_keeps_one_id() -> None:
    # The cdrlib-good ANSWERED CDR (empty DestinationChannel) as cdr_manager sends it.
    ami = b"\r\n".join(
        [
            b"Event: Cdr",
            b"Source: test",
            b"Destination: 100",
            b"DestinationContext: context",
            b'CallerID: "Test User" <test>',
            b"Channel: SIP/test-02897fd8",
            b"DestinationChannel: ",
            b"StartTime: 2009-01-14 23:51:15",
            b"AnswerTime: 2009-01-14 23:51:15",
            b"EndTime: 2009-01-14 23:51:20",
            b"Duration: 5",
            b"BillableSeconds: 5",
            b"Disposition: ANSWERED",
            b"UniqueID: 1231977075.0",
            b"",
            b"",
        ]
    )
    [from_ami] = AsteriskAmiCdrParser().parse(ami, source_of(AsteriskAmiCdrParser))
    [from_csv] = events_of(corpus_lines("asterisk-testsuite-cdrlib-good.Master.csv")[:1])
    assert from_ami.event_id == from_csv.event_id


# --- call ids without linkedid ------------------------------------------------------------------


def test_legs_without_linkedid_are_tied_by_their_uniqueid() -> None:
    # No newcdrcolumns, so no linkedid: the 40 CDRs of fafeitsch-mockdata-cdr carry 29
    # uniqueids (the corpus README counts 29 calls), and the legs of each share it.
    events = events_of(corpus_lines("fafeitsch-mockdata-cdr.Master.csv"))
    assert all(event.call_id for event in events)
    assert len({event.call_id for event in events}) == 29
    first, second = events[:2]
    assert first.call_id == second.call_id == "1497952162.0"


def test_no_uniqueid_and_no_linkedid_is_no_call_id() -> None:
    # The default column set: nothing ties a CDR to another.
    [line] = corpus_lines("asterisk-testsuite-cdrlib-good.Master.csv")[:1]
    default_columns = line.rsplit(b",", 2)[0]
    [event] = AsteriskCdrCsvParser(columns="default").parse(default_columns, SOURCE)
    assert event.call_id is None


# --- answered: by a person, not by the dialplan ---------------------------------------------------


def test_a_cdr_that_dialled_nobody_and_has_no_manager_was_not_answered_by_anyone() -> None:
    # asterisk-testsuite cdrlib-good line 1: SIP/test (not an extension) to 100, ANSWERED by
    # the Hangup application, no dialled channel. The event goes to dst 100 (unattributed);
    # it must not tell consolidation that a person took the call.
    [event] = events_of(corpus_lines("asterisk-testsuite-cdrlib-good.Master.csv")[:1])
    # Nobody answered, so no talk either: the Hangup application's 5 s are nobody's talk.
    assert (event.actor.id, event.answered, event.talk_seconds) == ("100", False, 0)


def test_a_manager_who_dialled_into_the_dialplan_keeps_the_answer() -> None:
    # 101 calls into a conference room (no dialled channel): 101's call was answered.
    line = (
        b'"","101","800","from-internal","""Anna"" <101>","SIP/101-00000060","","ConfBridge",'
        b'"800","2026-11-26 11:00:00","2026-11-26 11:00:00","2026-11-26 11:30:00",1800,1800,'
        b'"ANSWERED","DOCUMENTATION","1795690800.96"'
    )
    [event] = events_of([line])
    assert (event.actor.id, event.answered) == ("101", True)


# --- which side is outside ---------------------------------------------------------------------


def one_cdr(*, src: str, dst: str, dcontext: str, channel: str, dstchannel: str) -> bytes:
    return (
        f'"","{src}","{dst}","{dcontext}","","{channel}","{dstchannel}","Dial","",'
        '"2026-11-26 09:10:00","2026-11-26 09:10:05","2026-11-26 09:11:05",65,60,"ANSWERED",'
        '"DOCUMENTATION","1795684200.192"'
    ).encode()


def sides(line: bytes) -> list[tuple[str, str, str | None]]:
    return [(e.actor.id, e.direction or "", e.counterpart) for e in events_of([line])]


def test_a_trunk_context_puts_party_a_outside_however_its_channel_is_named() -> None:
    for context in ("from-trunk", "from-pstn", "from-external", "from-did-direct"):
        line = one_cdr(
            src="79161110070",
            dst="101",
            dcontext=context,
            channel="SIP/210000-000000c0",
            dstchannel="SIP/101-000000c1",
        )
        assert sides(line) == [("101", "incoming", "79161110070")], context


def test_a_did_as_dst_keeps_the_manager_who_answered() -> None:
    # The client dialled the DID; the dialplan rang 101. Party A is outside (from-trunk), so
    # the phone number in dst is what was dialled in, not a trunk reached by a manager.
    line = one_cdr(
        src="79161110070",
        dst="74951112233",
        dcontext="from-trunk",
        channel="SIP/210000-000000c0",
        dstchannel="SIP/101-000000c1",
    )
    assert sides(line) == [("101", "incoming", "79161110070")]


def test_a_manager_dialling_a_phone_number_reached_a_trunk() -> None:
    for dst in ("79161110071", "+79161110071", "0079161110071"):
        line = one_cdr(
            src="101",
            dst=dst,
            dcontext="from-internal",
            channel="SIP/101-000000d0",
            dstchannel="SIP/210000-000000d1",
        )
        assert sides(line) == [("101", "outgoing", dst)], dst


def test_extensions_calling_each_other_stay_internal() -> None:
    line = one_cdr(
        src="101",
        dst="102",
        dcontext="from-internal",
        channel="SIP/101-000000d0",
        dstchannel="SIP/102-000000d1",
    )
    assert sides(line) == [("101", "internal", "102"), ("102", "internal", "101")]


def test_ami_destination_context_is_read_like_the_dcontext_column() -> None:
    block = b"\r\n".join(
        [
            b"Event: Cdr",
            b"Source: 79161110070",
            b"Destination: 101",
            b"DestinationContext: from-trunk",
            b"Channel: SIP/210000-000000c0",
            b"DestinationChannel: SIP/101-000000c1",
            b"StartTime: 2026-11-26 09:10:00",
            b"AnswerTime: 2026-11-26 09:10:05",
            b"EndTime: 2026-11-26 09:11:05",
            b"Duration: 65",
            b"BillableSeconds: 60",
            b"Disposition: ANSWERED",
            b"UniqueID: 1795684200.192",
            b"",
            b"",
        ]
    )
    [event] = AsteriskAmiCdrParser().parse(block, source_of(AsteriskAmiCdrParser))
    assert (event.actor.id, event.direction) == ("101", "incoming")


# --- a Local channel's second half (issue 14) ---------------------------------------------


def local_half(src: str) -> bytes:
    """The CDR of Local/101@from-queue…;2 dialling 101's phone, for a call from ``src``."""
    return (
        f'"","{src}","101","from-queue","","Local/101@from-queue-000000a1;2","SIP/101-000000a2",'
        '"Dial","SIP/101,,t","2026-11-26 08:00:00","2026-11-26 08:00:05",'
        '"2026-11-26 08:01:40",100,95,"ANSWERED","DOCUMENTATION","1795680000.161"'
    ).encode()


def test_a_local_half_dialling_its_own_extension_is_no_party() -> None:
    # A queue passed a customer to 101: the half is named after 101 and dials 101. Read as a
    # party it made an internal call of 101 with itself; the caller is the customer, src.
    [event] = events_of([local_half("79161110053")])
    assert (event.actor.id, event.direction, event.counterpart) == (
        "101",
        "incoming",
        "79161110053",
    )
    # A colleague's call through the same ring group: an internal call of 102 and 101.
    caller, callee = events_of([local_half("102")])
    assert (caller.actor.id, caller.direction) == ("102", "internal")
    assert (callee.actor.id, callee.direction) == ("101", "internal")
