"""Rebalances change no number: a second worker joins mid-stream, then the first one leaves."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

from ingest.generator import Traffic, send_to_kafka
from salespulse.stack_settings import free_ports
from salespulse.worker_process import stop_worker
from tests.conftest import LocalStack
from tests.integration.pipeline_harness import (
    RunningWorker,
    batches_done_by,
    expected_totals,
    isolated_settings,
    launch,
    stored_totals,
)


async def test_numbers_survive_a_worker_joining_and_one_leaving(
    stack: LocalStack, tmp_path: Path, week_traffic: tuple[Traffic, Path]
) -> None:
    traffic, directory_path = week_traffic
    settings = isolated_settings(stack, tmp_path).model_copy(
        update={"directory_path": directory_path}
    )
    records = sum(len(r) for r in traffic.records.values())
    # Sent over 40 s: the first worker's join, its first batches and the second worker's join
    # take 15-25 s on a loaded machine, and the newcomer must still find traffic to work on.
    sending = asyncio.create_task(
        send_to_kafka(traffic, settings.kafka, settings.topics, rate=records / 40)
    )
    first = launch(settings, tmp_path / "first.log")
    (web_port,) = free_ports(1)
    second_settings = settings.model_copy(
        update={"worker": settings.worker.model_copy(update={"web_port": web_port})}
    )
    second: RunningWorker | None = None
    try:
        for _ in range(600):  # until the first worker is busy
            if batches_done_by(first) >= 3:
                break
            await asyncio.sleep(0.1)
        second = launch(second_settings, tmp_path / "second.log")
        for _ in range(600):  # until the group has rebalanced and the newcomer works too
            if batches_done_by(second) >= 2:
                break
            await asyncio.sleep(0.1)
        assert batches_done_by(second) >= 2, "the second worker never got work"
        assert stop_worker(first.process) in (0, -15)  # leaves the group mid-stream
        await sending
        await second.wait_until_durable()
    finally:
        stop_worker(first.process)
        if second is not None:
            stop_worker(second.process)

    stored = stored_totals(settings)
    for manager, counts in expected_totals(traffic.expected).items():
        assert +stored.get(manager, Counter()) == +counts, manager
