"""The raw topics, consumed in whole batches straight from aiokafka (ADR 0009).

A faust agent hands messages over one at a time, at about 70 µs of framework per message: a
ceiling far below what the batch pipeline does. So the hot path fetches with ``getmany``, hands a
whole batch to the runtime, and commits the batch's offsets once the runtime says its effects
are durable. faust stays the application runtime around it: lifecycle, timers, web server.

The consumer group is the worker's application id, the group the faust agent used, so an
upgrade continues from the offsets committed before it.

Leadership: the member holding partition 0 of the first raw topic (in name order) leads, i.e.
recomputes rollups and evaluates alerts. Once the group is stable exactly one member holds it;
during a rebalance nobody may, for a few seconds, which the leader's work tolerates.

Rebalances: before partitions are taken away, the listener waits until the batch being handled
is durable and commits it, so the next owner starts after it. A crash instead replays the batch,
which is harmless: rows are keyed by their deterministic event ids.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError

from processors.pipeline import RawMessage
from salespulse.sections import KafkaSettings, WorkerSettings

log = logging.getLogger(__name__)
Prepared = TypeVar("Prepared")


class BatchHandler(Protocol[Prepared]):
    """The work on a batch in two steps, so that the next batch's CPU work overlaps the
    previous batch's writes."""

    def prepare(self, messages: Sequence[RawMessage]) -> Prepared:
        """CPU work only: no I/O."""
        ...

    async def store(self, batch: Prepared) -> None:
        """Returns once the batch's effects are durable."""
        ...


# How long the consumer may go without fetching before the group gives its partitions away:
# long enough for ClickHouse to come back while the worker waits to store a batch.
MAX_POLL_INTERVAL_SECONDS = 900.0
# Fetched but not yet handled bytes per partition; the fetcher stops at this, which bounds memory
# while ClickHouse is slow.
MAX_PARTITION_FETCH_BYTES = 4 * 1024 * 1024
STOP_STORING_SECONDS = 10.0


def raw_message(record: Any) -> RawMessage:
    """An aiokafka ``ConsumerRecord`` as the pipeline takes it."""
    stamp = record.timestamp  # milliseconds; -1 or 0 when the producer set none
    return RawMessage(
        record.topic,
        record.partition,
        record.offset,
        record.headers or (),
        record.value,
        datetime.fromtimestamp(stamp / 1000, UTC) if stamp and stamp > 0 else None,
    )


def next_offsets(messages: Iterable[RawMessage]) -> dict[TopicPartition, int]:
    """The offsets to commit once ``messages`` are durable: one past the last per partition."""
    offsets: dict[TopicPartition, int] = {}
    for message in messages:
        tp = TopicPartition(message.topic, message.partition)
        if message.offset >= offsets.get(tp, 0):
            offsets[tp] = message.offset + 1
    return offsets


class _Handover(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, consumer: BatchConsumer) -> None:
        self._owner = consumer

    async def on_partitions_revoked(self, revoked: Iterable[TopicPartition]) -> None:
        await self._owner.hand_over()

    async def on_partitions_assigned(self, assigned: Iterable[TopicPartition]) -> None:
        await self._owner.take_over(assigned)


