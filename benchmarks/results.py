"""docs/benchmarks.md: each benchmark owns one section and replaces it with its latest run."""

from __future__ import annotations

import argparse
import subprocess
import tempfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

from salespulse.sections import REPO_ROOT, ClickHouseSettings
from salespulse.settings import Settings
from salespulse.stack import running_stack
from salespulse.stack_processes import interrupts_held
from salespulse.stack_settings import private_stack
from salespulse.worker_process import start_worker, stop_worker
from sinks.clickhouse.client import NativeClickHouse
from sinks.clickhouse.migrations import apply_migrations

Result = TypeVar("Result", bound=Mapping[str, float])
RESULTS = REPO_ROOT / "docs" / "benchmarks.md"


def write_section(heading: str, body: str) -> None:
    """Replace the section that starts with ``heading`` (a ``## `` line), or append it."""
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmarks\n\n"
    section = f"{heading}\n\n{body.strip()}\n"
    if heading in text:
        before, _, rest = text.partition(heading)
        after = rest.split("\n## ", 1)
        text = before + section + ("\n## " + after[1] if len(after) > 1 else "")
    else:
        text = text.rstrip("\n") + "\n\n" + section
    RESULTS.write_text(text)


@contextmanager
def scratch_clickhouse() -> Iterator[NativeClickHouse]:
    """A private stack's ClickHouse with the schema applied, in a folder removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="salespulse-bench-") as state:
        stack = private_stack(Path(state))
        with running_stack(stack):
            settings = ClickHouseSettings(port=stack.clickhouse_tcp_port)
            ch = NativeClickHouse(settings, database="bench")
            try:
                apply_migrations(ch)
                yield ch
            finally:
                ch.close()


@contextmanager
def running_worker(settings: Settings, log_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A ``salespulse worker`` process for the block, stopped however the block ends. Enter it
    after ``running_stack``: the worker then stops before the stack it uses, and a Ctrl-C while
    it stops waits, so it cannot keep the stack's cleanup from running."""
    worker = start_worker(settings, log_path)
    try:
        yield worker
    finally:
        with interrupts_held():
            stop_worker(worker)


def report(result: Mapping[str, float], record: Callable[[], object], *, keep: bool) -> None:
    """Print the numbers; unless ``keep`` is false, record them in docs/benchmarks.md."""
    width = max(len(name) for name in result) + 2
    for name, value in result.items():
        print(f"{name:>{width}}: {value:,.1f}")
    if keep:
        record()
        print(f"recorded in {RESULTS}")


def run_on_scratch(
    parser: argparse.ArgumentParser,
    measure: Callable[[NativeClickHouse, argparse.Namespace], Result],
    record: Callable[[argparse.Namespace, Result], object],
) -> None:
    """A benchmark's main: its arguments plus ``--no-record``, ``measure`` on a scratch
    ClickHouse, then the numbers printed and (unless ``--no-record``) recorded."""
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args()
    with scratch_clickhouse() as ch:
        result = measure(ch, args)
    report(result, lambda: record(args, result), keep=not args.no_record)
