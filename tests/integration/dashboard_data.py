"""A populated salespulse database, as the worker would have left it, for tests of what reads it.

Two weeks of generated traffic (three departments in three time zones) up to ``NOW``, sent in
ten-minute batches the way the bridges send it: each batch is processed by the real pipeline at a
realistic moment (a few seconds after the batch's last record was ready), its events stored, and
its offsets logged in ``ingest_batches`` with that moment as ``inserted_at``. Then, as in life:

- the rollup timer has consumed every batch but the newest, which arrived after its last pass;
- one batch was processed twice (a replay after a crash), which changes no number;
- the alert history holds a resolved alert, an open one and an open one kept from people.

Processing is done once per test session; loading it into a database takes a few inserts.
"""

from __future__ import annotations

import functools
import zlib
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from ingest.generator import RawRecord, make_population, simulate
from ingest.generator.population import Department, Manager, Population, directory_yaml
from processors.parsers import Parser, build_parsers
from processors.pipeline import EVENT_COLUMNS, BatchProcessor, RawMessage
from processors.privacy import PhoneProtector
from processors.runtime import batch_log
from salespulse.alert_model import Alert, Notice, Severity, Suppression
from salespulse.directory import Directory, parse_directory
from salespulse.models import SourceFamily
from salespulse.sections import CountingSettings, LatenessSettings, ParsingSettings, TopicSettings
from sinks.clickhouse.alert_history import record_notices
from sinks.clickhouse.client import ClickHouse
from sinks.clickhouse.migrations import apply_migrations
from sinks.clickhouse.rollup import RollupUpdater
from sinks.clickhouse.sink import BATCH_COLUMNS, BATCHES_TABLE, EVENTS_TABLE
from tests.alert_samples import fired, resolved, sample_alert

# A Thursday, 11:00 UTC: 13:00 in Kaliningrad, 14:00 in Moscow, 16:00 in Yekaterinburg, so
# "today" has activity in every department.
NOW = datetime(2026, 11, 26, 11, 0, tzinfo=UTC)
HISTORY = timedelta(days=14)
BATCH_SPAN = timedelta(minutes=10)
PARTITIONS = 4
WORKER = "worker-1"
_TOPICS = TopicSettings()
TOPIC_OF = {
    SourceFamily.PBX: _TOPICS.raw_pbx,
    SourceFamily.CHAT: _TOPICS.raw_chat,
    SourceFamily.CRM: _TOPICS.raw_crm,
}


@dataclass(frozen=True)
class Batch:
    """One processed batch: its event rows and its ``ingest_batches`` rows."""

    events: list[tuple[Any, ...]]
    log: list[tuple[Any, ...]]


