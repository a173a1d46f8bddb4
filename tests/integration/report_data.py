"""Generated traffic loaded into a ClickHouse database with its rollups, for the report tests."""

from __future__ import annotations

from datetime import date

from ingest.generator import Traffic, frame_messages
from processors.parsers import build_parsers
from processors.pipeline import EVENT_COLUMNS, BatchProcessor, RawMessage
from processors.privacy import PhoneProtector
from salespulse.directory import Directory
from salespulse.models import FORMAT_HEADER
from salespulse.settings import ParsingSettings
from sinks.clickhouse.client import ClickHouse
from sinks.clickhouse.migrations import apply_migrations
from sinks.clickhouse.rollup import rebuild
from tests.integration.pipeline_harness import WEEK_END

# The generated working week (Monday 16 to Friday 20 November 2026, local), with a margin.
FIRST_DAY, LAST_DAY = date(2026, 11, 14), date(2026, 11, 22)


def load_week(ch: ClickHouse, traffic: Traffic, directory: Directory) -> int:
    """The traffic through the real parsers into ``events``, then the rollups rebuilt."""
    apply_migrations(ch)
    processor = BatchProcessor(
        build_parsers(ParsingSettings()),
        lambda: directory,
        PhoneProtector(b"k"),
        max_message_bytes=1 << 20,
        clock=lambda: WEEK_END,
    )
    messages = [
        RawMessage(m.family.value, 0, n, [(FORMAT_HEADER, m.format.encode())], m.value)
        for n, m in enumerate(frame_messages(traffic.all_records()))
    ]
    stored = 0
    for start in range(0, len(messages), 500):
        rows = processor.process(messages[start : start + 500]).rows
        if rows:
            ch.insert_columns("events", EVENT_COLUMNS, [list(c) for c in zip(*rows, strict=True)])
            stored += len(rows)
    rebuild(ch, FIRST_DAY, LAST_DAY)
    return stored
