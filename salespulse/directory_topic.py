"""The directory topic: changes to the manager directory published on a compacted Kafka topic.

The directory file stays the base; an HR or CRM integration publishes single entries on the
topic, and every worker lays them over the file without a restart (docs/adr/0005). The same
topic carries managers' absences for the working calendar. A message's key is
``manager:<id>``, ``department:<id>`` or ``absence:<id>``; its value is the JSON of one entry or
absence, or empty to delete it, the file's entry included. Compaction keeps the last value per
key, so reading the topic from its beginning gives the current overlay. The message format
lives in ``salespulse.directory_messages``; this module creates and reads the topic.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError
from prometheus_client import Counter

from salespulse.backoff import Backoff
from salespulse.calendar_file import Absence
from salespulse.directory import DirectoryError, DirectoryFile
from salespulse.directory_messages import (
    MAX_ENTRY_BYTES,
    Entry,
    KeyKind,
    Kind,
    absence_key,
    absences_of,
    entry_key,
    merge,
    parse_message,
)
from salespulse.sections import KafkaSettings

# The message format, for callers that know the topic by this module's name.
__all__ = [
    "MAX_ENTRY_BYTES",
    "UPDATES",
    "DirectoryTopic",
    "Entry",
    "KeyKind",
    "Kind",
    "absence_key",
    "absences_of",
    "ensure_directory_topic",
    "entry_key",
    "merge",
    "parse_message",
]

log = logging.getLogger(__name__)

UPDATES = Counter(
    "salespulse_directory_updates_total",
    "Directory topic messages read, by result: ok (applied) or invalid (skipped).",
    ["result"],
)


async def ensure_directory_topic(
    kafka: KafkaSettings, topic: str, *, replication_factor: int = 1
) -> bool:
    """Create the compacted directory topic if it is missing; True when it was created now."""
    admin = AIOKafkaAdminClient(**kafka.aiokafka_options())
    await admin.start()
    try:
        if topic in await admin.list_topics():
            return False
        # One partition: a directory is small and changes rarely, and a single log keeps all
        # changes in the order they were published.
        new = NewTopic(topic, 1, replication_factor, topic_configs={"cleanup.policy": "compact"})
        try:
            await admin.create_topics([new])
        except TopicAlreadyExistsError:  # another worker or publisher was quicker
            return False
        return True
    finally:
        await admin.close()


class DirectoryTopic:
    """The topic's current entries, read from its beginning at start and then followed.

    A ``DirectoryOverlay`` for ``DirectoryWatcher``. There is no consumer group and nothing is
    committed: every worker needs every entry, and compaction keeps the log as small as the
    directory. ``entries`` maps a key to its latest valid value (None: deleted); it shows only
    complete reads, so a worker never applies the first half of the log without the second.
    ``loaded`` turns true after the first complete read, and ``version`` grows whenever
    ``entries`` changes (a restart's fresh read included). ``apply`` lays the directory entries
    over the file; ``absences_of(entries)`` gives the absences.
    Messages that do not parse are skipped, logged and counted, leaving the key as it was.
    Everything runs on the caller's event loop, which is also where ``DirectoryWatcher.refresh``
    reads ``entries``, so no lock is needed.
    """

    def __init__(
        self,
        kafka: KafkaSettings,
        topic: str,
        *,
        replication_factor: int = 1,
        poll_seconds: float = 1.0,
    ) -> None:
        self.kafka = kafka
        self.topic = topic
        self.replication_factor = replication_factor
        self.poll_seconds = poll_seconds
        self.entries: dict[str, bytes | None] = {}
        self.version = 0
        self.loaded = False
        self._caught_up = asyncio.Event()
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> DirectoryTopic:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    def apply(self, base: DirectoryFile) -> DirectoryFile:
        return merge(base, self.entries)

    def absences(self) -> tuple[Absence, ...]:
        """The absences on the topic now (alert evaluation adds them to the calendar's)."""
        return absences_of(self.entries)

    async def start(self) -> None:
        if self._task is not None:
            raise RuntimeError("DirectoryTopic already started")
        await ensure_directory_topic(
            self.kafka, self.topic, replication_factor=self.replication_factor
        )
        # Created here, not in __init__: aiokafka binds to the running event loop.
        consumer = AIOKafkaConsumer(
            **self.kafka.aiokafka_options(),
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        await consumer.start()
        try:
            partitions = await self._partitions(consumer)
            consumer.assign(partitions)
            await consumer.seek_to_beginning(*partitions)
            ends: dict[TopicPartition, int] = await consumer.end_offsets(partitions)
        except BaseException:
            await consumer.stop()
            raise
        self._consumer = consumer
        self._caught_up = asyncio.Event()
        self._task = asyncio.create_task(self._follow(consumer, ends), name=f"read {self.topic}")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            await consumer.stop()

    async def wait_loaded(self, timeout_seconds: float | None) -> None:
        """Return once the topic is read up to the end offsets it had at ``start``.

        Raises TimeoutError after ``timeout_seconds``; reading goes on in the background, and
        ``loaded`` turns true when it completes.
        """
        if self._task is None:
            raise RuntimeError("DirectoryTopic.wait_loaded before start")
        await asyncio.wait_for(self._caught_up.wait(), timeout_seconds)

    async def _partitions(self, consumer: AIOKafkaConsumer) -> list[TopicPartition]:
        # Metadata of a topic created a moment ago may take a few refreshes to show it.
        deadline = time.monotonic() + 30
        while True:
            await consumer.topics()  # refreshes cluster metadata
            found = consumer.partitions_for_topic(self.topic)
            if found:
                return [TopicPartition(self.topic, p) for p in sorted(found)]
            if time.monotonic() > deadline:
                raise DirectoryError(f"directory topic {self.topic!r} has no partitions")
            await asyncio.sleep(0.2)

    async def _follow(self, consumer: AIOKafkaConsumer, ends: dict[TopicPartition, int]) -> None:
        started = time.monotonic()
        reading: dict[str, bytes | None] = {}
        remaining = dict(ends)
        waits = Backoff(first=1.0, cap=30.0)
        while True:
            try:
                if remaining:
                    # Positions rather than the offsets of records seen: a compacted log has
                    # gaps, and its last offset may belong to a record that is not delivered.
                    for tp, end in list(remaining.items()):
                        if await consumer.position(tp) >= end:
                            del remaining[tp]
                    if not remaining:
                        self._loaded_from(reading, time.monotonic() - started)
                following = not remaining
                target = self.entries if following else reading
                batches = await consumer.getmany(timeout_ms=int(self.poll_seconds * 1000))
                for tp, records in batches.items():
                    for record in records:
                        changed = self._apply(target, record.key, record.value, tp, record.offset)
                        if changed and following:
                            self.version += 1
                waits.reset()
            except Exception:
                # aiokafka retries what it can by itself; whatever reaches here must not end
                # the reading for good, and the entries read so far stay in force meanwhile.
                delay = waits.next()
                log.exception(
                    "directory topic %s: read failed, retrying in %.0f s", self.topic, delay
                )
                await asyncio.sleep(delay)

    def _loaded_from(self, reading: dict[str, bytes | None], seconds: float) -> None:
        self.entries = reading
        self.version += 1
        self.loaded = True
        self._caught_up.set()
        log.info(
            "directory topic %s read: %d entries in %.1f s (version %d)",
            self.topic,
            len(reading),
            seconds,
            self.version,
        )

    def _apply(
        self,
        target: dict[str, bytes | None],
        key: bytes | None,
        value: bytes | None,
        tp: TopicPartition,
        offset: int,
    ) -> bool:
        """Take one message into ``target``; True when that changed it."""
        try:
            if key is None:
                raise DirectoryError("a message without a key")
            name = key.decode("utf-8")
            parse_message(name, value)
        except (DirectoryError, UnicodeDecodeError) as exc:
            UPDATES.labels("invalid").inc()
            log.error(
                "directory topic %s partition %d offset %d skipped, the entry stays as it was: %s",
                self.topic,
                tp.partition,
                offset,
                exc,
            )
            return False
        UPDATES.labels("ok").inc()
        stored = value or None
        if name in target and target[name] == stored:
            return False
        target[name] = stored
        return True
