"""What the worker does with one batch, independent of the stream framework that delivers it.

``handle`` returns only when the batch's effects are durable: rows inserted in ClickHouse and dead
letters acknowledged by Kafka. The caller acknowledges the batch's offsets only after that, so a
crash at any point replays the batch, and replays are harmless because rows are keyed by their
deterministic event id.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from types import TracebackType

from processors.parsers import build_parsers
from processors.pipeline import BatchProcessor, BatchResult, RawMessage
from processors.privacy import PhoneProtector
from salespulse import metrics
from salespulse.directory import DirectoryWatcher
from salespulse.settings import Settings
from sinks.clickhouse.client import NativeClickHouse
from sinks.clickhouse.events import EventSink
from sinks.deadletter import DeadLetterSink

log = logging.getLogger(__name__)


class BatchRuntime:
    def __init__(self, settings: Settings) -> None:
        self.directory = DirectoryWatcher(settings.directory_path)
        key = settings.parsing.phone_hash_key
        self.processor = BatchProcessor(
            build_parsers(settings.parsing, settings.worker.max_record_bytes),
            lambda: self.directory.current,
            PhoneProtector(key.get_secret_value().encode() if key else None),
            max_message_bytes=settings.worker.max_message_bytes,
        )
        self.events = EventSink(
            lambda: NativeClickHouse(settings.clickhouse),
            retry_max_seconds=settings.worker.sink_retry_max_seconds,
        )
        self.dead_letters = DeadLetterSink(settings.kafka, settings.topics.dead_letter)

    async def __aenter__(self) -> BatchRuntime:
        await self.dead_letters.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.dead_letters.stop()
        self.events.close()

    def _refresh_directory(self) -> None:
        if self.directory.refresh():
            metrics.DIRECTORY_RELOADS.labels("ok").inc()
            log.info("manager directory reloaded from %s", self.directory.path)
        elif self.directory.last_error:
            metrics.DIRECTORY_RELOADS.labels("error").inc()
            log.error("manager directory not reloaded: %s", self.directory.last_error)
            self.directory.last_error = None  # report each failed change once

    async def handle(self, messages: Sequence[RawMessage]) -> BatchResult:
        self._refresh_directory()
        result = self.processor.process(messages)
        await self.events.write(result.rows)
        await self.dead_letters.write(result.dead_letters)
        self._count(len(messages), result)
        return result

    @staticmethod
    def _count(message_count: int, result: BatchResult) -> None:
        metrics.BATCH_MESSAGES.observe(message_count)
        metrics.LAST_BATCH_DURABLE.set(time.time())
        for name, count in result.records.items():
            metrics.RECORDS.labels(name).inc(count)
        for kind, count in result.kinds.items():
            metrics.EVENTS_STORED.labels(kind).inc(count)
        for family, count in result.unattributed.items():
            metrics.UNATTRIBUTED.labels(family).inc(count)
