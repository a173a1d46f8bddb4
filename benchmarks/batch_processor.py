"""What the batch processor costs per event: parse, check, attribute, protect, build the row.

No Kafka and no ClickHouse: ``--managers`` managers' generated traffic over ``--days`` days is
framed into messages as the bridges frame it and handed to ``BatchProcessor.process`` 500
messages at a time, ``--repeat`` times; the best run's process CPU time per event is the
figure (best, because the machine is shared and only ever adds time).

``--before REV`` runs the same measurement, alternating, on the tree of git revision REV (an
exported copy), and records both, so that a change to the hot path is judged on the same
machine in the same minutes.

    .venv/bin/python benchmarks/batch_processor.py --managers 200 --days 2 --before da64911
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from results import write_section  # the sibling module: run as a script

from salespulse.sections import REPO_ROOT

SECTION = "## Batch processor cost per event"

# Runs inside the tree being measured (its own modules on sys.path): prints one JSON line.
MEASURE = """
import json, sys, time
from datetime import datetime, timedelta, UTC
from ingest.generator import directory_yaml, frame_messages, make_population, simulate
from processors.parsers import build_parsers
from processors.pipeline import BatchProcessor, RawMessage
from processors.privacy import PhoneProtector
from salespulse.directory import parse_directory
from salespulse.models import FORMAT_HEADER
from salespulse.settings import ParsingSettings

managers, days, repeat = (int(a) for a in sys.argv[1:4])
end = datetime(2026, 11, 21, tzinfo=UTC)
population = make_population(managers=managers, departments=max(1, managers // 40), seed=3)
traffic = simulate(population, end - timedelta(days=days), end, seed=3)
directory = parse_directory(directory_yaml(population), suffix=".yaml")
messages = [
    RawMessage(m.family.value, 0, n, [(FORMAT_HEADER, m.format.encode())], m.value)
    for n, m in enumerate(frame_messages(traffic.all_records()))
]
best, rows = float("inf"), 0
for _ in range(repeat):
    processor = BatchProcessor(
        build_parsers(ParsingSettings()), lambda: directory, PhoneProtector(b"bench-key"),
        max_message_bytes=1 << 20, clock=lambda: end + timedelta(days=1),
    )
    started, rows = time.process_time(), 0
    for start in range(0, len(messages), 500):
        rows += len(processor.process(messages[start : start + 500]).rows)
    best = min(best, time.process_time() - started)
print(json.dumps({"events": rows, "cpu_seconds": best}))
"""


def measure(tree: Path, managers: int, days: int, repeat: int) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    arguments = [str(managers), str(days), str(repeat)]
    done = subprocess.run(
        [sys.executable, "-c", MEASURE, *arguments],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    result["us_per_event"] = 1e6 * result["cpu_seconds"] / max(1.0, result["events"])
    return result


def exported(revision: str, folder: Path) -> Path:
    """The tree of ``revision`` under ``folder``, as ``git archive`` gives it."""
    archive = subprocess.run(
        ["git", "-C", str(REPO_ROOT), "archive", revision], capture_output=True, check=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True)
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--managers", type=int, default=200)
    parser.add_argument("--days", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=2, help="alternations with --before")
    parser.add_argument("--before", help="a git revision to compare with")
    parser.add_argument("--no-record", action="store_true", help="print only")
    args = parser.parse_args()
    size = (args.managers, args.days, args.repeat)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="salespulse-bench-") as scratch:
        before_tree = exported(args.before, Path(scratch)) if args.before else None
        now: list[dict[str, float]] = []
        then: list[dict[str, float]] = []
        for _ in range(args.rounds if before_tree else 1):
            if before_tree is not None:
                then.append(measure(before_tree, *size))
            now.append(measure(REPO_ROOT, *size))
    after = min(now, key=lambda r: r["us_per_event"])
    lines = [f"after: {after['events']:,.0f} events, {after['us_per_event']:.1f} µs CPU per event"]
    if then:
        before = min(then, key=lambda r: r["us_per_event"])
        ratio = after["us_per_event"] / before["us_per_event"]
        lines.append(
            f"before ({args.before}): {before['us_per_event']:.1f} µs CPU per event; "
            f"after ÷ before = {ratio:.2f}"
        )
    print("\n".join(lines))
    print(f"us_per_event={after['us_per_event']:.1f} ({time.monotonic() - started:.0f} s)")
    if args.no_record:
        return
    command = " ".join(["benchmarks/batch_processor.py", *sys.argv[1:]])
    write_section(
        SECTION,
        f"`.venv/bin/python {command}` on {platform.node()} ({os.cpu_count()} cores), "
        f"{datetime.now(UTC):%Y-%m-%d}: generated traffic of {args.managers} managers over "
        f"{args.days} days through `BatchProcessor.process`, best of {args.repeat} runs, "
        "process CPU time.\n\n" + "\n".join(f"- {line}" for line in lines),
    )


if __name__ == "__main__":
    main()
