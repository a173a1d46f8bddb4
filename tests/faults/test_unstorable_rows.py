"""One record ClickHouse will not store must not stop the stream (issue 21, finding 1).

A CRM task due "1900-01-01" was accepted by the receiver, and the worker then died on
``Column due_at: argument out of range`` on every restart, on the same uncommitted message:
ingestion stopped for everyone. These tests run the real worker process against the real
ClickHouse server:

* the finding's records themselves (a task due in 1900, a chat closed in 2200) amid a week of
  traffic: the worker stays up and every number is exact;
* rows refused for a reason the pipeline cannot foresee: a column added to ``events`` whose
  MATERIALIZED expression throws for chosen rows (``throwIf``), so the server refuses any insert
  holding one of them. The worker must find them, dead-letter each record once with its own
  bytes (reason ``unstorable``), store every other row, and go on — and a SIGKILL in the middle
  of that search must change nothing: nothing lost, nothing doubled.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest

from ingest.generator import Traffic, send_to_kafka
from ingest.raw_producer import RawProducer, RawRecordOut
from salespulse.models import SourceFamily
from salespulse.settings import Settings
from salespulse.worker_process import stop_worker
from sinks.clickhouse.client import NativeClickHouse
from sinks.clickhouse.migrations import apply_migrations
from tests.conftest import LocalStack
from tests.integration.pipeline_harness import (
    WEEK_END,
    RunningWorker,
    assert_rollups_catch_up,
    every_dead_letter,
    expected_totals,
    launch,
    metric_total,
    query,
    stored_totals,
    week_settings,
)

pytestmark = pytest.mark.timeout(300)

# Records the pipeline cannot know are bad: the server refuses them (below).
POISON_RECORDS = 60
ISOLATING = "isolating the rows it cannot store"
ISOLATED = "rows for events cannot be stored; the rest are"
DAY = (WEEK_END - timedelta(days=2)).date().isoformat()


def crm_event(event_id: str, *, entity: str, due_at: str | None = None) -> bytes:
    due = f',"due_at":"{due_at}"' if due_at is not None else ""
    return (
        f'{{"id":"{event_id}","type":"task.created","user_id":"probe-user",'
        f'"occurred_at":"{DAY}T10:00:00+03:00","entity":"{entity}"{due}}}'
    ).encode()


# The finding's own records: a deadline of 1900 (a "no deadline" sentinel: stored, without a
# deadline) and a chat closed in 2200 (a dead letter: an end in the future).
TASK_DUE_1900 = crm_event("probe-1900", entity="task:1900", due_at="1900-01-01T00:00:00+00:00")
CHAT_CLOSED_2200 = (
    b'{"session_id":"probe-2200","channel":"telegram","operator_id":"probe-operator",'
    b'"started_at":"' + DAY.encode() + b'T10:00:00+03:00","closed_at":"2200-01-01T00:00:00+03:00",'
    b'"status":"closed","client_id":"c-1","messages":3}'
)
POISON = [crm_event(f"probe-poison-{n}", entity=f"poison-{n}") for n in range(POISON_RECORDS)]


def prepared_database(settings: Settings, *, refuse_poison: bool) -> None:
    """The schema the worker would apply, and — for the unforeseen failure — a column whose
    value is computed on insert and throws for rows whose entity starts with ``poison``."""
    client = NativeClickHouse(settings.clickhouse, database="default")
    try:
        client.execute(f"CREATE DATABASE IF NOT EXISTS {settings.clickhouse.database}")
    finally:
        client.close()
    client = NativeClickHouse(settings.clickhouse)
    try:
        apply_migrations(client)
        if refuse_poison:
            client.execute(
                f"ALTER TABLE {client.database}.events ADD COLUMN refused_by_test UInt8 "
                "MATERIALIZED throwIf(startsWith(external_ref, 'poison'))"
            )
    finally:
        client.close()


async def send_probes(settings: Settings, values: list[tuple[SourceFamily, str, bytes]]) -> None:
    """Each value as a message of its own, as the receiver writes a posted record."""
    async with RawProducer(settings.kafka, settings.topics) as producer:
        await producer.send_many(
            RawRecordOut(family, fmt, value[-24:], value, backfill=True)
            for family, fmt, value in values
        )


async def send_week_with(traffic: Traffic, settings: Settings, probes: list[bytes]) -> None:
    """The week's traffic with the probes spread through it, so that the worker's first
    batches hold both."""
    crm = [(SourceFamily.CRM, "crm-event-json", value) for value in probes]
    half = len(crm) // 2
    await send_probes(settings, crm[:half])
    await send_to_kafka(traffic, settings.kafka, settings.topics)
    await send_probes(settings, crm[half:])


def assert_week_exact(settings: Settings, traffic: Traffic, extra_events: int) -> None:
    stored = stored_totals(settings)
    for manager, counts in expected_totals(traffic.expected).items():
        got = +stored.get(manager, Counter())
        assert got == +counts, f"{manager}: stored {dict(got)}, truth {dict(+counts)}"
    ((events, distinct),) = query(
        settings, "SELECT count(), uniqExact(event_id) FROM {db}.events FINAL"
    )
    assert events == distinct == traffic.expected.canonical_events + extra_events


async def letters_by_reason(settings: Settings) -> dict[str, set[bytes]]:
    """Every dead letter's original bytes, by reason (a replay may send one twice)."""
    found: dict[str, set[bytes]] = {}
    for letter in await every_dead_letter(settings):
        found.setdefault(letter["sp-dlq-reason"].decode(), set()).add(letter["value"])
    return found


