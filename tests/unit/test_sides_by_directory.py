"""A call record that names no channel: which of its numbers is the manager's is the
directory's to say (issue 14).

fafeitsch's Master.csv files (tests/samples/real/asterisk-cdr-csv) have every channel
pseudonymised to ``NOT_AVAILABLE``, and a FreeSWITCH ``mod_cdr_csv`` line names no channel at
all; their numbers may be anything but short extensions. Before this rule every such record was
an incoming call of its ``dst``, so an employee's outgoing call was an unattributed incoming
call of the customer's number.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from processors.parsers import build_parsers
from processors.pipeline import EVENT_COLUMNS, BatchProcessor, RawMessage
from processors.privacy import PhoneProtector
from salespulse.directory import Directory, parse_directory
from salespulse.sections import ParsingSettings

REAL = Path(__file__).resolve().parents[1] / "samples" / "real"
OFFICE = parse_directory(
    "departments: [{id: sales, timezone: Europe/Berlin}, {id: support, timezone: Europe/Berlin}]\n"
    "managers:\n"
    "  - {id: max, department: sales, identities: [{family: pbx, id: 266-555-0124}]}\n"
    "  - {id: joe, department: support, identities: [{family: pbx, id: 360-555-0162}]}\n",
    suffix=".yaml",
)
NOBODY = parse_directory("departments: []\nmanagers: []\n", suffix=".yaml")
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def line(path: str, number: int) -> bytes:
    return (REAL / path).read_bytes().splitlines()[number - 1]


def rows(
    record: bytes, directory: Directory, fmt: str = "asterisk-cdr-csv"
) -> list[dict[str, object]]:
    processor = BatchProcessor(
        build_parsers(ParsingSettings()),
        lambda: directory,
        PhoneProtector(None),
        max_message_bytes=4096,
        clock=lambda: NOW,
    )
    result = processor.process([RawMessage("pbx", 0, 1, [("sp-format", fmt.encode())], record)])
    assert result.dead_letters == []
    return [dict(zip(EVENT_COLUMNS, row, strict=True)) for row in result.rows]


def who(record: bytes, directory: Directory = OFFICE) -> list[tuple[object, ...]]:
    return [
        (row["manager_id"], row["direction"], row["answered"], row["talk_seconds"])
        for row in rows(record, directory)
    ]


CDR = "asterisk-cdr-csv/fafeitsch-mockdata-cdr.Master.csv"
SMALL = "asterisk-cdr-csv/fafeitsch-mockdata-smallcdr.Master.csv"


def test_an_employee_calling_out_on_a_pseudonymised_channel_makes_an_outgoing_call() -> None:
    # Line 13: context production, 266-555-0124 (Max) dials 379-555-0152, answered, 16 s.
    assert who(line(CDR, 13)) == [("max", "outgoing", 1, 16)]


def test_a_call_between_two_employees_is_internal_for_both() -> None:
    # smallcdr line 11: context support, 360-555-0162 (Joe) dials 266-555-0124 (Max), 168 s.
    assert who(line(SMALL, 11)) == [("joe", "internal", 1, 168), ("max", "internal", 1, 168)]


def test_a_call_to_an_employee_from_a_number_nobody_holds_is_their_incoming_call() -> None:
    # The same call as above with Joe left out of the directory.
    max_only = parse_directory(
        "departments: [{id: sales, timezone: Europe/Berlin}]\n"
        "managers: [{id: max, department: sales, identities: [{family: pbx, id: 266-555-0124}]}]\n",
        suffix=".yaml",
    )
    assert who(line(SMALL, 11), max_only) == [("max", "incoming", 1, 168)]


def test_a_call_from_outside_to_a_group_number_stays_unattributed_and_incoming() -> None:
    # Line 4: context hq, 710-555-0130 calls the company's line 441-555-0103.
    assert who(line(CDR, 4)) == [("", "incoming", 1, 232)]


def test_a_caller_in_a_context_for_calls_from_outside_is_never_the_manager() -> None:
    # Max's number arriving through a trunk context (his mobile, say) calling a group number.
    from_trunk = line(CDR, 13).replace(b'"production"', b'"from-trunk"')
    assert who(from_trunk) == [("", "incoming", 1, 16)]


def test_the_event_keeps_its_id_when_the_directory_learns_the_caller() -> None:
    # Imported before the directory named Max, then replayed: the row is replaced, not doubled.
    (before,) = rows(line(CDR, 13), NOBODY)
    (after,) = rows(line(CDR, 13), OFFICE)
    assert (before["manager_id"], before["direction"]) == ("", "incoming")
    assert (after["manager_id"], after["direction"]) == ("max", "outgoing")
    assert after["event_id"] == before["event_id"]


def test_a_freeswitch_csv_line_from_a_directory_account_is_its_outgoing_call() -> None:
    # ASTPP: SIP account 89990634 dials an international number, answered, 8 s of 14.
    astpp = (REAL / "freeswitch-cdr-csv" / "astpp-issue-144.Master.csv").read_bytes().strip()
    account = parse_directory(
        "departments: [{id: sales, timezone: UTC}]\n"
        "managers: [{id: seller, department: sales,"
        " identities: [{family: pbx, id: '89990634'}]}]\n",
        suffix=".yaml",
    )
    (row,) = rows(astpp, account, "freeswitch-cdr-csv")
    assert (row["manager_id"], row["direction"], row["answered"], row["talk_seconds"]) == (
        "seller",
        "outgoing",
        1,
        8,
    )
    (nobody,) = rows(astpp, NOBODY, "freeswitch-cdr-csv")
    assert (nobody["manager_id"], nobody["direction"]) == ("", "incoming")
