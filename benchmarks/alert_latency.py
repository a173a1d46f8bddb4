"""Alert latency: from the event (or the deadline) that crosses a threshold to the notice
arriving at a webhook.

Starts a private stack and a real ``salespulse worker`` with a round-the-clock duty desk of
``--managers`` managers and two rules: ``offer_sent`` (a threshold rule, fired by an event: one
offer sent) and ``task_overdue`` (fired by the clock: a task's deadline passes). A local HTTP
server stands in for the webhook receiver and notes when each notice arrives.

* event → alert: a CRM ``offer.sent`` record is written to Kafka for one manager at a time; the
  latency runs from the broker's acknowledgement to the webhook receiving that manager's alert.
* deadline → alert: tasks are created with deadlines a few seconds ahead; the latency runs from
  the deadline to the webhook receiving the task's alert.

With ``--load N`` generated traffic for a separate sales team flows at N records/s meanwhile.
Prints p50/p95/p99/max and records them in docs/benchmarks.md.

    .venv/bin/python benchmarks/alert_latency.py --samples 100 --load 5000
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web
from results import RESULTS, running_worker, write_section  # the sibling module: run as a script

from ingest.crm_records import crm_event_record
from ingest.generator import make_population, send_to_kafka, simulate, write_directory_yaml
from ingest.raw_producer import RawProducer, RawRecordOut
from salespulse.alert_settings import AlertsSettings
from salespulse.sections import WorkerSettings
from salespulse.settings import Settings
from salespulse.stack import running_stack
from salespulse.stack_settings import free_ports, pointed_at_stack, private_stack

SECTION = "## Alert latency"
RULES = {
    "rules": [
        {"name": "offer_sent", "kind": "threshold", "metric": "offers", "window": "1h",
         "at_least": 1, "resolve_hold": "1h", "departments": ["desk"]},
        {"name": "task_overdue", "kind": "overdue_task", "grace": "0m", "departments": ["desk"]},
    ],
    "notify": {"default": ["bench"], "per_recipient_per_hour": 1_000_000},
}  # fmt: skip
CALENDAR = {
    "departments": {
        "desk": {
            "workdays": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
            "hours": "00:00-24:00",
            "lunch": None,
        }
    }
}


class Receiver:
    """The webhook receiver: when each alert key first fired."""

    def __init__(self) -> None:
        self.arrivals: dict[str, float] = {}
        self.changed = asyncio.Event()

    async def handle(self, request: web.Request) -> web.Response:
        notice = json.loads(await request.read())
        if notice["state"] == "firing":
            self.arrivals.setdefault(notice["alert"]["key"], time.time())
            self.changed.set()
        return web.Response(status=204)

    async def wait_for(self, keys: set[str], seconds: float) -> None:
        try:
            async with asyncio.timeout(seconds):
                while not keys <= self.arrivals.keys():
                    self.changed.clear()
                    await self.changed.wait()
        except TimeoutError:
            missing = sorted(keys - self.arrivals.keys())
            raise TimeoutError(f"{len(missing)} alerts never arrived, e.g. {missing[:3]}") from None


async def serve_hook(port: int) -> tuple[Receiver, web.AppRunner]:
    """A webhook receiver at http://127.0.0.1:``port``/hook; clean the runner up when done."""
    receiver = Receiver()
    app = web.Application()
    app.router.add_post("/hook", receiver.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return receiver, runner


def desk_directory(managers: int, path: Path, team: Path | None) -> list[str]:
    ids = [f"desk-{i:03d}" for i in range(managers)]
    data: dict[str, Any] = {"departments": [], "managers": []}
    if team is not None:
        data = yaml.safe_load(team.read_text())
    data["departments"].append({"id": "desk", "name": "Duty desk", "timezone": "Europe/Moscow"})
    for manager in ids:
        identity = {"family": "crm", "id": f"u-{manager}"}
        data["managers"].append({"id": manager, "department": "desk", "identities": [identity]})
    path.write_text(yaml.safe_dump(data))
    return ids


def crm_record(record_id: str, type_: str, user: str, **fields: str) -> RawRecordOut:
    return crm_event_record(record_id, type_, user, datetime.now(UTC), **fields)


def percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    cuts = (
        statistics.quantiles(ordered, n=100, method="inclusive")
        if len(ordered) > 1
        else ordered * 99
    )
    return {"p50": cuts[49], "p95": cuts[94], "p99": cuts[98], "max": ordered[-1]}


def latency_settings(base: Settings, state: Path, hook_port: int) -> Settings:
    """``base`` with the duty desk's rules and calendar written to ``state``, alerts going to
    the webhook receiver on ``hook_port``, and the directory at ``state/directory.yaml``."""
    (state / "alerts.yaml").write_text(yaml.safe_dump(RULES))
    (state / "calendar.yaml").write_text(yaml.safe_dump(CALENDAR))
    alerts = AlertsSettings(
        rules_path=state / "alerts.yaml",
        calendar_path=state / "calendar.yaml",
        webhook_url=f"http://127.0.0.1:{hook_port}/hook",
    )
    return base.model_copy(update={"alerts": alerts, "directory_path": state / "directory.yaml"})


async def measure(args: argparse.Namespace, state: Path) -> dict[str, dict[str, float]]:
    stack = private_stack(state / "stack")
    web_port, hook_port = free_ports(2)
    base = Settings(worker=WorkerSettings(web_port=web_port))
    settings = latency_settings(pointed_at_stack(base, stack), state, hook_port)
    team_path = None
    load = None
    if args.load:
        population = make_population(args.load_managers, 10, seed=3)
        team_path = state / "team.yaml"
        write_directory_yaml(population, team_path)
        end = datetime.now(UTC)
        load = simulate(population, end - timedelta(days=args.load_days), end, seed=3)
    managers = desk_directory(args.managers, settings.directory_path, team_path)

    receiver, runner = await serve_hook(hook_port)
    background: asyncio.Task[Any] | None = None
    try:
        with running_stack(stack), running_worker(settings, state / "worker.log"):
            async with RawProducer(settings.kafka, settings.topics, linger_ms=0) as producer:
                # Warm up: the worker joins the group and becomes the leader that evaluates.
                await producer.send(crm_record("warm", "offer.sent", f"u-{managers[0]}"))
                await receiver.wait_for({f"offer_sent/manager/{managers[0]}"}, 120)
                if load is not None:
                    background = asyncio.create_task(
                        send_to_kafka(load, settings.kafka, settings.topics, rate=args.load)
                    )
                    await asyncio.sleep(3)  # let the load reach a steady state
                event_latency = await events_to_alerts(args, producer, receiver, managers[1:])
                deadline_latency = await deadlines_to_alerts(args, producer, receiver, managers)
    finally:
        if background is not None:
            background.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await background
        await runner.cleanup()
    return {"event → alert": event_latency, "deadline → alert": deadline_latency}


async def events_to_alerts(
    args: argparse.Namespace, producer: RawProducer, receiver: Receiver, managers: list[str]
) -> dict[str, float]:
    sent: dict[str, float] = {}
    for index in range(args.samples):
        manager = managers[index % len(managers)]
        key = f"offer_sent/manager/{manager}"
        if key in sent:
            break  # each manager fires once: as many samples as managers
        await producer.send(crm_record(f"offer-{index}", "offer.sent", f"u-{manager}"))
        sent[key] = time.time()
        await asyncio.sleep(args.interval)
    await receiver.wait_for(set(sent), 60)
    return percentiles([receiver.arrivals[key] - at for key, at in sent.items()])


async def deadlines_to_alerts(
    args: argparse.Namespace, producer: RawProducer, receiver: Receiver, managers: list[str]
) -> dict[str, float]:
    first_due = time.time() + 5
    due: dict[str, float] = {}
    for index in range(args.samples):
        manager = managers[index % len(managers)]
        at = float(int(first_due + index * args.interval))  # CRM deadlines are whole seconds
        task = f"task-{index}"
        deadline = datetime.fromtimestamp(at, UTC).isoformat()
        await producer.send(
            crm_record(f"{task}:c", "task.created", f"u-{manager}", entity=task, due_at=deadline)
        )
        due[f"task_overdue/task/{task}"] = at
    await receiver.wait_for(set(due), 60 + args.samples * args.interval)
    return percentiles([receiver.arrivals[key] - at for key, at in due.items()])


def record(args: argparse.Namespace, result: dict[str, dict[str, float]]) -> None:
    command = f".venv/bin/python benchmarks/alert_latency.py --samples {args.samples}"
    if args.load:
        command += f" --load {args.load}"
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    load = (
        f"{args.load:,} records/s of other traffic meanwhile" if args.load else "no other traffic"
    )
    rows = [
        f"| {name} | {args.samples} | {v['p50']:.2f} s | {v['p95']:.2f} s | {v['p99']:.2f} s | "
        f"{v['max']:.2f} s |"
        for name, v in result.items()
    ]
    body = "\n".join(
        [
            f"Command: `{command}` — {datetime.now(UTC):%Y-%m-%d}, {machine}, Tansu 0.6.0 and "
            f"ClickHouse 18.16 on loopback, {load}.",
            "",
            "| from → to webhook | samples | p50 | p95 | p99 | max |",
            "|---|---|---|---|---|---|",
            *rows,
            "",
            "Event → alert runs from Kafka's acknowledgement of the record to the webhook "
            "receiving the notice: the worker's batch window (0.5 s), the insert, the next "
            "evaluation tick (1 s) and the delivery. Deadline → alert runs from the task's "
            "deadline: the tick, whole-second evaluation times and the delivery. Target: 5 s.",
            "",
        ]
    )
    write_section(SECTION + (f", under {args.load:,} records/s" if args.load else ", idle"), body)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--samples", type=int, default=100)
    parser.add_argument("--managers", type=int, default=101)
    parser.add_argument("--interval", type=float, default=0.25, help="seconds between samples")
    parser.add_argument("--load", type=int, default=0, help="records/s of other traffic")
    parser.add_argument("--load-managers", type=int, default=200)
    parser.add_argument("--load-days", type=int, default=3)
    parser.add_argument("--no-record", action="store_true", help="print only")
    args = parser.parse_args()
    args.managers = max(args.managers, args.samples + 1)
    with tempfile.TemporaryDirectory(prefix="salespulse-alerts-") as state:
        result = asyncio.run(measure(args, Path(state)))
    for name, values in result.items():
        shown = ", ".join(f"{k} {v:.2f} s" for k, v in values.items())
        print(f"{name:>18}: {shown}")
    if not args.no_record:
        record(args, result)
        print(f"recorded in {RESULTS}")


if __name__ == "__main__":
    main()
