"""Decision 4 under fire: SIGKILL the worker mid-stream, again and again; no number may change.

Traffic is sent at a steady rate while the worker process is killed with SIGKILL and restarted,
each time after it has made a few batches durable, at a (seeded) random moment, with a commit
interval long enough that the kill lands between "inserted into ClickHouse" and "offset
committed". The ``ingest_batches`` log shows the same offsets processed twice: the kills forced
replays. At the end every manager's numbers must equal the generator's truth exactly, the events
table must hold each canonical event once (read with FINAL), and every malformed record must be
in the dead-letter topic (possibly more than once: dead letters are at-least-once).
"""

from __future__ import annotations

import asyncio
import random
import signal
import socket
import time
from collections import Counter
from pathlib import Path

from ingest.generator import Traffic, send_to_kafka
from salespulse.settings import Settings
from salespulse.worker_process import stop_worker
from sinks.clickhouse.client import ClickHouseError, NativeClickHouse
from tests.conftest import LocalStack
from tests.integration.pipeline_harness import (
    RunningWorker,
    dead_letters,
    expected_totals,
    isolated_settings,
    launch,
    stored_totals,
)

KILLS = 3


def batches_done_by(settings: Settings, worker: RunningWorker) -> int:
    name = f"{socket.gethostname()}:{worker.process.pid}"
    client = NativeClickHouse(settings.clickhouse)
    try:
        ((count,),) = client.execute(
            f"SELECT count() FROM {settings.clickhouse.database}.ingest_batches "
            "WHERE worker = %(name)s",
            {"name": name},
        )
    except ClickHouseError:
        return 0  # the first worker has not created the schema yet
    finally:
        client.close()
    return int(count)


async def until_busy(settings: Settings, worker: RunningWorker, batches: int) -> None:
    deadline = time.monotonic() + 60
    while batches_done_by(settings, worker) < batches:
        assert worker.process.poll() is None, "the worker died by itself"
        assert time.monotonic() < deadline, "the worker made no progress"
        await asyncio.sleep(0.1)


def replayed_ranges(settings: Settings) -> int:
    """How many logged batches cover offsets an earlier batch already covered."""
    client = NativeClickHouse(settings.clickhouse)
    try:
        rows = client.execute(
            "SELECT topic, partition, first_offset, last_offset "
            f"FROM {settings.clickhouse.database}.ingest_batches "
            "ORDER BY topic, partition, first_offset"
        )
    finally:
        client.close()
    replays, reached = 0, {}
    for topic, partition, first, last in rows:
        if first <= reached.get((topic, partition), -1):
            replays += 1
        reached[(topic, partition)] = max(last, reached.get((topic, partition), -1))
    return replays


async def test_numbers_survive_repeated_sigkill(
    stack: LocalStack, tmp_path: Path, week_traffic: tuple[Traffic, Path]
) -> None:
    traffic, directory_path = week_traffic
    settings = isolated_settings(stack, tmp_path)
    worker_settings = settings.worker.model_copy(
        update={
            "batch_max_messages": 100,  # many batches: many moments to die between
            "commit_interval_seconds": 3.0,  # inserted-but-uncommitted most of the time
            "session_timeout_seconds": 6.0,  # the dead worker's partitions move on quickly
        }
    )
    settings = settings.model_copy(
        update={"directory_path": directory_path, "worker": worker_settings}
    )
    records = sum(len(r) for r in traffic.records.values())
    sending = asyncio.create_task(
        send_to_kafka(traffic, settings.kafka, settings.topics, rate=records / 20)
    )

    rng = random.Random(20261127)
    worker = launch(settings, tmp_path / "worker-0.log")
    for kill in range(1, KILLS + 1):
        await until_busy(settings, worker, batches=3)
        await asyncio.sleep(rng.uniform(0.0, 1.0))
        worker.process.send_signal(signal.SIGKILL)
        worker.process.wait()
        worker = launch(settings, tmp_path / f"worker-{kill}.log")

    await sending
    try:
        await worker.wait_until_durable()
    finally:
        assert stop_worker(worker.process) in (0, -15)

    replays = replayed_ranges(settings)
    print(f"\n{KILLS} SIGKILLs, {replays} batches processed again by a successor")
    assert replays >= 1, "no kill forced a replay: the test proved nothing"

    expected = traffic.expected
    stored = stored_totals(settings)
    for manager, counts in expected_totals(expected).items():
        assert +stored.get(manager, Counter()) == +counts, manager

    client = NativeClickHouse(settings.clickhouse)
    try:
        ((events, distinct),) = client.execute(
            f"SELECT count(), uniqExact(event_id) FROM {settings.clickhouse.database}.events FINAL"
        )
    finally:
        client.close()
    assert events == distinct == expected.canonical_events

    letters = await dead_letters(settings, expected.malformed_records)
    origins = {
        (letter["sp-source-topic"], letter["sp-source-offset"], letter["sp-source-index"])
        for letter in letters
    }
    assert len(origins) == expected.malformed_records
