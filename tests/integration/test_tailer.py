"""The CDR file tailer on the real broker: every line exactly once, in order, whatever happens to
the file (pieces, rotation, copytruncate) or to the tailer (restart, crash, unwritable state)."""

from __future__ import annotations

import asyncio
import itertools
import os
import shutil
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer
from prometheus_client import REGISTRY

from ingest.raw_producer import RawProducer
from ingest.tailer import FileTailer, TailerSettings, run_tailer
from ingest.tailer_state import Position, StateStore, TailerStateError
from salespulse.sections import TopicSettings
from salespulse.settings import Settings
from salespulse.topics import ensure_topics
from tests.conftest import LocalStack

pytestmark = pytest.mark.integration
_runs = itertools.count(1)
POLL = 0.02


def cdr(number: int) -> bytes:
    """A Master.csv line (the 16 default columns), distinct per number."""
    ext, minute = f"10{number % 10}", f"{number % 60:02d}"
    fields = [
        "",
        ext,
        f"5551{number:04d}",
        "from-internal",
        f'"{ext}" <{ext}>',
        f"SIP/{ext}-{number:08x}",
        "SIP/trunk-00000001",
        "Dial",
        "SIP/trunk/5551",
        f"2026-03-24 10:{minute}:00",
        f"2026-03-24 10:{minute}:05",
        f"2026-03-24 10:{minute}:30",
        "30",
        "25",
        "ANSWERED",
        "DOCUMENTATION",
    ]
    return (",".join('"' + field.replace('"', '""') + '"' for field in fields) + "\n").encode()


def lines(first: int, count: int) -> bytes:
    return b"".join(cdr(n) for n in range(first, first + count))