async def test_the_findings_records_no_longer_stop_the_worker(
    stack: LocalStack, tmp_path: Path, week_traffic: tuple[Traffic, Path]
) -> None:
    traffic, settings = week_settings(stack, tmp_path, week_traffic)
    prepared_database(settings, refuse_poison=False)
    await send_week_with(traffic, settings, [TASK_DUE_1900])
    await send_probes(settings, [(SourceFamily.CHAT, "chat-session-json", CHAT_CLOSED_2200)])
    worker = launch(settings, tmp_path / "worker.log")
    try:
        await worker.wait_until_durable()  # fails at once if the worker dies
    finally:
        assert stop_worker(worker.process) in (0, -15)
    assert_week_exact(settings, traffic, extra_events=1)
    ((due_at,),) = query(
        settings, "SELECT due_at FROM {db}.events FINAL WHERE external_ref = 'task:1900'"
    )
    assert due_at is None  # no deadline: never "overdue since 1900"
    letters = await letters_by_reason(settings)
    assert letters["future_time"] == {CHAT_CLOSED_2200}


def read_log(path: Path) -> str:
    return path.read_text(errors="replace") if path.exists() else ""


async def kill_while_isolating(settings: Settings, worker: RunningWorker, log_path: Path) -> str:
    """SIGKILLs the worker in the middle of its search for refused rows: once its log says it
    is isolating them and some good rows of that batch are stored. Returns the log as it was
    at that moment."""
    deadline = time.monotonic() + 120
    while ISOLATING not in await asyncio.to_thread(read_log, log_path):
        assert time.monotonic() < deadline, "the worker never started isolating refused rows"
        assert worker.process.poll() is None, "the worker died by itself"
        await asyncio.sleep(0.005)
    while not query(settings, "SELECT count() FROM {db}.events")[0][0]:
        assert time.monotonic() < deadline, "the search stored nothing"
        await asyncio.sleep(0.002)
    worker.process.send_signal(signal.SIGKILL)
    worker.process.wait()
    return await asyncio.to_thread(read_log, log_path)


async def test_rows_refused_for_unforeseen_reasons_are_isolated_even_across_a_sigkill(
    stack: LocalStack, tmp_path: Path, week_traffic: tuple[Traffic, Path]
) -> None:
    traffic, settings = week_settings(stack, tmp_path, week_traffic)
    prepared_database(settings, refuse_poison=True)
    await send_week_with(traffic, settings, [TASK_DUE_1900, *POISON])

    first_log = tmp_path / "worker-0.log"
    worker = launch(settings, first_log)
    try:
        at_kill = await kill_while_isolating(settings, worker, first_log)
    finally:
        stop_worker(worker.process)
    # The kill struck mid-search: part of the batch's good rows were stored, its refused rows
    # were not all found yet, and its offsets were not committed, so the successor does it all
    # again over rows already there.
    assert ISOLATED not in at_kill, "the search ended before the kill: it proved nothing"

    worker = launch(settings, tmp_path / "worker-1.log")
    try:
        await worker.wait_until_durable()
        assert_rollups_catch_up(settings, traffic.expected)
        refused_rows = metric_total(worker, "salespulse_unstorable_rows_total", table="events")
    finally:
        assert stop_worker(worker.process) in (0, -15)

    assert refused_rows >= POISON_RECORDS  # counted where on-call people look
    # Every good record exactly once (the task due in 1900 among them); no poison stored.
    assert_week_exact(settings, traffic, extra_events=1)
    ((poisoned,),) = query(
        settings, "SELECT count() FROM {db}.events WHERE startsWith(external_ref, 'poison')"
    )
    assert poisoned == 0
    # Each refused record has its dead letter, carrying exactly the bytes it came with.
    letters = await letters_by_reason(settings)
    assert letters["unstorable"] == set(POISON)
    worker_log = (tmp_path / "worker-1.log").read_text(errors="replace")
    assert "[WARNING] record " in worker_log  # each dead-lettered record, for on-call people
    assert ISOLATED in worker_log
