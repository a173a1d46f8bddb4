"""The demo's worker outlives the demo command, so its web page stays up to be looked at.

Its pid is kept in the demo folder: the next demo replaces it rather than starting a second
worker in the same consumer group, and ``salespulse stack down`` stops it with the stack. A pid
is acted on only when its command line is a salespulse worker (a recycled pid is left alone).
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from salespulse.sections import StackSettings

STOP_TIMEOUT_SECONDS = 30.0


def demo_dir(stack: StackSettings) -> Path:
    return stack.state_dir.parent / "demo"


def pid_path(stack: StackSettings) -> Path:
    return demo_dir(stack) / "worker.pid"


def remember(stack: StackSettings, pid: int) -> None:
    pid_path(stack).write_text(f"{pid}\n")


def _running_worker(stack: StackSettings) -> int | None:
    try:
        pid = int(pid_path(stack).read_text().strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except (OSError, ValueError):
        return None
    return pid if b"salespulse" in cmdline and b"worker" in cmdline else None


def stop_demo_worker(stack: StackSettings, timeout: float = STOP_TIMEOUT_SECONDS) -> int | None:
    """Stop the demo's worker if it still runs; returns its pid, or None when none ran."""
    pid = _running_worker(stack)
    pid_path(stack).unlink(missing_ok=True)
    if pid is None:
        return None
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not Path(f"/proc/{pid}").exists() or _is_zombie(pid):
            return pid
        time.sleep(0.2)
    os.kill(pid, signal.SIGKILL)
    return pid


def _is_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"
