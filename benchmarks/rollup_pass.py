"""What one rollup pass costs: ``recompute_days`` for today, after a realistic day of traffic.

Under live traffic every batch touches today, so the group leader's rollup timer recomputes the
whole of today every 5 s. This generates ``--managers`` managers' traffic (``ingest.generator``)
for the day before a fixed "now" (Thursday 26 November 2026, 20:00 UTC, the working day over in
every zone), stores it through the real parsers into a private ClickHouse 18.16, builds the
rollups once (so a pass replaces rows, as in production), then times ``--repeat`` passes over
26 November: wall time, this process's CPU time (``time.process_time``) and the ClickHouse
server's CPU time (utime + stime from /proc).

``--before REV`` times the same passes with ``sinks/clickhouse/rollup.py`` as it was at git
revision REV (a copy of that one module, loaded beside today's helpers), alternating with the
current code on the same data, and records both.

    .venv/bin/python benchmarks/rollup_pass.py --managers 1000 --before ea14a90
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from types import ModuleType

from results import run_on_scratch, write_section  # the sibling module: run as a script

from ingest.generator import directory_yaml, make_population, simulate
from processors.direct_load import store_traffic
from salespulse.directory import parse_directory
from salespulse.sections import REPO_ROOT
from sinks.clickhouse import rollup
from sinks.clickhouse.client import ClickHouse, NativeClickHouse

SECTION = "## Rollup recomputation"
NOW = datetime(2026, 11, 26, 20, 0, tzinfo=UTC)
TODAY = date(2026, 11, 26)

Pass = Callable[[ClickHouse, list[date]], int]


def load(ch: NativeClickHouse, managers: int) -> int:
    """A day of generated traffic through the parsers into ``events``; returns the rows."""
    population = make_population(managers=managers, departments=max(1, managers // 50), seed=7)
    directory = parse_directory(directory_yaml(population), suffix=".yaml")
    traffic = simulate(population, NOW - timedelta(days=1), NOW, seed=7, malformed_share=0, now=NOW)
    return store_traffic(ch, traffic, directory, NOW, batch=5000)


def module_at(revision: str) -> ModuleType:
    """``sinks/clickhouse/rollup.py`` of ``revision``, loaded as a module of its own."""
    source = subprocess.run(
        ["git", "show", f"{revision}:sinks/clickhouse/rollup.py"],
        cwd=REPO_ROOT,
        check=True,
        capture_output=True,
    ).stdout
    with tempfile.TemporaryDirectory(prefix="rollup-before-") as folder:
        path = Path(folder) / "rollup_before.py"
        path.write_bytes(source)
        spec = importlib.util.spec_from_file_location("rollup_before", path)
        if spec is None or spec.loader is None:
            raise RuntimeError(f"cannot load {path}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # dataclasses look their module up there
        spec.loader.exec_module(module)
    return module


def server_pid() -> int:
    """The private ClickHouse server: a child of this process (the stack starts it)."""
    me = os.getpid()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        parent = int(stat[stat.rindex(")") + 2 :].split()[1])
        if parent == me and name.startswith("clickhouse"):
            return int(entry.name)
    raise RuntimeError("no ClickHouse server among this process's children")


def cpu_seconds(pid: int) -> float:
    """utime + stime of ``pid``."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def time_passes(
    ch: NativeClickHouse, passes: dict[str, Pass], repeat: int, server: int
) -> dict[str, float]:
    """``repeat`` passes of each implementation, alternating; medians per implementation."""
    samples: dict[str, dict[str, list[float]]] = {
        name: {"wall_ms": [], "cpu_ms": [], "server_cpu_ms": [], "rows": []} for name in passes
    }
    for _ in range(repeat):
        for name, run in passes.items():
            wall, cpu, server_cpu = time.perf_counter(), time.process_time(), cpu_seconds(server)
            written = run(ch, [TODAY])
            taken = samples[name]
            taken["wall_ms"].append((time.perf_counter() - wall) * 1000)
            taken["cpu_ms"].append((time.process_time() - cpu) * 1000)
            taken["server_cpu_ms"].append((cpu_seconds(server) - server_cpu) * 1000)
            taken["rows"].append(float(written))
    return {
        f"{name}_{what}": statistics.median(values)
        for name, measures in samples.items()
        for what, values in measures.items()
    }


