"""cdr_csv column sets: every combination of loguniqueid, loguserfield and newcdrcolumns, given
explicitly or recognised per line, with lines written the way cdr_csv.c writes them."""

from __future__ import annotations

import csv

import pytest
from hypothesis import given
from hypothesis import strategies as st

from processors.parsers import AsteriskCdrCsvParser
from salespulse.models import ActivityEvent, Direction, derive_event_id
from salespulse.sections import AsteriskCdrColumns
from tests.unit.fuzzing import check, fuzz_settings, mutated
from tests.unit.parsing_helpers import (
    ASTERISK_INCOMING_CSV,
    asterisk_incoming_event,
    record_error,
    source_of,
    utc,
)

SOURCE = source_of(AsteriskCdrCsvParser, 0, 7)
NS = "asterisk-cdr-csv"

# A client calls the Moscow office's trunk (local time, usegmtime=no); extension 101 answers.
# The trunk channel is Party A: its uniqueid is also the call's linkedid.
BASE = ASTERISK_INCOMING_CSV
UNIQUEID = "1795673702.45"
LINKEDID = "1795673702.45"
SEQUENCE = "12"
# The columns each option appends, as cdr_csv writes them: strings quoted, sequence a bare %d.
UNIQUEID_COLUMN = b',"1795673702.45"'
USERFIELD_COLUMN = b',"campaign=spring, ""VIP"""'
NEW_COLUMNS = b',"","1795673702.45",12'

LINES: dict[str, bytes] = {
    "default": BASE,
    "uniqueid": BASE + UNIQUEID_COLUMN,
    "userfield": BASE + USERFIELD_COLUMN,
    "uniqueid+userfield": BASE + UNIQUEID_COLUMN + USERFIELD_COLUMN,
    "new": BASE + NEW_COLUMNS,
    "uniqueid+new": BASE + UNIQUEID_COLUMN + NEW_COLUMNS,
    "userfield+new": BASE + USERFIELD_COLUMN + NEW_COLUMNS,
    "all": BASE + UNIQUEID_COLUMN + USERFIELD_COLUMN + NEW_COLUMNS,
}
WIDTHS = {
    "default": 16,
    "uniqueid": 17,
    "userfield": 17,
    "uniqueid+userfield": 18,
    "new": 19,
    "uniqueid+new": 20,
    "userfield+new": 20,
    "all": 21,
}

DEFAULT_ID = derive_event_id(
    NS, "SIP/provider-00000012", "SIP/101-00000013", "2026-11-26 09:15:02", "callee"
)
UNIQUEID_ONLY_ID = derive_event_id(
    NS, UNIQUEID, "SIP/101-00000013", "2026-11-26 09:15:02", "callee"
)
UNIQUEID_SEQUENCE_ID = derive_event_id(NS, UNIQUEID, SEQUENCE, "callee")
# (event id, call id) per column set: the linkedid, else the uniqueid, else none.
EXPECTED: dict[str, tuple[str, str | None]] = {
    "default": (DEFAULT_ID, None),
    "uniqueid": (UNIQUEID_ONLY_ID, UNIQUEID),
    "userfield": (DEFAULT_ID, None),
    "uniqueid+userfield": (UNIQUEID_ONLY_ID, UNIQUEID),
    "new": (DEFAULT_ID, LINKEDID),
    "uniqueid+new": (UNIQUEID_SEQUENCE_ID, LINKEDID),
    "userfield+new": (DEFAULT_ID, LINKEDID),
    "all": (UNIQUEID_SEQUENCE_ID, LINKEDID),
}


def parse(
    line: bytes, columns: AsteriskCdrColumns, timezone: str = "Europe/Moscow"
) -> list[ActivityEvent]:
    return AsteriskCdrCsvParser(timezone=timezone, columns=columns).parse(line, SOURCE)


def reason(line: bytes, columns: AsteriskCdrColumns) -> str:
    return record_error(parse, line, columns).reason


def test_samples_have_the_documented_widths() -> None:
    assert set(LINES) == set(WIDTHS) == set(EXPECTED)
    for name, line in LINES.items():
        # Commas inside quotes do not count; the csv module is the referee.
        assert len(next(csv.reader([line.decode()]))) == WIDTHS[name], name


@pytest.mark.parametrize("columns", sorted(LINES))
def test_each_column_set_when_configured(columns: AsteriskCdrColumns) -> None:
    [event] = parse(LINES[columns], columns)
    event_id, call_id = EXPECTED[columns]
    assert event == asterisk_incoming_event(
        event_id=event_id,
        source=SOURCE,
        occurred_at=utc("2026-11-26 06:15:02"),
        ended_at=utc("2026-11-26 06:17:40"),
        call_id=call_id,
    )


