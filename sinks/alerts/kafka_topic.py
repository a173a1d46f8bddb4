"""The alerts topic: every notice, suppressed or not, as the JSON payload.

Keyed by the alert key, so one alert's notices share a partition and a consumer reads its fire
before its resolve. The notice id and state also travel in headers, so tools can filter or
deduplicate without parsing the value.
"""

from __future__ import annotations

from aiokafka import AIOKafkaProducer
from aiokafka.errors import (
    InvalidTopicError,
    KafkaError,
    MessageSizeTooLargeError,
    TopicAuthorizationFailedError,
)

from salespulse.alert_model import Notice
from salespulse.sections import KafkaSettings
from sinks.alerts.channel import AlertDeliveryError
from sinks.alerts.payload import encode_payload

# Errors that no retry can cure; anything else from the broker may pass (a leader moving, the
# broker restarting), and retries are bounded by the dispatcher anyway.
_NEVER_WORKS = (InvalidTopicError, MessageSizeTooLargeError, TopicAuthorizationFailedError)


class KafkaTopicChannel:
    name = "kafka"
    for_people = False  # the topic is the record: it carries suppressed notices too

    def __init__(self, kafka: KafkaSettings, topic: str, *, timeout_seconds: float = 30.0) -> None:
        self._kafka = kafka
        self._topic = topic
        self._timeout_ms = int(timeout_seconds * 1000)
        self._producer: AIOKafkaProducer | None = None

    async def start(self) -> None:
        # Created here, not in __init__: aiokafka binds to the running event loop.
        producer = AIOKafkaProducer(
            **self._kafka.aiokafka_options(),
            acks="all",
            enable_idempotence=False,  # not every broker supports it; notice ids dedupe
            linger_ms=5,
            # One attempt's bound: a broker that is away fails the send (retried with backoff)
            # instead of holding the channel's queue for aiokafka's default 40 s.
            request_timeout_ms=self._timeout_ms,
        )
        await producer.start()
        self._producer = producer

    async def stop(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None

    async def send(self, notice: Notice) -> None:
        if self._producer is None:
            raise RuntimeError("KafkaTopicChannel.send before start")
        try:
            await self._producer.send_and_wait(
                self._topic,
                value=encode_payload(notice),
                key=notice.alert.key.encode(),
                headers=[
                    ("sp-notice-id", notice.notice_id.encode()),
                    ("sp-alert-state", notice.state.value.encode()),
                ],
            )
        except KafkaError as exc:
            retriable = not isinstance(exc, _NEVER_WORKS)
            raise AlertDeliveryError(f"Kafka: {exc!r}", retriable=retriable) from exc
