"""Rows of the PBX's CDR table (``asteriskcdrdb.cdr``, as ``salespulse cdrdb`` sends them).

One record is one row as a JSON object of its columns, with times as the table writes them
(the PBX's wall clock, like Master.csv). FreePBX's table has no ``answer`` or ``end`` columns:
the end is then ``calldate`` plus ``duration``, as Asterisk itself computes ``duration``. The
row's meaning is the Asterisk CDR's, read by the same ``CdrInterpreter`` as Master.csv and AMI,
so the same CDR from any of the three gets one event id.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any, ClassVar

from processors.parsers._common import decode, redact
from processors.parsers.asterisk_cdr_common import AsteriskCdrParser, CdrFields
from processors.parsers.base import RecordError
from salespulse.models import ActivityEvent, SourceRef

_TIME = "%Y-%m-%d %H:%M:%S"
_REQUIRED = ("calldate", "src", "dst", "channel", "dstchannel", "duration", "billsec")


def _text(row: dict[str, Any], column: str) -> str:
    """A column as the CDR's text: a number as its digits, a missing or NULL value as empty."""
    value = row.get(column)
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise RecordError("invalid", f"{column}: not text or a whole number")
    return str(value)


def _time_text(row: dict[str, Any], column: str) -> str:
    """A time column; MySQL's zero date (an unanswered call's ``answer``) is no time."""
    value = _text(row, column)
    return "" if value.startswith("0000-00-00") else value


def _end(calldate: str, duration: str) -> str:
    """The wall-clock end of a row without an ``end`` column."""
    try:
        start = datetime.strptime(calldate, _TIME)
        return (start + timedelta(seconds=int(duration))).strftime(_TIME)
    except (ValueError, OverflowError):
        raise RecordError("bad_time", f"calldate: {redact(calldate)} is not a time") from None


class AsteriskCdrDbParser(AsteriskCdrParser):
    format_name: ClassVar[str] = "asterisk-cdr-db"

    def parse_record(self, record: bytes, source: SourceRef) -> list[ActivityEvent]:
        try:
            row = json.loads(decode(record))
        except (json.JSONDecodeError, RecursionError):
            raise RecordError("malformed", "not a JSON object") from None
        if not isinstance(row, dict):
            raise RecordError("malformed", "not a JSON object")
        missing = [column for column in _REQUIRED if column not in row]
        if missing:
            raise RecordError("invalid", f"row lacks {', '.join(missing)}")
        calldate, duration = _text(row, "calldate"), _text(row, "duration")
        end = _time_text(row, "end")
        cdr = CdrFields(
            src=_text(row, "src"),
            dst=_text(row, "dst"),
            channel=_text(row, "channel"),
            dstchannel=_text(row, "dstchannel"),
            start=calldate,
            # Only checked when present; the events do not use it.
            answer=_time_text(row, "answer"),
            end=end or _end(calldate, duration if duration.isdigit() else "0"),
            duration=duration,
            billsec=_text(row, "billsec"),
            disposition=_text(row, "disposition"),
            uniqueid=_text(row, "uniqueid") or None,
            linkedid=_text(row, "linkedid") or None,
            # FreePBX writes 0 where Asterisk kept no sequence.
            # As Master.csv and AMI have it, so that the same CDR keeps one event id.
            sequence=_text(row, "sequence") or None,
        )
        return self._cdr.events(cdr, source)
