"""The latency phase of benchmarks/suite.py: a fixed offered load into a running worker.

A ``salespulse worker`` with its own topics, group and database, the standard team plus a
round-the-clock duty desk, and alert_latency.py's ``offer_sent`` rule and webhook receiver. The
standard workload's traffic flows at ``rate`` records/s (paced by the generator's token bucket)
while two samplers run:

* event → ClickHouse: ten times a second a CRM ``lead.worked`` record with a fresh id is sent for
  one of the standard managers; the clock starts when the broker acknowledged it and stops at
  the first poll (every 50 ms) of the events table that finds its event id. ``processed_at`` is
  whole seconds, too coarse for this, so the suite polls instead; the reading is an upper bound
  by at most one poll interval plus the query.
* event → alert: one ``offer.sent`` per desk manager at a steady interval; the clock runs from
  the broker's acknowledgement to the webhook receiving that manager's alert.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from alert_latency import (
    Receiver,
    crm_record,
    desk_directory,
    latency_settings,
    percentiles,
    serve_hook,
)
from suite_parts import Watched, end_offsets_total, start_process, stop_all

from ingest.crm_records import crm_event_record
from ingest.generator import CRM_FORMAT, Population, Traffic, send_to_kafka
from ingest.raw_producer import RawProducer
from salespulse.lag import group_lag
from salespulse.models import derive_event_id
from salespulse.settings import Settings
from sinks.clickhouse.client import NativeClickHouse

PROBES_PER_SECOND = 10
POLL_SECONDS = 0.05
STRAGGLER_SECONDS = 30.0


@dataclass
class LatencyResult:
    rate: float
    seconds: float
    offered_rate: float = 0.0  # records/s of load the producer achieved (from end offsets)
    to_clickhouse: dict[str, float] = field(default_factory=dict)
    clickhouse_samples: int = 0
    clickhouse_missing: int = 0
    to_alert: dict[str, float] = field(default_factory=dict)
    alert_samples: int = 0
    alert_missing: int = 0
    lag_messages: int = 0  # the worker's consumer lag when the load stopped
    worker_cpu_share: float = 0.0  # worker CPU seconds per wall second during the load
    peak_rss_mb: float = 0.0


class ClickHouseProbe:
    """Sends probe records and notes when each one's event is readable in ClickHouse."""

    def __init__(self, settings: Settings, users: list[str]) -> None:
        self.settings = settings
        self.users = users
        self.sent: dict[str, float] = {}
        self.seen: dict[str, float] = {}
        self.since = int(time.time()) - 60

    async def send(self, producer: RawProducer, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        number = 0
        while time.monotonic() < deadline:
            record_id = f"probe-{number}"
            user = self.users[number % len(self.users)]
            await producer.send(
                crm_event_record(record_id, "lead.worked", user, datetime.now(UTC), entity="p")
            )
            self.sent[derive_event_id(CRM_FORMAT, record_id)] = time.time()
            number += 1
            await asyncio.sleep(1 / PROBES_PER_SECOND)

    async def poll(self, stop: asyncio.Event) -> None:
        client = NativeClickHouse(self.settings.clickhouse)
        try:
            while not (stop.is_set() and self.seen.keys() >= self.sent.keys()):
                pending = [i for i in self.sent if i not in self.seen]
                if pending:
                    rows = client.execute(
                        f"SELECT event_id FROM {client.database}.events "
                        "WHERE occurred_at >= toDateTime(%(since)s) AND event_id IN %(ids)s",
                        {"since": self.since, "ids": tuple(pending)},
                    )
                    answered = time.time()  # an upper bound: durable before the answer
                    for (event_id,) in rows:
                        self.seen.setdefault(event_id, answered)
                await asyncio.sleep(POLL_SECONDS)
        finally:
            client.close()

    def latencies(self) -> list[float]:
        return [self.seen[i] - at for i, at in self.sent.items() if i in self.seen]


async def offers_to_alerts(
    producer: RawProducer, receiver: Receiver, managers: list[str], interval: float
) -> dict[str, float]:
    """One offer per desk manager; returns when each was acknowledged, by alert key."""
    sent: dict[str, float] = {}
    for index, manager in enumerate(managers):
        await producer.send(crm_record(f"offer-{index}", "offer.sent", f"u-{manager}"))
        sent[f"offer_sent/manager/{manager}"] = time.time()
        await asyncio.sleep(interval)
    return sent


async def measure_latency(
    base: Settings,
    state: Path,
    population: Population,
    team_path: Path,
    load: Traffic,
    records_per_message: float,
    *,
    rate: float,
    seconds: float,
    alert_samples: int,
    hook_port: int,
) -> LatencyResult:
    settings = latency_settings(base, state, hook_port)
    desk = desk_directory(alert_samples + 1, settings.directory_path, team_path)
    users = [manager.crm_user for manager in population.managers]
    receiver, runner = await serve_hook(hook_port)
    log = state / "latency-worker.log"
    worker = start_process(["-m", "salespulse", "worker"], settings, log)
    watched = Watched([worker], [log])
    result = LatencyResult(rate, seconds)
    background: asyncio.Task[Any] | None = None
    try:
        async with RawProducer(settings.kafka, settings.topics, linger_ms=0) as producer:
            # Warm up: the worker joins its group, leads, and evaluates.
            await producer.send(crm_record("warm", "offer.sent", f"u-{desk[0]}"))
            await receiver.wait_for({f"offer_sent/manager/{desk[0]}"}, 180)
            watched.check_alive()
            raw_topics = settings.topics.raw_topics()
            written_before = await end_offsets_total(settings.kafka, raw_topics)
            load_started = time.monotonic()
            background = asyncio.create_task(
                send_to_kafka(load, settings.kafka, settings.topics, rate=rate)
            )
            await asyncio.sleep(min(3.0, seconds / 10))  # the load reaches a steady state
            cpu_before, wall_before = watched.cpu(), time.monotonic()
            probe = ClickHouseProbe(settings, users)
            stop = asyncio.Event()
            polling = asyncio.create_task(probe.poll(stop))
            interval = max(0.05, seconds * 0.8 / max(alert_samples, 1))
            alerts_sent, _ = await asyncio.gather(
                offers_to_alerts(producer, receiver, desk[1:], interval),
                probe.send(producer, seconds),
            )
            result.worker_cpu_share = (watched.cpu() - cpu_before) / (
                time.monotonic() - wall_before
            )
            background.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await background
            load_seconds = time.monotonic() - load_started
            result.lag_messages = await group_lag(
                settings.kafka, settings.worker.app_id, raw_topics
            )
            written = await end_offsets_total(settings.kafka, raw_topics) - written_before
            load_messages = written - len(probe.sent) - len(alerts_sent)
            result.offered_rate = load_messages * records_per_message / load_seconds
            stop.set()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(polling), STRAGGLER_SECONDS)
            with contextlib.suppress(TimeoutError):
                await receiver.wait_for(set(alerts_sent), STRAGGLER_SECONDS)
            polling.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await polling
            watched.check_alive()
            result.peak_rss_mb = watched.rss()
    finally:
        if background is not None and not background.done():
            background.cancel()
        stop_all([worker])
        await runner.cleanup()
    clickhouse = probe.latencies()
    result.clickhouse_samples = len(clickhouse)
    result.clickhouse_missing = len(probe.sent) - len(clickhouse)
    if clickhouse:
        result.to_clickhouse = percentiles(clickhouse)
    arrived = [receiver.arrivals[k] - at for k, at in alerts_sent.items() if k in receiver.arrivals]
    result.alert_samples = len(arrived)
    result.alert_missing = len(alerts_sent) - len(arrived)
    if arrived:
        result.to_alert = percentiles(arrived)
    return result
