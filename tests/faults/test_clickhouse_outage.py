"""ClickHouse stops mid-stream; the worker waits it out and carries on by itself.

Decision 4 says offsets are committed only once a batch is durable in ClickHouse, so while
ClickHouse is down nothing can be committed and the worker must stop taking in more: its batch in
hand retries its insert, and the Kafka fetcher holds at most one fetch per partition that the
worker has not taken yet (``MAX_PARTITION_FETCH_BYTES``). So memory must stay flat however much
traffic arrives meanwhile, the process must stay up (no crash, no restart by anyone), and once
ClickHouse is back every number, in the events and in the rollups the leader recomputes, must be
exact. Alert evaluation, which reads ClickHouse on the same worker, is switched on: it must not
take the worker down either, and must evaluate again afterwards.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from ingest.generator import SendReport, Traffic
from processors.batch_consumer import MAX_PARTITION_FETCH_BYTES
from salespulse.alert_settings import AlertsSettings
from salespulse.stack import stack_down, stack_up
from salespulse.worker_process import stop_worker
from tests.conftest import LocalStack
from tests.faults.mode import scaled
from tests.integration.pipeline_harness import (
    assert_counted_once,
    consumer_lag,
    isolated_settings,
    launch,
    metric_total,
    recovered,
    rss_bytes,
    send_until,
    until,
    until_busy,
)

# The long run outlasts the suite's five-minute limit per test.
pytestmark = pytest.mark.timeout(scaled(ci=300, long=1200))

OUTAGE_SECONDS = scaled(ci=60, long=300)  # the minute; five in the long run
# The traffic sent while ClickHouse is down, in rounds of the generated week (1.6 MB each): tens
# of megabytes, against which holding it (even its raw bytes) would show plainly. The long run's
# longer outage needs a lower rate for the same effect, and keeps Tansu's memory and the
# catch-up afterwards within reason.
ROUNDS_PER_MINUTE = scaled(ci=32, long=12)
MIB = 1024 * 1024
# The bound on what the worker may add while it waits: one fetch per partition that it has not
# taken yet (MAX_PARTITION_FETCH_BYTES each, the bound by design), plus the leader's churn.
# Measured: with alerting off RSS stays flat to the MiB for the whole outage; with it on, the
# alerting side (evaluations failing, deliveries not logged, the lag probe) moves it by 10 to
# 25 MiB, at any traffic rate.
LEADER_CHURN_BYTES = 32 * MIB
EVALUATIONS = "salespulse_alert_evaluations_total"


def mean_rss(samples: list[tuple[float, int]], low: float, high: float) -> float:
    values = [rss for at, rss in samples if low <= at < high]
    return sum(values) / len(values)


async def test_worker_waits_out_a_clickhouse_outage(
    own_stack: LocalStack, tmp_path: Path, week_traffic: tuple[Traffic, Path]
) -> None:
    traffic, directory_path = week_traffic
    settings = isolated_settings(own_stack, tmp_path)
    # This stack is the test's own, so its Alertmanager may receive what the leader decides.
    alerts = AlertsSettings(alertmanager_url=own_stack.alertmanager_url)
    # Inserts retry with backoff capped at 5 s rather than the default 30 s: the same code path,
    # and a CI run that does not wait up to half a minute more once ClickHouse is back.
    worker_settings = settings.worker.model_copy(update={"sink_retry_max_seconds": 5.0})
    settings = settings.model_copy(
        update={"directory_path": directory_path, "alerts": alerts, "worker": worker_settings}
    )
    partitions = settings.topics.partitions * len(settings.topics.raw_topics())
    bound = partitions * MAX_PARTITION_FETCH_BYTES + LEADER_CHURN_BYTES

    started = time.monotonic()
    worker = launch(settings, tmp_path / "worker.log")
    pid = worker.process.pid
    done = asyncio.Event()
    sent: list[SendReport] = []
    sending = asyncio.create_task(send_until(traffic, settings, done, 60 / ROUNDS_PER_MINUTE, sent))
    try:
        await until_busy(worker, batches=5)
        # The leader at full work before the outage: consuming, and evaluating alerts.
        assert await until(lambda: metric_total(worker, EVALUATIONS)), "no alert evaluation"
        before = 0
        for _ in range(10):
            before = max(before, rss_bytes(pid))
            await asyncio.sleep(0.5)

        await asyncio.to_thread(stack_down, settings.stack, services=("clickhouse",))
        down_at, rounds_at_down = time.monotonic(), len(sent)
        samples: list[tuple[float, int]] = []
        while (elapsed := time.monotonic() - down_at) < OUTAGE_SECONDS:
            assert worker.process.poll() is None, "the worker died while ClickHouse was down"
            samples.append((elapsed, rss_bytes(pid)))
            await asyncio.sleep(0.5)
        waiting = consumer_lag(worker)
        sent_during = sum(report.bytes for report in sent[rounds_at_down:])
        evaluated = metric_total(worker, EVALUATIONS, result="ok")
        await asyncio.to_thread(stack_up, settings.stack)
        up_at = time.monotonic()

        done.set()
        rounds = await sending
        resumed_after, caught_up_after = await recovered(worker, traffic.expected, since=up_at)
        assert await until(lambda: metric_total(worker, EVALUATIONS, result="ok") > evaluated), (
            "alert evaluation did not come back"
        )
    finally:
        done.set()
        status = stop_worker(worker.process)
    assert status in (0, -15), f"the worker exited with {status}"

    peak = max(rss for _, rss in samples)
    quarter = OUTAGE_SECONDS / 4
    early = mean_rss(samples, 0, quarter)
    late = mean_rss(samples, 3 * quarter, OUTAGE_SECONDS)
    # Traffic flows at a steady rate: between the middles of the first and last quarters, three
    # quarters of what the outage brought arrived.
    arrived_between = sent_during * 3 / 4
    print(
        f"\nClickHouse down {OUTAGE_SECONDS} s: {sent_during / MIB:.1f} MiB sent meanwhile, "
        f"{waiting} messages waiting at its end; worker RSS {before / MIB:.0f} MiB before, "
        f"peak {peak / MIB:.0f} MiB (bound {(before + bound) / MIB:.0f}), mean "
        f"{early / MIB:.0f} MiB in the first quarter and {late / MIB:.0f} MiB in the last, "
        f"{arrived_between / MIB:.0f} MiB having arrived in between; first batch "
        f"{resumed_after:.1f} s after ClickHouse was back, caught up after "
        f"{caught_up_after:.1f} s; {time.monotonic() - started:.0f} s in all"
    )
    print("RSS MiB every 5 s of the outage:", [round(r / MIB) for _, r in samples[::10]])
    assert waiting > 0, "no traffic arrived during the outage: the test proved nothing"
    assert peak <= before + bound, "the worker's memory grew past its bound"
    # Holding what arrived would add at least its bytes; half of them allows for the leader's
    # churn, and still fails a worker that keeps fetching while it cannot store.
    assert late - early <= arrived_between / 2, "the worker's memory grew with the traffic"
    await assert_counted_once(settings, traffic.expected, sends=rounds)
