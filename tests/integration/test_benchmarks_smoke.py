"""The benchmarks still run (tiny sizes, nothing recorded); their numbers are not checked here.

Each run gets a temporary folder of its own (``TMPDIR``), where the benchmark keeps its private
stack and worker files; afterwards nothing may be left running there, whether the benchmark
finished or was interrupted with Ctrl-C.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
RUN_SECONDS = 300.0
# After a Ctrl-C: the worker's stop (up to 30 s, then killed) and the stack's (15 s a server).
CLEANUP_SECONDS = 120.0


def left_running(folder: Path) -> list[str]:
    """Processes working in ``folder`` or holding a file in it (a server's data, a worker's
    log), its removed subfolders included: what a benchmark run left behind, as "pid: command"."""
    inside = f"{folder}/"
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            paths = [os.readlink(entry / "cwd")]
            paths += [os.readlink(fd) for fd in (entry / "fd").iterdir()]
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:  # exited meanwhile (a zombie has no cwd either)
            continue
        if any(path.startswith(inside) for path in paths):
            found.append(f"{entry.name}: {command[:200]}")
    return found


def _ctrl_c_as_in_a_terminal() -> None:
    # A shell without job control starts background commands with SIGINT ignored, and they
    # would pass that on: the benchmark must see Ctrl-C as it does in a terminal.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.fixture
def folder(tmp_path: Path) -> Iterator[Path]:
    """The run's ``TMPDIR``; whatever a failed run leaves running there is killed afterwards, so
    that a test proving a leak does not leak itself."""
    yield tmp_path
    for process in left_running(tmp_path):
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(process.split(":")[0]), signal.SIGKILL)


def start(script: str, arguments: list[str], folder: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(BENCHMARKS / script), *arguments, "--no-record"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "TMPDIR": str(folder)},
        preexec_fn=_ctrl_c_as_in_a_terminal,
    )


def interrupt(run: subprocess.Popen[str]) -> tuple[str, str]:
    """Ctrl-C, as a person stops a benchmark (not SIGKILL, which no cleanup survives); then
    its output once it has exited."""
    run.send_signal(signal.SIGINT)
    return run.communicate(timeout=CLEANUP_SECONDS)


@pytest.mark.timeout(RUN_SECONDS + CLEANUP_SECONDS + 60)
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
            "batch_processor.py",
            ["--managers", "4", "--days", "1", "--repeat", "1", "--before", "HEAD"],
            "us_per_event",
        ),
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
def test_benchmark_runs(script: str, arguments: list[str], prints: str, folder: Path) -> None:
    run = start(script, arguments, folder)
    try:
        stdout, stderr = run.communicate(timeout=RUN_SECONDS)
    except subprocess.TimeoutExpired:
        stdout, stderr = interrupt(run)
        pytest.fail(f"{script} ran over {RUN_SECONDS:g} s\n{stdout[-2000:]}\n{stderr[-3000:]}")
    assert run.returncode == 0, stderr[-3000:]
    assert prints in stdout
    assert left_running(folder) == []


@pytest.mark.timeout(RUN_SECONDS + CLEANUP_SECONDS)
def test_a_benchmark_interrupted_twice_leaves_nothing_running(folder: Path) -> None:
    """Ctrl-C while the benchmark's worker runs, and again while it is being stopped: the
    worker and the private stack are stopped all the same, and the folder is removed."""
    run = start("end_to_end.py", ["--managers", "20", "--days", "2"], folder)
    try:
        # Under way once its worker joins the consumer group (the stack is up by then): a
        # worker that runs takes a moment to stop, long enough for a second Ctrl-C to land.
        deadline = time.monotonic() + RUN_SECONDS
        while not any("joining group" in log.read_text() for log in folder.glob("*/worker.log")):
            assert run.poll() is None, run.communicate()[1][-3000:]
            assert time.monotonic() < deadline, "the benchmark's worker never joined its group"
            time.sleep(0.1)
        assert len(left_running(folder)) >= 4  # Tansu, ClickHouse, Alertmanager, the worker
        run.send_signal(signal.SIGINT)
        time.sleep(0.2)  # the first Ctrl-C is stopping the worker by now
        _, stderr = interrupt(run)
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
    assert "KeyboardInterrupt" in stderr  # interrupted, not finished
    assert left_running(folder) == []
    assert list(folder.iterdir()) == []  # its temporary folder removed
