"""The batch pipeline on plain values: framing, dead-letter reasons, lateness, attribution."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from processors.parsers import build_parsers
from processors.pipeline import EVENT_COLUMNS, BatchProcessor, RawMessage
from processors.privacy import PhoneProtector
from salespulse.directory import parse_directory
from salespulse.models import SourceFamily
from salespulse.sections import LatenessSettings, ParsingSettings

DIRECTORY = parse_directory(
    "departments: [{id: vvo, timezone: Asia/Vladivostok}]\n"
    "managers: [{id: petrov, department: vvo, identities: [{family: pbx, id: '201'}]}]\n",
    suffix=".yaml",
)
# An outgoing call from 201 that ended at 10:01:02 UTC (20:01 in Vladivostok).
CDR = (
    b'"","201","79140000001","from-internal","","SIP/201-00000001","SIP/provider-00000002",'
    b'"Dial","","2026-11-26 10:00:00","2026-11-26 10:00:02","2026-11-26 10:01:02",62,60,'
    b'"ANSWERED","DOCUMENTATION"'
)
NOW = datetime(2026, 11, 26, 18, 0, tzinfo=UTC)
PBX = [("sp-format", b"asterisk-cdr-csv")]


def processor() -> BatchProcessor:
    return BatchProcessor(
        build_parsers(ParsingSettings()),
        lambda: DIRECTORY,
        PhoneProtector(None),
        max_message_bytes=4096,
        grace=LatenessSettings().by_family(),
        clock=lambda: NOW,
    )


def column(row: tuple[object, ...], name: str) -> object:
    return row[EVENT_COLUMNS.index(name)]


def test_attribution_and_the_local_day() -> None:
    (row,) = processor().process([RawMessage("pbx", 0, 5, PBX, CDR)]).rows
    assert column(row, "manager_id") == "petrov"
    assert column(row, "local_date") == date(2026, 11, 26)
    assert column(row, "counterpart") == "*********01"  # masked: no hash key configured
    assert (column(row, "source_topic"), column(row, "source_offset")) == ("pbx", 5)


def test_a_number_in_a_meeting_place_is_masked_and_the_rest_kept() -> None:
    visit = (
        b'{"id":"v-1","type":"visit.visit_start","user_id":"201",'
        b'"occurred_at":"2026-11-26T11:00:00+10:00","location":"client home, +7 914 000-00-01"}'
    )
    crm = [("sp-format", b"crm-event-json")]
    (row,) = processor().process([RawMessage("crm", 0, 1, crm, visit)]).rows
    assert column(row, "location") == "client home, *********01"


@pytest.mark.parametrize(
    ("headers", "value", "reason"),
    [
        ([], CDR, "missing_format_header"),
        ([("sp-format", b"fax-cdr")], CDR, "unknown_format"),
        (PBX, CDR + b"x" * 5000, "too_large"),
        (PBX, b"\n  \r\n", "empty"),
        (PBX, CDR.replace(b"2026-11-26", b"2026-11-27"), "future_time"),
    ],
)
def test_messages_that_cannot_be_read_are_dead_letters_with_a_reason(
    headers: list[tuple[str, bytes]], value: bytes, reason: str
) -> None:
    result = processor().process([RawMessage("pbx", 0, 1, headers, value)])
    assert result.rows == []
    assert [(letter.reason, letter.original) for letter in result.dead_letters] == [(reason, value)]


def test_one_bad_line_costs_one_dead_letter_not_its_message() -> None:
    payload = CDR + b"\n" + b'"broken' + b"\n" + CDR.replace(b"00000001", b"00000009")
    result = processor().process([RawMessage("pbx", 0, 1, PBX, payload)])
    assert len(result.rows) == 2
    ((reason, position),) = [(d.reason, d.source.position) for d in result.dead_letters]
    assert (reason, position) == ("malformed", 1)


@pytest.mark.parametrize(
    ("arrived_after_end", "late"),
    [(timedelta(minutes=59), False), (timedelta(minutes=61), True), (timedelta(hours=3), True)],
)
def test_a_cdr_is_late_after_an_hour_from_hangup(arrived_after_end: timedelta, late: bool) -> None:
    ended = datetime(2026, 11, 26, 10, 1, 2, tzinfo=UTC)
    message = RawMessage("pbx", 0, 1, PBX, CDR, received_at=ended + arrived_after_end)
    result = processor().process([message])
    assert [d.reason for d in result.dead_letters] == (["late"] if late else [])
    assert len(result.rows) == (0 if late else 1)


def test_a_backfill_is_never_late() -> None:
    headers = [*PBX, ("sp-backfill", b"1")]
    message = RawMessage("pbx", 0, 1, headers, CDR, received_at=NOW + timedelta(days=30))
    assert len(processor().process([message]).rows) == 1


def test_crm_events_have_a_day_of_grace() -> None:
    event = b'{"id":"e-1","type":"offer.sent","user_id":"u-1","occurred_at":"2026-11-25T12:00:00Z"}'
    crm = [("sp-format", b"crm-event-json")]
    on_time = RawMessage("crm", 0, 1, crm, event, received_at=NOW - timedelta(hours=8))
    late = RawMessage("crm", 0, 2, crm, event, received_at=NOW + timedelta(hours=8))
    result = processor().process([on_time, late])
    assert len(result.rows) == 1
    assert [(d.reason, d.source.offset) for d in result.dead_letters] == [("late", 2)]


def test_a_zero_grace_switches_the_check_off() -> None:
    grace = LatenessSettings(pbx_grace_seconds=0).by_family()
    assert SourceFamily.PBX not in grace
    message = RawMessage("pbx", 0, 1, PBX, CDR, received_at=NOW + timedelta(days=300))
    result = BatchProcessor(
        build_parsers(ParsingSettings()),
        lambda: DIRECTORY,
        PhoneProtector(None),
        max_message_bytes=4096,
        grace=grace,
        clock=lambda: NOW + timedelta(days=300),
    ).process([message])
    assert len(result.rows) == 1


@pytest.mark.parametrize(
    ("value", "backfill"),
    [(b"1", True), (b"true", True), (b"0", False), (b"false", False), (b"", False)],
)
def test_only_an_explicit_yes_marks_a_backfill(value: bytes, backfill: bool) -> None:
    headers = [*PBX, ("sp-backfill", value)]
    message = RawMessage("pbx", 0, 1, headers, CDR, received_at=NOW + timedelta(days=30))
    assert len(processor().process([message]).rows) == (1 if backfill else 0)


# 302 passes from Schmidt to Weber at 01:15 UTC on 2026-10-25, the night Berlin falls back:
# 02:30 happens twice there, at 00:30 UTC (CEST) and at 01:30 UTC (CET).
BERLIN = parse_directory(
    "departments: [{id: ber, timezone: Europe/Berlin}, {id: msk, timezone: Europe/Moscow}]\n"
    "managers:\n"
    "  - {id: schmidt, department: ber, identities: [{family: pbx, id: '302',"
    " valid_to: '2026-10-25T01:15:00Z'}]}\n"
    "  - {id: weber, department: msk, identities: [{family: pbx, id: '302',"
    " valid_from: '2026-10-25T01:15:00Z'}]}\n",
    suffix=".yaml",
)


def call_from_302(start: str, end: str, channel: str) -> bytes:
    return (
        f'"","302","79140000001","from-internal","","SIP/302-{channel}","SIP/provider-00000002",'
        f'"Dial","","{start}","{start}","{end}",30,30,"ANSWERED","DOCUMENTATION"'
    ).encode()


def test_each_call_of_a_batch_goes_to_the_holder_at_its_time_in_that_holders_zone() -> None:
    payload = b"\n".join(
        call_from_302(start, end, channel)
        for start, end, channel in [
            ("2026-10-25 00:30:00", "2026-10-25 00:30:30", "01"),
            ("2026-10-25 01:14:59", "2026-10-25 01:15:29", "02"),
            ("2026-10-25 01:15:00", "2026-10-25 01:15:30", "03"),
            ("2026-10-25 01:30:00", "2026-10-25 01:30:30", "04"),
        ]
    )
    later = datetime(2026, 10, 25, 3, tzinfo=UTC)
    batch = BatchProcessor(
        build_parsers(ParsingSettings()),
        lambda: BERLIN,
        PhoneProtector(None),
        max_message_bytes=4096,
        clock=lambda: later,
    ).process([RawMessage("pbx", 0, 1, PBX, payload), RawMessage("pbx", 0, 2, PBX, payload)])
    rows = batch.rows[:4]
    offset = EVENT_COLUMNS.index("source_offset")
    assert [row[:offset] + row[offset + 1 :] for row in batch.rows[4:]] == [
        row[:offset] + row[offset + 1 :] for row in rows
    ]
    assert [column(row, "manager_id") for row in rows] == ["schmidt", "schmidt", "weber", "weber"]
    assert [column(row, "department_id") for row in rows] == ["ber", "ber", "msk", "msk"]
    zones = [ZoneInfo("Europe/Berlin")] * 2 + [ZoneInfo("Europe/Moscow")] * 2
    for row, zone in zip(rows, zones, strict=True):
        occurred_at = column(row, "occurred_at")
        assert isinstance(occurred_at, datetime)
        expected = occurred_at.astimezone(zone).replace(tzinfo=UTC)
        local_time = column(row, "local_time")
        assert isinstance(local_time, datetime)
        assert (local_time, local_time.tzinfo, local_time.fold) == (expected, UTC, expected.fold)
        assert column(row, "local_date") == expected.date()
    assert [column(row, "local_time") for row in rows] == [
        datetime(2026, 10, 25, 2, 30, tzinfo=UTC),
        datetime(2026, 10, 25, 2, 14, 59, tzinfo=UTC),
        datetime(2026, 10, 25, 4, 15, tzinfo=UTC),
        datetime(2026, 10, 25, 4, 30, tzinfo=UTC),
    ]


def test_the_second_pass_through_a_fall_back_hour_keeps_its_fold() -> None:
    directory = parse_directory(
        "departments: [{id: ber, timezone: Europe/Berlin}]\n"
        "managers: [{id: schmidt, department: ber, identities: [{family: pbx, id: '302'}]}]\n",
        suffix=".yaml",
    )
    payload = b"\n".join(
        [
            call_from_302("2026-10-25 00:30:00", "2026-10-25 00:30:30", "01"),
            call_from_302("2026-10-25 01:30:00", "2026-10-25 01:30:30", "02"),
        ]
    )
    rows = (
        BatchProcessor(
            build_parsers(ParsingSettings()),
            lambda: directory,
            PhoneProtector(None),
            max_message_bytes=4096,
            clock=lambda: datetime(2026, 10, 25, 3, tzinfo=UTC),
        )
        .process([RawMessage("pbx", 0, 1, PBX, payload)])
        .rows
    )
    local_times = [column(row, "local_time") for row in rows]
    assert local_times == [datetime(2026, 10, 25, 2, 30, tzinfo=UTC)] * 2
    assert [getattr(t, "fold", None) for t in local_times] == [0, 1]


def test_an_unattributed_event_keeps_its_utc_time_as_its_wall_clock() -> None:
    payload = call_from_302("2026-11-26 10:00:00", "2026-11-26 10:00:30", "01")
    result = processor().process([RawMessage("pbx", 0, 1, PBX, payload)])
    (row,) = result.rows
    assert column(row, "manager_id") == ""
    assert column(row, "local_time") == column(row, "occurred_at")
    assert column(row, "local_date") == date(2026, 11, 26)
    assert result.unattributed == {"pbx": 1}
    assert type(next(iter(result.unattributed))) is str
    assert [type(value) for value in (column(row, "kind"), column(row, "actor_family"))] == [
        str,
        str,
    ]


def test_format_headers_are_read_the_same_however_often_they_repeat() -> None:
    pipeline = processor()
    headers: list[list[tuple[str, bytes]]] = [
        PBX,
        [],
        [("sp-format", b"fax-cdr")],
        [("sp-format", "сдр".encode() + b"\xff")],
        *([("sp-format", f"fax-{n}".encode())] for n in range(300)),
        PBX,
        [("sp-format", b"")],
    ]
    for _ in range(2):
        result = pipeline.process([RawMessage("pbx", 0, 1, h, CDR) for h in headers])
        assert len(result.rows) == 2
        assert [(d.reason, d.detail, d.source.format) for d in result.dead_letters[:4]] == [
            ("missing_format_header", "no sp-format header", ""),
            ("unknown_format", "no parser for format 'fax-cdr'", "fax-cdr"),
            ("unknown_format", "no parser for format 'сдр\ufffd'", "сдр\ufffd"),
            ("unknown_format", "no parser for format 'fax-0'", "fax-0"),
        ]
        assert result.dead_letters[-1][:2] == ("missing_format_header", "no sp-format header")
        assert len(result.dead_letters) == len(headers) - 2
        assert result.records == {("pbx", "asterisk-cdr-csv"): 2}


def test_a_message_of_too_many_records_is_one_dead_letter() -> None:
    """A megabyte of ``{}`` lines is 340,000 records: as many dead letters stalled a partition
    for 15 s. Past the cap the message is one dead letter, with its bytes, and nothing more."""
    crm = [("sp-format", b"crm-event-json")]
    payload = b"{}\n" * 349_525
    small = BatchProcessor(
        build_parsers(ParsingSettings()),
        lambda: DIRECTORY,
        PhoneProtector(None),
        max_message_bytes=1 << 20,
        max_records_per_message=20_000,
        clock=lambda: NOW,
    )
    result = small.process([RawMessage("crm", 0, 3, crm, payload)])
    assert result.rows == []
    ((reason, detail, original),) = [(d.reason, d.detail, d.original) for d in result.dead_letters]
    assert (reason, detail, original) == (
        "too_many_records",
        "349525 records, limit 20000",
        payload,
    )


def test_a_message_at_the_record_cap_is_read_record_by_record() -> None:
    lines = [CDR.replace(b"00000001", f"{n:08d}".encode()) for n in range(3)]
    capped = BatchProcessor(
        build_parsers(ParsingSettings()),
        lambda: DIRECTORY,
        PhoneProtector(None),
        max_message_bytes=4096,
        max_records_per_message=3,
        clock=lambda: NOW,
    )
    result = capped.process([RawMessage("pbx", 0, 1, PBX, b"\n".join(lines))])
    assert (len(result.rows), result.dead_letters) == (3, [])
    result = capped.process([RawMessage("pbx", 0, 2, PBX, b"\n".join([*lines, lines[0]]))])
    assert [d.reason for d in result.dead_letters] == ["too_many_records"]


# Petrov's mobile, listed in the directory: forwarded calls to it are his.
MOBILE = "79031234567"
WITH_MOBILE = parse_directory(
    "departments: [{id: vvo, timezone: Asia/Vladivostok}]\n"
    "managers: [{id: petrov, department: vvo, identities: [{family: pbx, id: '201'},"
    f" {{family: pbx, id: '{MOBILE}'}}]}}]\n",
    suffix=".yaml",
)


def cdr(src: str, dst: str, channel: str, dstchannel: str) -> bytes:
    return (
        f'"","{src}","{dst}","from-internal","","{channel}","{dstchannel}","Dial","",'
        '"2026-11-26 10:00:00","2026-11-26 10:00:02","2026-11-26 10:01:02",62,60,'
        '"ANSWERED","DOCUMENTATION"'
    ).encode()


def keyed_rows(*records: bytes) -> list[tuple[object, ...]]:
    """The rows of ``records`` through a processor with a hash key and ``WITH_MOBILE``."""
    pipeline = BatchProcessor(
        build_parsers(ParsingSettings()),
        lambda: WITH_MOBILE,
        PhoneProtector(b"k"),
        max_message_bytes=4096,
        clock=lambda: NOW,
    )
    return pipeline.process([RawMessage("pbx", 0, 1, PBX, b"\n".join(records))]).rows


TOKEN = PhoneProtector(b"k").protect


def test_a_named_peer_calling_out_stores_the_outside_number_protected() -> None:
    # "ivanova" is not an extension by the default pattern, so the dialled number is the actor.
    (row,) = keyed_rows(cdr("ivanova", "79161234567", "SIP/ivanova-01", "SIP/provider-02"))
    assert column(row, "actor_id") == TOKEN("79161234567")
    assert column(row, "counterpart") == "ivanova"
    assert column(row, "manager_id") == ""
    assert not [value for value in row if "9161234567" in str(value)]


def test_an_internal_extension_stays_in_clear_and_is_attributed() -> None:
    (row,) = keyed_rows(cdr("201", "79161234567", "SIP/201-01", "SIP/provider-02"))
    assert (column(row, "actor_id"), column(row, "manager_id")) == ("201", "petrov")
    assert column(row, "counterpart") == TOKEN("79161234567")


def test_a_trunk_to_trunk_forward_protects_both_numbers_alike_and_keeps_attribution() -> None:
    forward = cdr("74951112233", MOBILE, "SIP/provider-01", "SIP/provider-02")
    to_mobile = cdr("201", MOBILE, "SIP/201-03", "SIP/provider-04")
    stranger = cdr("74951112233", "79169998877", "SIP/provider-05", "SIP/provider-06")
    forwarded, called, unknown = keyed_rows(forward, to_mobile, stranger)
    # Looked up as the PBX wrote it, stored as the token it has wherever it appears.
    assert column(forwarded, "manager_id") == "petrov"
    assert column(forwarded, "actor_id") == column(called, "counterpart") == TOKEN(MOBILE)
    assert column(forwarded, "counterpart") == column(unknown, "counterpart")
    assert column(forwarded, "counterpart") == TOKEN("74951112233")
    assert (column(unknown, "actor_id"), column(unknown, "manager_id")) == (
        TOKEN("79169998877"),
        "",
    )


# --- an extension-shaped identity nobody holds, next to a manager (issue 14) -------------------

# 201 (Petrov) and 202 (nobody's) call each other; no trunk context, no dialled phone number.
INTERNAL_TEMPLATE = (
    '"","{a}","{b}","from-internal","","SIP/{a}-00000001","SIP/{b}-00000002","Dial","",'
    '"2026-11-26 10:00:00","2026-11-26 10:00:02","2026-11-26 10:01:02",62,60,"ANSWERED",'
    '"DOCUMENTATION"'
)


def directions(a: str, b: str) -> list[tuple[object, object, object]]:
    line = INTERNAL_TEMPLATE.format(a=a, b=b).encode()
    rows = processor().process([RawMessage("pbx", 0, 1, PBX, line)]).rows
    return [(column(r, "actor_id"), column(r, "manager_id"), column(r, "direction")) for r in rows]


def test_a_manager_calling_an_identity_nobody_holds_calls_outside() -> None:
    assert directions("201", "202") == [("201", "petrov", "outgoing")]


def test_an_identity_nobody_holds_calling_a_manager_is_an_incoming_call() -> None:
    assert directions("202", "201") == [("201", "petrov", "incoming")]


def test_two_identities_nobody_holds_stay_an_internal_call() -> None:
    # The directory may lack both: they stay visible to `salespulse directory unknown`.
    assert directions("302", "303") == [("302", "", "internal"), ("303", "", "internal")]
