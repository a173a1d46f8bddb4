"""The contract every source parser fulfils.

A Kafka message on a raw topic carries the bytes a source emitted and a header naming their
format. A parser first *frames* the payload into records (one CDR line, one JSON object), then
*parses* each record into zero or more canonical events. Parsing one record never depends on
another, so a bad record costs exactly one dead letter.
"""

from __future__ import annotations

import re
from typing import ClassVar, Protocol

from salespulse.errors import SourceError
from salespulse.models import ActivityEvent, SourceFamily, SourceRef


class RecordError(SourceError):
    """A record that cannot become events. ``reason`` is a short, stable code for metrics and
    dead-letter headers (``malformed``, ``invalid``, ``bad_time`` ...); ``detail`` is for people."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


# The reason of a record that is the format's own but cannot be counted where it stands: an
# outgoing event that names its subject by id only (Bitrix24's ``ONCRMDEALUPDATE``), which only
# the receiver, fetching the subject, can count. A file of them is still of that format.
IDS_ONLY = "ids_only"


class NoActivity(list[ActivityEvent]):
    """What ``parse()`` returns for a record that is readable and the format's own but no
    activity by the format's rules (a deal still open, a call logged in the CRM): no events,
    and ``why`` in words, without ids, so that records can be counted by it. Equal to ``[]``;
    a plain empty list says the same without the why."""

    def __init__(self, why: str) -> None:
        super().__init__()
        self.why = why


class Parser(Protocol):
    format_name: ClassVar[str]
    family: ClassVar[SourceFamily]

    def split(self, payload: bytes) -> list[bytes]:
        """Frame one message payload into records, dropping only blank separators."""
        ...

    def parse(self, record: bytes, source: SourceRef) -> list[ActivityEvent]:
        """Canonical events for one record (none, or ``NoActivity``, for a record that is no
        activity); raises ``RecordError`` for anything unusable."""
        ...


def split_lines(payload: bytes) -> list[bytes]:
    """Framing for line-oriented formats (CSV, JSON Lines): one record per non-blank line."""
    return [line for line in payload.splitlines() if line.strip()]


# A JSON string (unrolled, so it cannot backtrack). JSON escapes line breaks inside strings, so a
# string never spans lines and each line can be read on its own.
_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')
_JSON_TOKEN = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"|[{}\[\]]')
# An object closing and another opening with no comma between them cannot occur inside one JSON
# document: outside strings it is where one document ends and the next begins.
_DOCUMENT_SEAM = b"}{"
_OPENERS = frozenset(b"{[")


def split_json_documents(payload: bytes) -> list[bytes]:
    """Framing for JSON documents however they are laid out: one record per document, whether a
    message holds one compact document per line, one pretty-printed document over many lines, or
    several run together (files joined with ``cat``: ``}{``).

    The bracket depth of the open document is carried from line to line, counted on each line
    with its strings blanked out, so the work is linear in the payload and each record is one
    slice of it. Text that is not JSON still becomes a record (a dead letter) when its brackets
    balance, or when a whole one-line document follows it, so a truncated line does not swallow
    the records after it. The size limit is applied to each record by the parser.
    """
    records: list[bytes] = []
    depth = start = end = offset = 0
    for line in payload.splitlines(keepends=True):
        line_start, offset = offset, offset + len(line)
        content = line.rstrip(b"\r\n")
        if not content.strip():
            continue
        if _whole_document(content):
            # The usual shape (mod_json_cdr's unformatted CDR, one per line), found with byte
            # counts: blanking the strings out costs more than parsing the record does. If a
            # document was open, it was cut short: it is a record (a dead letter) of its own.
            if depth:
                records.append(payload[start:end])
                depth = 0
            records.append(content)
            continue
        if _DOCUMENT_SEAM in content:
            if depth == 0:
                start = line_start
            depth, start = _scan_line(
                payload, line_start, line_start + len(content), depth, start, records
            )
            end = line_start + len(content)
            continue
        if depth == 0:
            start = line_start
        end = line_start + len(content)
        depth += _balance(content)
        if depth <= 0:
            records.append(payload[start:end])
            depth = 0
    if depth:
        records.append(payload[start:end])
    return records


def _whole_document(line: bytes) -> bool:
    """A line that is one compact JSON object: it opens and closes with braces, its brackets
    balance and no second document starts on it. Brackets inside strings are counted too: if
    they do not balance the line takes the exact path; if they cancel out a missing bracket the
    line is not JSON and becomes a dead letter either way."""
    return (
        line[:1] == b"{"
        and line.rstrip()[-1:] == b"}"
        and _DOCUMENT_SEAM not in line
        and line.count(b"{") == line.count(b"}")
        and line.count(b"[") == line.count(b"]")
    )


def _balance(line: bytes) -> int:
    """Brackets opened minus brackets closed on a line, outside strings."""
    blanked = _JSON_STRING.sub(b'""', line) if b'"' in line else line
    return blanked.count(b"{") + blanked.count(b"[") - blanked.count(b"}") - blanked.count(b"]")


def _scan_line(
    payload: bytes, line_start: int, line_end: int, depth: int, start: int, records: list[bytes]
) -> tuple[int, int]:
    """The rare line where one document ends and another begins: read token by token. Returns
    the depth and start of the document still open at the end of the line."""
    for token in _JSON_TOKEN.finditer(payload, line_start, line_end):
        char = payload[token.start()]
        if char == 0x22:  # a string: its brackets are text
            continue
        if char in _OPENERS:
            depth += 1
            continue
        depth -= 1
        if depth <= 0:
            records.append(payload[start : token.end()].strip())
            depth, start = 0, token.end()
    if depth == 0 and payload[start:line_end].strip():
        records.append(payload[start:line_end].strip())  # text after the last document
        start = line_end
    return depth, start
