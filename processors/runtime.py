"""What the worker does with one batch, independent of the consumer that delivers it.

``prepare`` is the CPU work (parse, validate, attribute, build rows); ``store`` returns only when
the batch's effects are durable: rows inserted in ClickHouse and dead letters acknowledged by
Kafka. The consumer commits the batch's offsets only after that, so a crash at any point replays
the batch, and replays are harmless because rows are keyed by their deterministic event id. The
two are separate so that one batch is prepared while the previous one is being stored.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, NamedTuple

from processors.parsers import build_parsers
from processors.pipeline import EVENT_COLUMNS, BatchProcessor, BatchResult, DeadLetter, RawMessage
from processors.privacy import PhoneProtector, mask_numbers
from salespulse import metrics
from salespulse.directory import DirectoryWatcher
from salespulse.directory_topic import DirectoryTopic
from salespulse.models import SourceRef
from salespulse.settings import Settings
from sinks.clickhouse.client import NativeClickHouse
from sinks.clickhouse.sink import (
    BATCH_COLUMNS,
    BATCHES_TABLE,
    ClickHouseSink,
    Refused,
    record_of_row,
)
from sinks.deadletter import DeadLetterSink

log = logging.getLogger(__name__)
_LOCAL_DATE = EVENT_COLUMNS.index("local_date")
_OCCURRED_AT = EVENT_COLUMNS.index("occurred_at")
_ENDED_AT = EVENT_COLUMNS.index("ended_at")
_SOURCE_TOPIC = EVENT_COLUMNS.index("source_topic")
_KIND = EVENT_COLUMNS.index("kind")
_SOURCE_FORMAT = EVENT_COLUMNS.index("source_format")
_ACTOR_FAMILY = EVENT_COLUMNS.index("actor_family")
_MANAGER_ID = EVENT_COLUMNS.index("manager_id")
# How long the first batch waits for the directory topic to be read; after that the worker starts
# with the file alone and applies the topic once it is read.
DIRECTORY_LOAD_SECONDS = 30.0
# At most one warning this often about batches that dead-lettered most of their records.
MOSTLY_DEAD_WARNING_SECONDS = 60.0


def batch_log(
    messages: Sequence[RawMessage], result: BatchResult, worker: str
) -> list[tuple[object, ...]]:
    """One ``ingest_batches`` row per topic-partition in the batch: its offset watermarks.

    Rows and dead letters are attributed to the batch's first topic-partition row only, since
    they are counted per batch, not per partition. Every row carries the local days the batch
    touched: the durable queue the rollups are recomputed from.
    """
    days = sorted({row[_LOCAL_DATE] for row in result.rows})
    ranges: dict[tuple[str, int], list[int]] = {}
    for message in messages:
        span = ranges.setdefault(
            (message.topic, message.partition), [message.offset, message.offset, 0]
        )
        span[0] = min(span[0], message.offset)
        span[1] = max(span[1], message.offset)
        span[2] += 1
    now = datetime.now(UTC).replace(microsecond=0)
    return [
        (
            topic,
            partition,
            first,
            last,
            count,
            len(result.rows) if index == 0 else 0,
            len(result.dead_letters) if index == 0 else 0,
            days,
            worker,
            now,
        )
        for index, ((topic, partition), (first, last, count)) in enumerate(sorted(ranges.items()))
    ]


def observe_latencies(messages: Sequence[RawMessage], rows: Sequence[tuple[Any, ...]]) -> None:
    """End-to-end latencies of a batch that has just become durable, one histogram update per
    topic: from each activity's end to now, and from each message's Kafka timestamp to now.

    Events and messages older than the horizon are left out: a backfill or a replay says
    nothing about how fast live data flows, and would hide it."""
    now = time.time()
    oldest = now - metrics.LATENCY_HORIZON_SECONDS
    finished: dict[str, list[float]] = defaultdict(list)
    for row in rows:
        # A record exists only once its activity ended (a CDR at hangup, a chat at close).
        moment = (row[_ENDED_AT] or row[_OCCURRED_AT]).timestamp()
        if moment >= oldest:
            finished[row[_SOURCE_TOPIC]].append(max(now - moment, 0.0))
    for topic, values in finished.items():
        metrics.EVENT_TO_DURABLE.observe_many(values, topic)
    written: dict[str, list[float]] = defaultdict(list)
    for message in messages:
        if message.received_at is not None:
            moment = message.received_at.timestamp()
            if moment >= oldest:
                written[message.topic].append(max(now - moment, 0.0))
    for topic, values in written.items():
        metrics.INGEST_TO_DURABLE.observe_many(values, topic)


class PreparedBatch(NamedTuple):
    messages: Sequence[RawMessage]
    result: BatchResult


class BatchRuntime:
    def __init__(self, settings: Settings) -> None:
        self.directory_topic = DirectoryTopic(
            settings.kafka,
            settings.topics.directory,
            replication_factor=settings.topics.replication_factor,
        )
        self.directory = DirectoryWatcher(settings.directory_path, self.directory_topic)
        key = settings.parsing.phone_hash_key
        self.processor = BatchProcessor(
            build_parsers(settings.parsing, settings.worker.max_record_bytes),
            lambda: self.directory.current,
            PhoneProtector(key.get_secret_value().encode() if key else None),
            max_message_bytes=settings.worker.max_message_bytes,
            max_records_per_message=settings.worker.max_records_per_message,
            grace=settings.lateness.by_family(),
            excluded_numbers=settings.counting.excluded_numbers,
        )
        self.clickhouse = ClickHouseSink(
            lambda: NativeClickHouse(settings.clickhouse),
            retry_max_seconds=settings.worker.sink_retry_max_seconds,
        )
        self.worker_name = f"{socket.gethostname()}:{os.getpid()}"
        self._dead_reasons: Counter[str] = Counter()
        self._mostly_dead_batches = 0
        self._next_dead_warning = 0.0
        self.dead_letters = DeadLetterSink(
            settings.kafka,
            settings.topics.dead_letter,
            retry_max_seconds=settings.worker.sink_retry_max_seconds,
        )
        # Series that exist from the start, so a rule can tell "nothing arrived" (a zero that
        # stays zero) from "never measured", and sees the first increase of a counter.
        for topic in settings.topics.raw_topics():
            metrics.CONSUMED_MESSAGES.labels(topic)
        for outcome in ("ok", "error"):
            metrics.DIRECTORY_RELOADS.labels(outcome)

    async def __aenter__(self) -> BatchRuntime:
        await self.dead_letters.start()
        try:
            await self.directory_topic.start()
        except BaseException:
            await self.dead_letters.stop()
            raise
        try:
            await self.directory_topic.wait_loaded(DIRECTORY_LOAD_SECONDS)
        except TimeoutError:
            log.warning(
                "directory topic %s not read within %.0f s: using the file alone until it is",
                self.directory_topic.topic,
                DIRECTORY_LOAD_SECONDS,
            )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.directory_topic.stop()
        await self.dead_letters.stop()
        self.clickhouse.close()

    def _refresh_directory(self) -> None:
        if self.directory.refresh():
            metrics.DIRECTORY_RELOADS.labels("ok").inc()
            log.info("manager directory reloaded from %s", self.directory.path)
        elif self.directory.last_error:
            metrics.DIRECTORY_RELOADS.labels("error").inc()
            log.error("manager directory not reloaded: %s", self.directory.last_error)
            self.directory.last_error = None  # report each failed change once

    def prepare(self, messages: Sequence[RawMessage]) -> PreparedBatch:
        """The batch's CPU work, no I/O: what ``store`` will make durable."""
        self._refresh_directory()
        return PreparedBatch(messages, self.processor.process(messages))

    async def store(self, batch: PreparedBatch) -> None:
        """Returns once the batch's rows, dead letters and log entry are durable."""
        messages, result = batch
        refused = await self.clickhouse.write_events(result.rows)
        if refused:
            self._set_aside(messages, result, refused)
        await self.dead_letters.write(result.dead_letters)
        await self.clickhouse.insert(
            BATCHES_TABLE, BATCH_COLUMNS, batch_log(messages, result, self.worker_name)
        )
        self._count(messages, result)
        if result.mostly_dead():
            self._warn_mostly_dead(result)

    def _warn_mostly_dead(self, result: BatchResult) -> None:
        """A WARNING when most of a batch went to the dead-letter topic: a wrong PBX time zone,
        a changed format or a misconfigured bridge shows in the log at once, by reason, not as
        a growing dead-letter topic found days later. At most one a minute; the batches in
        between are summed into the next."""
        self._dead_reasons.update(letter.reason for letter in result.dead_letters)
        self._mostly_dead_batches += 1
        now = time.monotonic()
        if now < self._next_dead_warning:
            return
        reasons = ", ".join(f"{reason} {n}" for reason, n in self._dead_reasons.most_common())
        log.warning(
            "%d batch(es) dead-lettered most of their records: %s (reasons in the "
            "sp-dlq-reason header of %s)",
            self._mostly_dead_batches,
            reasons,
            self.dead_letters.topic,
        )
        self._dead_reasons.clear()
        self._mostly_dead_batches = 0
        self._next_dead_warning = now + MOSTLY_DEAD_WARNING_SECONDS

    def _set_aside(
        self, messages: Sequence[RawMessage], result: BatchResult, refused: Sequence[Refused]
    ) -> None:
        """Moves the rows ClickHouse refused from the batch's rows to its dead letters: one
        ``unstorable`` dead letter per source record, with the record's own bytes, so that a
        replay after the cause is fixed counts it."""
        by_coordinates = {(m.topic, m.partition, m.offset): m for m in messages}
        dropped: set[int] = set()
        for start, end, error in refused:
            topic, partition, offset, index = record_of_row(result.rows[start])
            message = by_coordinates[(topic, partition, offset)]
            source = SourceRef(result.rows[start][_SOURCE_FORMAT], topic, partition, offset, index)
            detail = f"ClickHouse refused it: {mask_numbers(str(error))}"
            record = self.processor.record_at(message, index)
            result.dead_letters.append(DeadLetter("unstorable", detail, source, record))
            for row in result.rows[start:end]:
                result.kinds[row[_KIND]] -= 1
                if not row[_MANAGER_ID]:
                    result.unattributed[row[_ACTOR_FAMILY]] -= 1
            dropped.update(range(start, end))
            log.warning(
                "record %s[%d]@%d #%d dead-lettered as unstorable: %s",
                topic,
                partition,
                offset,
                index,
                detail,
            )
        result.rows = [row for number, row in enumerate(result.rows) if number not in dropped]

    async def handle(self, messages: Sequence[RawMessage]) -> BatchResult:
        """``prepare`` then ``store``, for callers that do not overlap them."""
        batch = self.prepare(messages)
        await self.store(batch)
        return batch.result

    @staticmethod
    def _count(messages: Sequence[RawMessage], result: BatchResult) -> None:
        metrics.BATCH_MESSAGES.observe(len(messages))
        metrics.LAST_BATCH_DURABLE.set(time.time())
        observe_latencies(messages, result.rows)
        for topic, count in Counter(message.topic for message in messages).items():
            metrics.CONSUMED_MESSAGES.labels(topic).inc(count)
        for (topic, name), count in result.records.items():
            metrics.RECORDS.labels(name, topic).inc(count)
        for kind, count in result.kinds.items():
            metrics.EVENTS_STORED.labels(kind).inc(count)
        for family, count in result.unattributed.items():
            metrics.UNATTRIBUTED.labels(family).inc(count)
