"""Pieces shared by the phases of benchmarks/suite.py: the workload, processes, measurements."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from aiokafka import AIOKafkaConsumer, TopicPartition
from end_to_end import cpu_seconds, peak_rss_mb  # sibling modules: run as a script

from ingest.generator import Population, Traffic, frame_messages, simulate
from salespulse.sections import KafkaSettings
from salespulse.settings import Settings, to_environment
from sinks.clickhouse.client import ClickHouseError, NativeClickHouse

# A fixed working week in the past: the same records on every run, whatever today is.
WEEK_END = datetime(2026, 11, 21, tzinfo=UTC)  # a Saturday
POLL_SECONDS = 0.1


def working_window(days: int, end: datetime = WEEK_END) -> tuple[datetime, datetime]:
    """The UTC window ending at ``end`` that holds ``days`` weekdays (weekends add nothing)."""
    start = end
    counted = 0
    while counted < days:
        start -= timedelta(days=1)
        counted += start.weekday() < 5
    return start, end


@dataclass(frozen=True)
class Workload:
    """Generated traffic and its sizes in the three units the suite reports."""

    traffic: Traffic
    messages: int  # Kafka messages (a CDR message carries up to 50 lines)
    records: int  # raw records: CDR lines, chat sessions, CRM events (malformed included)
    events: int  # canonical activity events a correct pipeline stores
    bytes: int

    @classmethod
    def generate(cls, population: Population, days: int, seed: int, end: datetime) -> Workload:
        start, end = working_window(days, end)
        traffic = simulate(population, start, end, seed)
        messages = frame_messages(traffic.all_records())
        return cls(
            traffic,
            messages=len(messages),
            records=sum(m.records for m in messages),
            events=traffic.expected.canonical_events,
            bytes=sum(len(m.value) for m in messages),
        )


@dataclass
class Measure:
    """One consumer's timed window: ``events`` made durable (or read) in ``seconds``."""

    name: str
    events: float
    seconds: float
    cpu_seconds: float
    peak_rss_mb: float
    note: str = ""

    @property
    def events_per_second(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else float("nan")

    @property
    def cores_busy(self) -> float:
        """CPU seconds per wall second: 1.0 is one core, all a Python process's GIL allows."""
        return self.cpu_seconds / self.seconds if self.seconds > 0 else float("nan")

    @property
    def cpu_per_million(self) -> float:
        return self.cpu_seconds / self.events * 1e6 if self.events else float("nan")


def start_process(
    argv: Sequence[str], settings: Settings, log_path: Path
) -> subprocess.Popen[bytes]:
    """``python argv…`` configured by ``settings`` through the environment, as the worker is."""
    env = {**os.environ, **to_environment(settings)}
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        return subprocess.Popen(
            [sys.executable, *argv],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
        )


def log_tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def stored_events(client: NativeClickHouse) -> int:
    """Rows in the events table; every event id of the workload is distinct, so until a replay
    this is the number of events made durable."""
    try:
        ((count,),) = client.execute(f"SELECT count() FROM {client.database}.events")
    except ClickHouseError:
        return 0  # the consumer has not created the schema yet
    return int(count)


@dataclass
class Watched:
    """A consumer process, its log, and how to tell it is fully at work."""

    processes: list[subprocess.Popen[bytes]]
    log_paths: list[Path]

    def check_alive(self) -> None:
        for process, log in zip(self.processes, self.log_paths, strict=True):
            if process.poll() is not None:
                raise RuntimeError(f"{log.name} exited with {process.returncode}:\n{log_tail(log)}")

    def cpu(self) -> float:
        return sum(cpu_seconds(p.pid) for p in self.processes)

    def rss(self) -> float:
        return max(peak_rss_mb(p.pid) for p in self.processes)


async def watch_stored(
    name: str,
    client: NativeClickHouse,
    watched: Watched,
    target: int,
    *,
    limit: float,
    window: float | None = None,
    at_work: Callable[[], bool] = lambda: True,
    on_first: Callable[[], object] = lambda: None,
) -> Measure:
    """Poll the events table until ``target`` rows are stored (or ``window`` seconds have passed
    since the first ones). The clock starts at the first poll that sees rows while
    ``at_work()`` holds, so start-up, group joining and the first fetch are not timed; rows
    stored before that start are not counted either."""
    started = time.monotonic()
    first: tuple[float, int, float] | None = None
    while True:
        watched.check_alive()
        count = stored_events(client)
        now = time.monotonic()
        if first is None and 0 < count < target and at_work():
            first = (now, count, watched.cpu())
            on_first()
        if count >= target or (first is not None and window and now - first[0] >= window):
            break
        if now - started > limit:
            raise TimeoutError(f"{name}: {count} of {target} events stored within {limit} s")
        await asyncio.sleep(POLL_SECONDS)
    cpu = watched.cpu()
    note = ""
    if first is None:  # all stored between two polls (tiny workloads): time it from the start
        first, note = (started, 0, 0.0), "timed from process start"
    elif count < target:
        note = f"stopped after {window:.0f} s ({count:,} of {target:,} events)"
    return Measure(
        name,
        events=count - first[1],
        seconds=now - first[0],
        cpu_seconds=cpu - first[2],
        peak_rss_mb=watched.rss(),
        note=note,
    )


def stop_all(processes: Sequence[subprocess.Popen[bytes]], timeout: float = 30.0) -> None:
    """SIGTERM each of ours, then SIGKILL whatever has not finished in time."""
    for process in processes:
        if process.poll() is None:
            process.terminate()
    deadline = time.monotonic() + timeout
    for process in processes:
        try:
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


async def end_offsets_total(kafka: KafkaSettings, topics: Sequence[str]) -> int:
    """Messages written to ``topics`` so far (the sum of their partitions' end offsets)."""
    consumer = AIOKafkaConsumer(**kafka.aiokafka_options(), enable_auto_commit=False)
    await consumer.start()
    try:
        await consumer.topics()
        partitions = [
            TopicPartition(topic, partition)
            for topic in topics
            for partition in consumer.partitions_for_topic(topic) or ()
        ]
        ends = await consumer.end_offsets(partitions) if partitions else {}
    finally:
        await consumer.stop()
    return sum(ends.values())
