"""The directory topic on the real broker: read at start, followed while running, merged."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer
from prometheus_client import REGISTRY

from salespulse.calendar import Absence, AbsenceKind
from salespulse.cli import main
from salespulse.directory import (
    Attribution,
    DirectoryError,
    DirectoryWatcher,
    ManagerEntry,
    load_directory_file,
)
from salespulse.directory_publish import (
    load_effective_directory,
    publish,
    publish_deletion,
    publish_from_file,
)
from salespulse.directory_topic import DirectoryTopic, absences_of
from salespulse.models import Actor, SourceFamily
from salespulse.sections import KafkaSettings
from salespulse.settings import to_environment
from tests.conftest import LocalStack
from tests.polling import until_true
from tests.unit.test_directory import YAML

pytestmark = pytest.mark.integration

PBX_101 = Actor(SourceFamily.PBX, "101")
CHAT_OP_7 = Actor(SourceFamily.CHAT, "op-7")
NOON = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
MORNING = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)


@pytest.fixture
def topic() -> str:
    return f"test.directory.{uuid.uuid4().hex[:12]}"


@pytest.fixture
def kafka(stack: LocalStack) -> KafkaSettings:
    return stack.settings.kafka


@pytest.fixture
def directory_file(tmp_path: Path) -> Path:
    path = tmp_path / "directory.yaml"
    path.write_text(YAML)
    return path


@pytest.fixture
async def reader(kafka: KafkaSettings, topic: str) -> AsyncIterator[DirectoryTopic]:
    """A DirectoryTopic, not yet started; always stopped afterwards."""
    directory_topic = DirectoryTopic(kafka, topic, poll_seconds=0.2)
    yield directory_topic
    await directory_topic.stop()


def manager(manager_id: str, department: str, *identities: tuple[str, str]) -> ManagerEntry:
    return ManagerEntry.model_validate(
        {
            "id": manager_id,
            "department": department,
            "identities": [{"family": family, "id": ident} for family, ident in identities],
        }
    )


def updates(result: str) -> float:
    return REGISTRY.get_sample_value("salespulse_directory_updates_total", {"result": result}) or 0


async def send_raw(
    kafka: KafkaSettings, topic: str, key: bytes | None, value: bytes | None
) -> None:
    """A message as any producer might write it, bypassing publish()'s checks."""
    producer = AIOKafkaProducer(**kafka.aiokafka_options(), enable_idempotence=False)
    await producer.start()
    try:
        await producer.send_and_wait(topic, key=key, value=value)
    finally:
        await producer.stop()


async def test_entries_published_before_start_are_merged_over_the_file(
    kafka: KafkaSettings, topic: str, directory_file: Path, reader: DirectoryTopic
) -> None:
    await publish(kafka, topic, "manager:petrov", manager("petrov", "vvo", ("chat", "op-9")))
    await publish(kafka, topic, "manager:sidorova", manager("sidorova", "msk", ("crm", "u-5")))
    await publish_deletion(kafka, topic, "manager", "ivanova")
    # A later message for a key replaces the earlier one, compacted away or not.
    await publish(kafka, topic, "manager:sidorova", manager("sidorova", "msk", ("crm", "u-6")))

    await reader.start()
    await reader.wait_loaded(30)
    assert reader.loaded
    assert sorted(reader.entries) == ["manager:ivanova", "manager:petrov", "manager:sidorova"]
    assert reader.entries["manager:ivanova"] is None

    watcher = DirectoryWatcher(directory_file, reader)
    assert watcher.refresh()
    directory = watcher.current
    assert "ivanova" not in directory.managers
    assert directory.resolve(PBX_101, MORNING) is None  # Ivanova's extension went with her
    assert directory.resolve(CHAT_OP_7, NOON) is None
    assert directory.resolve(Actor(SourceFamily.CHAT, "op-9"), NOON) == ("petrov", "vvo")
    assert directory.resolve(Actor(SourceFamily.CRM, "u-5"), NOON) is None
    assert directory.resolve(Actor(SourceFamily.CRM, "u-6"), NOON) == ("sidorova", "msk")

    effective = await load_effective_directory(kafka, topic, directory_file)
    assert set(effective.managers) == set(directory.managers)


async def test_empty_topic_loads_at_once(
    kafka: KafkaSettings, topic: str, reader: DirectoryTopic
) -> None:
    await reader.start()
    await reader.wait_loaded(10)
    assert reader.entries == {}
    assert reader.version == 1