class Topic:
    """Everything on one raw PBX topic, read as it arrives."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.values: list[bytes] = []
        self.formats: set[bytes] = set()
        self.keys: set[bytes | None] = set()
        self._consumer = AIOKafkaConsumer(
            settings.topics.raw_pbx,
            **settings.kafka.aiokafka_options(),
            auto_offset_reset="earliest",
            enable_auto_commit=False,
        )

    async def start(self) -> None:
        await self._consumer.start()

    async def stop(self) -> None:
        await self._consumer.stop()

    async def _poll(self, timeout_ms: int) -> None:
        for records in (await self._consumer.getmany(timeout_ms=timeout_ms)).values():
            for record in records:
                self.values.append(record.value or b"")
                self.formats.add(dict(record.headers)["sp-format"])
                self.keys.add(record.key)

    def delivered(self) -> bytes:
        """The lines as the file held them: each message's lines plus their final newline."""
        return b"".join(value + b"\n" for value in self.values)

    async def until(self, condition: Callable[[], bool], seconds: float = 20.0) -> None:
        deadline = time.monotonic() + seconds
        while not condition():
            assert time.monotonic() < deadline, f"waited {seconds} s; have {self.delivered()!r}"
            await self._poll(100)

    async def settle(self, seconds: float = 0.3) -> None:
        """Read whatever else arrives within ``seconds`` (to show that nothing more does)."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            await self._poll(50)


class Tailer:
    """A FileTailer running as a task, stoppable like the service on SIGTERM."""

    def __init__(self, settings: TailerSettings, producer: RawProducer) -> None:
        self.tailer = FileTailer(settings, producer)
        self.stop_event = asyncio.Event()
        self.task = asyncio.create_task(self.tailer.run(self.stop_event))

    async def stop(self) -> None:
        self.stop_event.set()
        await asyncio.wait_for(self.task, 10)


@pytest.fixture
async def env(stack: LocalStack, tmp_path: Path) -> AsyncIterator[tuple[Settings, Topic]]:
    run = f"tail{next(_runs)}-{os.getpid()}"
    topics = TopicSettings(
        raw_pbx=f"{run}.pbx", raw_chat=f"{run}.chat", raw_crm=f"{run}.crm", dead_letter=f"{run}.dl"
    )
    settings = stack.settings.model_copy(update={"topics": topics})
    await ensure_topics(settings.kafka, topics)
    topic = Topic(settings)
    await topic.start()
    try:
        yield settings, topic
    finally:
        await topic.stop()


@pytest.fixture
async def producer(env: tuple[Settings, Topic]) -> AsyncIterator[RawProducer]:
    settings, _ = env
    async with RawProducer(settings.kafka, settings.topics) as raw:
        yield raw


def tailer_settings(tmp_path: Path, **changes: object) -> TailerSettings:
    values: dict[str, object] = {
        "path": tmp_path / "cdr" / "Master.csv",
        "state_dir": tmp_path / "state",
        "poll_interval_seconds": POLL,
        "lines_per_message": 3,
    }
    values.update(changes)
    return TailerSettings.model_validate(values)


def append(path: Path, data: bytes) -> None:
    with path.open("ab") as file:
        file.write(data)


async def test_lines_in_pieces_arrive_whole_and_once(
    env: tuple[Settings, Topic], producer: RawProducer, tmp_path: Path
) -> None:
    _, topic = env
    settings = tailer_settings(tmp_path)
    settings.path.parent.mkdir()
    tailer = Tailer(settings, producer)  # started before the file exists: it waits for it
    await asyncio.sleep(POLL * 3)
    written = lines(0, 7)
    line = cdr(7)
    settings.path.write_bytes(written + line[:20])
    await topic.until(lambda: topic.delivered() == written)
    await topic.settle(POLL * 10)
    assert topic.delivered() == written, "a line without its newline was shipped"

    append(settings.path, line[20:-1])
    await topic.settle(POLL * 10)
    assert topic.delivered() == written
    append(settings.path, b"\n" + lines(8, 5))
    written += line + lines(8, 5)
    await topic.until(lambda: len(topic.delivered()) >= len(written))
    await tailer.stop()
    assert topic.delivered() == written
    assert topic.formats == {b"asterisk-cdr-csv"}
    assert topic.keys == {b"pbx-1"}
    assert max(value.count(b"\n") + 1 for value in topic.values) <= 3


async def test_rotation_by_rename_finishes_the_old_file_first(
    env: tuple[Settings, Topic], producer: RawProducer, tmp_path: Path
) -> None:
    _, topic = env
    settings = tailer_settings(tmp_path)
    settings.path.parent.mkdir()
    first = lines(0, 5)
    settings.path.write_bytes(first)
    tailer = Tailer(settings, producer)
    await topic.until(lambda: topic.delivered() == first)

    # No await in between: the tailer sees all of this at once, as after a busy second.
    rotated = settings.path.with_name("Master.csv.1")
    append(settings.path, lines(5, 4))
    settings.path.rename(rotated)
    append(rotated, lines(9, 2) + b"last line of the old file, unterminated")
    settings.path.write_bytes(lines(100, 4))
    expected = (
        first
        + lines(5, 4)
        + lines(9, 2)
        + b"last line of the old file, unterminated\n"
        + lines(100, 4)
    )
    await topic.until(lambda: len(topic.delivered()) >= len(expected))
    append(settings.path, lines(104, 2))
    expected += lines(104, 2)
    await topic.until(lambda: len(topic.delivered()) >= len(expected))
    await tailer.stop()
    assert topic.delivered() == expected


@pytest.mark.parametrize("rewritten", ["shorter", "longer"])
async def test_copytruncate_reads_the_copy_then_the_file_from_its_start(
    env: tuple[Settings, Topic], producer: RawProducer, tmp_path: Path, rewritten: str
) -> None:
    _, topic = env
    settings = tailer_settings(tmp_path)
    settings.path.parent.mkdir()
    first = lines(0, 6)
    settings.path.write_bytes(first)
    tailer = Tailer(settings, producer)
    await topic.until(lambda: topic.delivered() == first)

    # Lines the tailer has not read yet when logrotate copies and truncates: only the copy has them.
    append(settings.path, lines(6, 2))
    shutil.copyfile(settings.path, settings.path.with_name("Master.csv-20260324"))
    with settings.path.open("r+b") as file:
        file.truncate(0)
    # "longer" grows past the old offset before the next poll: only the first bytes tell.
    after = lines(200, 1) if rewritten == "shorter" else lines(200, 12)
    append(settings.path, after)
    expected = first + lines(6, 2) + after
    await topic.until(lambda: len(topic.delivered()) >= len(expected))
    await tailer.stop()
    assert topic.delivered() == expected


async def test_restart_resumes_exactly_where_it_stopped_even_across_a_rotation(
    env: tuple[Settings, Topic], producer: RawProducer, tmp_path: Path
) -> None:
    _, topic = env
    settings = tailer_settings(tmp_path, lines_per_message=2)
    settings.path.parent.mkdir()
    backlog = lines(0, 600)
    settings.path.write_bytes(backlog)
    tailer = Tailer(settings, producer)
    await topic.until(lambda: len(topic.values) >= 5)
    await tailer.stop()  # mid-backlog: the chunk in flight is finished and recorded
    await topic.settle()
    stopped_at = len(topic.delivered())
    assert 0 < stopped_at < len(backlog)
    assert backlog.startswith(topic.delivered())

    # While stopped: more lines, then a rotation by rename, then a new file.
    append(settings.path, lines(600, 3))
    settings.path.rename(settings.path.with_name("Master.csv.1"))
    settings.path.write_bytes(lines(3000, 3))
    expected = backlog + lines(600, 3) + lines(3000, 3)
    tailer = Tailer(settings, producer)
    await topic.until(lambda: len(topic.delivered()) >= len(expected))
    await tailer.stop()
    await topic.settle()
    assert topic.delivered() == expected


async def test_start_at_end_skips_what_was_there_but_not_a_line_in_progress(
    env: tuple[Settings, Topic], producer: RawProducer, tmp_path: Path
) -> None:
    _, topic = env
    settings = tailer_settings(tmp_path, start_at="end")
    settings.path.parent.mkdir()
    line = cdr(50)
    settings.path.write_bytes(lines(0, 10) + line[:10])
    tailer = Tailer(settings, producer)
    await asyncio.sleep(POLL * 5)
    append(settings.path, line[10:] + lines(51, 2))
    await topic.until(lambda: len(topic.delivered()) >= len(line + lines(51, 2)))
    await tailer.stop()
    assert topic.delivered() == line + lines(51, 2)


async def test_an_overlong_line_travels_alone_and_never_blocks_the_file(
    env: tuple[Settings, Topic], producer: RawProducer, tmp_path: Path
) -> None:
    _, topic = env
    settings = tailer_settings(tmp_path, max_line_bytes=1024, max_message_bytes=4096)
    settings.path.parent.mkdir()
    long_line = b"x" * 3000 + b"\n"
    runaway = b"y" * 5000  # no newline ever: shipped in pieces of max_message_bytes
    settings.path.write_bytes(cdr(1) + long_line + cdr(2) + cdr(3) + runaway)
    tailer = Tailer(settings, producer)
    await topic.until(lambda: len(topic.values) >= 4)
    append(settings.path, b"\n" + cdr(4))
    await topic.until(lambda: topic.values[-1].endswith(cdr(4)[:-1]))
    await tailer.stop()
    assert topic.values == [
        cdr(1)[:-1],
        long_line[:-1],
        cdr(2) + cdr(3)[:-1],
        runaway[:4096],
        runaway[4096:] + b"\n" + cdr(4)[:-1],
    ]


class Crash(Exception):
    """The process dying right after Kafka acknowledged a chunk, before its position is saved."""


async def test_a_crash_between_ack_and_save_resends_at_most_one_chunk(
    env: tuple[Settings, Topic], producer: RawProducer, tmp_path: Path
) -> None:
    _, topic = env
    settings = tailer_settings(tmp_path)
    settings.path.parent.mkdir()
    written = lines(0, 12)
    settings.path.write_bytes(written)
    crashing = FileTailer(settings, producer)
    saves = 0
    real_save = crashing.store.save

    def save_then_crash(position: Position) -> None:
        nonlocal saves
        saves += 1
        if saves == 3:  # the initial save, one chunk recorded, then the crash
            raise Crash
        real_save(position)

    crashing.store.save = save_then_crash  # type: ignore[method-assign]
    with pytest.raises(Crash):
        await crashing.run(asyncio.Event())
    await topic.until(lambda: len(topic.values) >= 2)

    tailer = Tailer(settings, producer)
    await topic.until(lambda: len(topic.delivered()) >= len(written) + len(topic.values[1]) + 1)
    await tailer.stop()
    await topic.settle()
    values = topic.values
    assert values[1] == values[2], "the unrecorded chunk is sent again, once"
    assert b"".join(value + b"\n" for value in values[:2] + values[3:]) == written


async def test_state_dir_that_cannot_be_created_fails_at_once(
    env: tuple[Settings, Topic], producer: RawProducer, tmp_path: Path
) -> None:
    _, topic = env
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a regular file")
    settings = tailer_settings(tmp_path, state_dir=blocker / "state")
    settings.path.parent.mkdir()
    settings.path.write_bytes(lines(0, 3))
    with pytest.raises(TailerStateError, match="not-a-directory"):
        await FileTailer(settings, producer).run(asyncio.Event())
    await topic.settle()
    assert topic.values == []


def _state_errors() -> float:
    labels = {"bridge": "tailer", "reason": "state_write"}
    return REGISTRY.get_sample_value("salespulse_bridge_errors_total", labels) or 0.0


async def test_unsaveable_position_pauses_shipping_and_keeps_the_old_state(
    env: tuple[Settings, Topic], producer: RawProducer, tmp_path: Path
) -> None:
    _, topic = env
    settings = tailer_settings(tmp_path)
    settings.path.parent.mkdir()
    first = lines(0, 3)
    settings.path.write_bytes(first)
    tailer = Tailer(settings, producer)
    await topic.until(lambda: topic.delivered() == first)
    await tailer.stop()
    store: StateStore = tailer.tailer.store
    saved = store.path.read_bytes()

    # As root no permission bit stops a write; a directory where the temporary file goes does.
    store.temp_path.mkdir()
    errors = _state_errors()
    append(settings.path, lines(3, 9))
    tailer = Tailer(settings, producer)
    await topic.until(lambda: _state_errors() > errors + 2, seconds=10)
    await topic.settle(POLL * 10)
    assert len(topic.values) == 2, "one chunk acknowledged, then nothing until it is recorded"
    assert store.path.read_bytes() == saved

    store.temp_path.rmdir()
    expected = first + lines(3, 9)
    await topic.until(lambda: len(topic.delivered()) >= len(expected))
    await tailer.stop()
    await topic.settle()
    assert topic.delivered() == expected
    assert store.path.read_bytes() != saved


async def test_run_tailer_owns_the_producer_and_stops_cleanly(
    env: tuple[Settings, Topic], tmp_path: Path
) -> None:
    settings, topic = env
    tail = tailer_settings(tmp_path)
    tail.path.parent.mkdir()
    tail.path.write_bytes(lines(0, 4))
    stop = asyncio.Event()
    task = asyncio.create_task(run_tailer(tail, RawProducer(settings.kafka, settings.topics), stop))
    await topic.until(lambda: topic.delivered() == lines(0, 4))
    stop.set()
    await asyncio.wait_for(task, 10)


SERVICE = """
import asyncio, signal, sys
from ingest.raw_producer import RawProducer
from ingest.tailer import TailerSettings, run_tailer
from salespulse.settings import KafkaSettings, TopicSettings

