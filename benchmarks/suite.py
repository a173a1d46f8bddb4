"""Issue 7 side by side: salespulse against the consume ceiling and a naive faust pipeline.

One command, one private stack (Tansu + ClickHouse in a temporary folder), one workload:
``--managers`` managers in ``--departments`` departments (``make_population``), ``--days``
working days of their CDR legs, chat sessions and CRM events in the generator's ratios, 0.5 %
malformed. The workload is produced once to the raw topics; then each consumer reads all of it
from the beginning, with its own consumer group and, where it stores anything, its own database:

* raw: aiokafka ``getmany`` over the raw topics, counting messages (benchmarks/raw_consume.py);
* naive faust: the per-event reference pipeline (benchmarks/naive_faust_worker.py);
* salespulse: a ``salespulse worker`` process, end to end (durable in ClickHouse, offsets
  committed, rollups recomputed by the leader);
* with ``--workers 2``: two worker processes in one group over the same topics;
* backfill: ``salespulse tail`` shipping a generated Master.csv into the running worker;
* latency: a fresh worker under ``--latency-rate`` records/s for ``--latency-seconds``
  (benchmarks/suite_latency.py).

Units: "events" are canonical activity events stored (one per CDR leg, chat session or CRM
event), "records" raw records (CDR lines, JSON objects; malformed ones included) and "messages"
Kafka messages (a CDR message carries up to 50 lines). Rates of the consumers that store events
are timed by polling the events table every 0.1 s, from the first poll that sees rows to the
one that sees them all, so start-up and group joins are not timed; CPU is the consuming
process's utime+stime over the same window, peak RSS its VmHWM.

    .venv/bin/python benchmarks/suite.py --workers 2
    .venv/bin/python benchmarks/suite.py --profile /tmp/profile   # needs `pip install py-spy`

``--profile`` runs only the one-worker phase, under py-spy (benchmarks/suite_profile.py), and
records where the worker's CPU went instead of the table.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import shlex
import sys
import tempfile
import time
from pathlib import Path

from suite_consumers import measure_naive, measure_processing, measure_raw
from suite_latency import measure_latency
from suite_parts import (
    POLL_SECONDS,
    WEEK_END,
    Measure,
    Watched,
    Workload,
    start_process,
    stop_all,
    stored_events,
    watch_stored,
    working_window,
)
from suite_profile import Profiler
from suite_report import Results, record_profile, record_suite, render_profile, show

from ingest.generator import Population, make_population, send_to_kafka, write_directory_yaml
from ingest.generator.output import FILE_NAMES
from ingest.tailer_state import Position, StateStore, TailerSettings, state_name
from salespulse.lag import group_lag, wait_for_zero_lag
from salespulse.models import SourceFamily
from salespulse.sections import LatenessSettings, TopicSettings
from salespulse.settings import Settings
from salespulse.stack import stack_down, stack_up
from salespulse.stack_settings import free_ports, pointed_at_stack, private_stack
from salespulse.topics import ensure_topics
from sinks.clickhouse.client import ClickHouseError, NativeClickHouse
from sinks.clickhouse.migrations import apply_migrations

BENCHMARKS = Path(__file__).resolve().parent
ALWAYS_JUDGE = 10.0**9  # seconds of lag before alerting pauses: never
PHASES = ("process", "raw", "naive", "salespulse", "backfill", "latency")


def variant(base: Settings, name: str) -> Settings:
    """``base`` with its own consumer group, database and web port."""
    (web_port,) = free_ports(1)
    return base.model_copy(
        update={
            "worker": base.worker.model_copy(update={"app_id": name, "web_port": web_port}),
            "clickhouse": base.clickhouse.model_copy(update={"database": name.replace("-", "_")}),
        }
    )


def own_topics(settings: Settings, prefix: str) -> Settings:
    """``settings`` on topics of their own, with the default lateness checks: what runs on them
    is live traffic."""
    names = ("raw_pbx", "raw_chat", "raw_crm", "dead_letter", "directory", "alerts")
    topics = settings.topics.model_copy(
        update={name: f"{prefix}.{getattr(settings.topics, name)}" for name in names}
    )
    return settings.model_copy(update={"topics": topics, "lateness": LatenessSettings()})


def with_web_port(settings: Settings) -> Settings:
    (web_port,) = free_ports(1)
    worker = settings.worker.model_copy(update={"web_port": web_port})
    return settings.model_copy(update={"worker": worker})


class SalespulseRun:
    """Worker processes of one consumer group over the standard raw topics."""

    def __init__(self, settings: Settings, state: Path, workers: int) -> None:
        self.settings = settings
        self.client = NativeClickHouse(settings.clickhouse)
        # The schema first: workers starting together on an empty database would each apply
        # the migrations, and the loser of that race exits.
        apply_migrations(self.client)
        self.logs = [state / f"{settings.worker.app_id}-{n}.log" for n in range(workers)]
        self.processes = [
            start_process(["-m", "salespulse", "worker"], with_web_port(settings), log)
            for log in self.logs
        ]
        self.watched = Watched(self.processes, self.logs)

    def workers_at_work(self) -> bool:
        """Every worker has made at least one batch durable: the group is settled."""
        try:
            ((count,),) = self.client.execute(
                f"SELECT uniqExact(worker) FROM {self.client.database}.ingest_batches"
            )
        except ClickHouseError:
            return False
        return int(count) >= len(self.processes)

    async def throughput(
        self, name: str, workload: Workload, limit: float, profile: Path | None = None
    ) -> Measure:
        profiler: list[Profiler] = []

        def on_first() -> None:
            if profile is not None:
                profiler.append(Profiler(self.processes[0].pid, profile))

        measure = await watch_stored(
            name,
            self.client,
            self.watched,
            workload.events,
            limit=limit,
            at_work=self.workers_at_work,
            on_first=on_first,
        )
        for running in profiler:
            running.stop()
        durable_at = time.monotonic()
        await self.wait_committed(limit)
        committed = time.monotonic() - durable_at
        rollups = await self.rollups_current(durable_at, limit)
        measure.note = f"then committed +{committed:.1f} s, rollups current +{rollups:.1f} s"
        return measure

    async def wait_committed(self, limit: float) -> None:
        await wait_for_zero_lag(
            self.settings.kafka,
            self.settings.worker.app_id,
            self.settings.topics.raw_topics(),
            timeout_seconds=limit,
            poll_seconds=0.1,
            consumer_alive=lambda: all(p.poll() is None for p in self.processes),
        )

    async def rollups_current(self, since: float, limit: float) -> float:
        """Seconds from ``since`` until the rollup watermark covers the last batch logged."""
        db = self.client.database
        while time.monotonic() - since < limit:
            try:
                ((latest,),) = self.client.execute(
                    f"SELECT toUInt32(max(inserted_at)) FROM {db}.ingest_batches"
                )
                marks = self.client.execute(
                    f"SELECT toUInt32(max(watermark)) FROM {db}.rollup_state FINAL"
                )
            except ClickHouseError:
                return math.nan  # a schema this suite does not know: not measured
            if marks and marks[0][0] is not None and int(marks[0][0]) >= int(latest):
                return time.monotonic() - since
            await asyncio.sleep(0.2)
        return math.nan

    def stop(self) -> None:
        stop_all(self.processes)
        self.client.close()


async def measure_backfill(
    run: SalespulseRun, state: Path, population: Population, args: argparse.Namespace
) -> Measure:
    """``salespulse tail`` ships a Master.csv of the days before the workload from its
    beginning into the running worker; timed from the tailer's start until every line is
    durable and committed. The worker's CDR lateness check is off (see ``run``): these are old
    calls loaded on purpose."""
    start, _ = working_window(args.days, WEEK_END)
    backfill = Workload.generate(population, args.backfill_days, args.seed + 1, start)
    cdr = backfill.traffic.records[SourceFamily.PBX]
    path = state / "backfill" / FILE_NAMES[SourceFamily.PBX]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"".join(record.data + b"\n" for record in cdr))
    tailer = TailerSettings(path=path, state_dir=state / "backfill" / "state", source_key="pbx-1")
    settings = run.settings.model_copy(update={"tailer": tailer})
    store = StateStore(tailer.state_dir, state_name(tailer.source_key, tailer.path), Position)
    size = path.stat().st_size
    log = state / "tail.log"
    before = stored_events(run.client)
    cpu_before = run.watched.cpu()
    started = time.monotonic()
    tail = start_process(["-m", "salespulse", "tail"], settings, log)
    watched = Watched([tail, *run.processes], [log, *run.logs])
    try:
        while True:
            watched.check_alive()
            position = store.load()
            if position is not None and position.offset >= size:
                lag = await group_lag(
                    settings.kafka, settings.worker.app_id, settings.topics.raw_topics()
                )
                if lag == 0:
                    break
            if time.monotonic() - started > args.timeout:
                raise TimeoutError("the backfill did not finish in time")
            await asyncio.sleep(POLL_SECONDS)
        seconds = time.monotonic() - started
        stored = stored_events(run.client)
    finally:
        stop_all([tail])
    return Measure(
        "backfill: salespulse tail → worker",
        events=stored - before,
        seconds=seconds,
        cpu_seconds=run.watched.cpu() - cpu_before,
        peak_rss_mb=run.watched.rss(),
        note=f"{len(cdr):,} CDR lines, {size / 1e6:.1f} MB; timed from the tailer's start",
    )


def latency_load(population: Population, workload: Workload, args: argparse.Namespace) -> Workload:
    """Enough traffic for the latency phase: the workload itself when it is large enough."""
    needed = args.latency_rate * args.latency_seconds * 1.2
    if workload.records >= needed:
        return workload
    days = math.ceil(needed / (workload.records / args.days))
    return Workload.generate(population, days, args.seed + 2, WEEK_END)


_STARTED = time.monotonic()


def progress(what: str, measure: Measure | None = None) -> None:
    rate = f": {measure.events_per_second:,.0f} events/s" if measure else ""
    print(f"[{time.monotonic() - _STARTED:5.0f} s] {what}{rate}", flush=True)


async def run(args: argparse.Namespace, state: Path, command: str) -> Results:
    population = make_population(args.managers, args.departments, seed=args.seed)
    directory_path = state / "directory.yaml"
    write_directory_yaml(population, directory_path)
    workload = Workload.generate(population, args.days, args.seed, WEEK_END)
    results = Results(command, workload)
    print(
        f"workload: {args.managers:,} managers, {args.days} working day(s): {workload.events:,} "
        f"events, {workload.records:,} records, {workload.messages:,} messages, "
        f"{workload.bytes / 1e6:.1f} MB",
        flush=True,
    )
    phases = [phase for phase in PHASES if phase not in args.skip]
    if args.profile is not None:
        phases = ["salespulse"]
    if "process" in phases:
        results.processing = measure_processing(workload, directory_path)
        progress("processing alone", results.processing)
    stack = private_stack(state / "stack")
    # CDR lateness off: the backfill tails old calls on purpose. Everything else the suite
    # sends is marked sp-backfill already, so this changes nothing for it.
    base = pointed_at_stack(
        Settings(
            topics=TopicSettings(partitions=args.partitions),
            directory_path=directory_path,
            lateness=LatenessSettings(pbx_grace_seconds=0),
        ),
        stack,
    )
    # Alerts are judged on every tick, as with live traffic: with the default pause while the
    # worker is over 60 s behind, whether they ran would depend on the workload's age.
    base = base.model_copy(
        update={"alerts": base.alerts.model_copy(update={"max_lag_seconds": ALWAYS_JUDGE})}
    )
    stack_up(stack)
    try:
        client = NativeClickHouse(base.clickhouse)
        ((results.clickhouse_version,),) = client.execute("SELECT version()")
        client.close()
        await ensure_topics(base.kafka, base.topics)
        results.produce = await send_to_kafka(workload.traffic, base.kafka, base.topics)
        progress(f"produced in {results.produce.seconds:.1f} s")
        if "raw" in phases:
            results.raw = measure_raw(base, workload, args.raw_repeats)
            progress("raw ceiling", results.raw)
        if "naive" in phases:
            naive = variant(base, "naive-faust")
            results.naive = await measure_naive(naive, workload, state, args)
            progress("naive faust", results.naive)
        # Two workers first: the backfill then appends to the CDR topic they would also read.
        if args.workers == 2 and "salespulse" in phases and args.profile is None:
            two = SalespulseRun(variant(base, "salespulse-2w"), state, 2)
            try:
                results.two = await two.throughput("salespulse, 2 workers", workload, args.timeout)
                progress("salespulse, 2 workers", results.two)
            finally:
                two.stop()
        if "salespulse" in phases or "backfill" in phases:
            one = SalespulseRun(variant(base, "salespulse-1w"), state, 1)
            try:
                profile = args.profile / "worker.folded" if args.profile else None
                results.one = await one.throughput(
                    "salespulse, 1 worker", workload, args.timeout, profile
                )
                progress("salespulse, 1 worker", results.one)
                if "backfill" in phases:
                    results.backfill = await measure_backfill(one, state, population, args)
                    progress("backfill", results.backfill)
            finally:
                one.stop()
        if "latency" in phases:
            load = latency_load(population, workload, args)
            (state / "latency").mkdir()
            progress("latency: a fresh worker under load")
            results.latency = await measure_latency(
                own_topics(variant(base, "salespulse-latency"), "lat"),
                state / "latency",
                population,
                directory_path,
                load.traffic,
                load.records / load.messages,
                rate=args.latency_rate,
                seconds=args.latency_seconds,
                alert_samples=args.alert_samples,
                hook_port=free_ports(1)[0],
            )
    finally:
        results.load_at_end = os.getloadavg()[0]
        stack_down(stack)
    progress("done")
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--managers", type=int, default=1000)
    parser.add_argument("--departments", type=int, default=20)
    parser.add_argument("--days", type=int, default=2, help="working days of traffic")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--workers", type=int, choices=(1, 2), default=1)
    parser.add_argument("--raw-repeats", type=int, default=3)
    parser.add_argument("--naive-rows-per-insert", type=int, default=100)
    parser.add_argument("--naive-max-seconds", type=float, default=90.0)
    parser.add_argument("--backfill-days", type=int, default=None, help="default: --days")
    parser.add_argument("--latency-rate", type=float, default=5000.0, help="records/s")
    parser.add_argument("--latency-seconds", type=float, default=60.0)
    parser.add_argument("--alert-samples", type=int, default=100)
    parser.add_argument("--timeout", type=float, default=900.0, help="per phase")
    parser.add_argument("--skip", nargs="*", default=[], choices=PHASES, metavar="PHASE")
    parser.add_argument(
        "--profile", type=Path, help="run only the one-worker phase under py-spy into this folder"
    )
    parser.add_argument("--no-record", action="store_true", help="print only")
    args = parser.parse_args()
    args.backfill_days = args.backfill_days or args.days
    if args.profile is not None:
        args.profile.mkdir(parents=True, exist_ok=True)
    command = shlex.join([".venv/bin/python", "benchmarks/suite.py", *sys.argv[1:]])
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="salespulse-suite-") as state:
        results = asyncio.run(run(args, Path(state), command))
    print(f"\nsuite ran in {time.monotonic() - started:.0f} s\n")
    if args.profile is not None:
        folded = args.profile / "worker.folded"
        if not folded.exists():  # stored between two polls: nothing was timed to sample
            raise SystemExit("no profile: the workload was too small to sample")
        print(render_profile(command, folded))
        if not args.no_record:
            record_profile(command, folded)
        return
    show(results)
    if not args.no_record:
        record_suite(results)


if __name__ == "__main__":
    main()