@pytest.mark.parametrize("columns", sorted(LINES))
def test_auto_recognises_each_column_set(columns: AsteriskCdrColumns) -> None:
    assert parse(LINES[columns], "auto") == parse(LINES[columns], columns)


def test_default_column_set_keeps_its_historic_event_id() -> None:
    # The id docs/formats.md gives for this line: events stored before column sets existed
    # keep their ids, whether the line is read as "default" or recognised by "auto".
    for columns in ("default", "auto"):
        [event] = parse(BASE, columns, timezone="UTC")
        assert event.event_id == DEFAULT_ID == "dd2c0648821ab3a0baa24cb63bad5be3"


# --- the 17- and 20-field ambiguity ------------------------------------------------------------


@pytest.mark.parametrize(
    ("seventeenth", "as_uniqueid"),
    [
        (b'"1795673702.45"', True),
        (b'"pbx-msk-1795673702.45"', True),  # asterisk.conf systemname=pbx-msk
        (b'"campaign=spring"', False),
        (b'""', False),  # an empty userfield
        (b'"12.50"', False),  # a price in the userfield is not a uniqueid
        (b'"1795673702"', False),
    ],
)
def test_auto_reads_17_fields_by_the_look_of_the_17th(
    seventeenth: bytes, as_uniqueid: bool
) -> None:
    line = BASE + b"," + seventeenth
    uniqueid = seventeenth.strip(b'"').decode()
    [event] = parse(line, "auto")
    expected = (
        derive_event_id(NS, uniqueid, "SIP/101-00000013", "2026-11-26 09:15:02", "callee")
        if as_uniqueid
        else DEFAULT_ID
    )
    assert event.event_id == expected
    assert event == parse(line, "uniqueid" if as_uniqueid else "userfield")[0]


@pytest.mark.parametrize(
    ("seventeenth", "columns"),
    [(b'"1795673702.45"', "uniqueid+new"), (b'"campaign=spring"', "userfield+new")],
)
def test_auto_reads_20_fields_the_same_way(seventeenth: bytes, columns: AsteriskCdrColumns) -> None:
    line = BASE + b"," + seventeenth + NEW_COLUMNS
    assert parse(line, "auto") == parse(line, columns)
    [event] = parse(line, "auto")
    assert event.call_id == LINKEDID


def test_auto_decides_per_line() -> None:
    # A reload with newcdrcolumns=yes changes the width mid-file; each line is read on its own.
    parser = AsteriskCdrCsvParser(timezone="Europe/Moscow", columns="auto")
    [before] = parser.parse(LINES["default"], SOURCE)
    [after] = parser.parse(LINES["all"], SOURCE)
    assert before.call_id is None
    assert after.call_id == LINKEDID


# --- linkedid, uniqueid and sequence ------------------------------------------------------------


def new_columns(*, linkedid: str = LINKEDID, sequence: str = SEQUENCE) -> bytes:
    return f',"","{linkedid}",{sequence}'.encode()


def test_linkedid_becomes_the_call_id_of_every_leg() -> None:
    internal = (
        b'"","101","102","from-internal","""Anna"" <101>","SIP/101-00000050","SIP/102-00000051",'
        b'"Dial","SIP/102,30","2026-11-26 11:00:00","2026-11-26 11:00:04","2026-11-26 11:02:04",'
        b'124,120,"ANSWERED","DOCUMENTATION","1795680000.60","","","1795680000.60",31'
    )
    caller, callee = parse(internal, "all")
    assert caller.call_id == callee.call_id == "1795680000.60"
    assert caller.event_id == derive_event_id(NS, "1795680000.60", "31", "caller")
    assert callee.event_id == derive_event_id(NS, "1795680000.60", "31", "callee")


def test_empty_linkedid_is_no_call_id() -> None:
    [event] = parse(BASE + new_columns(linkedid=""), "new")
    assert event.call_id is None


def test_uniqueid_based_ids_are_stable_across_resends_and_zones() -> None:
    first = AsteriskCdrCsvParser(timezone="Europe/Moscow", columns="all")
    again = AsteriskCdrCsvParser(timezone="UTC", columns="auto")
    [one] = first.parse(LINES["all"], SOURCE)
    [two] = again.parse(LINES["all"], SOURCE._replace(partition=3, offset=9000, position=5))
    assert one.event_id == two.event_id == UNIQUEID_SEQUENCE_ID


