"""End to end: generated traffic through the real broker, a worker process and real ClickHouse.

The generator knows, from its own model of each manager's day, what a correct pipeline must
report. This test sends its raw records through Kafka exactly as a bridge would, runs
``salespulse worker`` as a separate process, waits until the worker has committed every offset
(which it does only after the data is durable), and compares ClickHouse with that truth: every
manager, every metric, the unattributed events, and the malformed records in the dead-letter
topic. Then the source sends everything again, and no number may move.
"""

from __future__ import annotations

import itertools
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer

from ingest.generator import Expected, Traffic, make_population, send_to_kafka, simulate
from ingest.generator import write_directory_yaml as write_directory
from salespulse.directory import load_directory
from salespulse.lag import wait_for_zero_lag
from salespulse.settings import Settings, TopicSettings, WorkerSettings
from salespulse.stack_settings import free_ports
from salespulse.summary import UNATTRIBUTED, query_summary
from salespulse.worker_process import start_worker, stop_worker
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
    "meetings": "meetings",
    "offers": "offers",
    "leads": "leads",
    "deals_won": "deals_won",
    "payments": "payments",
    "tasks_completed": "tasks_done",
}
_run_numbers = itertools.count(1)


def isolated_settings(stack: LocalStack, tmp_path: Path) -> Settings:
    """Own topics, consumer group and database, so tests cannot see each other's data."""
    run = f"e2e{next(_run_numbers)}_{int(time.time())}"
    topics = TopicSettings(
        raw_pbx=f"{run}.raw.pbx",
        raw_chat=f"{run}.raw.chat",
        raw_crm=f"{run}.raw.crm",
        dead_letter=f"{run}.deadletter",
        partitions=4,
    )
    (web_port,) = free_ports(1)
    return stack.settings.model_copy(
        update={
            "topics": topics,
            "worker": WorkerSettings(app_id=f"salespulse-{run}", web_port=web_port),
            "clickhouse": stack.settings.clickhouse.model_copy(update={"database": run}),
            "directory_path": tmp_path / "directory.yaml",
        }
    )


@pytest.fixture(scope="module")
def traffic(tmp_path_factory: pytest.TempPathFactory) -> tuple[Traffic, Path]:
    population = make_population(managers=12, departments=4, seed=7)
    directory_path = tmp_path_factory.mktemp("directory") / "directory.yaml"
    write_directory(population, directory_path)
    return simulate(population, WEEK_END - timedelta(days=DAYS), WEEK_END, seed=7), directory_path


def stored_totals(settings: Settings) -> dict[str, Counter[str]]:
    directory = load_directory(settings.directory_path)
    client = NativeClickHouse(settings.clickhouse)
    try:
        rows = query_summary(client, directory, last_day=WEEK_END.date(), days=DAYS + 2)
    finally:
        client.close()
    return {row.manager_id: Counter(row.counts) for row in rows}


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


@pytest.fixture
def worker(
    stack: LocalStack, tmp_path: Path, traffic: tuple[Traffic, Path]
) -> Iterator[RunningWorker]:
    settings = isolated_settings(stack, tmp_path)
    settings = settings.model_copy(update={"directory_path": traffic[1]})
    process = start_worker(settings, tmp_path / "worker.log")
    try:
        yield RunningWorker(settings, process)
    finally:
        status = stop_worker(process)
        log = (tmp_path / "worker.log").read_text(errors="replace")
        assert status in (0, -15), f"worker exited with {status}:\n{log[-3000:]}"


async def test_generated_traffic_arrives_exactly_and_a_resend_changes_nothing(
    worker: RunningWorker, traffic: tuple[Traffic, Path]
) -> None:
    settings = worker.settings
    generated, _ = traffic
    expected = generated.expected
    assert expected.malformed_records > 0
    assert expected.unattributed_events > 0

    started = time.monotonic()
    report = await send_to_kafka(generated, settings.kafka, settings.topics)
    await worker.wait_until_durable()
    elapsed = time.monotonic() - started
    print(f"\ncold start: {report.records} records durable {elapsed:.1f} s after the first send")

    stored = stored_totals(settings)
    truth = expected_totals(expected)
    for manager, counts in truth.items():
        assert +stored.get(manager, Counter()) == +counts, manager
    assert sum(stored.get(UNATTRIBUTED, Counter()).values()) > 0

    client = NativeClickHouse(settings.clickhouse)
    try:
        ((events, unattributed),) = client.execute(
            "SELECT count(), countIf(manager_id = '') "
            f"FROM {settings.clickhouse.database}.events FINAL"
        )
    finally:
        client.close()
    assert (events, unattributed) == (expected.canonical_events, expected.unattributed_events)

    letters = await dead_letters(settings, expected.malformed_records)
    assert len(letters) == expected.malformed_records
    for letter in letters:
        assert letter["sp-dlq-reason"] in (b"malformed", b"invalid", b"bad_time", b"decode_error")
        assert letter["sp-source-topic"] in {t.encode() for t in settings.topics.raw_topics()}
        assert int(letter["sp-source-offset"]) >= 0
        assert letter["value"]

    # The source delivers everything a second time: not one number may change. The worker is
    # warm now, so this pass also measures steady end-to-end throughput.
    started = time.monotonic()
    await send_to_kafka(generated, settings.kafka, settings.topics)
    await worker.wait_until_durable()
    elapsed = time.monotonic() - started
    print(f"warm resend: {report.records / elapsed:,.0f} records/s end to end")
    assert stored_totals(settings) == stored
