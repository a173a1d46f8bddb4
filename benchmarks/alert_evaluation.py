"""What alert evaluation costs the leader's interpreter, with a large team and a working day stored.

Generates ``--managers`` managers' traffic (``ingest.generator``, 20 departments over six time
zones) for today up to a fixed "now" (Thursday 26 November 2026, 07:45 UTC: five of the six
zones at work, 09:45 to 17:45 local), stores it through the real parsers into a private
ClickHouse, rebuilds the rollups and copies today's 15-minute rollup to the eight Thursdays
before, so every manager has a baseline of today's weekday (the dip rules judge by baselines, as
in production). Then, with the example rules and calendar (salespulse/examples/alerts.example.yaml,
salespulse/examples/calendar.example.yaml), times in wall-clock and in this process's CPU
(``time.process_time``; ClickHouse runs in its own process):

* ``query_activity_snapshot`` as a whole (what every re-read cost before incremental reads);
* one ``AlertEvaluator.evaluate`` tick right after a batch was stored, and one with nothing new;
* ``--ticks`` ticks a second apart with a batch landing before each (the records of that second
  of the traffic, and their ``ingest_batches`` row, as the worker writes them): the CPU seconds
  spent per second of evaluation, i.e. the share of a core taken from event consumption.

    .venv/bin/python benchmarks/alert_evaluation.py --managers 1000
    .venv/bin/python benchmarks/alert_evaluation.py --managers 1000 --profile /tmp/evaluate.prof
"""

from __future__ import annotations

import argparse
import cProfile
import os
import platform
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from results import run_on_scratch, write_section  # the sibling module: run as a script

from ingest.generator import directory_yaml, make_population, simulate
from ingest.generator.render import Traffic
from processors.alert_service import AlertEvaluator
from processors.alerting.conditions import judged_metrics
from processors.direct_load import store_traffic
from queries.todays_activity import TodaysActivity, query_activity_snapshot
from salespulse.activity_metrics import ACTIVITY_METRIC_NAMES
from salespulse.alert_settings import AlertsSettings
from salespulse.directory import Directory, parse_directory
from salespulse.sections import CountingSettings
from sinks.clickhouse.client import NativeClickHouse
from sinks.clickhouse.rollup import rebuild

SHARE = AlertsSettings().max_cpu_share  # the default cadence bound

SECTION = "## Alert evaluation cost"
# The same benchmark on commit ea14a90, before incremental reads and quiet verdicts (20 ticks,
# medians of 5): (wall ms, CPU ms), and the CPU and wall time per tick with a batch a second.
BEFORE = {
    "snapshot": (2142, 1353),
    "read": (2142, 1353),  # every re-read was a whole snapshot
    "tick_new_batch": (2619, 2005),
    "tick_nothing_new": (274, 265),
}
BEFORE_PER_TICK = (2041, 2918)
NOTES = """\
Profiles (`--profile FILE`, cProfile on CPU time over the ticks). Before: the re-read of the
whole snapshot took two thirds of a tick (clickhouse-driver decoding ~100,000 rows of 26 metric
columns, then `_minutes` and `_pairs` turning 218,000 cells into series), judging the rest
(`_activity_verdict` → `_pace` and `_dip` → `Workdays._spans`; an alert draft built for every
verdict). After: a read decodes the groups of the last five minutes and one fingerprint per
manager (34 ms); judging is about two thirds of what is left, mostly the dip rules (judged every
tick: their window slides), then the subjects' calendars and the engine.

What changed: today's activity is read incrementally (`queries/minute_book.py`: the
minutes from five minutes back in full, earlier ones checked by a per-manager fingerprint of
`cityHash64` group hashes and re-read only for managers whose fingerprint moved) and only for
the metrics the rules name; unchanged managers keep their series objects, indexes and all. A
verdict that cannot become a breach before a known instant with the same inputs (inactivity
short of its idle time, a pace above its share, a threshold not reached; a pace or inactivity
breach waiting for its hold) is given again instead of judged again (`QuietBook`;
tests/unit/test_alert_quiet.py checks that every notice of a day stays the same); drafts are
built only for breaches; working time before today and a dip's window are computed once per
tick. The cadence bound is in `run_alerting` (`SALESPULSE_ALERTS__MAX_CPU_SHARE`).

Left as it is: ClickHouse still aggregates the whole day (legs consolidated into calls) on
every read, ~1–1.5 s of server time per read on this shared machine, which is most of a tick's
wall time; event → alert is the batch window (0.5 s) + the wait for the next tick (up to 2 s
here) + the tick (~1.5 s) + delivery. `query_activity_snapshot` in one go (the first read, a
new day or directory) costs somewhat more than before: it hashes the groups it keeps.
"""
NOW = datetime(2026, 11, 26, 7, 45, tzinfo=UTC)
HISTORY_WEEKS = 8


