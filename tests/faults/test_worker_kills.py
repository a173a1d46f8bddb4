"""Decision 4 under fire: SIGKILL the worker again and again, at varied moments; no number may
change.

The week's traffic is sent round after round (the same records each time, as a source re-sending
after its own restart) while the worker process is SIGKILLed and restarted. Each kill aims at one
moment of the worker's life, drawn from a seeded plan:

* ``start-up``: while it starts, migrates and joins the group, before or just after its first
  batch;
* ``mid-insert``: while ClickHouse is executing its insert of a batch's events;
* ``uncommitted``: just after a batch became durable, before its offsets were committed (the
  commit interval is long, so this window is wide);
* ``rollup``: while it, as the group leader, recomputes the day rollups.

The seed is printed (set ``SALESPULSE_FAULTS_SEED`` to repeat a run's plan), and so is every
kill with the moment it actually hit. The ``ingest_batches`` log shows offsets processed again
by a successor: the kills forced replays. At the end every manager's numbers, in the events and
in the rollups, must equal the generator's truth exactly, the events table must hold each
canonical event once, and every malformed record sent must have its dead letter.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import time
from collections import Counter
from pathlib import Path

import pytest

from ingest.generator import Traffic
from salespulse.sections import WorkerSettings
from salespulse.settings import Settings
from salespulse.stack_settings import free_ports
from salespulse.worker_process import stop_worker
from sinks.clickhouse.client import NativeClickHouse
from tests.conftest import LocalStack
from tests.faults.mode import scaled
from tests.integration.pipeline_harness import (
    RunningWorker,
    assert_counted_once,
    assert_rollups_catch_up,
    assigned_partitions,
    batches_done_by,
    every_raw_partition,
    isolated_settings,
    launch,
    replayed_ranges,
    send_until,
    until,
    until_busy,
)

# The long run outlasts the suite's five-minute limit per test.
pytestmark = pytest.mark.timeout(scaled(ci=300, long=1800))

# Seven to ten seconds a kill here (a restart waits for the group to drop the dead member): CI's
# run stays near two minutes, the long one takes ten or more.
KILLS = scaled(ci=10, long=60)
MOMENTS = ("start-up", "mid-insert", "uncommitted", "rollup")
COMMIT_INTERVAL_SECONDS = 3.0
# How long a kill waits for its moment (a statement seen running in ClickHouse) before striking
# anyway; the kill is then reported as ``busy`` rather than as the moment it aimed at.
AIM_SECONDS = 30.0


def running(client: NativeClickHouse, prefix: str) -> bool:
    """Whether ClickHouse is executing a statement that starts with ``prefix`` right now."""
    ((count,),) = client.execute(
        "SELECT count() FROM system.processes WHERE startsWith(query, %(prefix)s)",
        {"prefix": prefix},
    )
    return int(count) > 0


async def aim_at_statement(settings: Settings, worker: RunningWorker, prefix: str) -> bool:
    """Waits until the worker's statement starting with ``prefix`` runs (True), or gives up."""
    await until_busy(worker, batches=1)
    client = NativeClickHouse(settings.clickhouse)
    try:
        deadline = time.monotonic() + AIM_SECONDS
        while time.monotonic() < deadline:
            if running(client, prefix):
                return True
            assert worker.process.poll() is None, "the worker died by itself"
            await asyncio.sleep(0.005)
    finally:
        client.close()
    return False


async def strike(moment: str, settings: Settings, worker: RunningWorker, rng: random.Random) -> str:
    """Waits for ``moment`` in the worker's life; returns the moment it found."""
    db = settings.clickhouse.database
    if moment == "start-up":
        await asyncio.sleep(rng.uniform(0.2, 5.0))
        done = batches_done_by(worker)
        return "start-up" if done == 0 else f"start-up ({done} batches in)"
    if moment == "mid-insert":
        hit = await aim_at_statement(settings, worker, f"INSERT INTO {db}.events ")
        return "mid-insert" if hit else "busy"
    if moment == "uncommitted":
        await until_busy(worker, batches=1)
        landed = batches_done_by(worker)
        await until_busy(worker, batches=landed + 1)  # a batch has just become durable
        await asyncio.sleep(rng.uniform(0.0, COMMIT_INTERVAL_SECONDS / 2))
        return "uncommitted"
    hit = await aim_at_statement(settings, worker, f"INSERT INTO {db}.activity_")
    return "rollup" if hit else "busy"


def kill_settings(stack: LocalStack, tmp_path: Path, directory_path: Path) -> Settings:
    """A run of its own, tuned so that kills find many distinct moments and restarts are quick."""
    worker = WorkerSettings(
        batch_max_messages=100,  # many batches: many moments to die between
        commit_interval_seconds=COMMIT_INTERVAL_SECONDS,  # inserted-but-uncommitted often
        rollup_interval_seconds=1.0,  # rollup passes often enough to be caught in one
        session_timeout_seconds=6.0,  # the dead worker's partitions move on quickly
        rebalance_timeout_seconds=6.0,
    )
    settings = isolated_settings(stack, tmp_path)
    return settings.model_copy(
        update={
            "directory_path": directory_path,
            "worker": settings.worker.model_copy(update=worker.model_dump(exclude_unset=True)),
        }
    )


