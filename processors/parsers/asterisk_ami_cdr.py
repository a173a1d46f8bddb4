"""Asterisk Manager Interface ``Cdr`` events, as ``cdr_manager`` raises them.

An AMI message is a block of ``Key: Value`` lines ended by CRLF (LF accepted), terminated by an
empty line. ``cdr_manager`` raises one ``Event: Cdr`` per CDR with the same fields ``cdr_csv``
writes, under AMI names, plus whatever ``[mappings]`` in ``cdr_manager.conf`` adds (``linkedid =>
LinkedID``, ``sequence => Sequence``). The CDR semantics are shared with ``cdr_csv``.

An AMI stream carries many event types. Anything but ``Cdr`` parses to no events rather than a
dead letter, so a bridge (or a capture of the raw stream) may pass whole blocks through.
"""

from __future__ import annotations

import re
from typing import ClassVar

from processors.parsers.asterisk_cdr_common import AsteriskCdrParser, CdrFields
from processors.parsers.base import RecordError
from salespulse.models import ActivityEvent, SourceRef

# The same line breaks bytes.splitlines() knows, so framing and parsing agree on lines.
_LINE_BREAK = re.compile(r"\r\n|\n|\r")
# Blank as bytes.strip() sees it, once the line break is gone.
_BLANKS = " \t\x0b\x0c"

# Fields the parser reads, lower-cased AMI name → name for messages. cdr_manager always writes
# these; the other fields it writes (AccountCode, CallerID, LastApplication ...) are not used.
_REQUIRED = {
    name.lower(): name
    for name in (
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
    )
}


def split_blocks(payload: bytes) -> list[bytes]:
    """Frame a payload into AMI messages: runs of non-blank lines, each kept byte for byte with
    its line breaks; the blank lines between them are dropped."""
    blocks: list[bytes] = []
    start: int | None = None
    position = 0
    for line in payload.splitlines(keepends=True):
        if line.strip():
            if start is None:
                start = position
        elif start is not None:
            blocks.append(payload[start:position])
            start = None
        position += len(line)
    if start is not None:
        blocks.append(payload[start:])
    return blocks


def message_fields(text: str, *, strict: bool = True) -> dict[str, str]:
    """The ``Key: Value`` fields of one AMI message, keys lower-cased.

    Keys are case-insensitive and the first of a repeated key counts, as in Asterisk's own
    header lookup. Blank lines around the message are ignored. ``strict`` raises ``malformed``
    for a line that is not ``Key: Value`` or a blank line inside the message; otherwise such
    lines are skipped.
    """
    lines = _LINE_BREAK.split(text)
    while lines and not lines[-1].strip(_BLANKS):
        lines.pop()
    fields: dict[str, str] = {}
    for number, line in enumerate(lines, 1):
        key, colon, value = line.partition(":")
        key = key.strip(_BLANKS)
        if not colon or not key:
            if not line.strip(_BLANKS) and not fields:
                continue  # leading blank lines
            if strict:
                what = "a blank line" if not line.strip(_BLANKS) else "not 'Key: Value'"
                raise RecordError("malformed", f"line {number} is {what}")
            continue
        fields.setdefault(key.lower(), value.lstrip(_BLANKS))
    return fields


class AsteriskAmiCdrParser(AsteriskCdrParser):
    format_name: ClassVar[str] = "asterisk-ami-cdr"

    def split(self, payload: bytes) -> list[bytes]:
        return split_blocks(payload)

    def parse_record(self, record: bytes, source: SourceRef) -> list[ActivityEvent]:
        text, valid = self._text(record)
        fields = message_fields(text)
        if not fields:
            raise RecordError("malformed", "empty message")
        event = fields.get("event")
        if event is None:
            raise RecordError("invalid", "no Event field: not an AMI event")
        if event.lower() != "cdr":
            return []
        missing = [name for key, name in _REQUIRED.items() if key not in fields]
        if missing:
            raise RecordError("invalid", f"Cdr event lacks {', '.join(missing)}")
        cdr = CdrFields(
            src=fields["source"],
            dst=fields["destination"],
            channel=fields["channel"],
            dstchannel=fields["destinationchannel"],
            start=fields["starttime"],
            answer=fields["answertime"],
            end=fields["endtime"],
            duration=fields["duration"],
            billsec=fields["billableseconds"],
            disposition=fields["disposition"],
            uniqueid=fields["uniqueid"],
            linkedid=fields.get("linkedid"),
            sequence=fields.get("sequence"),
            dcontext=fields.get("destinationcontext"),
        )
        return self._events(cdr, valid, source)
