"""Putting source bytes onto the raw topics, as every bridge and the generator do.

Raw stays raw: the value is exactly what the source emitted, the ``sp-format`` header names the
format, and the key is the source's natural ordering unit (a PBX, an operator, a CRM user, a
call), so records that must stay in order share a partition. ``send`` returns only after the
broker acknowledged the write (acks=all): a bridge may then advance its file position or answer
its HTTP client, and not before.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Iterable
from types import TracebackType
from typing import NamedTuple

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from ingest.bridge_metrics import PRODUCED_MESSAGES
from salespulse.models import BACKFILL_HEADER, FORMAT_HEADER, SourceFamily
from salespulse.settings import KafkaSettings, TopicSettings

# Bounds the memory held by unacknowledged sends while still pipelining them.
_IN_FLIGHT = 2000


class RawRecordOut(NamedTuple):
    family: SourceFamily
    format: str
    key: bytes | None
    value: bytes
    # History loaded on purpose (a backfill): the worker must not judge it late.
    backfill: bool = False


class ProduceError(Exception):
    """The broker did not acknowledge a write. ``retriable`` is False only for writes that can
    never succeed (a message larger than the broker accepts); the caller keeps the data."""

    def __init__(self, message: str, *, retriable: bool) -> None:
        super().__init__(message)
        self.retriable = retriable


class RawProducer:
    def __init__(self, kafka: KafkaSettings, topics: TopicSettings, *, linger_ms: int = 5) -> None:
        self._kafka = kafka
        self._topics = topics
        self._linger_ms = linger_ms
        self._producer: AIOKafkaProducer | None = None

    async def start(self) -> None:
        self._producer = AIOKafkaProducer(
            **self._kafka.aiokafka_options(),
            acks="all",
            enable_idempotence=False,  # not every broker supports it; event ids dedup instead
            linger_ms=self._linger_ms,
            max_request_size=4 * 1024 * 1024,
        )
        await self._producer.start()

    async def stop(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None

    async def __aenter__(self) -> RawProducer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def _enqueue(self, record: RawRecordOut, topic: str) -> Awaitable[object]:
        if self._producer is None:
            raise RuntimeError("RawProducer used before start()")
        future: Awaitable[object] = await self._producer.send(
            topic,
            record.value,
            key=record.key,
            headers=[(FORMAT_HEADER, record.format.encode())]
            + ([(BACKFILL_HEADER, b"1")] if record.backfill else []),
        )
        return future

    async def send(self, record: RawRecordOut) -> None:
        """Write one record and wait for the broker's acknowledgement."""
        await self.send_many([record])

    async def send_many(self, records: Iterable[RawRecordOut]) -> int:
        """Write records in order, pipelined, and wait until all are acknowledged."""
        pending: list[Awaitable[object]] = []
        topics: Counter[str] = Counter()  # of the pending writes, counted once acknowledged
        count = 0
        try:
            for record in records:
                topic = self._topics.for_family(record.family)
                pending.append(await self._enqueue(record, topic))
                topics[topic] += 1
                count += 1
                if len(pending) >= _IN_FLIGHT:
                    await asyncio.gather(*pending)
                    _count_produced(topics)
                    pending.clear()
            await asyncio.gather(*pending)
            _count_produced(topics)
        except KafkaError as exc:
            raise ProduceError(
                f"Kafka did not take the write: {exc}", retriable=exc.retriable
            ) from exc
        return count


def _count_produced(topics: Counter[str]) -> None:
    for topic, count in topics.items():
        PRODUCED_MESSAGES.labels(topic).inc(count)
    topics.clear()
