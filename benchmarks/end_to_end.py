"""End-to-end throughput: generated traffic → Kafka → worker → ClickHouse, offsets committed.

Starts a private stack (Tansu + ClickHouse) in a temporary folder, a real ``salespulse worker``
process, warms it up with one small batch (so consumer-group joining is not timed), then sends
the whole workload as fast as the producer can and waits until the worker has committed every
offset, which it does only after the rows are durable in ClickHouse. Prints records/s, the
worker's CPU seconds per million records and its peak RSS, and records them in
docs/benchmarks.md.

    .venv/bin/python benchmarks/end_to_end.py --managers 200 --days 5
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from results import RESULTS, running_worker, write_section  # the sibling module: run as a script

from ingest.generator import make_population, send_to_kafka, simulate, write_directory_yaml
from salespulse.lag import wait_for_zero_lag
from salespulse.sections import TopicSettings, WorkerSettings
from salespulse.settings import Settings
from salespulse.stack import running_stack
from salespulse.stack_settings import free_ports, pointed_at_stack, private_stack
from sinks.clickhouse.client import NativeClickHouse

SECTION = "## End to end, one worker"
WEEK_END = datetime(2026, 11, 21, tzinfo=UTC)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def run(args: argparse.Namespace, state: Path) -> dict[str, float]:
    stack = private_stack(state / "stack")
    (web_port,) = free_ports(1)
    settings = pointed_at_stack(
        Settings(
            topics=TopicSettings(partitions=args.partitions),
            worker=WorkerSettings(web_port=web_port),
            directory_path=state / "directory.yaml",
        ),
        stack,
    )
    population = make_population(args.managers, args.departments, seed=args.seed)
    write_directory_yaml(population, settings.directory_path)
    warmup = simulate(
        population,
        WEEK_END - timedelta(days=args.days + 1),
        WEEK_END - timedelta(days=args.days),
        args.seed,
    )
    traffic = simulate(population, WEEK_END - timedelta(days=args.days), WEEK_END, args.seed)

    with running_stack(stack), running_worker(settings, state / "worker.log") as worker:

        async def durable() -> None:
            await wait_for_zero_lag(
                settings.kafka,
                settings.worker.app_id,
                settings.topics.raw_topics(),
                timeout_seconds=600,
                poll_seconds=0.2,
                consumer_alive=lambda: worker.poll() is None,
            )

        await send_to_kafka(warmup, settings.kafka, settings.topics)
        await durable()
        cpu_before = cpu_seconds(worker.pid)
        started = time.monotonic()
        report = await send_to_kafka(traffic, settings.kafka, settings.topics)
        await durable()
        elapsed = time.monotonic() - started
        cpu = cpu_seconds(worker.pid) - cpu_before
        rss = peak_rss_mb(worker.pid)
        client = NativeClickHouse(settings.clickhouse)
        try:
            ((stored,),) = client.execute(
                f"SELECT count() FROM {settings.clickhouse.database}.events"
            )
        finally:
            client.close()
    return {
        "records": report.records,
        "messages": report.messages,
        "send_seconds": report.seconds,
        "seconds": elapsed,
        "records_per_second": report.records / elapsed,
        "cpu_seconds_per_million": cpu / report.records * 1e6,
        "peak_rss_mb": rss,
        "rows_stored": stored,
    }


def record(args: argparse.Namespace, result: dict[str, float]) -> str:
    command = (
        f".venv/bin/python benchmarks/end_to_end.py --managers {args.managers} --days {args.days}"
    )
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    body = "\n".join(
        [
            f"Command: `{command}` — {datetime.now(UTC):%Y-%m-%d}, {machine}, Tansu 0.6.0 and "
            "ClickHouse 18.16 on loopback.",
            "",
            "| records | Kafka messages | records/s end to end | worker CPU s per 1M records | "
            "worker peak RSS |",
            "|---|---|---|---|---|",
            f"| {result['records']:,.0f} | {result['messages']:,.0f} | "
            f"{result['records_per_second']:,.0f} | {result['cpu_seconds_per_million']:,.1f} | "
            f"{result['peak_rss_mb']:,.0f} MB |",
            "",
            "End to end = from the first send until the worker's committed offsets reach the end "
            "of every raw topic (it commits only after the rows are durable in ClickHouse).",
            "",
        ]
    )
    write_section(SECTION, body)
    return body


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--managers", type=int, default=200)
    parser.add_argument("--departments", type=int, default=10)
    parser.add_argument("--days", type=int, default=5)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--no-record", action="store_true", help="print only")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="salespulse-bench-") as state:
        result = asyncio.run(run(args, Path(state)))
    for name, value in result.items():
        print(f"{name:>26}: {value:,.1f}")
    if not args.no_record:
        record(args, result)
        print(f"recorded in {RESULTS}")


if __name__ == "__main__":
    main()