class BatchConsumer:
    """One group member over the raw topics; ``run`` hands batches to ``handler`` until
    cancelled."""

    def __init__(self, kafka: KafkaSettings, worker: WorkerSettings, topics: Sequence[str]) -> None:
        self._kafka = kafka
        self._worker = worker
        self._topics = tuple(topics)
        self._leader_partition = TopicPartition(sorted(topics)[0], 0)
        self._consumer: AIOKafkaConsumer | None = None
        # Held while a batch is being gathered and made durable; a rebalance waits for it.
        self._batch = asyncio.Lock()
        self._storing: asyncio.Task[None] | None = None  # the batch being made durable
        self._storing_offsets: dict[TopicPartition, int] = {}
        self._pending: dict[TopicPartition, int] = {}  # durable, not yet committed
        self._failure: Exception | None = None  # a batch that could not be stored
        self._committed: dict[TopicPartition, int] = {}
        self._last_commit = time.monotonic()
        self._epoch = 0  # assignments seen: a batch is handled only under the one it came from
        self._joined = False  # the group has given this member its partitions at least once

    # What the rest of the worker asks of the group membership.

    def is_leader(self) -> bool:
        return self._consumer is not None and self._leader_partition in self.assignment()

    def joined(self) -> bool:
        """Whether the group has assigned this member its partitions (none, when the group has
        more members than partitions): before that it consumes nothing, so it is not ready."""
        return self._joined

    def assignment(self) -> set[TopicPartition]:
        return set(self._consumer.assignment()) if self._consumer is not None else set()

    async def end_offsets(self, *partitions: TopicPartition) -> Mapping[TopicPartition, int]:
        if self._consumer is None:
            return {}
        ends: Mapping[TopicPartition, int] = await self._consumer.end_offsets(list(partitions))
        return ends

    def committed(self) -> Mapping[TopicPartition, int | None]:
        return self._committed

    # The loop.

    def _client(self) -> AIOKafkaConsumer:
        worker = self._worker
        return AIOKafkaConsumer(
            **self._kafka.aiokafka_options(),
            group_id=worker.app_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_partition_fetch_bytes=MAX_PARTITION_FETCH_BYTES,
            session_timeout_ms=int(worker.session_timeout_seconds * 1000),
            heartbeat_interval_ms=int(min(3.0, worker.session_timeout_seconds / 3) * 1000),
            rebalance_timeout_ms=int(worker.rebalance_timeout_seconds * 1000),
            max_poll_interval_ms=int(MAX_POLL_INTERVAL_SECONDS * 1000),
        )

    async def run(self, handler: BatchHandler[Prepared]) -> None:
        consumer = self._client()
        consumer.subscribe(self._topics, listener=_Handover(self))
        await consumer.start()
        self._consumer = consumer
        try:
            while self._failure is None:
                # Gathered without the lock: while the group rebalances, ``getmany`` waits for
                # the new assignment, and the rebalance waits for the lock. Meanwhile the
                # previous batch is being stored.
                messages, epoch = await self._gather(consumer)
                async with self._batch:
                    if messages and epoch == self._epoch:
                        batch = handler.prepare(messages)
                        await self._settle()  # one batch stored at a time, in order
                        self._storing = asyncio.create_task(handler.store(batch))
                        self._storing_offsets = next_offsets(messages)
                    else:
                        # Idle, or a rebalance came in between (the partitions' positions went
                        # back to the committed offsets, so these messages come again).
                        await self._settle()
                    if time.monotonic() - self._last_commit >= self._worker.commit_interval_seconds:
                        await self._commit()
            raise self._failure
        finally:
            try:
                await self._stop_storing()
                await self._commit()
            finally:
                self._consumer = None
                await consumer.stop()

    async def _settle(self) -> None:
        """Waits for the batch being stored (raising what storing raised); its offsets become
        committable."""
        task, self._storing = self._storing, None
        if task is not None:
            await task
            self._pending.update(self._storing_offsets)

    async def _stop_storing(self) -> None:
        """On the way out: a batch still being stored gets a few seconds to become durable; if
        it does not, its offsets stay uncommitted and it is replayed."""
        task, self._storing = self._storing, None
        if task is None:
            return
        done, _ = await asyncio.wait({task}, timeout=STOP_STORING_SECONDS)
        if task in done and not task.cancelled() and task.exception() is None:
            self._pending.update(self._storing_offsets)
        else:
            task.cancel()

    async def _gather(self, consumer: AIOKafkaConsumer) -> tuple[list[RawMessage], int]:
        """Up to ``batch_max_messages``, waiting at most ``batch_within_seconds`` for them, all
        fetched under one assignment (the returned epoch)."""
        wanted = self._worker.batch_max_messages
        deadline = time.monotonic() + self._worker.batch_within_seconds
        messages: list[RawMessage] = []
        epoch = self._epoch
        while len(messages) < wanted:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            fetched = await consumer.getmany(
                timeout_ms=int(left * 1000) + 1, max_records=wanted - len(messages)
            )
            if epoch != self._epoch:
                # A rebalance finished during this fetch: what came before it is stale, what
                # this fetch returned belongs to the new assignment.
                messages, epoch = [], self._epoch
            for records in fetched.values():
                messages.extend(map(raw_message, records))
        return messages, epoch

    async def _commit(self) -> None:
        self._last_commit = time.monotonic()
        if not self._pending or self._consumer is None:
            return
        offsets, self._pending = self._pending, {}
        try:
            await self._consumer.commit(offsets)
        except KafkaError as exc:
            # Not fatal: the effects are durable, so the next owner of these partitions replays
            # the batches, harmlessly. Keep what is still ours for the next commit.
            assigned = self.assignment()
            self._pending = {tp: o for tp, o in offsets.items() if tp in assigned} | self._pending
            log.warning("offsets not committed this time: %r", exc)
            return
        self._committed.update(offsets)

    async def hand_over(self) -> None:
        """Before a rebalance: the batch in hand is made durable and committed."""
        async with self._batch:
            try:
                await self._settle()
            except Exception as exc:  # raised again by the loop, which stops the worker
                self._failure = exc
            await self._commit()
            self._pending.clear()
            self._epoch += 1

    async def take_over(self, assigned: Iterable[TopicPartition]) -> None:
        """After a rebalance: learn where the group's commits stand for the lag gauge."""
        # Before anything else: the first assignment can come while ``run`` is still in
        # ``start()``, before ``_consumer`` is set.
        self._joined = True
        consumer = self._consumer
        if consumer is None:
            return
        partitions = set(assigned)
        self._committed = {tp: o for tp, o in self._committed.items() if tp in partitions}
        for tp in partitions:
            try:
                self._committed[tp] = await consumer.committed(tp)
            except KafkaError as exc:
                log.debug("committed offset of %s not known yet: %r", tp, exc)
