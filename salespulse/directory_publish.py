"""Publishing directory changes on the directory topic (``salespulse directory publish``).

Each change is checked against the file and the topic as they are now, so a change the workers
would reject is refused where its author sees why.
"""

from __future__ import annotations

import logging
from pathlib import Path

import yaml
from aiokafka import AIOKafkaProducer
from pydantic import ValidationError

from salespulse.directory import (
    DepartmentEntry,
    Directory,
    DirectoryError,
    ManagerEntry,
    load_directory_file,
)
from salespulse.directory_topic import (
    DirectoryTopic,
    Entry,
    Kind,
    ensure_directory_topic,
    entry_key,
    merge,
    parse_message,
)
from salespulse.settings import KafkaSettings

log = logging.getLogger(__name__)


def _encode(entry: Entry | None) -> bytes:
    # Deletions are empty values, not Kafka's null tombstones: compaction drops a null
    # tombstone after delete.retention.ms (a day by default), and a worker reading the topic
    # afresh after that would see the file's entry again. An empty value is kept for good.
    return entry.model_dump_json(exclude_none=True).encode() if entry is not None else b""


async def publish(
    kafka: KafkaSettings,
    topic: str,
    key: str,
    entry: Entry | None,
    *,
    replication_factor: int = 1,
) -> None:
    """Publish one entry under ``key``, or its deletion when ``entry`` is None."""
    kind, _, _ = parse_message(key, None)
    if entry is not None and entry_key(entry) != key:
        raise DirectoryError(f"a {kind} entry with id {entry.id!r} cannot go under key {key!r}")
    await ensure_directory_topic(kafka, topic, replication_factor=replication_factor)
    producer = AIOKafkaProducer(
        **kafka.aiokafka_options(),
        acks="all",
        enable_idempotence=False,  # not every broker supports it; a repeated entry is harmless
    )
    await producer.start()
    try:
        await producer.send_and_wait(topic, value=_encode(entry), key=key.encode())
    finally:
        await producer.stop()
    log.info("published %s %s on %s", "deletion of" if entry is None else "entry", key, topic)


async def read_overlay(
    kafka: KafkaSettings, topic: str, *, timeout_seconds: float = 30.0, replication_factor: int = 1
) -> dict[str, bytes | None]:
    """The topic's entries as of now, read once."""
    async with DirectoryTopic(kafka, topic, replication_factor=replication_factor) as reader:
        try:
            await reader.wait_loaded(timeout_seconds)
        except TimeoutError as exc:
            raise DirectoryError(
                f"directory topic {topic!r} not read within {timeout_seconds:.0f} s"
            ) from exc
        return dict(reader.entries)


async def load_effective_directory(
    kafka: KafkaSettings, topic: str, path: Path, *, timeout_seconds: float = 30.0
) -> Directory:
    """The directory a worker would use now: the file overlaid by the topic."""
    base = load_directory_file(path)
    return Directory.from_model(
        merge(base, await read_overlay(kafka, topic, timeout_seconds=timeout_seconds))
    )


def read_entry_file(path: Path, kind: Kind) -> Entry:
    """One entry from a YAML (or JSON) file, shaped like one item under ``managers:`` or
    ``departments:`` in the directory file."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise DirectoryError(f"cannot read {path}: {exc}") from exc
    except yaml.YAMLError as exc:
        raise DirectoryError(f"{path} does not parse as YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise DirectoryError(f"{path}: expected one {kind} entry, a mapping")
    try:
        return (ManagerEntry if kind == "manager" else DepartmentEntry).model_validate(raw)
    except ValidationError as exc:
        raise DirectoryError(f"{path}: not a valid {kind} entry: {exc}") from exc


async def publish_checked(
    kafka: KafkaSettings,
    topic: str,
    key: str,
    entry: Entry | None,
    *,
    directory_path: Path | None,
    replication_factor: int = 1,
    timeout_seconds: float = 30.0,
) -> None:
    """``publish``, after checking that the directory file, the topic and this change together
    make a consistent directory (skipped when ``directory_path`` is None).

    A courtesy to the publisher, not a guarantee: workers check every update themselves, since
    another change may be published between this check and this publication.
    """
    if directory_path is not None:
        base = load_directory_file(directory_path)
        overlay = await read_overlay(
            kafka, topic, timeout_seconds=timeout_seconds, replication_factor=replication_factor
        )
        overlay[key] = _encode(entry) or None
        try:
            Directory.from_model(merge(base, overlay))
        except DirectoryError as exc:
            raise DirectoryError(f"{key} not published, it would be rejected: {exc}") from exc
    await publish(kafka, topic, key, entry, replication_factor=replication_factor)


async def publish_from_file(
    kafka: KafkaSettings,
    topic: str,
    path: Path,
    *,
    kind: Kind = "manager",
    directory_path: Path | None = None,
    replication_factor: int = 1,
) -> str:
    """Publish the entry in ``path``; returns its key."""
    entry = read_entry_file(path, kind)
    key = entry_key(entry)
    await publish_checked(
        kafka,
        topic,
        key,
        entry,
        directory_path=directory_path,
        replication_factor=replication_factor,
    )
    return key


async def publish_deletion(
    kafka: KafkaSettings,
    topic: str,
    kind: Kind,
    entry_id: str,
    *,
    directory_path: Path | None = None,
    replication_factor: int = 1,
) -> str:
    """Publish the deletion of a manager or department, the file's included; returns the key."""
    key = f"{kind}:{entry_id}"
    await publish_checked(
        kafka,
        topic,
        key,
        None,
        directory_path=directory_path,
        replication_factor=replication_factor,
    )
    return key
