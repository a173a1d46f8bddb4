"""The benchmarks still run (tiny sizes, nothing recorded); their numbers are not checked here."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.mark.parametrize(
    ("script", "arguments", "prints"),
    [
        ("end_to_end.py", ["--managers", "4", "--days", "1"], "records_per_second"),
        (
            "day_view.py",
            ["--events", "20000", "--days", "20", "--repeat", "1"],
            "manager_two_years_ms",
        ),
        ("alert_latency.py", ["--samples", "3"], "deadline → alert"),
        (
            "alert_snapshot.py",
            ["--managers", "4", "--days", "2", "--repeat", "1"],
            "snapshot_ms",
        ),
        ("rollup_pass.py", ["--managers", "4", "--repeat", "1"], "after_cpu_ms"),
        (
            "alert_evaluation.py",
            ["--managers", "4", "--ticks", "2", "--repeat", "1"],
            "cpu_per_tick_ms",
        ),
        # Every phase of the issue 7 suite, two workers and the latency phase included.
        (
            "suite.py",
            [
                *("--managers", "20", "--departments", "2", "--days", "1", "--workers", "2"),
                *("--raw-repeats", "1", "--naive-max-seconds", "5"),
                *("--latency-seconds", "3", "--alert-samples", "2"),
            ],
            "≥ 25 × naive faust",
        ),
    ],
)
def test_benchmark_runs(script: str, arguments: list[str], prints: str) -> None:
    result = subprocess.run(
        [sys.executable, str(BENCHMARKS / script), *arguments, "--no-record"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert prints in result.stdout