async def test_changes_while_running_reach_the_watcher(
    kafka: KafkaSettings, topic: str, directory_file: Path, reader: DirectoryTopic
) -> None:
    await reader.start()
    await reader.wait_loaded(30)
    watcher = DirectoryWatcher(directory_file, reader)
    assert watcher.refresh()

    # An update, as the worker sees it: refresh() before each batch.
    await publish(kafka, topic, "manager:petrov", manager("petrov", "vvo", ("chat", "op-9")))
    await until_true(watcher.refresh)
    assert watcher.current.resolve(Actor(SourceFamily.CHAT, "op-9"), NOON) == ("petrov", "vvo")
    version = reader.version

    # Garbage is skipped and counted; the entry and the version stay as they were.
    invalid_before, ok_before = updates("invalid"), updates("ok")
    await send_raw(kafka, topic, b"manager:petrov", b'{"id": "petrov", "department": ')
    await send_raw(kafka, topic, None, b"{}")
    await send_raw(kafka, topic, b"\xff\xfe", b"{}")
    await until_true(lambda: updates("invalid") == invalid_before + 3)
    assert updates("ok") == ok_before
    assert reader.version == version
    assert not watcher.refresh()
    assert watcher.current.resolve(Actor(SourceFamily.CHAT, "op-9"), NOON) == ("petrov", "vvo")

    # An update that would give extension 101 two holders is refused; the last good stays.
    await publish(kafka, topic, "manager:sidorova", manager("sidorova", "msk", ("pbx", "101")))
    await until_true(lambda: reader.version > version)
    assert not watcher.refresh()
    assert watcher.last_error is not None
    assert "sidorova" in watcher.last_error
    assert watcher.current.resolve(PBX_101, MORNING) == Attribution("ivanova", "msk")
    assert watcher.current.resolve(Actor(SourceFamily.CHAT, "op-9"), NOON) == ("petrov", "vvo")

    # Kafka's null tombstone deletes too: Sidorova's refused entry and Petrov's file entry.
    await send_raw(kafka, topic, b"manager:sidorova", None)
    await send_raw(kafka, topic, b"manager:petrov", None)
    await until_true(watcher.refresh)
    if "petrov" in watcher.current.managers:  # the two deletions arrived in two refreshes
        await until_true(watcher.refresh)
    assert watcher.last_error is None
    assert "petrov" not in watcher.current.managers
    assert "sidorova" not in watcher.current.managers
    assert watcher.current.resolve(PBX_101, NOON) is None


async def test_restart_reads_the_topic_afresh(
    kafka: KafkaSettings, topic: str, reader: DirectoryTopic
) -> None:
    await publish(kafka, topic, "manager:petrov", None)
    await send_raw(kafka, topic, b"manager:ivanova", b"garbage")
    await reader.start()
    await reader.wait_loaded(30)
    assert reader.entries == {"manager:petrov": None}  # the garbage was skipped
    version = reader.version
    await reader.stop()

    await publish(kafka, topic, "manager:sidorova", manager("sidorova", "msk", ("crm", "u-5")))
    await reader.start()
    await reader.wait_loaded(30)
    assert sorted(reader.entries) == ["manager:petrov", "manager:sidorova"]
    assert reader.entries["manager:sidorova"]
    assert reader.version > version  # so a watcher re-merges after the restart


async def test_publish_from_file_checks_against_the_file_and_topic(
    kafka: KafkaSettings, topic: str, directory_file: Path, tmp_path: Path
) -> None:
    entry = tmp_path / "sidorova.yaml"
    entry.write_text(
        "id: sidorova\nname: Svetlana Sidorova\ndepartment: msk\n"
        "identities:\n  - {family: pbx, id: '205', valid_from: '2026-11-26T09:00:00+03:00'}\n"
    )
    key = await publish_from_file(kafka, topic, entry, directory_path=directory_file)
    assert key == "manager:sidorova"

    clash = tmp_path / "clash.yaml"
    clash.write_text("id: kuznetsov\ndepartment: msk\nidentities: [{family: pbx, id: '205'}]\n")
    with pytest.raises(DirectoryError, match=r"not published.*'205'.*'kuznetsov' and 'sidorova'"):
        await publish_from_file(kafka, topic, clash, directory_path=directory_file)
    # Deleting the department Ivanova and Sidorova work in is refused too.
    with pytest.raises(DirectoryError, match="unknown department 'msk'"):
        await publish_deletion(kafka, topic, "department", "msk", directory_path=directory_file)

    effective = await load_effective_directory(kafka, topic, directory_file)
    assert set(effective.managers) == {"ivanova", "petrov", "sidorova"}
    assert effective.resolve(Actor(SourceFamily.PBX, "205"), NOON) == ("sidorova", "msk")
    # The file itself is untouched: the topic is an overlay.
    assert [m.id for m in load_directory_file(directory_file).managers] == ["ivanova", "petrov"]


