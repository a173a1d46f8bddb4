"""The reference peer of benchmarks/suite.py: the obvious faust-streaming pipeline, per event.

What a team would write first with faust: one agent that iterates ``async for event in
stream.events()`` (no ``take``, no batching in the framework), and for each Kafka message runs
our own parsers, validation and directory attribution (``BatchProcessor`` over that one
message, so the work per record is exactly the worker's), then writes the rows to ClickHouse.

Inserts are not one row each: ClickHouse 18.16 turns every insert into a part on disk and takes
only ~200 single-row inserts/s here (probed in the suite's notes), which would measure the
server's part handling rather than the framework. The naive pipeline instead appends to a small
buffer and inserts it every ``--rows-per-insert`` rows (default 100) or every 0.5 s, whichever
comes first. Offsets are acknowledged the faust way, when the agent takes the next event, and
committed by faust's commit timer — so a crash can lose buffered rows, one of the things the
real worker's design avoids. Dead letters go to the configured dead-letter topic, one send each.

Configured like the worker, from ``SALESPULSE_*`` environment variables: Kafka, the raw topics,
``worker.app_id`` as the consumer group, ``clickhouse.database`` (its own), the directory file.

    SALESPULSE_... .venv/bin/python benchmarks/naive_faust_worker.py --rows-per-insert 100
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from datetime import UTC, datetime
from typing import Any

import faust

from processors.parsers import build_parsers
from processors.pipeline import EVENT_COLUMNS, BatchProcessor, RawMessage
from processors.privacy import PhoneProtector
from salespulse.directory import load_directory
from salespulse.settings import Settings
from sinks.clickhouse.client import NativeClickHouse
from sinks.clickhouse.migrations import apply_migrations

FLUSH_SECONDS = 0.5


def build_app(settings: Settings, rows_per_insert: int, datadir: str) -> faust.App:
    servers = [s.strip() for s in settings.kafka.bootstrap_servers.split(",") if s.strip()]
    app = faust.App(
        settings.worker.app_id,
        broker=";".join(f"kafka://{server}" for server in servers),
        autodiscover=False,
        datadir=datadir,
        store="memory://",
        key_serializer="raw",
        value_serializer="raw",
        topic_partitions=settings.topics.partitions,
        consumer_auto_offset_reset="earliest",
        # The worker's group timeouts: faust's 60 s defaults only make joining slower here.
        broker_rebalance_timeout=settings.worker.rebalance_timeout_seconds,
        broker_session_timeout=settings.worker.session_timeout_seconds,
        broker_heartbeat_interval=min(3.0, settings.worker.session_timeout_seconds / 3),
        web_enabled=False,
    )
    raw = app.topic(*settings.topics.raw_topics(), key_type=bytes, value_type=bytes)
    dead = app.topic(settings.topics.dead_letter, key_type=bytes, value_type=bytes)
    directory = load_directory(settings.directory_path)
    processor = BatchProcessor(
        build_parsers(settings.parsing, settings.worker.max_record_bytes),
        lambda: directory,
        PhoneProtector(None),
        max_message_bytes=settings.worker.max_message_bytes,
        grace=settings.lateness.by_family(),
    )
    client = NativeClickHouse(settings.clickhouse)
    apply_migrations(client)
    buffer: list[tuple[Any, ...]] = []
    lock = asyncio.Lock()

    async def flush() -> None:
        async with lock:
            if not buffer:
                return
            rows = buffer.copy()
            buffer.clear()
            columns = [list(column) for column in zip(*rows, strict=True)]
            await asyncio.to_thread(client.insert_columns, "events", EVENT_COLUMNS, columns)

    async def naive(stream: Any) -> None:
        async for event in stream.events():
            message = event.message
            stamp = message.timestamp
            result = processor.process(
                [
                    RawMessage(
                        message.topic,
                        message.partition,
                        message.offset,
                        message.headers or (),
                        message.value,
                        datetime.fromtimestamp(stamp, UTC) if stamp else None,
                    )
                ]
            )
            for letter in result.dead_letters:
                await dead.send(value=letter.original, headers={"reason": letter.reason.encode()})
            buffer.extend(result.rows)
            if len(buffer) >= rows_per_insert:
                await flush()

    app.agent(raw, name="naive.per_event")(naive)
    app.timer(FLUSH_SECONDS)(flush)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rows-per-insert", type=int, default=100)
    args = parser.parse_args()
    settings = Settings()
    with tempfile.TemporaryDirectory(prefix="naive-faust-") as datadir:
        app = build_app(settings, args.rows_per_insert, datadir)
        faust.Worker(app, loglevel="WARNING", quiet=True).execute_from_commandline()


if __name__ == "__main__":
    main()
