"""The broker freezes mid-stream (SIGSTOP of Tansu, then SIGCONT); the worker carries on.

A frozen broker is worse than a stopped one: connections stay open and nothing answers, so every
fetch, heartbeat, commit and dead-letter send hangs until its own timeout. The freeze is longer
than the group's session timeout (the broker drops the worker from the group when it wakes) and,
in both modes, longer than a Kafka request's timeout (40 s), so requests in flight fail rather
than merely wait. Afterwards the same worker process must carry on by itself: rejoin, replay
whatever it had not committed, and count everything exactly once.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import pytest

from ingest.generator import Traffic, send_to_kafka
from salespulse.stack import stack_status
from salespulse.worker_process import stop_worker
from tests.conftest import LocalStack
from tests.faults.mode import scaled
from tests.integration.pipeline_harness import (
    assert_counted_once,
    batches_done_by,
    isolated_settings,
    launch,
    recovered,
    replayed_ranges,
    until_busy,
)

# The long run outlasts the suite's five-minute limit per test.
pytestmark = pytest.mark.timeout(scaled(ci=300, long=900))

FREEZE_SECONDS = scaled(ci=45, long=180)
# Sent before the freeze, as fast as the broker takes them: a backlog the worker is still
# working through (in batches of 100 messages) when the broker stops answering.
ROUNDS_BEFORE = 3


async def test_worker_carries_on_after_the_broker_froze(
    own_stack: LocalStack, tmp_path: Path, week_traffic: tuple[Traffic, Path]
) -> None:
    traffic, directory_path = week_traffic
    settings = isolated_settings(own_stack, tmp_path)
    settings = settings.model_copy(
        update={
            "directory_path": directory_path,
            "worker": settings.worker.model_copy(update={"batch_max_messages": 100}),
        }
    )
    broker = stack_status(settings.stack).kafka.pid
    assert broker is not None, "the stack's Tansu is not running"

    started = time.monotonic()
    worker = launch(settings, tmp_path / "worker.log")
    frozen = False
    try:
        for _ in range(ROUNDS_BEFORE):
            await send_to_kafka(traffic, settings.kafka, settings.topics)
        await until_busy(worker, batches=5)
        os.kill(broker, signal.SIGSTOP)
        frozen, frozen_at = True, time.monotonic()
        done_before = batches_done_by(worker)
        while time.monotonic() - frozen_at < FREEZE_SECONDS:
            assert worker.process.poll() is None, "the worker died while the broker was frozen"
            await asyncio.sleep(0.5)
        os.kill(broker, signal.SIGCONT)
        frozen, thawed_at = False, time.monotonic()
        done_frozen = batches_done_by(worker) - done_before

        await send_to_kafka(traffic, settings.kafka, settings.topics)  # life goes on
        resumed_after, caught_up_after = await recovered(worker, traffic.expected, since=thawed_at)
    finally:
        if frozen:
            os.kill(broker, signal.SIGCONT)  # a stopped Tansu could not even be shut down
        status = stop_worker(worker.process)
    assert status in (0, -15), f"the worker exited with {status}"

    replays = replayed_ranges(settings)
    print(
        f"\nbroker frozen {FREEZE_SECONDS} s mid-stream: {done_frozen} batches made durable "
        f"while it was; first batch {resumed_after:.1f} s "
        f"after the thaw, caught up after {caught_up_after:.1f} s; {replays} batches "
        f"processed again; {time.monotonic() - started:.0f} s in all"
    )
    await assert_counted_once(settings, traffic.expected, sends=ROUNDS_BEFORE + 1)
