"""Shared pieces of the tests that run generated traffic through a real worker process.

Each run gets its own topics, consumer group and ClickHouse database, so tests cannot see each
other's data; the truth they compare with comes from the generator's model of the traffic.
"""

from __future__ import annotations

import asyncio
import itertools
import socket
import subprocess
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from ingest.generator import Expected, SendReport, Traffic, send_to_kafka
from salespulse.alert_settings import AlertsSettings
from salespulse.directory import load_directory
from salespulse.lag import wait_for_zero_lag
from salespulse.sections import TopicSettings, WorkerSettings
from salespulse.settings import Settings
from salespulse.stack_settings import free_ports
from salespulse.summary import query_summary
from salespulse.worker_process import start_worker
from sinks.clickhouse.client import ClickHouseError, NativeClickHouse
from sinks.clickhouse.rollup import DAILY_TABLE
from tests.conftest import LocalStack
from tests.polling import eventually as eventually
from tests.polling import until as until

# A fixed week in the past: the same traffic on every run, whatever today is.
WEEK_END = datetime(2026, 11, 21, tzinfo=UTC)
DAYS = 5
# Generator counter → summary column: the same metric, by the same definition.
METRIC_OF_COUNTER = {
    "calls_incoming": "calls_in",
    "calls_incoming_answered": "calls_in_answered",
    "calls_outgoing": "calls_out",
    "calls_outgoing_answered": "calls_out_answered",
    "calls_internal": "calls_internal",
    "calls_missed": "missed",
    "conversations": "conversations",
    "talk_seconds": "talk_seconds",
    "internal_talk_seconds": "internal_talk_seconds",
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


def week_settings(
    stack: LocalStack, tmp_path: Path, week_traffic: tuple[Traffic, Path]
) -> tuple[Traffic, Settings]:
    """The generated week, and a run of its own with the week's manager directory."""
    traffic, directory_path = week_traffic
    settings = isolated_settings(stack, tmp_path)
    return traffic, settings.model_copy(update={"directory_path": directory_path})


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


def rolled_up_totals(settings: Settings) -> dict[str, Counter[str]]:
    """Per-manager totals over the same days as ``stored_totals``, read from the day rollups
    the dashboards show (``activity_daily``), which the leader recomputes after batches."""
    compared = sorted(set(METRIC_OF_COUNTER.values()))
    sums = ", ".join(f"sum({name})" for name in compared)
    rows = query(
        settings,
        f"SELECT manager_id, {sums} FROM {{db}}.{DAILY_TABLE} FINAL "
        "WHERE local_date >= %(low)s AND local_date <= %(high)s GROUP BY manager_id",
        {"low": WEEK_END.date() - timedelta(days=DAYS + 1), "high": WEEK_END.date()},
    )
    return {
        manager: Counter(dict(zip(compared, map(int, values), strict=True)))
        for manager, *values in rows
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


def worker_name(worker: RunningWorker) -> str:
    """How a worker signs its rows in ``ingest_batches``."""
    return f"{socket.gethostname()}:{worker.process.pid}"


def query(settings: Settings, sql: str, params: dict[str, Any] | None = None) -> list[Any]:
    """One statement on a connection of its own; ``{db}`` in ``sql`` is the run's database."""
    client = NativeClickHouse(settings.clickhouse)
    try:
        return client.execute(sql.format(db=settings.clickhouse.database), params)
    finally:
        client.close()


def batches_done_by(worker: RunningWorker) -> int:
    """Batches this worker process made durable, from its own log in ClickHouse."""
    try:
        ((count,),) = query(
            worker.settings,
            "SELECT count() FROM {db}.ingest_batches WHERE worker = %(name)s",
            {"name": worker_name(worker)},
        )
    except ClickHouseError:
        return 0  # the first worker has not created the schema yet
    return int(count)


async def until_busy(worker: RunningWorker, batches: int, seconds: float = 120.0) -> None:
    """Until ``worker`` has made ``batches`` batches durable; fails if it dies or stalls."""
    deadline = time.monotonic() + seconds
    while batches_done_by(worker) < batches:
        assert worker.process.poll() is None, "the worker died by itself"
        assert time.monotonic() < deadline, f"the worker made no progress in {seconds:.0f} s"
        await asyncio.sleep(0.1)


async def recovered(worker: RunningWorker, expected: Expected, since: float) -> tuple[float, float]:
    """After a fault that ended at ``since`` (monotonic): seconds until ``worker`` made a batch
    durable again and until it caught up with all that was sent; its rollups must catch up
    too, and the process that lived through the fault must still be running."""
    await until_busy(worker, batches=batches_done_by(worker) + 1)
    resumed_after = time.monotonic() - since
    await worker.wait_until_durable()
    caught_up_after = time.monotonic() - since
    assert_rollups_catch_up(worker.settings, expected)
    assert worker.process.poll() is None, "the worker did not survive"
    return resumed_after, caught_up_after


def replayed_ranges(settings: Settings) -> int:
    """How many logged batches cover offsets an earlier batch already covered: the work a
    crash or a rebalance made someone do again."""
    rows = query(
        settings,
        "SELECT topic, partition, first_offset, last_offset FROM {db}.ingest_batches "
        "ORDER BY topic, partition, first_offset",
    )
    replays, reached = 0, {}
    for topic, partition, first, last in rows:
        if first <= reached.get((topic, partition), -1):
            replays += 1
        reached[(topic, partition)] = max(last, reached.get((topic, partition), -1))
    return replays


async def send_until(
    traffic: Traffic,
    settings: Settings,
    done: asyncio.Event,
    seconds_per_round: float,
    sent: list[SendReport] | None = None,
) -> int:
    """Sends the traffic again and again, each round over ``seconds_per_round``, until ``done``
    is set; returns the rounds sent, and appends each round's report to ``sent`` as it ends.
    Every round repeats the same records, as a source that re-sends after its own restart does:
    the numbers must not move, while the worker always has work in hand when a fault strikes."""
    records = sum(len(r) for r in traffic.records.values())
    rounds = 0
    while not done.is_set():
        report = await send_to_kafka(
            traffic, settings.kafka, settings.topics, rate=records / seconds_per_round
        )
        rounds += 1
        if sent is not None:
            sent.append(report)
    return rounds


async def everything_on(settings: Settings, topic: str) -> list[dict[str, bytes]]:
    """Every message on ``topic``, up to its end: its headers, and its bytes as ``value``."""
    consumer = AIOKafkaConsumer(
        topic,
        **settings.kafka.aiokafka_options(),
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()  # without a group: every partition is assigned to it
    messages: list[dict[str, bytes]] = []
    try:
        ends = await consumer.end_offsets(
            [
                TopicPartition(topic, partition)
                for partition in consumer.partitions_for_topic(topic) or ()
            ]
        )
        assert ends, f"no partitions of {topic} known"

        async def behind() -> bool:
            return any([await consumer.position(tp) < end for tp, end in ends.items()])

        deadline = time.monotonic() + 60
        while await behind():
            assert time.monotonic() < deadline, f"{topic} could not be read"
            for records in (await consumer.getmany(timeout_ms=500)).values():
                messages += [
                    dict(record.headers) | {"value": record.value or b""} for record in records
                ]
    finally:
        await consumer.stop()
    return messages


async def every_dead_letter(settings: Settings) -> list[dict[str, bytes]]:
    """Every dead letter in the topic, up to its end: its headers, and its bytes as
    ``value``."""
    return await everything_on(settings, settings.topics.dead_letter)


async def dead_letter_origins(settings: Settings) -> Counter[tuple[bytes, bytes, bytes]]:
    """Every dead letter in the topic, up to its end, by its source coordinates."""
    return Counter(
        (letter["sp-source-topic"], letter["sp-source-offset"], letter["sp-source-index"])
        for letter in await every_dead_letter(settings)
    )


async def assert_counted_once(settings: Settings, expected: Expected, *, sends: int = 1) -> None:
    """What decision 4 promises after any mix of crashes, replays and re-sent traffic: every
    manager's numbers equal the generator's truth, the events table holds each canonical event
    once, and every malformed record sent (``sends`` times) has its dead letter."""
    stored = stored_totals(settings)
    for manager, counts in expected_totals(expected).items():
        got = +stored.get(manager, Counter())
        assert got == +counts, f"{manager}: stored {dict(got)}, truth {dict(+counts)}"
    ((events, distinct),) = query(
        settings, "SELECT count(), uniqExact(event_id) FROM {db}.events FINAL"
    )
    assert events == distinct == expected.canonical_events, (events, distinct)
    origins = await dead_letter_origins(settings)
    # Dead letters are at-least-once: a replay may send one again, but none may be missing.
    assert len(origins) == expected.malformed_records * sends, (
        f"{len(origins)} malformed records dead-lettered, {expected.malformed_records * sends} sent"
    )


def assert_rollups_catch_up(settings: Settings, expected: Expected, seconds: float = 120.0) -> None:
    """The day rollups (what dashboards read) reach the exact numbers by themselves."""
    truth = {m: +c for m, c in expected_totals(expected).items()}

    def wrong() -> dict[str, tuple[dict[str, int], dict[str, int]]]:
        """Managers whose rolled-up numbers differ from the truth: (rolled up, truth)."""
        rolled = rolled_up_totals(settings)
        return {
            m: (dict(+rolled.get(m, Counter())), dict(c))
            for m, c in truth.items()
            if +rolled.get(m, Counter()) != c
        }

    assert eventually(lambda: not wrong(), seconds), wrong()


def rss_bytes(pid: int) -> int:
    """Resident memory of a process, as the kernel reports it (VmRSS)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise ProcessLookupError(pid)


def scrape(worker: RunningWorker) -> list[Sample]:
    """The worker's /metrics samples, as Prometheus reads them; none while its web server is
    not up."""
    url = f"http://127.0.0.1:{worker.settings.worker.web_port}/metrics"
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            text = response.read().decode()
    except OSError:
        return []
    return [sample for family in text_string_to_metric_families(text) for sample in family.samples]


def assigned_partitions(worker: RunningWorker) -> set[tuple[str, int]]:
    """The partitions a worker says it owns: those it reports a consumer lag for, as
    operations see it."""
    return {
        (sample.labels["topic"], int(sample.labels["partition"]))
        for sample in scrape(worker)
        if sample.name == "salespulse_consumer_lag_messages"
    }


def consumer_lag(worker: RunningWorker) -> int:
    """Messages waiting in the worker's partitions, not yet durable, by its own gauge."""
    return int(metric_total(worker, "salespulse_consumer_lag_messages"))


def metric_total(worker: RunningWorker, name: str, **labels: str) -> float:
    """The sum of a metric's samples that carry ``labels``, over all their other labels."""
    return sum(
        sample.value
        for sample in scrape(worker)
        if sample.name == name and labels.items() <= sample.labels.items()
    )


def every_raw_partition(settings: Settings) -> set[tuple[str, int]]:
    return {
        (topic, partition)
        for topic in settings.topics.raw_topics()
        for partition in range(settings.topics.partitions)
    }
