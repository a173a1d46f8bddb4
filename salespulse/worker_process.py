"""Running ``salespulse worker`` as its own process, exactly as in production.

The demo and the end-to-end tests use this rather than an in-process worker, so that what they
prove (startup, consumer-group membership, commits, shutdown on SIGTERM, death by SIGKILL) is
what a deployed worker does.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from salespulse.settings import Settings, to_environment

STOP_TIMEOUT_SECONDS = 30.0


def start_worker(settings: Settings, log_path: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, **to_environment(settings)}
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "salespulse", "worker"],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
        )


def stop_worker(worker: subprocess.Popen[bytes], timeout: float = STOP_TIMEOUT_SECONDS) -> int:
    """SIGTERM, then SIGKILL if it does not finish in time; returns the exit status."""
    if worker.poll() is None:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
    return worker.returncode
