"""What counts is configuration: excluded service numbers and per-department thresholds."""

from __future__ import annotations

from datetime import UTC, date, datetime

from processors.parsers import build_parsers
from processors.pipeline import BatchProcessor, RawMessage
from processors.privacy import PhoneProtector
from salespulse.directory import parse_directory
from salespulse.sections import CountingSettings, ParsingSettings
from salespulse.summary import query_summary
from sinks.clickhouse.client import ClickHouse
from sinks.clickhouse.migrations import apply_migrations
from sinks.clickhouse.sink import ClickHouseSink

DIRECTORY = parse_directory(
    """
departments: [{id: sales, timezone: Europe/Moscow}, {id: support, timezone: Europe/Moscow}]
managers:
  - {id: ivanova, department: sales, identities: [{family: pbx, id: "101"}]}
  - {id: belova, department: support, identities: [{family: pbx, id: "301"}]}
""",
    suffix=".yaml",
)
LINE = (
    '"","{src}","{dst}","from-internal","","SIP/{src}-0000000{n}","SIP/provider-0000001{n}",'
    '"Dial","","2026-11-26 09:0{n}:00","2026-11-26 09:0{n}:05","2026-11-26 09:0{n}:50",50,45,'
    '"ANSWERED","DOCUMENTATION"'
)
CDRS = "\n".join(
    [
        # 45 s calls to customers: a conversation at the default 30 s threshold.
        LINE.format(src="101", dst="79161234567", n=1),
        LINE.format(src="301", dst="79161234568", n=2),
        # Ivanova checking her voicemail (8-800 service number, written with separators).
        LINE.format(src="101", dst="8 (800) 555-00-00", n=3),
    ]
).encode()
COUNTING = CountingSettings(
    excluded_numbers=["+8-800-555-00-00"], department_conversation_min_seconds={"support": 60}
)


async def test_excluded_numbers_and_department_thresholds(clickhouse: ClickHouse) -> None:
    apply_migrations(clickhouse)
    processor = BatchProcessor(
        build_parsers(ParsingSettings()),
        lambda: DIRECTORY,
        PhoneProtector(None),
        max_message_bytes=1 << 20,
        excluded_numbers=COUNTING.excluded_numbers,
        clock=lambda: datetime(2026, 11, 27, tzinfo=UTC),
    )
    message = RawMessage("pbx", 0, 0, [("sp-format", b"asterisk-cdr-csv")], CDRS)
    await ClickHouseSink(lambda: clickhouse).write_events(processor.process([message]).rows)

    rows = query_summary(clickhouse, DIRECTORY, last_day=date(2026, 11, 26), counting=COUNTING)
    counts = {row.manager_id: row.counts for row in rows}
    # The voicemail call is stored but not counted: one outgoing call, one conversation.
    assert (counts["ivanova"]["calls_out"], counts["ivanova"]["conversations"]) == (1, 1)
    # Support counts conversations from 60 s: Belova's 45 s call is a call, not a conversation.
    assert (counts["belova"]["calls_out"], counts["belova"]["conversations"]) == (1, 0)
    stored = clickhouse.execute(
        f"SELECT count(), sum(excluded) FROM {clickhouse.database}.events FINAL"
    )
    assert [tuple(map(int, row)) for row in stored] == [(3, 1)]
