"""Generated traffic on the real broker: topics, format headers, keys, order and pacing."""

from __future__ import annotations

import itertools
from collections import defaultdict
from datetime import UTC, datetime, timedelta

from aiokafka import AIOKafkaConsumer

from ingest.generator import make_population, send_to_kafka, simulate
from salespulse.models import SourceFamily
from salespulse.sections import TopicSettings
from salespulse.settings import Settings
from salespulse.topics import ensure_topics
from tests.conftest import LocalStack

DAY = datetime(2026, 3, 24, tzinfo=UTC)
_runs = itertools.count(1)


def own_topics(stack: LocalStack) -> Settings:
    run = f"gen{next(_runs)}"
    topics = TopicSettings(
        raw_pbx=f"{run}.pbx", raw_chat=f"{run}.chat", raw_crm=f"{run}.crm", dead_letter=f"{run}.dl"
    )
    return stack.settings.model_copy(update={"topics": topics})


Seen = tuple[str, bytes, bytes, dict[str, bytes]]  # topic, key, value, headers


async def consume_all(settings: Settings, expected: int) -> list[Seen]:
    consumer = AIOKafkaConsumer(
        *settings.topics.raw_topics(),
        **settings.kafka.aiokafka_options(),
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    seen: list[Seen] = []
    try:
        for _ in range(60):
            for records in (await consumer.getmany(timeout_ms=500)).values():
                seen += [(r.topic, r.key or b"", r.value or b"", dict(r.headers)) for r in records]
            if len(seen) >= expected:
                break
    finally:
        await consumer.stop()
    return seen


async def test_each_source_lands_on_its_topic_with_its_format_and_key(stack: LocalStack) -> None:
    settings = own_topics(stack)
    await ensure_topics(settings.kafka, settings.topics)
    traffic = simulate(make_population(6, 2, seed=3), DAY, DAY + timedelta(days=1), seed=5)
    report = await send_to_kafka(traffic, settings.kafka, settings.topics)
    seen = await consume_all(settings, report.messages)
    assert len(seen) == report.messages

    formats = {topic: headers["sp-format"] for topic, _, _, headers in seen}
    topics = settings.topics
    assert formats == {
        topics.raw_pbx: b"asterisk-cdr-csv",
        topics.raw_chat: b"chat-session-json",
        topics.raw_crm: b"crm-event-json",
    }
    assert {key for topic, key, _, _ in seen if topic == topics.raw_pbx} == {b"pbx-1"}
    assert sum(value.count(b"\n") + 1 for _, _, value, _ in seen) == report.records

    # One key's messages arrive in the order the source wrote them (same partition).
    by_key: dict[bytes, list[bytes]] = defaultdict(list)
    for topic, key, value, _ in seen:
        if topic == topics.raw_crm:
            by_key[key].append(value)
    sent_by_key: dict[bytes, list[bytes]] = defaultdict(list)
    for record in traffic.records[SourceFamily.CRM]:
        sent_by_key[record.key].append(record.data)
    assert by_key == sent_by_key


async def test_rate_limits_the_send(stack: LocalStack) -> None:
    settings = own_topics(stack)
    await ensure_topics(settings.kafka, settings.topics)
    traffic = simulate(make_population(2, 1, seed=3), DAY, DAY + timedelta(days=1), seed=5)
    records = sum(len(r) for r in traffic.records.values())
    report = await send_to_kafka(traffic, settings.kafka, settings.topics, rate=records / 1.0)
    # A full bucket allows a tenth of a second of burst; the rest is paced to about one second.
    assert report.seconds >= 0.8
    assert report.records == records