def test_cdrs_of_one_channel_differ_by_sequence() -> None:
    # 101 transfers the client to 102: Party A (the trunk channel, same uniqueid) gets a second
    # CDR with the next sequence number. Both legs must survive deduplication.
    transferred = (
        b'"","79161234567","101","from-trunk","""Client"" <79161234567>","SIP/provider-00000012",'
        b'"SIP/102-00000015","Dial","SIP/101,30","2026-11-26 09:16:20","2026-11-26 09:16:20",'
        b'"2026-11-26 09:17:40",80,80,"ANSWERED","DOCUMENTATION","1795673702.45","",'
        b'"1795673702.45",13'
    )
    [to_101] = parse(LINES["uniqueid+new"], "uniqueid+new")
    [to_102] = parse(transferred, "uniqueid+new")
    assert to_102.actor.id == "102"
    assert to_101.event_id != to_102.event_id
    assert to_101.call_id == to_102.call_id == LINKEDID


def test_cdrs_of_one_channel_without_sequence_differ_by_destination() -> None:
    to_102 = LINES["uniqueid"].replace(b"SIP/101-00000013", b"SIP/102-00000015")
    [first] = parse(LINES["uniqueid"], "uniqueid")
    [second] = parse(to_102, "uniqueid")
    assert first.event_id != second.event_id


def test_empty_uniqueid_falls_back_to_the_default_key() -> None:
    [event] = parse(BASE + b',""', "uniqueid")
    assert event.event_id == DEFAULT_ID


@pytest.mark.parametrize("value", ["x", "-1", "1.5", "12345678901"])
def test_sequence_that_is_not_an_integer_is_invalid(value: str) -> None:
    assert reason(BASE + new_columns(sequence=value), "new") == "invalid"


def test_long_linkedid_is_invalid() -> None:
    assert reason(BASE + new_columns(linkedid="9" * 129), "new") == "invalid"


# --- quoting, times ------------------------------------------------------------------------------


def test_unanswered_call_with_the_bare_empty_answer_cdr_csv_writes() -> None:
    # cdr_csv writes an unset time as nothing at all between the commas, not as "".
    line = (
        b'"","102","84951234567","from-internal","""Ivanov, Petr"" <102>","PJSIP/102-0000002a",'
        b'"PJSIP/provider-0000002b","Dial","PJSIP/84951234567@provider,60,tT",'
        b'"2026-11-26 10:00:00",,"2026-11-26 10:00:31",31,0,"NO ANSWER","DOCUMENTATION",'
        b'"1795676400.80","said ""call back"", later","","1795676400.80",44'
    )
    [event] = parse(line, "auto", timezone="UTC")
    assert event.answered is False
    assert event.direction is Direction.OUTGOING
    assert event.counterpart == "84951234567"
    assert event.occurred_at == utc("2026-11-26 10:00:00")
    assert event.event_id == derive_event_id(NS, "1795676400.80", "44", "caller")


def test_gmt_times_with_usegmtime_yes() -> None:
    gmt = LINES["all"].replace(b"2026-11-26 09:", b"2026-11-26 06:")
    [event] = parse(gmt, "all", timezone="UTC")
    [local] = parse(LINES["all"], "all", timezone="Europe/Moscow")
    assert event.occurred_at == local.occurred_at == utc("2026-11-26 06:15:02")
    assert event.ended_at == local.ended_at
    assert event.event_id == local.event_id  # the sequence key holds no time


def test_stray_quote_in_an_optional_column_is_malformed() -> None:
    assert reason(BASE + b',"17956"73702.45"', "auto") == "malformed"


# --- wrong widths --------------------------------------------------------------------------------


@pytest.mark.parametrize("columns", sorted(LINES))
def test_a_line_of_another_width_is_malformed_when_the_set_is_configured(
    columns: AsteriskCdrColumns,
) -> None:
    for other, line in LINES.items():
        if WIDTHS[other] != WIDTHS[columns]:
            error = record_error(parse, line, columns)
            assert error.reason == "malformed"
            assert f"expected {WIDTHS[columns]} fields" in error.detail


@pytest.mark.parametrize("extra", [b"", b',"a","b","c","d","e","f"'])
def test_auto_rejects_widths_no_column_set_has(extra: bytes) -> None:
    line = BASE.rsplit(b",", 1)[0] if not extra else BASE + extra
    error = record_error(parse, line, "auto")
    assert error.reason == "malformed"
    assert "16 to 21" in error.detail


def test_unknown_column_set_is_refused() -> None:
    with pytest.raises(ValueError, match="column set"):
        AsteriskCdrCsvParser(columns="loguniqueid")  # type: ignore[arg-type]


# --- cdr_custom's Master.csv template ------------------------------------------------------------

