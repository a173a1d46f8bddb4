"""Putting source bytes onto the raw topics, as every bridge and the generator do.

Raw stays raw: the value is exactly what the source emitted, the ``sp-format`` header names the
format, and the key is the source's natural ordering unit (a PBX, an operator, a CRM user, a
call), so records that must stay in order share a partition. ``send`` returns only after the
broker acknowledged the write (acks=all): a bridge may then advance its file position or answer
its HTTP client, and not before.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from types import TracebackType
from typing import NamedTuple

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from ingest.bridge_metrics import BRIDGE_ERRORS, BRIDGE_RECONNECTS, PRODUCED_MESSAGES
from salespulse.backoff import Backoff
from salespulse.errors import SourceError
from salespulse.models import BACKFILL_HEADER, FORMAT_HEADER, SourceFamily
from salespulse.sections import KafkaSettings, TopicSettings

log = logging.getLogger(__name__)

# Bounds the memory held by unacknowledged sends while still pipelining them.
_IN_FLIGHT = 2000
# A healthy broker acknowledges in milliseconds. A hung or unreachable one makes aiokafka retry
# quietly until its request timeout (40 s) expires, and only then does a write fail: without this
# warning an outage shorter than that would leave no trace in the bridge's log.
STALL_WARNING_SECONDS = 5.0
# aiokafka's default of 100 ms between retries logs a few ERROR lines per attempt: tens a
# second, hours on end, while a broker refuses connections. A second apart costs a bridge at
# most a second of latency after the broker is back.
_RETRY_BACKOFF_MS = 1000
_MAX_START_BACKOFF_SECONDS = 30.0


class RawRecordOut(NamedTuple):
    family: SourceFamily
    format: str
    key: bytes | None
    value: bytes
    # History loaded on purpose (a backfill): the worker must not judge it late.
    backfill: bool = False


class ProduceError(SourceError):
    """The broker did not acknowledge a write. ``retriable`` is False only for writes that can
    never succeed (a message larger than the broker accepts); the caller keeps the data."""

    def __init__(self, message: str, *, retriable: bool) -> None:
        super().__init__(message)
        self.retriable = retriable


class RawProducer:
    def __init__(
        self,
        kafka: KafkaSettings,
        topics: TopicSettings,
        *,
        linger_ms: int = 5,
        stall_warning_seconds: float = STALL_WARNING_SECONDS,
    ) -> None:
        self._kafka = kafka
        self._topics = topics
        self._linger_ms = linger_ms
        self._stall_warning_seconds = stall_warning_seconds
        # When the oldest write of an ongoing stall was made; None while the broker answers.
        # One per producer, so that concurrent writers (the receiver's requests) warn once.
        self._stalled_since: float | None = None
        self._producer: AIOKafkaProducer | None = None

    async def start(self) -> None:
        self._producer = AIOKafkaProducer(
            **self._kafka.aiokafka_options(),
            acks="all",
            enable_idempotence=False,  # not every broker supports it; event ids dedup instead
            linger_ms=self._linger_ms,
            max_request_size=4 * 1024 * 1024,
            retry_backoff_ms=_RETRY_BACKOFF_MS,
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
                    await self._acknowledged(pending)
                    _count_produced(topics)
                    pending.clear()
            await self._acknowledged(pending)
            _count_produced(topics)
        except KafkaError as exc:
            raise ProduceError(
                f"Kafka did not take the write: {exc}", retriable=exc.retriable
            ) from exc
        return count

    def stalled_seconds(self) -> float | None:
        """How long the oldest write of an ongoing stall has waited for the broker (at least
        ``stall_warning_seconds``); None while the broker acknowledges."""
        since = self._stalled_since
        return None if since is None else time.monotonic() - since

    async def _acknowledged(self, pending: list[Awaitable[object]]) -> None:
        """Wait for the broker's acknowledgement of ``pending``, saying so in the log when it
        takes longer than a healthy broker would, and again when the broker answers."""
        acknowledged = asyncio.gather(*pending)
        try:
            done, _ = await asyncio.wait([acknowledged], timeout=self._stall_warning_seconds)
            if not done and self._stalled_since is None:
                self._stalled_since = time.monotonic() - self._stall_warning_seconds
                log.warning(
                    "Kafka (%s) has not acknowledged a write for %.0f s: the broker is hung or "
                    "unreachable; waiting for it, and nothing is acknowledged to the source "
                    "meanwhile",
                    self._kafka.bootstrap_servers,
                    self._stall_warning_seconds,
                )
            await acknowledged
        except asyncio.CancelledError:
            acknowledged.cancel()  # a caller's deadline: the retrieval of the outcome ends here
            raise
        if self._stalled_since is not None:
            log.info(
                "Kafka acknowledges writes again after %.0f s",
                time.monotonic() - self._stalled_since,
            )
            self._stalled_since = None


async def start_when_reachable(producer: RawProducer, stop: asyncio.Event, bridge: str) -> bool:
    """Start ``producer``, retrying with backoff while the broker cannot be reached: a bridge
    may well start before Kafka (a host booting, a broker being upgraded). False if ``stop``
    was set first. Failures count under ``bridge`` as ``kafka_start`` errors."""
    waits = Backoff(first=0.5, cap=_MAX_START_BACKOFF_SECONDS)
    while not stop.is_set():
        try:
            await producer.start()
            return True
        except Exception as exc:  # any failure to reach the broker: retry, never give up
            await producer.stop()  # closes the half-started client
            BRIDGE_ERRORS.labels(bridge, "kafka_start").inc()
            BRIDGE_RECONNECTS.labels(bridge).inc()
            delay = waits.next()
            log.warning("cannot reach Kafka, retrying in %.1f s: %s", delay, exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)
    return False


async def serve_when_reachable(
    producer: RawProducer,
    stop: asyncio.Event,
    bridge: str,
    serve: Callable[[], Awaitable[None]],
) -> None:
    """Start ``producer`` once the broker answers (``start_when_reachable``), then ``serve``;
    stop the producer however that ends, flushing what it still holds."""
    try:
        if await start_when_reachable(producer, stop, bridge):
            await serve()
    finally:
        await producer.stop()


def _count_produced(topics: Counter[str]) -> None:
    for topic, count in topics.items():
        PRODUCED_MESSAGES.labels(topic).inc(count)
    topics.clear()
