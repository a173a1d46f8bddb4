"""Consumer-group lag: how many messages the worker has not yet made durable.

The worker commits an offset only after the batch before it is in ClickHouse, so "lag is zero"
means "everything produced so far is countable in ClickHouse". The demo and the end-to-end tests
wait on this instead of sleeping for a guessed time.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from salespulse.sections import KafkaSettings


class LagProbe:
    """Measures a group's lag again and again over one pair of clients (alert evaluation asks
    every second whether the stored data is current)."""

    def __init__(self, kafka: KafkaSettings, group_id: str, topics: tuple[str, ...]) -> None:
        self.group_id = group_id
        self.topics = topics
        self._admin = AIOKafkaAdminClient(**kafka.aiokafka_options())
        self._consumer = AIOKafkaConsumer(**kafka.aiokafka_options(), enable_auto_commit=False)

    async def start(self) -> None:
        await self._admin.start()
        try:
            await self._consumer.start()
        except BaseException:
            await self._admin.close()
            raise

    async def stop(self) -> None:
        await self._consumer.stop()
        await self._admin.close()

    async def __aenter__(self) -> LagProbe:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def _positions(self) -> dict[TopicPartition, tuple[int, int]]:
        """Per partition: (committed offset, end offset)."""
        await self._consumer.topics()  # (re)loads metadata, so new partitions are seen
        partitions = [
            TopicPartition(topic, p)
            for topic in self.topics
            for p in sorted(self._consumer.partitions_for_topic(topic) or ())
        ]
        if not partitions:
            return {}
        ends = await self._consumer.end_offsets(partitions)
        committed = await self._admin.list_consumer_group_offsets(
            self.group_id, partitions=partitions
        )
        positions = {}
        for tp in partitions:
            meta = committed.get(tp)
            done = meta.offset if meta is not None and meta.offset >= 0 else 0
            positions[tp] = (done, ends[tp])
        return positions

    async def lag(self) -> int:
        """Messages in the topics past the group's committed offsets (uncommitted in full)."""
        positions = await self._positions()
        return sum(max(end - done, 0) for done, end in positions.values())

    async def behind_seconds(self) -> float:
        """How long ago the oldest message the group has not committed yet was written: 0 when
        it is caught up. Unlike a count of messages, this means the same at any traffic rate."""
        lagging = {tp: done for tp, (done, end) in (await self._positions()).items() if end > done}
        if not lagging:
            return 0.0
        self._consumer.assign(list(lagging))
        for tp, done in lagging.items():
            self._consumer.seek(tp, done)
        fetched = await self._consumer.getmany(*lagging, timeout_ms=500)
        stamps: list[int] = [records[0].timestamp for records in fetched.values() if records]
        if not stamps:
            return 0.0  # nothing readable yet: the next call asks again
        return max(0.0, time.time() - min(stamps) / 1000)


async def group_lag(kafka: KafkaSettings, group_id: str, topics: tuple[str, ...]) -> int:
    """Messages in ``topics`` past the group's committed offsets (uncommitted counts in full)."""
    async with LagProbe(kafka, group_id, topics) as probe:
        return await probe.lag()


async def wait_for_zero_lag(
    kafka: KafkaSettings,
    group_id: str,
    topics: tuple[str, ...],
    *,
    timeout_seconds: float,
    poll_seconds: float = 0.5,
    consumer_alive: Callable[[], bool] = lambda: True,
) -> float:
    """Wait until the group has committed everything; returns the seconds waited.

    ``consumer_alive`` lets the caller fail at once when the worker it waits for has died,
    instead of at the timeout.
    """
    started = time.monotonic()
    while True:
        if not consumer_alive():
            raise RuntimeError(f"the consumer of group {group_id!r} is no longer running")
        lag = await group_lag(kafka, group_id, topics)
        waited = time.monotonic() - started
        if lag == 0:
            return waited
        if waited > timeout_seconds:
            raise TimeoutError(f"consumer group {group_id!r} still {lag} messages behind")
        await asyncio.sleep(poll_seconds)
