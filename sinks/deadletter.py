"""The dead-letter topic: every record that produced no event, with why and where from.

The message value is the record's original bytes, untouched, so a fixed parser can replay it.
Reason, detail and source coordinates travel in headers (the convention Kafka Connect uses), so
tools can filter without parsing the value. Sends are awaited before the batch's offsets may be
committed: a dead letter is as durable as a stored event. Like the ClickHouse sink's inserts,
a send the broker does not take is retried for as long as it takes.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Sequence

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError, KafkaTimeoutError

from processors.pipeline import DeadLetter
from salespulse import metrics
from salespulse.backoff import Backoff
from salespulse.models import FORMAT_HEADER
from salespulse.sections import KafkaSettings

MAX_DETAIL = 512

log = logging.getLogger(__name__)


def dead_letter_headers(letter: DeadLetter) -> list[tuple[str, bytes]]:
    source = letter.source
    return [
        ("sp-dlq-reason", letter.reason.encode()),
        ("sp-dlq-detail", letter.detail[:MAX_DETAIL].encode("utf-8", "replace")),
        (FORMAT_HEADER, source.format.encode()),
        ("sp-source-topic", source.topic.encode()),
        ("sp-source-partition", str(source.partition).encode()),
        ("sp-source-offset", str(source.offset).encode()),
        ("sp-source-index", str(source.position).encode()),
    ]


class DeadLetterSink:
    def __init__(
        self, kafka: KafkaSettings, topic: str, *, retry_max_seconds: float = 30.0
    ) -> None:
        self._kafka = kafka
        self._topic = topic
        self._retry_max = retry_max_seconds
        self._producer: AIOKafkaProducer | None = None

    @property
    def topic(self) -> str:
        return self._topic

    async def start(self) -> None:
        # Created here, not in __init__: aiokafka binds to the running event loop.
        self._producer = AIOKafkaProducer(
            **self._kafka.aiokafka_options(),
            acks="all",
            enable_idempotence=False,  # not every broker supports it; ids make dedup possible
            linger_ms=5,
            max_request_size=4 * 1024 * 1024,
        )
        await self._producer.start()

    async def stop(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None

    async def write(self, letters: Sequence[DeadLetter]) -> None:
        """Returns once the broker acknowledged every letter, retrying meanwhile.

        A broker that froze or restarted fails the sends in flight (a request timeout, a lost
        connection) and answers again later. Letting that error escape stopped the whole worker
        over a hiccup; waiting keeps the batch uncommitted and the consumer paused, the same
        backpressure as a ClickHouse outage. A send that landed before a failed one is sent
        again: dead letters are at-least-once, keyed by their source coordinates."""
        waits = Backoff(first=0.5, cap=self._retry_max)
        while True:
            try:
                await self._send(letters)
            except KafkaError as exc:
                # aiokafka marks its own client-side timeout as not retriable, but for a
                # durable write it only means the broker has not answered yet.
                if not (exc.retriable or isinstance(exc, KafkaTimeoutError)):
                    raise
                metrics.DEAD_LETTER_RETRIES.labels(type(exc).__name__).inc()
                delay = waits.next()
                log.warning("dead letters not sent (%r); retrying in %.1f s", exc, delay)
                await asyncio.sleep(delay)
                continue
            return

    async def _send(self, letters: Sequence[DeadLetter]) -> None:
        if not letters:
            return
        if self._producer is None:
            raise RuntimeError("DeadLetterSink.write before start")
        producer = self._producer
        futures = [
            await producer.send(
                self._topic,
                value=letter.original,
                key=f"{letter.source.topic}:{letter.source.partition}".encode(),
                headers=dead_letter_headers(letter),
            )
            for letter in letters
        ]
        await asyncio.gather(*futures)
        counts = Counter((letter.source.topic, letter.reason) for letter in letters)
        for (topic, reason), count in counts.items():
            metrics.DEAD_LETTERS.labels(topic, reason).inc(count)
