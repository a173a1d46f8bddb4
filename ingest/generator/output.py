"""Where generated traffic goes: files on disk, or the raw Kafka topics.

On Kafka a message looks like what the real shippers send: a chunk of CDR lines as a file tailer
reads them, or one JSON object (or a JSON Lines chunk) per message, each keyed by the actor so
that one actor's records stay in order on one partition.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import NamedTuple

from ingest.generator.activity import simulate
from ingest.generator.population import Population, write_directory_yaml
from ingest.generator.render import RawRecord, Traffic
from ingest.generator.truth import Expected
from ingest.pacing import TokenBucket
from ingest.raw_producer import RawProducer, RawRecordOut
from salespulse.models import SourceFamily
from salespulse.sections import KafkaSettings, TopicSettings

FILE_NAMES: dict[SourceFamily, str] = {
    SourceFamily.PBX: "Master.csv",
    SourceFamily.CHAT: "chat-sessions.jsonl",
    SourceFamily.CRM: "crm-events.jsonl",
}


class Message(NamedTuple):
    family: SourceFamily
    format: str
    key: bytes
    value: bytes
    records: int
    at: int


@dataclass(frozen=True)
class SendReport:
    messages: int = 0
    records: int = 0
    bytes: int = 0
    seconds: float = 0.0


def write_files(traffic: Traffic, directory: Path) -> list[Path]:
    """Each source's records as the file it would write, plus expected.json and directory.yaml."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for family, name in FILE_NAMES.items():
        path = directory / name
        records = traffic.records.get(family, [])
        path.write_bytes(b"".join(record.data + b"\n" for record in records))
        written.append(path)
    expected = directory / "expected.json"
    expected.write_text(traffic.expected.to_json(), encoding="utf-8")
    directory_file = directory / "directory.yaml"
    write_directory_yaml(traffic.population, directory_file)
    return [*written, expected, directory_file]


def frame_messages(
    records: Iterable[RawRecord], *, lines_per_message: int = 50, json_lines_per_message: int = 1
) -> list[Message]:
    """Group records per source and key into messages, ordered by their first record's time."""
    if lines_per_message < 1 or json_lines_per_message < 1:
        raise ValueError("lines per message must be at least 1")
    messages: list[Message] = []
    buffers: dict[tuple[SourceFamily, bytes], list[RawRecord]] = {}

    def flush(chunk: list[RawRecord]) -> None:
        first = chunk[0]
        value = b"\n".join(record.data for record in chunk)
        messages.append(Message(first.family, first.format, first.key, value, len(chunk), first.at))

    for record in records:
        limit = lines_per_message if record.family is SourceFamily.PBX else json_lines_per_message
        buffer = buffers.setdefault((record.family, record.key), [])
        buffer.append(record)
        if len(buffer) >= limit:
            flush(buffer)
            buffer.clear()
    for buffer in buffers.values():
        if buffer:
            flush(buffer)
    # Stable: messages of one key keep their order, as their first times never decrease.
    messages.sort(key=lambda message: message.at)
    return messages


def _outgoing(messages: Iterable[Message], backfill: bool) -> Iterator[RawRecordOut]:
    for message in messages:
        yield RawRecordOut(message.family, message.format, message.key, message.value, backfill)


async def _send_all(
    producer: RawProducer, messages: list[Message], bucket: TokenBucket | None, backfill: bool
) -> None:
    if bucket is None:
        await producer.send_many(_outgoing(messages, backfill))
        return
    # Paced: about a tenth of a second of traffic per slice, each slice pipelined.
    per_slice = max(1.0, bucket.rate / 10)
    chunk: list[Message] = []
    records = 0
    for position, message in enumerate(messages):
        chunk.append(message)
        records += message.records
        if records >= per_slice or position == len(messages) - 1:
            await asyncio.sleep(bucket.take_with_debt(records))
            await producer.send_many(_outgoing(chunk, backfill))
            chunk, records = [], 0


def _report(messages: list[Message], started: float) -> SendReport:
    return SendReport(
        messages=len(messages),
        records=sum(message.records for message in messages),
        bytes=sum(len(message.value) for message in messages),
        seconds=time.monotonic() - started,
    )


async def send_to_kafka(
    traffic: Traffic,
    kafka: KafkaSettings,
    topics: TopicSettings,
    *,
    rate: float | None = None,
    lines_per_message: int = 50,
    json_lines_per_message: int = 1,
    backfill: bool = True,
) -> SendReport:
    """Send all traffic, at ``rate`` records/s or as fast as possible, and await delivery.

    Simulated traffic is history by the time it is sent, so it is marked as a backfill unless
    the caller says otherwise: the worker would otherwise judge old records late.
    """
    messages = frame_messages(
        traffic.all_records(),
        lines_per_message=lines_per_message,
        json_lines_per_message=json_lines_per_message,
    )
    started = time.monotonic()
    # A tenth of a second of burst: smooth enough for consumers, coarse enough to pipeline.
    bucket = TokenBucket(rate, max(1.0, rate / 10)) if rate is not None else None
    async with RawProducer(kafka, topics) as producer:
        await _send_all(producer, messages, bucket, backfill)
    return _report(messages, started)


async def run_live(
    pop: Population,
    kafka: KafkaSettings,
    topics: TopicSettings,
    *,
    duration: timedelta,
    seed: int,
    malformed_share: float = 0.005,
    unknown_share: float = 0.01,
    lines_per_message: int = 50,
    json_lines_per_message: int = 1,
) -> tuple[SendReport, Expected]:
    """Send activity as it happens on the wall clock for ``duration``.

    The window is simulated up front and each record is sent once its source would have it
    (a CDR at hangup), so consumers see realistic same-second lag. Outside the departments'
    working hours this is quiet, as a real office is.
    """
    begin = datetime.now(UTC)
    finish = begin + duration
    traffic = simulate(pop, begin, finish, seed, malformed_share, unknown_share, now=finish)
    queue = sorted(traffic.all_records(), key=lambda record: record.ready)
    sent: list[Message] = []
    started = time.monotonic()
    position = 0
    async with RawProducer(kafka, topics) as producer:
        while position < len(queue):
            wall = time.time()
            due = position
            while due < len(queue) and queue[due].ready <= wall:
                due += 1
            if due == position:
                await asyncio.sleep(min(1.0, queue[position].ready - wall))
                continue
            batch = frame_messages(
                queue[position:due],
                lines_per_message=lines_per_message,
                json_lines_per_message=json_lines_per_message,
            )
            # Live records are sent as they happen: judged for lateness like any source's.
            await _send_all(producer, batch, None, backfill=False)
            sent += batch
            position = due
        # Run for the whole window even when it ends quietly, as a live source would.
        await asyncio.sleep(max(0.0, finish.timestamp() - time.time()))
    return _report(sent, started), traffic.expected
