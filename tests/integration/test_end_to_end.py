"""End to end: generated traffic through the real broker, a worker process and real ClickHouse.

The generator knows, from its own model of each manager's day, what a correct pipeline must
report. This test sends its raw records through Kafka exactly as a bridge would, runs
``salespulse worker`` as a separate process, waits until the worker has committed every offset
(which it does only after the data is durable), and compares ClickHouse with that truth: every
manager, every metric, the unattributed events, and the malformed records in the dead-letter
topic. Then the source sends everything again, and no number may move.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from ingest.generator import Traffic, send_to_kafka
from salespulse.settings import Settings
from salespulse.summary import UNATTRIBUTED
from salespulse.worker_process import stop_worker
from sinks.clickhouse.client import NativeClickHouse
from tests.conftest import LocalStack
from tests.integration.pipeline_harness import (
    METRIC_OF_COUNTER,
    RunningWorker,
    dead_letters,
    expected_totals,
    isolated_settings,
    launch,
    stored_totals,
)


@pytest.fixture
def worker(
    stack: LocalStack, tmp_path: Path, week_traffic: tuple[Traffic, Path]
) -> Iterator[RunningWorker]:
    settings = isolated_settings(stack, tmp_path)
    settings = settings.model_copy(update={"directory_path": week_traffic[1]})
    running = launch(settings, tmp_path / "worker.log")
    try:
        yield running
    finally:
        status = stop_worker(running.process)
        log = (tmp_path / "worker.log").read_text(errors="replace")
        assert status in (0, -15), f"worker exited with {status}:\n{log[-3000:]}"


async def test_generated_traffic_arrives_exactly_and_a_resend_changes_nothing(
    worker: RunningWorker, week_traffic: tuple[Traffic, Path]
) -> None:
    settings = worker.settings
    generated, _ = week_traffic
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

    # The worker serves its counters for Prometheus on its web port.
    async with aiohttp.ClientSession() as http:
        url = f"http://127.0.0.1:{settings.worker.web_port}/metrics"
        async with http.get(url) as response:
            assert response.status == 200
            exposition = await response.text()
        for path in ("/healthz", "/readyz"):
            url = f"http://127.0.0.1:{settings.worker.web_port}{path}"
            async with http.get(url) as response:
                assert response.status == 200, path
                if path == "/readyz":  # ready: both peers answer, and it holds its partitions
                    ready = {"kafka": True, "clickhouse": True, "partitions": True}
                    assert await response.json() == ready
    samples = {
        (sample.name, frozenset(sample.labels.items()))
        for family in text_string_to_metric_families(exposition)
        for sample in family.samples
    }
    pbx = settings.topics.raw_pbx
    records = {("format", "asterisk-cdr-csv"), ("topic", pbx)}
    assert ("salespulse_records_total", frozenset(records)) in samples
    assert any(
        name == "salespulse_dead_letters_total" and ("reason", "malformed") in labels
        for name, labels in samples
    )

    # The worker's rollups catch up by themselves and then say exactly what the events say.
    wanted = {m: c for m, c in stored.items() if c}
    for _ in range(60):
        if (rolled := rollup_totals(settings)) == wanted:
            break
        await asyncio.sleep(1)
    assert rolled == wanted


def rollup_totals(settings: Settings) -> dict[str, Counter[str]]:
    compared = sorted(set(METRIC_OF_COUNTER.values()))
    client = NativeClickHouse(settings.clickhouse)
    try:
        rows = client.execute(
            f"SELECT manager_id, {', '.join(f'sum({m})' for m in compared)} "
            f"FROM {settings.clickhouse.database}.activity_15m FINAL GROUP BY manager_id"
        )
    finally:
        client.close()
    totals = {
        manager or UNATTRIBUTED: +Counter(dict(zip(compared, map(int, values), strict=True)))
        for manager, *values in rows
    }
    return {manager: counts for manager, counts in totals.items() if counts}
