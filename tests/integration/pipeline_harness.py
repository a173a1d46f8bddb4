"""Shared pieces of the tests that run generated traffic through a real worker process.

Each run gets its own topics, consumer group and ClickHouse database, so tests cannot see each
other's data; the truth they compare with comes from the generator's model of the traffic.
"""

from __future__ import annotations

import itertools
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer

from ingest.generator import Expected
from salespulse.alert_settings import AlertsSettings
from salespulse.directory import load_directory
from salespulse.lag import wait_for_zero_lag
from salespulse.settings import Settings, TopicSettings, WorkerSettings
from salespulse.stack_settings import free_ports
from salespulse.summary import query_summary
from salespulse.worker_process import start_worker
from sinks.clickhouse.client import NativeClickHouse
from tests.conftest import LocalStack

# A fixed week in the past: the same traffic on every run, whatever today is.
WEEK_END = datetime(2026, 11, 21, tzinfo=UTC)
DAYS = 5
# Generator counter → summary column: the same metric, by the same definition.
METRIC_OF_COUNTER = {
    "calls_incoming": "calls_in",
    "calls_outgoing": "calls_out",
    "calls_internal": "calls_internal",
    "calls_missed": "missed",
    "conversations": "conversations",
    "talk_seconds": "talk_seconds",
    "chats_served": "chats",
    "chats_missed": "chats_missed",
    "meetings": "meetings",
    "offers": "offers",
    "leads": "leads",
    "deals_won": "deals_won",
    "payments": "payments",
    "tasks_created": "tasks_created",
    "tasks_completed": "tasks_done",
}
_run_numbers = itertools.count(1)


def isolated_settings(stack: LocalStack, tmp_path: Path) -> Settings:
    """Own topics, consumer group and database, so tests cannot see each other's data.

    Alerting is off: the stack's Alertmanager is shared by the whole session, and these workers
    count generated history; tests of alerting switch it on with their own rules."""
    run = f"e2e{next(_run_numbers)}_{int(time.time())}"
    topics = TopicSettings(
        raw_pbx=f"{run}.raw.pbx",
        raw_chat=f"{run}.raw.chat",
        raw_crm=f"{run}.raw.crm",
        dead_letter=f"{run}.deadletter",
        alerts=f"{run}.alerts",
        directory=f"{run}.directory",
        partitions=4,
    )
    (web_port,) = free_ports(1)
    return stack.settings.model_copy(
        update={
            "topics": topics,
            "worker": WorkerSettings(app_id=f"salespulse-{run}", web_port=web_port),
            "clickhouse": stack.settings.clickhouse.model_copy(update={"database": run}),
            "directory_path": tmp_path / "directory.yaml",
            "alerts": AlertsSettings(enabled=False),
        }
    )


def stored_totals(settings: Settings) -> dict[str, Counter[str]]:
    """Per-manager totals over the whole generated week, as ``salespulse summary`` reads them."""
    directory = load_directory(settings.directory_path)
    client = NativeClickHouse(settings.clickhouse)
    try:
        rows = query_summary(client, directory, last_day=WEEK_END.date(), days=DAYS + 2)
    finally:
        client.close()
    compared = set(METRIC_OF_COUNTER.values())
    return {
        row.manager_id: Counter({k: v for k, v in row.counts.items() if k in compared})
        for row in rows
    }


def expected_totals(expected: Expected) -> dict[str, Counter[str]]:
    return {
        manager: Counter(
            {
                METRIC_OF_COUNTER[name]: value
                for name, value in counts.items()
                if name in METRIC_OF_COUNTER
            }
        )
        for manager, counts in expected.per_manager.items()
    }


async def dead_letters(settings: Settings, expected_count: int) -> list[dict[str, bytes]]:
    consumer = AIOKafkaConsumer(
        settings.topics.dead_letter,
        **settings.kafka.aiokafka_options(),
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    headers: list[dict[str, bytes]] = []
    try:
        deadline = time.monotonic() + 30
        while len(headers) < expected_count and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=500)
            for records in batches.values():
                headers += [
                    dict(record.headers) | {"value": record.value or b""} for record in records
                ]
    finally:
        await consumer.stop()
    return headers


@dataclass
class RunningWorker:
    settings: Settings
    process: subprocess.Popen[bytes]

    async def wait_until_durable(self) -> None:
        await wait_for_zero_lag(
            self.settings.kafka,
            self.settings.worker.app_id,
            self.settings.topics.raw_topics(),
            timeout_seconds=180,
            consumer_alive=lambda: self.process.poll() is None,
        )


def launch(settings: Settings, log_path: Path) -> RunningWorker:
    return RunningWorker(settings, start_worker(settings, log_path))


def eventually(check: Callable[[], Any], seconds: float = 90.0) -> Any:
    """``check()`` once it is truthy (polled twice a second), or its last falsy value after
    ``seconds``: the caller asserts on it, so a timeout fails with what was seen."""
    deadline = time.monotonic() + seconds
    while True:
        result = check()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(0.5)