def _windows(records: Iterable[RawRecord]) -> dict[int, list[RawRecord]]:
    """Records by the ten-minute window in which their source had them ready."""
    span = int(BATCH_SPAN.total_seconds())
    windows: dict[int, list[RawRecord]] = defaultdict(list)
    for record in records:
        windows[record.ready // span * span].append(record)
    return dict(sorted(windows.items()))


def _messages(
    records: Sequence[RawRecord], offsets: dict[tuple[str, int], int], sent: datetime
) -> list[RawMessage]:
    """One message per topic-partition: a tailer's chunk of CDR lines, or a JSON Lines chunk."""
    chunks: dict[tuple[SourceFamily, str, int], list[bytes]] = defaultdict(list)
    for record in records:
        partition = zlib.crc32(record.key) % PARTITIONS
        chunks[(record.family, record.format, partition)].append(record.data)
    messages = []
    for (family, format_name, partition), lines in sorted(chunks.items()):
        topic = TOPIC_OF[family]
        offset = offsets.get((topic, partition), 0)
        offsets[(topic, partition)] = offset + 1
        headers = [("sp-format", format_name.encode())]
        messages.append(RawMessage(topic, partition, offset, headers, b"\n".join(lines), sent))
    return messages


def _process(
    messages: list[RawMessage], at: datetime, directory: Directory, parsers: dict[str, Parser]
) -> Batch:
    """``messages`` processed as one batch at ``at``, logged as inserted then."""
    processor = BatchProcessor(
        parsers,
        lambda: directory,
        PhoneProtector(b"dashboards"),
        max_message_bytes=1 << 20,
        grace=LatenessSettings().by_family(),
        clock=lambda: at,
    )
    result = processor.process(messages)
    log = [(*row[:-1], at) for row in batch_log(messages, result, WORKER)]
    return Batch(result.rows, log)


def _population() -> Population:
    return make_population(managers=9, departments=3, seed=23)


@functools.cache
def traffic_batches() -> tuple[Batch, ...]:
    """Every batch up to ``NOW`` in processing order; the last one is a replay of an earlier
    batch, processed again half an hour ago."""
    population = _population()
    traffic = simulate(population, NOW - HISTORY, NOW, seed=23, now=NOW)
    directory = parse_directory(directory_yaml(population), suffix=".yaml")
    parsers = build_parsers(ParsingSettings())
    offsets: dict[tuple[str, int], int] = {}
    batches: list[Batch] = []
    span = int(BATCH_SPAN.total_seconds())
    replayed: list[RawMessage] = []
    for window, records in _windows(traffic.all_records()).items():
        sent = min(datetime.fromtimestamp(window + span, UTC), NOW)
        messages = _messages(records, offsets, sent)
        # Processed a few seconds after the bridge sent it: the lag the pipeline panels show.
        at = min(sent + timedelta(seconds=3 + window // span % 17), NOW)
        batches.append(_process(messages, at, directory, parsers))
        if not replayed and sent >= NOW - timedelta(hours=3):
            replayed = messages
    batches.append(_process(replayed, NOW - timedelta(minutes=30), directory, parsers))
    return tuple(batches)


def _about(alert: Alert, manager: Manager, department: Department, severity: Severity) -> Alert:
    return replace(
        alert,
        manager_id=manager.id,
        manager_name=manager.name,
        department_id=department.id,
        department_name=department.name,
        severity=severity,
        dashboard_url=f"https://grafana.example.com/d/salespulse-manager?var-manager={manager.id}",
    )


def alert_notices() -> list[Notice]:
    """About the first manager, a dip that resolved and one still open; about another, an open
    one that was silenced."""
    population = _population()
    first, other = population.managers[0], population.managers[-1]
    dip = _about(
        sample_alert(NOW - timedelta(hours=3)), first, population.departments[0], Severity.WARNING
    )
    open_dip = _about(
        sample_alert(NOW - timedelta(hours=1)), first, population.departments[0], Severity.CRITICAL
    )
    silenced = _about(
        sample_alert(NOW - timedelta(minutes=40)),
        other,
        population.department_of(other),
        Severity.WARNING,
    )
    return [
        fired(dip),
        resolved(dip, NOW - timedelta(hours=2, minutes=20)),
        fired(open_dip),
        fired(silenced, Suppression.SILENCED),
    ]


def _insert(
    ch: ClickHouse, table: str, columns: Sequence[str], rows: list[tuple[Any, ...]]
) -> None:
    if rows:
        ch.insert_columns(table, columns, [list(column) for column in zip(*rows, strict=True)])


def _store(ch: ClickHouse, batches: Sequence[Batch]) -> None:
    _insert(ch, EVENTS_TABLE, EVENT_COLUMNS, [row for batch in batches for row in batch.events])
    _insert(ch, BATCHES_TABLE, BATCH_COLUMNS, [row for batch in batches for row in batch.log])


def populate(ch: ClickHouse) -> None:
    """Create the schema in ``ch.database`` and fill every table the dashboards read."""
    apply_migrations(ch)
    *consumed, newest, replay = traffic_batches()
    _store(ch, [*consumed, replay])
    RollupUpdater(ch, CountingSettings()).run_once()
    _store(ch, [newest])
    record_notices(ch, alert_notices(), now=NOW)
