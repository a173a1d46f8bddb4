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

from salespulse.settings import KafkaSettings


async def group_lag(kafka: KafkaSettings, group_id: str, topics: tuple[str, ...]) -> int:
    """Messages in ``topics`` past the group's committed offsets (uncommitted counts in full)."""
    admin = AIOKafkaAdminClient(**kafka.aiokafka_options())
    consumer = AIOKafkaConsumer(**kafka.aiokafka_options(), enable_auto_commit=False)
    await admin.start()
    await consumer.start()
    try:
        await consumer.topics()  # loads cluster metadata, so partitions_for_topic can answer
        partitions = [
            TopicPartition(topic, p)
            for topic in topics
            for p in sorted(consumer.partitions_for_topic(topic) or ())
        ]
        if not partitions:
            return 0
        ends = await consumer.end_offsets(partitions)
        committed = await admin.list_consumer_group_offsets(group_id, partitions=partitions)
        lag = 0
        for tp in partitions:
            meta = committed.get(tp)
            done = meta.offset if meta is not None and meta.offset >= 0 else 0
            lag += max(ends[tp] - done, 0)
        return lag
    finally:
        await consumer.stop()
        await admin.close()


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