async def test_publish_refuses_an_entry_under_another_key(kafka: KafkaSettings, topic: str) -> None:
    with pytest.raises(DirectoryError, match="cannot go under key"):
        await publish(kafka, topic, "manager:petrov", manager("sidorova", "msk"))
    with pytest.raises(DirectoryError, match="not manager:<id>"):
        await publish(kafka, topic, "boss:petrov", None)
    vacation = Absence.model_validate(
        {"manager": "petrov", "from": "2026-12-01", "to": "2026-12-02", "kind": "vacation"}
    )
    with pytest.raises(DirectoryError, match="an absence cannot go under key 'manager:petrov'"):
        await publish(kafka, topic, "manager:petrov", vacation)
    with pytest.raises(DirectoryError, match="an absence id is 1-128"):
        await publish(kafka, topic, "absence:with space", vacation)


async def test_absences_published_with_the_cli_are_read_back_and_deleted(
    stack: LocalStack,
    topic: str,
    directory_file: Path,
    reader: DirectoryTopic,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for name, value in to_environment(stack.settings).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("SALESPULSE_TOPICS__DIRECTORY", topic)
    monkeypatch.setenv("SALESPULSE_DIRECTORY_PATH", str(directory_file))

    async def salespulse(*argv: str) -> int:
        # The command runs its own event loop, so it gets a thread of its own.
        return await asyncio.to_thread(main, ["directory", "publish", *argv])

    vacation = tmp_path / "vacation.yaml"
    vacation.write_text("manager: ivanova\nfrom: 2026-12-01\nto: 2026-12-14\nkind: vacation\n")
    trip = tmp_path / "trip.json"
    trip.write_text(
        '{"manager": "petrov", "from": "2026-11-26T14:00:00+10:00",'
        ' "to": "2026-11-26T18:00:00+10:00", "kind": "business_trip"}'
    )
    assert await salespulse("--absence", str(vacation), "--id", "hr-4711") == 0
    assert capsys.readouterr().out.strip() == f"published absence:hr-4711 on {topic}"
    assert await salespulse("--absence", str(trip), "--id", "crm/trip/17") == 0
    # Of a manager neither the file nor the topic knows: refused, nothing published.
    vacation.write_text("manager: nobody\nfrom: 2026-12-01\nto: 2026-12-14\nkind: vacation\n")
    assert await salespulse("--absence", str(vacation), "--id", "hr-1") == 2
    assert "absence:hr-1 not published: manager 'nobody' is not in the directory" in (
        capsys.readouterr().err
    )
    assert await salespulse("--absence", str(vacation)) == 2
    assert "--id ID" in capsys.readouterr().err

    await reader.start()
    await reader.wait_loaded(30)
    assert sorted(reader.entries) == ["absence:crm/trip/17", "absence:hr-4711"]
    assert absences_of(reader.entries) == (
        Absence.model_validate(
            {
                "manager": "petrov",
                "from": datetime(2026, 11, 26, 4, tzinfo=UTC),
                "to": datetime(2026, 11, 26, 8, tzinfo=UTC),
                "kind": AbsenceKind.BUSINESS_TRIP,
            }
        ),
        Absence.model_validate(
            {
                "manager": "ivanova",
                "from": date(2026, 12, 1),
                "to": date(2026, 12, 14),
                "kind": AbsenceKind.VACATION,
            }
        ),
    )
    # Absences leave the directory as the file has it.
    watcher = DirectoryWatcher(directory_file, reader)
    assert watcher.refresh()
    assert set(watcher.current.managers) == {"ivanova", "petrov"}

    version = reader.version
    assert await salespulse("--delete-absence", "hr-4711") == 0
    assert capsys.readouterr().out.strip() == f"published absence:hr-4711 on {topic}"
    await until_true(lambda: reader.version > version)
    assert reader.entries["absence:hr-4711"] is None
    assert [absence.manager for absence in absences_of(reader.entries)] == ["petrov"]