def measure(ch: NativeClickHouse, args: argparse.Namespace) -> dict[str, float]:
    started = time.perf_counter()
    stored = load(ch, args.managers)
    loaded = time.perf_counter() - started
    db = ch.database
    ((today_events,),) = ch.execute(
        f"SELECT count() FROM {db}.events WHERE local_date = %(day)s", {"day": TODAY}
    )
    rollup.recompute_days(ch, [TODAY - timedelta(days=1), TODAY])
    ((quarters,),) = ch.execute(
        f"SELECT count() FROM {db}.activity_15m FINAL WHERE local_date = %(day)s", {"day": TODAY}
    )
    passes: dict[str, Pass] = {}
    if args.before:
        passes["before"] = module_at(args.before).recompute_days
    passes["after"] = rollup.recompute_days
    result = {
        "events": float(stored),
        "today_events": float(today_events),
        "today_quarter_rows": float(quarters),
        "load_s": loaded,
    }
    result.update(time_passes(ch, passes, args.repeat, server_pid()))
    return result


def summary(result: dict[str, float]) -> list[str]:
    """What the change buys, in shares of a core at one pass every 5 s (the rollup timer)."""
    if "before_cpu_ms" not in result:
        return []
    worker = result["before_cpu_ms"], result["after_cpu_ms"]
    server = result["before_server_cpu_ms"], result["after_server_cpu_ms"]
    return [
        f"With a day this busy and one pass every 5 s, the rollup timer took "
        f"{worker[0] / 50:.1f}% of the worker's core; it now takes {worker[1] / 50:.2f}%. "
        "The work did not vanish: the server now "
        "does the summing, the zero rows and the working time the worker did (but sends no rows "
        "for it), so its CPU per pass went from "
        f"{server[0]:.0f} to {server[1]:.0f} ms; worker and server together spend "
        f"{worker[0] + server[0]:.0f} ms before and {worker[1] + server[1]:.0f} ms after. Most "
        "of the server's share is the consolidation of call legs (a join of the day's legs), "
        "as before.",
        "",
    ]


def record(args: argparse.Namespace, result: dict[str, float]) -> None:
    command = f".venv/bin/python benchmarks/rollup_pass.py --managers {args.managers}"
    if args.before:
        command += f" --before {args.before}"
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    load_average = ", ".join(f"{n:.1f}" for n in os.getloadavg())
    labels = {
        "before": f"before (`rollup.py` of {args.before}: rows read into Python, inserted back)",
        "after": "after (`INSERT … SELECT` in ClickHouse)",
    }
    rows = [
        f"| {labels[name]} | {result[name + '_cpu_ms']:.0f} ms | "
        f"{result[name + '_server_cpu_ms']:.0f} ms | {result[name + '_wall_ms']:.0f} ms | "
        f"{result[name + '_rows']:,.0f} |"
        for name in labels
        if f"{name}_cpu_ms" in result
    ]
    body = "\n".join(
        [
            f"Command: `{command}` — {datetime.now(UTC):%Y-%m-%d}, {machine}, ClickHouse 18.16 "
            f"server on loopback; load average {load_average} at the end. "
            f"{result['events']:,.0f} events of {args.managers:,} managers through the real "
            f"parsers, {result['today_events']:,.0f} of them on the local day recomputed "
            f"({result['today_quarter_rows']:,.0f} rows in `activity_15m`). Medians of "
            f"{args.repeat} passes of `recompute_days` for that day, old and new code "
            "alternating on the same data.",
            "",
            "| implementation | worker CPU per pass | ClickHouse CPU per pass | wall per pass "
            "| rows written |",
            "|---|---|---|---|---|",
            *rows,
            "",
            "Worker CPU is `time.process_time()` of the process running the pass, ClickHouse CPU "
            "the server's utime + stime over the pass (/proc). CPU times are reliable here; wall "
            "times are noisy, since the machine's 2 cores are shared with other work.",
            "",
            *summary(result),
        ]
    )
    write_section(SECTION, body)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--managers", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=9)
    parser.add_argument("--before", metavar="REV", help="also time rollup.py of this revision")
    run_on_scratch(parser, measure, record)


if __name__ == "__main__":
    main()
