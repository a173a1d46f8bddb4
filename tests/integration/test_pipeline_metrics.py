"""What operations see on a real worker's /metrics after a few records: per-topic counts, dead
letters by topic and reason, the lag of every partition and the end-to-end latencies."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import yaml
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from ingest.crm_records import crm_event_record
from ingest.raw_producer import RawProducer, RawRecordOut
from salespulse.models import SourceFamily
from salespulse.settings import Settings
from salespulse.worker_process import stop_worker
from tests.conftest import LocalStack
from tests.integration.pipeline_harness import isolated_settings, launch

DIRECTORY = {
    "departments": [{"id": "msk", "timezone": "Europe/Moscow"}],
    "managers": [
        {"id": "ivanova", "department": "msk", "identities": [{"family": "crm", "id": "u-1"}]}
    ],
}

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def scrape(settings: Settings) -> Samples:
    url = f"http://127.0.0.1:{settings.worker.web_port}/metrics"
    async with aiohttp.ClientSession() as http, http.get(url) as response:
        assert response.status == 200
        text = await response.text()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def lags(samples: Samples) -> dict[tuple[str, str], float]:
    return {
        (dict(labels)["topic"], dict(labels)["partition"]): v
        for (name, labels), v in samples.items()
        if name == "salespulse_consumer_lag_messages"
    }


async def test_a_worker_reports_counts_dead_letters_lag_and_latency(
    stack: LocalStack, tmp_path: Path
) -> None:
    settings = isolated_settings(stack, tmp_path)
    settings.directory_path.write_text(yaml.safe_dump(DIRECTORY))
    topics = settings.topics
    now = datetime.now(UTC).replace(microsecond=0)
    records = [
        crm_event_record(f"offer-{i}", "offer.sent", "u-1", now - timedelta(seconds=i))
        for i in range(3)
    ]
    malformed = RawRecordOut(SourceFamily.CRM, "crm-event-json", b"u-1", b"{not json")
    produced_before = REGISTRY.get_sample_value(
        "salespulse_produced_messages_total", {"topic": topics.raw_crm}
    )
    worker = launch(settings, tmp_path / "worker.log")
    try:
        async with RawProducer(settings.kafka, topics) as producer:
            await producer.send_many([*records, malformed])
        # The bridges' side of the same count, in this process.
        assert produced_before is None
        assert (
            REGISTRY.get_sample_value(
                "salespulse_produced_messages_total", {"topic": topics.raw_crm}
            )
            == 4
        )
        await worker.wait_until_durable()

        # Every partition of every raw topic has its gauge; the next update shows zero.
        partitions = {(t, str(p)) for t in topics.raw_topics() for p in range(topics.partitions)}
        deadline = time.monotonic() + 30
        while True:
            samples = await scrape(settings)
            seen = lags(samples)
            if set(seen) == partitions and not any(seen.values()):
                break
            assert time.monotonic() < deadline, f"lag gauges: {seen}"
            await asyncio.sleep(1)

        assert value(samples, "salespulse_consumed_messages_total", topic=topics.raw_crm) == 4
        # A topic that sent nothing is there, at zero: "no data" is visible as such.
        assert value(samples, "salespulse_consumed_messages_total", topic=topics.raw_pbx) == 0
        records_by = {"format": "crm-event-json", "topic": topics.raw_crm}
        assert value(samples, "salespulse_records_total", **records_by) == 4
        dead = {"topic": topics.raw_crm, "reason": "malformed"}
        assert value(samples, "salespulse_dead_letters_total", **dead) == 1

        crm = {"topic": topics.raw_crm}
        assert value(samples, "salespulse_event_to_durable_seconds_count", **crm) == 3
        assert 0 < (value(samples, "salespulse_event_to_durable_seconds_sum", **crm) or 0) < 3 * 120
        assert value(samples, "salespulse_ingest_to_durable_seconds_count", **crm) == 4
        inserts = value(samples, "salespulse_clickhouse_insert_seconds_count", table="events")
        assert (inserts or 0) >= 1
        durable_at = value(samples, "salespulse_last_batch_durable_timestamp_seconds") or 0
        assert abs(durable_at - time.time()) < 120
        assert value(samples, "salespulse_directory_reloads_total", result="error") == 0
    finally:
        status = stop_worker(worker.process)
        log = (tmp_path / "worker.log").read_text(errors="replace")
        assert status in (0, -15), f"worker exited with {status}:\n{log[-3000:]}"
