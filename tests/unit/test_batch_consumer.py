"""The batch consumer's bookkeeping: which offsets a durable batch commits, how a Kafka record
becomes a pipeline message, and the order of preparing, storing and committing (against a fake
Kafka client: the loop's logic only; the real broker is in the integration tests)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka import TopicPartition

from processors.batch_consumer import BatchConsumer, next_offsets, raw_message
from processors.pipeline import RawMessage
from salespulse.sections import KafkaSettings, WorkerSettings


def _message(topic: str, partition: int, offset: int) -> RawMessage:
    return RawMessage(topic, partition, offset, (), b"")


def test_a_durable_batch_commits_one_past_its_last_offset_per_partition() -> None:
    batch = [
        _message("raw.pbx", 0, 10),
        _message("raw.pbx", 1, 3),
        _message("raw.pbx", 0, 11),
        _message("raw.crm", 0, 7),
        _message("raw.pbx", 0, 12),
    ]
    assert next_offsets(batch) == {
        TopicPartition("raw.pbx", 0): 13,
        TopicPartition("raw.pbx", 1): 4,
        TopicPartition("raw.crm", 0): 8,
    }


def test_an_empty_batch_commits_nothing() -> None:
    assert next_offsets([]) == {}


def _record(timestamp: int, headers: object = ()) -> SimpleNamespace:
    return SimpleNamespace(
        topic="raw.pbx", partition=2, offset=41, timestamp=timestamp, headers=headers, value=b"x"
    )


def test_a_record_keeps_its_coordinates_headers_and_broker_time() -> None:
    headers = [("sp-format", b"asterisk-cdr-csv")]
    message = raw_message(_record(1_795_000_000_250, headers))
    assert message == RawMessage(
        "raw.pbx",
        2,
        41,
        headers,
        b"x",
        datetime(2026, 11, 18, 11, 6, 40, 250000, tzinfo=UTC),
    )


def test_a_record_without_a_timestamp_has_no_receipt_time() -> None:
    # Producers that set no time leave -1; lateness is then not judged for the record.
    assert raw_message(_record(-1)).received_at is None
    assert raw_message(_record(0)).received_at is None
    assert raw_message(_record(0, None)).headers == ()


class _FakeKafka:
    """Stands in for AIOKafkaConsumer: hands out prepared fetches, records commits."""

    def __init__(self, fetches: list[dict[TopicPartition, list[SimpleNamespace]]]) -> None:
        self.fetches = fetches
        self.commits: list[dict[TopicPartition, int]] = []
        self.listener: Any = None

    def subscribe(self, topics: object, listener: Any) -> None:
        self.listener = listener

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    def assignment(self) -> set[TopicPartition]:
        return {TopicPartition("raw.pbx", 0)}

    async def getmany(
        self, timeout_ms: int, max_records: int
    ) -> dict[TopicPartition, list[SimpleNamespace]]:
        if self.fetches:
            return self.fetches.pop(0)
        await asyncio.sleep(timeout_ms / 1000)
        return {}

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        self.commits.append(dict(offsets))


def _fetch(*offsets: int) -> dict[TopicPartition, list[SimpleNamespace]]:
    records = [
        SimpleNamespace(topic="raw.pbx", partition=0, offset=o, timestamp=-1, headers=(), value=b"")
        for o in offsets
    ]
    return {TopicPartition("raw.pbx", 0): records}


class _Recorder:
    """A runtime whose stores finish when the test says so."""

    def __init__(self, kafka: _FakeKafka) -> None:
        self.kafka = kafka
        self.events: list[str] = []
        self.release: list[asyncio.Event] = []
        self.fail_store: int | None = None

    def prepare(self, messages: Sequence[RawMessage]) -> list[int]:
        offsets = [m.offset for m in messages]
        self.events.append(f"prepare {offsets}")
        return offsets

    async def store(self, batch: list[int]) -> None:
        self.events.append(f"store {batch} (commits so far {len(self.kafka.commits)})")
        released = asyncio.Event()
        self.release.append(released)
        await released.wait()
        if self.fail_store is not None and batch[0] == self.fail_store:
            raise RuntimeError("schema mismatch")
        self.events.append(f"stored {batch}")


def _consumer(kafka: _FakeKafka) -> BatchConsumer:
    worker = WorkerSettings(
        batch_max_messages=2, batch_within_seconds=0.05, commit_interval_seconds=0.01
    )
    consumer = BatchConsumer(KafkaSettings(), worker, ["raw.pbx"])
    consumer._client = lambda: kafka  # type: ignore[method-assign]
    return consumer


async def _until(condition: Callable[[], bool]) -> None:
    for _ in range(500):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition never held")


async def test_the_next_batch_is_prepared_while_one_is_stored_and_offsets_wait_for_the_store() -> (
    None
):
    kafka = _FakeKafka([_fetch(0, 1), _fetch(2, 3)])
    runtime = _Recorder(kafka)
    consumer = _consumer(kafka)
    running = asyncio.create_task(consumer.run(runtime))
    await _until(lambda: len(runtime.events) >= 3)
    # Batch [2, 3] was prepared while [0, 1] was still being stored, and nothing is committed.
    assert runtime.events[0] == "prepare [0, 1]"
    assert sorted(runtime.events[1:]) == ["prepare [2, 3]", "store [0, 1] (commits so far 0)"]
    assert kafka.commits == []
    runtime.release[0].set()
    await _until(lambda: len(runtime.release) == 2)
    # [0, 1] is durable: its offsets are committed; [2, 3]'s are not until its store returns.
    await _until(lambda: kafka.commits != [])
    assert kafka.commits == [{TopicPartition("raw.pbx", 0): 2}]
    runtime.release[1].set()
    await _until(lambda: len(kafka.commits) == 2)
    assert kafka.commits[1] == {TopicPartition("raw.pbx", 0): 4}
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running


async def test_a_batch_that_cannot_be_stored_stops_the_consumer_without_committing_it() -> None:
    kafka = _FakeKafka([_fetch(0, 1)])
    runtime = _Recorder(kafka)
    runtime.fail_store = 0
    consumer = _consumer(kafka)
    running = asyncio.create_task(consumer.run(runtime))
    await _until(lambda: len(runtime.release) == 1)
    runtime.release[0].set()
    with pytest.raises(RuntimeError, match="schema mismatch"):
        await asyncio.wait_for(running, 5)
    assert kafka.commits == []


async def test_a_rebalance_waits_for_the_batch_being_stored_and_commits_it() -> None:
    kafka = _FakeKafka([_fetch(0, 1)])
    runtime = _Recorder(kafka)
    consumer = _consumer(kafka)
    running = asyncio.create_task(consumer.run(runtime))
    await _until(lambda: len(runtime.release) == 1)
    revoking = asyncio.create_task(kafka.listener.on_partitions_revoked(kafka.assignment()))
    await asyncio.sleep(0.1)
    assert not revoking.done()  # the hand-over waits for the durable write
    runtime.release[0].set()
    await asyncio.wait_for(revoking, 5)
    assert kafka.commits == [{TopicPartition("raw.pbx", 0): 2}]
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running


async def test_a_member_is_ready_once_the_group_gave_it_partitions() -> None:
    consumer = BatchConsumer(KafkaSettings(), WorkerSettings(), ["pbx", "crm"])
    assert not consumer.joined()
    # The first assignment may arrive while run() is still starting the client.
    await consumer.take_over([TopicPartition("pbx", 0)])
    assert consumer.joined()