def load(ch: NativeClickHouse, managers: int, ticks: int) -> tuple[int, Directory, Traffic]:
    """Today's traffic up to NOW stored; returns (rows, directory, the traffic after NOW)."""
    population = make_population(managers=managers, departments=max(1, managers // 50), seed=11)
    directory = parse_directory(directory_yaml(population), suffix=".yaml")
    end = NOW + timedelta(seconds=ticks + 1)
    traffic = simulate(
        population, NOW - timedelta(days=1), end, seed=11, malformed_share=0, now=end
    )
    cutoff = int(NOW.timestamp())
    before = {f: [r for r in rs if r.ready <= cutoff] for f, rs in traffic.records.items()}
    after = {f: [r for r in rs if r.ready > cutoff] for f, rs in traffic.records.items()}
    stored = store_traffic(
        ch, Traffic(population, before, traffic.expected), directory, NOW, batch=5000
    )
    return stored, directory, Traffic(population, after, traffic.expected)


def copy_history(ch: NativeClickHouse) -> None:
    """Today's 15-minute rollup copied to the same weekday of the weeks before: baselines."""
    metrics = ", ".join(ACTIVITY_METRIC_NAMES)
    for week in range(1, HISTORY_WEEKS + 1):
        days = 7 * week
        ch.execute(
            f"INSERT INTO {ch.database}.activity_15m (manager_id, department_id, local_date, "
            f"bucket, {metrics}, version) SELECT manager_id, department_id, "
            f"local_date - {days}, bucket - {days * 86400}, {metrics}, version "
            f"FROM {ch.database}.activity_15m FINAL WHERE local_date >= %(low)s",
            {"low": NOW.date() - timedelta(days=1)},
        )


def land_batch(
    ch: NativeClickHouse, traffic: Traffic, directory: Directory, low: int, high: int
) -> int:
    """The records that became ready in (low, high] stored, and their batch logged."""
    records = {f: [r for r in rs if low < r.ready <= high] for f, rs in traffic.records.items()}
    at = datetime.fromtimestamp(high, UTC)
    rows = store_traffic(ch, Traffic(traffic.population, records, traffic.expected), directory, at)
    ch.insert_columns(
        "ingest_batches",
        ("topic", "partition", "first_offset", "last_offset", "messages", "rows",
         "dead_letters", "local_dates", "worker", "inserted_at"),
        [["bench"], [0], [high], [high], [rows], [rows], [0], [[NOW.date()]], ["bench"], [at]],
    )  # fmt: skip
    return rows


def timed(call: Callable[[], Any]) -> tuple[float, float]:
    """(wall ms, CPU ms of this process) of one call."""
    wall, cpu = time.perf_counter(), time.process_time()
    call()
    return (time.perf_counter() - wall) * 1000, (time.process_time() - cpu) * 1000


def median_pair(samples: list[tuple[float, float]]) -> tuple[float, float]:
    return statistics.median(s[0] for s in samples), statistics.median(s[1] for s in samples)


def measure(ch: NativeClickHouse, args: argparse.Namespace) -> dict[str, float]:
    started = time.perf_counter()
    stored, directory, later = load(ch, args.managers, args.ticks)
    rebuild(ch, NOW.date() - timedelta(days=2), NOW.date() + timedelta(days=1))
    copy_history(ch)
    result = {"events": float(stored), "load_s": time.perf_counter() - started}

    counting = CountingSettings()
    reads = [
        timed(lambda: query_activity_snapshot(ch, directory, NOW, counting))
        for _ in range(args.repeat)
    ]
    result["snapshot_wall_ms"], result["snapshot_cpu_ms"] = median_pair(reads)
    snapshot = query_activity_snapshot(ch, directory, NOW, counting)
    result["minute_series"] = float(sum(len(m) for m in snapshot.minutes.values()))
    result["minute_counts"] = float(
        sum(len(s) for m in snapshot.minutes.values() for s in m.values())
    )

    evaluator = AlertEvaluator(
        AlertsSettings(), counting, lambda: ch, lambda: directory, "http://dash.example"
    )
    evaluator.restore(NOW)
    evaluator.evaluate(NOW)  # baselines built, first snapshot read
    reader = TodaysActivity(counting, judged_metrics(evaluator.rules.current))
    reader.read(ch, directory, NOW)
    now = int(NOW.timestamp())
    cold, warm, reads, ticks, landed = [], [], [], [], 0
    profile = cProfile.Profile(time.process_time) if args.profile else None
    for tick in range(1, args.ticks + 1):
        landed += land_batch(ch, later, directory, now + tick - 1, now + tick)
        at = datetime.fromtimestamp(now + tick, UTC)
        if profile is not None:
            profile.enable()
        ticks.append(timed(lambda: evaluator.evaluate(at)))  # noqa: B023 - called at once
        if profile is not None:
            profile.disable()
        if tick <= args.repeat:
            reads.append(timed(lambda: reader.read(ch, directory, at)))  # noqa: B023
            cold.append(ticks[-1])
            warm.append(timed(lambda: evaluator.evaluate(at)))  # noqa: B023
    if profile is not None:
        profile.dump_stats(args.profile)
    result["read_wall_ms"], result["read_cpu_ms"] = median_pair(reads)
    result["tick_new_batch_wall_ms"], result["tick_new_batch_cpu_ms"] = median_pair(cold)
    result["tick_nothing_new_wall_ms"], result["tick_nothing_new_cpu_ms"] = median_pair(warm)
    result["ticks"] = float(args.ticks)
    result["landed_events"] = float(landed)
    result["cpu_per_tick_ms"] = statistics.fmean(cpu for _, cpu in ticks)
    result["wall_per_tick_ms"] = statistics.fmean(wall for wall, _ in ticks)
    # Ticks every tick_seconds (or back to back when one takes longer): the share it would take.
    cpu = result["cpu_per_tick_ms"]
    period = max(evaluator.settings.tick_seconds * 1000, result["wall_per_tick_ms"])
    result["cpu_share_pct"] = 100 * cpu / period
    # run_alerting's cadence: the next tick no sooner than the CPU time / max_cpu_share.
    result["interval_ms"] = max(period, cpu / SHARE)
    result["bounded_share_pct"] = 100 * cpu / result["interval_ms"]
    result["managers"] = float(len(directory.managers))
    return result


def record(args: argparse.Namespace, result: dict[str, float]) -> None:
    command = f".venv/bin/python benchmarks/alert_evaluation.py --managers {args.managers}"
    machine = f"{platform.machine()}, {os.cpu_count()} cores"
    rows = [
        ("`query_activity_snapshot`: all of today, every metric, one read", "snapshot"),
        ("`TodaysActivity.read` after a batch, the rules' metrics", "read"),
        ("`evaluate` tick after a batch was stored", "tick_new_batch"),
        ("`evaluate` tick with nothing new stored", "tick_nothing_new"),
    ]
    lines = [
        f"| {label} | {BEFORE[key][1]:,} ms | {result[key + '_cpu_ms']:,.0f} ms "
        f"| {BEFORE[key][0]:,} ms | {result[key + '_wall_ms']:,.0f} ms |"
        for label, key in rows
    ]
    before_cpu, before_wall = BEFORE_PER_TICK
    body = "\n".join(
        [
            f"Command: `{command}` — {datetime.now(UTC):%Y-%m-%d}, {machine}, ClickHouse 18.16 "
            f"server on loopback. {result['events']:,.0f} events of {args.managers} managers "
            f"(today up to {NOW:%H:%M} UTC: five of six time zones at work) through the real "
            f"parsers, {result['minute_counts']:,.0f} manager-minute counts in "
            f"{result['minute_series']:,.0f} series; the example rules and calendar; baselines "
            f"from today's rollup copied to the {HISTORY_WEEKS} Thursdays before. Medians; "
            "CPU is this process's (`time.process_time`), ClickHouse's own is not in it.",
            "",
            "| step | CPU before | CPU after | wall before | wall after |",
            "|---|---|---|---|---|",
            *lines,
            "",
            f"With a batch landing every second ({result['ticks']:.0f} ticks, "
            f"{result['landed_events']:,.0f} events): before, {before_cpu:,} ms of CPU and "
            f"{before_wall:,} ms wall per tick, ticks back to back, "
            f"{100 * before_cpu / before_wall:.0f}% of a core. After, "
            f"{result['cpu_per_tick_ms']:.0f} ms of CPU and {result['wall_per_tick_ms']:.0f} ms "
            f"wall per tick: a tick every second would take {result['cpu_share_pct']:.0f}% of a "
            f"core; `run_alerting` starts the next tick no sooner than the last tick's CPU time "
            f"/ {SHARE:g} (and at least a second after the last), so a tick every "
            f"{result['interval_ms'] / 1000:.1f} s and **{result['bounded_share_pct']:.1f}% "
            "of a core**.",
            "",
            NOTES,
        ]
    )
    write_section(SECTION, body)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--managers", type=int, default=1000)
    parser.add_argument("--ticks", type=int, default=30, help="ticks with a batch before each")
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--profile", help="write a cProfile of the ticks to this file")
    run_on_scratch(parser, measure, record)


if __name__ == "__main__":
    main()