async def test_numbers_survive_repeated_sigkill(
    stack: LocalStack, tmp_path: Path, week_traffic: tuple[Traffic, Path]
) -> None:
    traffic, directory_path = week_traffic
    settings = kill_settings(stack, tmp_path, directory_path)
    seed = int(os.environ.get("SALESPULSE_FAULTS_SEED") or random.SystemRandom().randrange(1 << 32))
    rng = random.Random(seed)
    plan = [MOMENTS[n % len(MOMENTS)] for n in range(KILLS)]
    rng.shuffle(plan)
    print(f"\nSALESPULSE_FAULTS_SEED={seed}: {KILLS} SIGKILLs, aimed at {' '.join(plan)}")

    started = time.monotonic()
    done = asyncio.Event()
    sending = asyncio.create_task(send_until(traffic, settings, done, seconds_per_round=15))
    hits: Counter[str] = Counter()
    worker = launch(settings, tmp_path / "worker-0.log")
    try:
        for kill, moment in enumerate(plan, start=1):
            hit = await strike(moment, settings, worker, rng)
            worker.process.send_signal(signal.SIGKILL)
            worker.process.wait()
            hits[hit.split(" ")[0]] += 1
            print(f"kill {kill:3d} at {time.monotonic() - started:6.1f} s: {hit}")
            worker = launch(settings, tmp_path / f"worker-{kill}.log")
        done.set()
        rounds = await sending
        await worker.wait_until_durable()
        assert_rollups_catch_up(settings, traffic.expected)
    finally:
        done.set()
        assert stop_worker(worker.process) in (0, -15)

    replays = replayed_ranges(settings)
    print(
        f"{KILLS} SIGKILLs ({', '.join(f'{n} {m}' for m, n in sorted(hits.items()))}), "
        f"{rounds} rounds of traffic, {replays} batches processed again by a successor, "
        f"{time.monotonic() - started:.0f} s"
    )
    assert replays >= 1, "no kill forced a replay: the test proved nothing"
    await assert_counted_once(settings, traffic.expected, sends=rounds)


async def test_survivor_takes_over_from_a_sigkilled_worker(
    stack: LocalStack, tmp_path: Path, week_traffic: tuple[Traffic, Path]
) -> None:
    """Two workers share the partitions; the group leader is SIGKILLed just after a batch became
    durable. The survivor must end up owning every partition and leading (the rollups catch
    up), replaying what the dead one had not committed, and count everything exactly once."""
    traffic, directory_path = week_traffic
    settings = kill_settings(stack, tmp_path, directory_path)
    (web_port,) = free_ports(1)
    other = settings.model_copy(
        update={"worker": settings.worker.model_copy(update={"web_port": web_port})}
    )
    started = time.monotonic()
    done = asyncio.Event()
    sending = asyncio.create_task(send_until(traffic, settings, done, seconds_per_round=15))
    workers = [launch(settings, tmp_path / "a.log"), launch(other, tmp_path / "b.log")]
    try:
        for worker in workers:
            await until_busy(worker, batches=2)  # both hold partitions and work on them

        def split() -> dict[int, set[tuple[str, int]]]:
            """Each worker's partitions, once they report disjoint shares of all of them."""
            owned = {w.process.pid: assigned_partitions(w) for w in workers}
            shares = list(owned.values())
            whole = set().union(*shares) == every_raw_partition(settings)
            disjoint = sum(map(len, shares)) == len(every_raw_partition(settings))
            return owned if all(shares) and whole and disjoint else {}

        owned = await until(split, 90)
        assert owned, f"the group never split: {[assigned_partitions(w) for w in workers]}"
        # The leader holds partition 0 of the first raw topic (ADR 0009): kill that one, so the
        # survivor has to take over leadership (the rollups) as well as partitions.
        leading = (sorted(settings.topics.raw_topics())[0], 0)
        (victim,) = (w for w in workers if leading in owned[w.process.pid])
        (survivor,) = (w for w in workers if w is not victim)
        await until_busy(victim, batches=batches_done_by(victim) + 1)
        victim.process.send_signal(signal.SIGKILL)
        victim.process.wait()
        killed_at = time.monotonic()
        assert await until(
            lambda: assigned_partitions(survivor) == every_raw_partition(settings), 90
        ), f"the survivor owns only {sorted(assigned_partitions(survivor))}"
        took_over = time.monotonic() - killed_at
        await until_busy(survivor, batches=batches_done_by(survivor) + 3)  # and works on them
        done.set()
        rounds = await sending
        await survivor.wait_until_durable()
        assert_rollups_catch_up(settings, traffic.expected)  # the survivor leads now
    finally:
        done.set()
        for worker in workers:
            stop_worker(worker.process)
    assert survivor.process.returncode in (0, -15)

    replays = replayed_ranges(settings)
    print(
        f"\nthe survivor owned all partitions {took_over:.1f} s after the SIGKILL; "
        f"{replays} batches processed again; {rounds} rounds of traffic; "
        f"{time.monotonic() - started:.0f} s"
    )
    assert replays >= 1, "the kill forced no replay: the test proved nothing"
    await assert_counted_once(settings, traffic.expected, sends=rounds)
