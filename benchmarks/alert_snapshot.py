"""How long the alert engine's reads take on the 18.16 server, with realistic traffic.

Generates ``--managers`` managers' traffic (``ingest.generator``) over the ``--days`` local days
before a fixed "now" (Thursday 26 November 2026, 12:00 UTC), runs it through the real parsers
and batch pipeline into a private ClickHouse, rebuilds the rollups, then times:

* ``query_activity_snapshot`` (a whole snapshot in one read, as the engine's first read of a
  day), in total and per query;
* ``TodaysActivity.read`` again with nothing changed (what each later read costs at least: the
  recent minutes and a fingerprint per manager);
* ``query_hourly_history`` over 8 weeks plus ``build_baselines`` (run when baselines refresh).

Records median and 95th percentile in docs/benchmarks.md.

    .venv/bin/python benchmarks/alert_snapshot.py --managers 200 --days 45
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from results import run_on_scratch, write_section  # the sibling module: run as a script

from ingest.generator import directory_yaml, make_population, simulate
from processors.alerting.baseline import build_baselines, local_today
from processors.direct_load import store_traffic
from queries.history import query_hourly_history
from queries.todays_activity import TodaysActivity, query_activity_snapshot
from salespulse.calendar import parse_calendar
from salespulse.directory import parse_directory
from salespulse.sections import CountingSettings
from sinks.clickhouse.client import NativeClickHouse, Row
from sinks.clickhouse.rollup import rebuild

SECTION = "## Alert engine reads"
NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


class TimedClickHouse:
    """The native client, timing each ``execute`` by the order it is called in."""

    def __init__(self, inner: NativeClickHouse) -> None:
        self.inner = inner
        self.database = inner.database
        self.calls: list[float] = []

    def execute(self, sql: str, params: dict[str, Any] | None = None) -> list[Row]:
        started = time.perf_counter()
        try:
            return self.inner.execute(sql, params)
        finally:
            self.calls.append((time.perf_counter() - started) * 1000)

    def insert_columns(self, table: str, columns: Sequence[str], data: Sequence[Any]) -> None:
        self.inner.insert_columns(table, columns, data)

    def server_version(self) -> tuple[int, ...]:
        return self.inner.server_version()

    def close(self) -> None:
        self.inner.close()


def load(ch: NativeClickHouse, managers: int, days: int) -> tuple[int, str]:
    """Generated traffic through the parsers into ``events``; returns (rows, directory YAML)."""
    population = make_population(managers=managers, departments=max(1, managers // 25), seed=11)
    text = directory_yaml(population)
    directory = parse_directory(text, suffix=".yaml")
    traffic = simulate(
        population, NOW - timedelta(days=days), NOW, seed=11, malformed_share=0, now=NOW
    )
    stored = store_traffic(ch, traffic, directory, NOW, batch=5000)
    return stored, text


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[int(0.95 * (len(ordered) - 1))]


def measure(ch: NativeClickHouse, args: argparse.Namespace) -> dict[str, float]:
    started = time.perf_counter()
    stored, text = load(ch, args.managers, args.days)
    loaded = time.perf_counter() - started
    first = (NOW - timedelta(days=args.days + 1)).date()
    rebuild(ch, first, NOW.date() + timedelta(days=1))
    directory = parse_directory(text, suffix=".yaml")
    timed = TimedClickHouse(ch)
    totals, parts = [], defaultdict(list)
    for _ in range(args.repeat):
        timed.calls.clear()
        started = time.perf_counter()
        snapshot = query_activity_snapshot(timed, directory, NOW, CountingSettings())
        totals.append((time.perf_counter() - started) * 1000)
        for n, ms in enumerate(timed.calls):
            parts[n].append(ms)
        parts[len(timed.calls)].append(totals[-1] - sum(timed.calls))
    result = {"events": float(stored), "load_s": loaded}
    result["snapshot_ms"], result["snapshot_p95_ms"] = percentiles(totals)
    names = ("calls", "activity", "last_active", "open_tasks", "days", "python")
    for n, name in enumerate(names):
        result[f"{name}_ms"], result[f"{name}_p95_ms"] = percentiles(parts[n])
    reader = TodaysActivity(CountingSettings())
    reader.read(ch, directory, NOW)
    again = []
    for _ in range(args.repeat):
        started = time.perf_counter()
        reader.read(ch, directory, NOW, check_marker=False)
        again.append((time.perf_counter() - started) * 1000)
    result["again_ms"], result["again_p95_ms"] = percentiles(again)
    result["minute_series"] = float(sum(len(m) for m in snapshot.minutes.values()))
    result["open_tasks"] = float(len(snapshot.open_tasks))

    started = time.perf_counter()
    history = query_hourly_history(ch, NOW.date() - timedelta(weeks=8), NOW.date())
    result["history_s"] = time.perf_counter() - started
    result["history_rows"] = float(len(history))
    calendar = parse_calendar('defaults: {hours: "09:00-18:00", lunch: "13:00-14:00"}')
    started = time.perf_counter()
    build_baselines(history, calendar, directory, local_today(directory, NOW))
    result["baselines_s"] = time.perf_counter() - started
    return result


def record(args: argparse.Namespace, result: dict[str, float]) -> None:
    command = (
        f".venv/bin/python benchmarks/alert_snapshot.py --managers {args.managers} "
        f"--days {args.days}"
    )
    machine = f"{platform.machine()}, {os.cpu_count()} cores"
    rows = [
        ("`query_activity_snapshot` in all", "snapshot"),
        ("query: calls per minute (consolidated legs)", "calls"),
        ("query: other activity per minute", "activity"),
        ("query: last call or chat end", "last_active"),
        ("query: open tasks (45 days of task events)", "open_tasks"),
        ("query: daily rollup, 8 days", "days"),
        ("the rest: rows to minute series and tasks in Python", "python"),
        ("`TodaysActivity.read` again, nothing changed (every later read at least)", "again"),
    ]
    body = "\n".join(
        [
            f"Command: `{command}` — {datetime.now(UTC):%Y-%m-%d}, {machine}, ClickHouse 18.16 "
            f"server on loopback. {result['events']:,.0f} events of {args.managers} managers "
            f"over {args.days} days through the real parsers; {args.repeat} snapshots at "
            f"{NOW:%Y-%m-%d %H:%M} UTC ({result['minute_series']:.0f} minute series, "
            f"{result['open_tasks']:.0f} open tasks).",
            "",
            "| read | median | p95 |",
            "|---|---|---|",
            *(
                f"| {label} | {result[key + '_ms']:.0f} ms | {result[key + '_p95_ms']:.0f} ms |"
                for label, key in rows
            ),
            "",
            "Query times include clickhouse-driver decoding the rows; the rest is mostly turning "
            "the per-minute rows (one per manager and minute with activity) into minute series, "
            "keeping each group's hash for later reads. A whole snapshot is read once (the first "
            "read of a day, a new directory); later reads transfer the minutes from five minutes "
            "back and one fingerprint per manager (see [Alert evaluation cost]"
            "(#alert-evaluation-cost)).",
            "",
            f"Baselines: `query_hourly_history` over 8 weeks {result['history_s']:.1f} s "
            f"({result['history_rows']:,.0f} hour rows), `build_baselines` "
            f"{result['baselines_s']:.1f} s.",
            "",
        ]
    )
    write_section(SECTION, body)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--managers", type=int, default=200)
    parser.add_argument("--days", type=int, default=45, help="days of traffic before now")
    parser.add_argument("--repeat", type=int, default=30)
    run_on_scratch(parser, measure, record)


if __name__ == "__main__":
    main()
