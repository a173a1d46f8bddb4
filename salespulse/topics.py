"""Creating the topics salespulse reads and writes, with the configured partition count."""

from __future__ import annotations

import contextlib

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from salespulse.sections import KafkaSettings, TopicSettings


async def ensure_topics(kafka: KafkaSettings, topics: TopicSettings) -> list[str]:
    """Create whichever of the raw, dead-letter and alerts topics are missing; returns those
    created."""
    wanted = [*topics.raw_topics(), topics.dead_letter, topics.alerts]
    admin = AIOKafkaAdminClient(**kafka.aiokafka_options())
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [name for name in wanted if name not in existing]
        if missing:
            new = [NewTopic(name, topics.partitions, topics.replication_factor) for name in missing]
            # Another worker may create them between our list and create: the same outcome.
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(new)
        return missing
    finally:
        await admin.close()