async def main() -> None:
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    tail = TailerSettings.model_validate_json(sys.argv[1])
    kafka = KafkaSettings.model_validate_json(sys.argv[2])
    topics = TopicSettings.model_validate_json(sys.argv[3])
    await run_tailer(tail, RawProducer(kafka, topics), stop)

asyncio.run(main())
"""


@pytest.mark.parametrize("signal_number", [signal.SIGTERM, signal.SIGINT])
async def test_a_signal_stops_the_service_cleanly_with_its_position_saved(
    env: tuple[Settings, Topic], tmp_path: Path, signal_number: signal.Signals
) -> None:
    settings, topic = env
    tail = tailer_settings(tmp_path)
    tail.path.parent.mkdir()
    tail.path.write_bytes(lines(0, 5))
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        SERVICE,
        tail.model_dump_json(),
        settings.kafka.model_dump_json(),
        settings.topics.model_dump_json(),
    )
    try:
        await topic.until(lambda: topic.delivered() == lines(0, 5))
        process.send_signal(signal_number)
        assert await asyncio.wait_for(process.wait(), 20) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    position = FileTailer(tail, RawProducer(settings.kafka, settings.topics)).store.load()
    assert position is not None
    assert position.offset == len(lines(0, 5))


async def test_a_backlog_travels_in_full_messages_and_live_lines_in_small_ones(
    env: tuple[Settings, Topic], producer: RawProducer, tmp_path: Path
) -> None:
    _, topic = env
    settings = tailer_settings(
        tmp_path, lines_per_message=2, max_message_bytes=4096, max_line_bytes=1024
    )
    settings.path.parent.mkdir()
    backlog = lines(0, 200)  # about 45 read blocks of 4 KiB
    settings.path.write_bytes(backlog)
    tailer = Tailer(settings, producer)
    try:
        await topic.until(lambda: topic.delivered() == backlog)
        backlog_messages = len(topic.values)
        per_block = 4096 // len(cdr(0))  # the complete lines one read block holds
        # Whole blocks per message, not 2 lines: 200 lines in ceil(200 / per_block) messages.
        assert per_block > 2
        assert backlog_messages == -(-200 // per_block)
        append(settings.path, lines(200, 5))  # following live again
        await topic.until(lambda: topic.delivered() == backlog + lines(200, 5))
        live = topic.values[backlog_messages:]
        assert all(value.count(b"\n") + 1 <= 2 for value in live)
    finally:
        await tailer.stop()
