"""Rows of FreePBX's ``asteriskcdrdb.cdr`` read as the Asterisk CDRs they are.

The row below is the CDR of ``ASTERISK_INCOMING_CSV`` as ``cdr_adaptive_odbc`` writes it into
FreePBX's table: a client calls the Moscow office's trunk at 09:15:02 PBX time, extension 101
answers, 158 s in all, 151 s of talk. FreePBX's table has no ``answer`` or ``end`` column, so
the end is 09:15:02 + 158 s = 09:17:40, the ``end`` the CSV line writes. With the uniqueid and
sequence Master.csv carries with ``newcdrcolumns``, both give one event id: the same call from
the table and from the file counts once.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from processors.parsers import AsteriskCdrCsvParser, AsteriskCdrDbParser
from salespulse.models import Direction
from tests.unit.parsing_helpers import ASTERISK_INCOMING_CSV, record_error, source_of, utc

SOURCE = source_of(AsteriskCdrDbParser, 0, 3)
# A FreePBX 16 row: every column of its schema, the ones salespulse reads among them.
ROW: dict[str, Any] = {
    "calldate": "2026-11-26 09:15:02",
    "clid": '"Client" <79161234567>',
    "src": "79161234567",
    "dst": "101",
    "dcontext": "from-trunk",
    "channel": "SIP/provider-00000012",
    "dstchannel": "SIP/101-00000013",
    "lastapp": "Dial",
    "lastdata": "SIP/101,30",
    "duration": 158,
    "billsec": 151,
    "disposition": "ANSWERED",
    "amaflags": 3,
    "accountcode": "",
    "uniqueid": "1795673702.45",
    "userfield": "",
    "did": "74951112233",
    "recordingfile": "",
    "cnum": "79161234567",
    "cnam": "Client",
    "linkedid": "1795673702.45",
    "sequence": 12,
}


def parse(row: dict[str, Any]) -> list[Any]:
    parser = AsteriskCdrDbParser(timezone="Europe/Moscow")
    return parser.parse(json.dumps(row).encode(), SOURCE)


def test_a_freepbx_row_is_the_call_its_master_csv_line_is() -> None:
    (event,) = parse(ROW)
    assert (event.actor.id, event.direction, event.answered) == ("101", Direction.INCOMING, True)
    assert (event.occurred_at, event.ended_at) == (
        utc("2026-11-26 06:15:02"),
        utc("2026-11-26 06:17:40"),
    )
    assert (event.duration_seconds, event.talk_seconds) == (158, 151)
    assert event.call_id == "1795673702.45"
    line = ASTERISK_INCOMING_CSV + b',"1795673702.45","","1795673702.45",12'
    csv = AsteriskCdrCsvParser(timezone="Europe/Moscow", columns="uniqueid+new")
    (from_file,) = csv.parse(line, source_of(AsteriskCdrCsvParser, 0, 9))
    assert event.event_id == from_file.event_id


def test_a_schema_with_answer_and_end_columns_and_a_zero_date() -> None:
    """Older schemas keep answer and end; MySQL writes an unanswered call's answer as zero."""
    row = ROW | {
        "answer": "0000-00-00 00:00:00",
        "end": "2026-11-26 09:15:32",
        "duration": 30,
        "billsec": 0,
        "disposition": "NO ANSWER",
    }
    (event,) = parse(row)
    assert (event.answered, event.talk_seconds) == (False, 0)
    assert event.ended_at == utc("2026-11-26 06:15:32")


def test_a_row_without_newer_columns_is_read() -> None:
    """Issabel's table: no linkedid, no sequence."""
    row = {k: v for k, v in ROW.items() if k not in ("linkedid", "sequence")}
    (event,) = parse(row)
    assert event.actor.id == "101"


@pytest.mark.parametrize(
    ("record", "reason"),
    [
        (b"[1, 2]", "malformed"),
        (b'{"calldate": ', "malformed"),
        (json.dumps({k: v for k, v in ROW.items() if k != "calldate"}).encode(), "invalid"),
        (json.dumps(ROW | {"duration": 1.5}).encode(), "invalid"),
        (json.dumps(ROW | {"calldate": "yesterday"}).encode(), "bad_time"),
    ],
)
def test_rows_that_cannot_be_read(record: bytes, reason: str) -> None:
    parser = AsteriskCdrDbParser(timezone="Europe/Moscow")
    assert record_error(parser.parse, record, SOURCE).reason == reason
