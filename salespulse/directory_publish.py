"""Publishing directory changes and absences on the directory topic (``salespulse directory
publish``).

Each change is checked against the file and the topic as they are now, so a change the workers
would reject, or an absence of a manager they do not know, is refused where its author sees why.
"""

from __future__ import annotations

import logging
from pathlib import Path

import yaml
from aiokafka import AIOKafkaProducer
from pydantic import ValidationError

from salespulse.calendar_file import Absence
from salespulse.directory import (
    DepartmentEntry,
    Directory,
    DirectoryError,
    ManagerEntry,
    load_directory_file,
)
from salespulse.directory_messages import (
    Entry,
    KeyKind,
    Kind,
    absence_key,
    encode_value,
    entry_key,
    merge,
    parse_message,
    problems_of,
    split_key,
)
from salespulse.directory_topic import DirectoryTopic, ensure_directory_topic
from salespulse.sections import KafkaSettings

log = logging.getLogger(__name__)


async def publish(
    kafka: KafkaSettings,
    topic: str,
    key: str,
    value: Entry | Absence | None,
    *,
    replication_factor: int = 1,
) -> None:
    """Publish one entry or absence under ``key``, or its deletion when ``value`` is None."""
    kind, _ = split_key(key)
    if isinstance(value, Absence) and kind != "absence":
        raise DirectoryError(f"an absence cannot go under key {key!r}; use absence:<id>")
    if isinstance(value, Entry) and entry_key(value) != key:
        raise DirectoryError(f"a {kind} entry with id {value.id!r} cannot go under key {key!r}")
    encoded = encode_value(value)
    parse_message(key, encoded)  # what the workers will read must parse, the size included
    await ensure_directory_topic(kafka, topic, replication_factor=replication_factor)
    producer = AIOKafkaProducer(
        **kafka.aiokafka_options(),
        acks="all",
        enable_idempotence=False,  # not every broker supports it; a repeated entry is harmless
    )
    await producer.start()
    try:
        await producer.send_and_wait(topic, value=encoded, key=key.encode())
    finally:
        await producer.stop()
    log.info("published %s %s on %s", "deletion of" if value is None else "value of", key, topic)


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


class _DatesAsText(yaml.SafeLoader):
    """YAML that leaves dates and times as text, as the calendar file does: PyYAML would fail on
    a bad one without saying where, and would take a time without an offset as naive."""


_DatesAsText.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _read_mapping(
    path: Path, what: str, loader: type[yaml.SafeLoader] = yaml.SafeLoader
) -> dict[object, object]:
    try:
        raw = yaml.load(path.read_text(encoding="utf-8"), Loader=loader)  # noqa: S506 - a SafeLoader
    except (OSError, UnicodeDecodeError) as exc:
        raise DirectoryError(f"cannot read {path}: {exc}") from exc
    except yaml.YAMLError as exc:
        raise DirectoryError(f"{path} does not parse as YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise DirectoryError(f"{path}: expected one {what}, a mapping")
    return raw


def read_entry_file(path: Path, kind: Kind) -> Entry:
    """One entry from a YAML (or JSON) file, shaped like one item under ``managers:`` or
    ``departments:`` in the directory file."""
    raw = _read_mapping(path, f"{kind} entry")
    try:
        return (ManagerEntry if kind == "manager" else DepartmentEntry).model_validate(raw)
    except ValidationError as exc:
        raise DirectoryError(f"{path}: not a valid {kind} entry: {problems_of(exc)}") from exc


def read_absence_file(path: Path) -> Absence:
    """One absence from a YAML (or JSON) file, shaped like one item under ``absences:`` in the
    calendar file."""
    raw = _read_mapping(path, "absence", _DatesAsText)
    try:
        return Absence.model_validate(raw)
    except ValidationError as exc:
        raise DirectoryError(f"{path}: not a valid absence: {problems_of(exc)}") from exc


async def publish_checked(
    kafka: KafkaSettings,
    topic: str,
    key: str,
    value: Entry | Absence | None,
    *,
    directory_path: Path | None,
    replication_factor: int = 1,
    timeout_seconds: float = 30.0,
) -> None:
    """``publish``, after checking that the directory file, the topic and this change together
    make a consistent directory, and that an absence is of a manager in it (skipped when
    ``directory_path`` is None, and for an absence's deletion, which cannot break anything).

    A courtesy to the publisher, not a guarantee: workers check every update themselves, since
    another change may be published between this check and this publication.
    """
    kind, _ = split_key(key)
    if directory_path is not None and (kind != "absence" or value is not None):
        base = load_directory_file(directory_path)
        overlay = await read_overlay(
            kafka, topic, timeout_seconds=timeout_seconds, replication_factor=replication_factor
        )
        overlay[key] = encode_value(value) or None
        try:
            directory = Directory.from_model(merge(base, overlay))
        except DirectoryError as exc:
            if isinstance(value, Absence):
                raise DirectoryError(
                    f"{key} not published: its manager cannot be checked in a directory that "
                    f"is invalid with the topic's changes ({exc}); --no-check skips the check"
                ) from exc
            raise DirectoryError(f"{key} not published, it would be rejected: {exc}") from exc
        if isinstance(value, Absence) and value.manager not in directory.managers:
            raise DirectoryError(
                f"{key} not published: manager {value.manager!r} is not in the directory "
                f"({directory_path} with the topic's changes)"
            )
    await publish(kafka, topic, key, value, replication_factor=replication_factor)


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


async def publish_absence_from_file(
    kafka: KafkaSettings,
    topic: str,
    path: Path,
    absence_id: str,
    *,
    directory_path: Path | None = None,
    replication_factor: int = 1,
) -> str:
    """Publish the absence in ``path`` under the HR system's ``absence_id``; returns its key.

    Publishing under the same id again replaces the absence (a vacation moved or cut short).
    """
    key = absence_key(absence_id)
    absence = read_absence_file(path)
    await publish_checked(
        kafka,
        topic,
        key,
        absence,
        directory_path=directory_path,
        replication_factor=replication_factor,
    )
    return key


async def publish_deletion(
    kafka: KafkaSettings,
    topic: str,
    kind: KeyKind,
    entry_id: str,
    *,
    directory_path: Path | None = None,
    replication_factor: int = 1,
) -> str:
    """Publish the deletion of a manager or department (the file's included) or of an absence
    published on the topic; returns the key."""
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
