"""``salespulse generate`` and ``salespulse demo``: generated traffic, and the whole job end to end.

The demo is what a new user runs first: local stack up, schema and topics ready, a worker started
as its own process (exactly as in production), a week of realistic traffic for a generated sales
team sent through Kafka, the per-manager table read back from ClickHouse once the worker has
committed everything it consumed, an alert arriving in the local Alertmanager, and the address
of the head of sales' page the worker serves (it keeps running after the demo).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from ingest.generator import (
    Traffic,
    make_population,
    send_to_kafka,
    simulate,
    write_directory_yaml,
    write_files,
)
from salespulse.demo_alerts import add_duty_desk, show_alert_in_alertmanager, write_alert_files
from salespulse.demo_page import show_page
from salespulse.demo_worker import demo_dir as demo_folder
from salespulse.demo_worker import remember, stop_demo_worker
from salespulse.directory import load_directory
from salespulse.lag import wait_for_zero_lag
from salespulse.settings import Settings
from salespulse.stack import stack_up
from salespulse.stack_settings import pointed_at_stack
from salespulse.summary import query_summary, render_table
from salespulse.worker_process import start_worker, stop_worker
from sinks.clickhouse.client import NativeClickHouse

WORKER_READY_TIMEOUT = 90.0


def _traffic(args: argparse.Namespace, directory_path: Path) -> Traffic:
    population = make_population(args.managers, args.departments, args.seed)
    write_directory_yaml(population, directory_path)
    end = datetime.now(UTC).replace(microsecond=0)
    return simulate(
        population,
        end - timedelta(days=args.days),
        end,
        args.seed,
        malformed_share=args.malformed_share,
    )


def generate_command(args: argparse.Namespace, settings: Settings) -> int:
    if args.to == "files":
        out: Path = args.out or Path("generated")
        out.mkdir(parents=True, exist_ok=True)
        traffic = _traffic(args, out / "directory.yaml")
        write_files(traffic, out)
        print(
            f"wrote {traffic.expected.valid_records + traffic.expected.malformed_records} "
            f"records and the directory to {out}/"
        )
        return 0
    directory_path = args.out / "directory.yaml" if args.out else Path("directory.yaml")
    traffic = _traffic(args, directory_path)
    report = asyncio.run(send_to_kafka(traffic, settings.kafka, settings.topics, rate=args.rate))
    print(
        f"sent {report.records} records in {report.messages} messages in {report.seconds:.1f} s; "
        f"directory for the worker: {directory_path}"
    )
    return 0


def run_demo(args: argparse.Namespace, settings: Settings) -> int:
    started = time.monotonic()
    settings = pointed_at_stack(settings)
    status = stack_up(settings.stack)
    print(status.describe())
    demo_dir = demo_folder(settings.stack)
    demo_dir.mkdir(parents=True, exist_ok=True)
    directory_path = demo_dir / "directory.yaml"
    traffic = _traffic(args, directory_path)
    expected = traffic.expected
    print(
        f"generated {args.days} days for {args.managers} managers in {args.departments} "
        f"departments: {expected.valid_records} valid and {expected.malformed_records} "
        "malformed records"
    )

    add_duty_desk(directory_path)
    calendar_path, rules_path = write_alert_files(demo_dir)
    alerts = settings.alerts.model_copy(
        update={"calendar_path": calendar_path, "rules_path": rules_path}
    )
    settings = settings.model_copy(update={"directory_path": directory_path, "alerts": alerts})

    from processors.worker import prepare

    prepare(settings)
    log_path = demo_dir / "worker.log"
    if previous := stop_demo_worker(settings.stack):
        print(f"stopped the previous demo's worker (pid {previous})")
    worker = start_worker(settings, log_path)
    remember(settings.stack, worker.pid)
    succeeded = False
    try:
        report = asyncio.run(send_to_kafka(traffic, settings.kafka, settings.topics))
        print(
            f"sent {report.records} records in {report.messages} Kafka messages "
            f"({report.seconds:.1f} s); waiting for the worker to make them durable ..."
        )
        asyncio.run(
            wait_for_zero_lag(
                settings.kafka,
                settings.worker.app_id,
                settings.topics.raw_topics(),
                timeout_seconds=WORKER_READY_TIMEOUT,
                consumer_alive=lambda: worker.poll() is None,
            )
        )
        if worker.poll() is not None:
            print(f"the worker exited with {worker.returncode}; see {log_path}", file=sys.stderr)
            return 1
        _print_tables(settings, directory_path, args.days)
        if not (show_alert_in_alertmanager(settings) and show_page(settings)):
            print(f"see the worker log {log_path}", file=sys.stderr)
            return 1
        print(f"\nend to end in {time.monotonic() - started:.0f} s. Worker log: {log_path}")
        succeeded = True
    finally:
        if args.stop_worker or not succeeded:
            stop_worker(worker)
            stop_demo_worker(settings.stack)
    if not args.stop_worker:
        print(f"the worker keeps running (pid {worker.pid}) with its page and /metrics")
    print("stack still up; stop it and the worker with: .venv/bin/salespulse stack down")
    return 0


def _print_tables(settings: Settings, directory_path: Path, days: int) -> None:
    directory = load_directory(directory_path)
    client = NativeClickHouse(settings.clickhouse)
    try:
        for title, span in (("today", 1), (f"the last {days} days", days)):
            rows = query_summary(client, directory, days=span, counting=settings.counting)
            print(f"\nActivity per manager, {title} (each manager's local dates):")
            print(render_table(rows))
    finally:
        client.close()
