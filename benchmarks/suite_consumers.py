"""The reference consumers of benchmarks/suite.py: the consume ceiling, the naive faust
pipeline, and the processing code alone in this process."""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from suite_parts import Measure, Watched, Workload, start_process, stop_all, watch_stored

from ingest.generator.output import frame_messages
from processors.parsers import build_parsers
from processors.pipeline import BatchProcessor, RawMessage
from processors.privacy import PhoneProtector
from salespulse.directory import load_directory
from salespulse.models import BACKFILL_HEADER, FORMAT_HEADER
from salespulse.settings import Settings
from salespulse.topics import ensure_topics
from sinks.clickhouse.client import NativeClickHouse

BENCHMARKS = Path(__file__).resolve().parent
# Enough messages for the ceiling to be timed over a couple of seconds, not one fetch.
RAW_MESSAGES_TIMED = 250_000
RAW_MAX_PASSES = 20
BATCH = 2000  # messages per BatchProcessor call in the in-process measure, the worker's default


def measure_raw(base: Settings, workload: Workload, repeats: int) -> Measure:
    """The best of ``repeats`` runs: the ceiling is what the client can do, not its bad day."""
    passes = min(RAW_MAX_PASSES, max(1, round(RAW_MESSAGES_TIMED / workload.messages)))
    best: Measure | None = None
    for run in range(repeats):
        argv = [
            sys.executable,
            str(BENCHMARKS / "raw_consume.py"),
            "--bootstrap",
            base.kafka.bootstrap_servers,
            "--group",
            f"raw-ceiling-{run}",
            "--messages",
            str(workload.messages),
            "--passes",
            str(passes),
            *base.topics.raw_topics(),
        ]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=600, check=True)
        result = json.loads(done.stdout.strip().splitlines()[-1])
        measure = Measure(
            "aiokafka getmany (ceiling)",
            events=workload.events * passes,
            seconds=result["seconds"],
            cpu_seconds=result["cpu_seconds"],
            peak_rss_mb=result["peak_rss_mb"],
            note=f"best of {repeats}; {passes} passes over the topics; nothing stored",
        )
        if best is None or measure.seconds < best.seconds:
            best = measure
    assert best is not None
    return best


async def measure_naive(
    settings: Settings, workload: Workload, state: Path, args: argparse.Namespace
) -> Measure:
    """The naive pipeline on its own group, database and dead-letter topic."""
    topics = settings.topics.model_copy(update={"dead_letter": "naive.deadletter"})
    settings = settings.model_copy(update={"topics": topics})
    await ensure_topics(settings.kafka, topics)
    log = state / "naive-faust.log"
    argv = [str(BENCHMARKS / "naive_faust_worker.py")]
    argv += ["--rows-per-insert", str(args.naive_rows_per_insert)]
    process = start_process(argv, settings, log)
    client = NativeClickHouse(settings.clickhouse)
    try:
        measure = await watch_stored(
            "naive faust",
            client,
            Watched([process], [log]),
            workload.events,
            limit=args.timeout,
            window=args.naive_max_seconds,
        )
    finally:
        client.close()
        stop_all([process])
    measure.name = "naive faust, per event"
    extra = f"{args.naive_rows_per_insert} rows per insert"
    measure.note = f"{extra}; {measure.note}" if measure.note else extra
    return measure


def measure_processing(workload: Workload, directory_path: Path) -> Measure:
    """``BatchProcessor.process`` alone, in this process, over the whole workload in batches of
    the worker's size: the CPU cost of parsing, validation, attribution and row building with
    no Kafka, no framework and no ClickHouse."""
    directory = load_directory(directory_path)
    processor = BatchProcessor(
        build_parsers(Settings().parsing),
        lambda: directory,
        PhoneProtector(None),
        max_message_bytes=1_048_576,
    )
    headers = {
        fmt: [(FORMAT_HEADER, fmt.encode()), (BACKFILL_HEADER, b"1")]
        for fmt in {m.format for m in frame_messages(workload.traffic.all_records())}
    }
    now = datetime.now(UTC)
    messages = [
        RawMessage("raw", 0, offset, headers[m.format], m.value, now)
        for offset, m in enumerate(frame_messages(workload.traffic.all_records()))
    ]
    rows = 0
    started = time.process_time()
    for start in range(0, len(messages), BATCH):
        rows += len(processor.process(messages[start : start + BATCH]).rows)
    cpu = time.process_time() - started
    return Measure(
        "BatchProcessor.process alone (in-process, CPU time)",
        events=rows,
        seconds=cpu,
        cpu_seconds=math.nan,  # timed in CPU seconds already: "cores busy" means nothing here
        peak_rss_mb=math.nan,
        note=f"batches of {BATCH} messages; parse, validate, attribute, build rows",
    )
