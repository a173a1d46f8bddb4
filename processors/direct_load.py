"""Generated traffic straight into ``events``, through the real parsers but without Kafka.

For tests and benchmarks that need a stored history fast: the records go through the same
``BatchProcessor`` as in the worker (framing, parsing, validation, attribution, phone
protection), so the rows are exactly what the stream would have stored.
"""

from __future__ import annotations

from datetime import datetime

from ingest.generator import Traffic, frame_messages
from processors.parsers import build_parsers
from processors.pipeline import EVENT_COLUMNS, BatchProcessor, RawMessage
from processors.privacy import PhoneProtector
from salespulse.directory import Directory
from salespulse.models import FORMAT_HEADER
from salespulse.sections import ParsingSettings
from sinks.clickhouse.client import ClickHouse


def store_traffic(
    ch: ClickHouse, traffic: Traffic, directory: Directory, now: datetime, batch: int = 500
) -> int:
    """Store ``traffic`` as the worker would at ``now`` (which decides lateness), ``batch``
    messages per insert; returns the rows stored."""
    processor = BatchProcessor(
        build_parsers(ParsingSettings()),
        lambda: directory,
        PhoneProtector(b"k"),
        max_message_bytes=1 << 20,
        clock=lambda: now,
    )
    messages = [
        RawMessage(m.family.value, 0, n, [(FORMAT_HEADER, m.format.encode())], m.value)
        for n, m in enumerate(frame_messages(traffic.all_records()))
    ]
    stored = 0
    for start in range(0, len(messages), batch):
        rows = processor.process(messages[start : start + batch]).rows
        if rows:
            ch.insert_columns("events", EVENT_COLUMNS, [list(c) for c in zip(*rows, strict=True)])
            stored += len(rows)
    return stored