# The same CDR as BASE + new columns, written by cdr_custom with the Master.csv mapping of
# cdr_custom.conf.sample: clid first, every value CSV_QUOTEd except ${CDR(sequence)}, accountcode
# after amaflags, then uniqueid and userfield; no linkedid.
CUSTOM = (
    b'"""Client"" <79161234567>","79161234567","101","from-trunk","SIP/provider-00000012",'
    b'"SIP/101-00000013","Dial","SIP/101,30","2026-11-26 09:15:02","2026-11-26 09:15:09",'
    b'"2026-11-26 09:17:40","158","151","ANSWERED","DOCUMENTATION","","1795673702.45","",12'
)
# An outgoing call nobody answered: CDR(answer) of an unanswered call is empty, quoted.
CUSTOM_NO_ANSWER = (
    b'"""Ivanov"" <102>","102","84951234567","from-internal","PJSIP/102-0000002a",'
    b'"PJSIP/provider-0000002b","Dial","PJSIP/84951234567@provider,60","2026-11-26 10:00:00",'
    b'"","2026-11-26 10:00:31","31","0","NO ANSWER","DOCUMENTATION","sales","1795676400.80",'
    b'"",44'
)


def test_custom_sample_has_19_fields() -> None:
    assert len(next(csv.reader([CUSTOM.decode()]))) == 19 == WIDTHS["new"]


@pytest.mark.parametrize("columns", ["auto", "custom"])
def test_cdr_custom_master_template_is_read(columns: AsteriskCdrColumns) -> None:
    [event] = parse(CUSTOM, columns)
    # uniqueid and sequence make the id: the same as the CDR read from cdr_csv or AMI with them.
    assert event == asterisk_incoming_event(
        event_id=UNIQUEID_SEQUENCE_ID,
        source=SOURCE,
        occurred_at=utc("2026-11-26 06:15:02"),
        ended_at=utc("2026-11-26 06:17:40"),
        # No linkedid in the template: Party A's uniqueid ties the call's legs.
        call_id=UNIQUEID,
    )
    assert event.event_id == parse(LINES["uniqueid+new"], "auto")[0].event_id


def test_cdr_custom_unanswered_call() -> None:
    [event] = parse(CUSTOM_NO_ANSWER, "auto", timezone="UTC")
    assert (event.actor.id, event.direction, event.answered) == ("102", Direction.OUTGOING, False)
    assert event.event_id == derive_event_id(NS, "1795676400.80", "44", "caller")


def test_auto_tells_the_19_field_sets_apart_per_line() -> None:
    parser = AsteriskCdrCsvParser(timezone="Europe/Moscow", columns="auto")
    [new] = parser.parse(LINES["new"], SOURCE)
    [custom] = parser.parse(CUSTOM, SOURCE)
    assert (new.call_id, custom.call_id) == (LINKEDID, UNIQUEID)


@pytest.mark.parametrize(
    ("line", "configured", "found"), [(CUSTOM, "new", "custom"), (LINES["new"], "custom", "new")]
)
def test_the_other_19_field_set_is_refused_by_name(
    line: bytes, configured: AsteriskCdrColumns, found: str
) -> None:
    error = record_error(parse, line, configured)
    assert error.reason == "malformed"
    assert error.detail == f"the line has the {found} column set, not the configured {configured}"


def test_cdr_custom_with_an_unknown_disposition_says_so() -> None:
    # ast_cdr_disp2str's fallback; recognised by its times, the line is not a bad_time.
    line = CUSTOM.replace(b'"ANSWERED"', b'"UNKNOWN"')
    error = record_error(parse, line, "auto")
    assert (error.reason, error.detail) == ("invalid", "unknown disposition 'UNKNOWN'")


def test_cdr_custom_high_resolution_durations_are_invalid() -> None:
    # The sample's second mapping writes ${CDR(duration,f)}: seconds with a fraction.
    line = CUSTOM.replace(b'"158","151"', b'"158.204518","151.030223"')
    assert reason(line, "auto") == "invalid"


# --- whatever the bytes, only RecordError ---------------------------------------------------------

AUTO = AsteriskCdrCsvParser(timezone="Europe/Berlin", columns="auto")
# Lines of every column set and of the cdr_custom template, kept near-valid: digits and
# separators, and optional columns.
MUTATED_LINES = mutated(
    sorted([*LINES.values(), CUSTOM, CUSTOM_NO_ANSWER]),
    st.sampled_from([b',""', b',"1795673702.45"', b",12", b'"']),
    overwrite=st.sampled_from(b'",.0123456789-x\xff '),
    max_cut=1,
)


@fuzz_settings(300)
@given(line=MUTATED_LINES)
def test_mutated_lines_raise_only_record_errors(line: bytes) -> None:
    check(AUTO, line)
