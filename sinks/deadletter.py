"""The dead-letter topic: every record that produced no event, with why and where from.

The message value is the record's original bytes, untouched, so a fixed parser can replay it.
Reason, detail and source coordinates travel in headers (the convention Kafka Connect uses), so
tools can filter without parsing the value. Sends are awaited before the batch's offsets may be
committed: a dead letter is as durable as a stored event.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Sequence

from aiokafka import AIOKafkaProducer

from processors.pipeline import DeadLetter
from salespulse import metrics
from salespulse.models import FORMAT_HEADER
from salespulse.settings import KafkaSettings

MAX_DETAIL = 512


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
    def __init__(self, kafka: KafkaSettings, topic: str) -> None:
        self._kafka = kafka
        self._topic = topic
        self._producer: AIOKafkaProducer | None = None

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
