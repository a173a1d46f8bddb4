"""The contract every source parser fulfils.

A Kafka message on a raw topic carries the bytes a source emitted and a header naming their
format. A parser first *frames* the payload into records (one CDR line, one JSON object), then
*parses* each record into zero or more canonical events. Parsing one record never depends on
another, so a bad record costs exactly one dead letter.
"""

from __future__ import annotations

from typing import ClassVar, Protocol

from salespulse.models import ActivityEvent, SourceFamily, SourceRef


class RecordError(Exception):
    """A record that cannot become events. ``reason`` is a short, stable code for metrics and
    dead-letter headers (``malformed``, ``invalid``, ``bad_time`` ...); ``detail`` is for people."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class Parser(Protocol):
    format_name: ClassVar[str]
    family: ClassVar[SourceFamily]

    def split(self, payload: bytes) -> list[bytes]:
        """Frame one message payload into records, dropping only blank separators."""
        ...

    def parse(self, record: bytes, source: SourceRef) -> list[ActivityEvent]:
        """Canonical events for one record; raises ``RecordError`` for anything unusable."""
        ...


def split_lines(payload: bytes) -> list[bytes]:
    """Framing for line-oriented formats (CSV, JSON Lines): one record per non-blank line."""
    return [line for line in payload.splitlines() if line.strip()]
