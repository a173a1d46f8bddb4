"""Detached servers of the local stack: starting one, telling whether a pid is still ours,
finding one whose pid file is gone, and stopping it.

A pid is only reused or signalled while its live command line and working directory still
match the record written when it was started, so a recycled pid is never mistaken for ours.
Linux only: process identity is read from /proc.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import subprocess
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from salespulse.stack_clickhouse import StackError

POLL_SECONDS = 0.1
_LOG_TAIL_LINES = 25
# Servers started by this interpreter stay referenced until stopped: a collected Popen of a
# running child warns, and a child that is never waited for lingers as a zombie.
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


@atexit.register
def _release_children() -> None:
    # Outliving this interpreter is the point of a detached server, not a leak worth a warning.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        _CHILDREN.clear()


@dataclass(frozen=True)
class Service:
    name: str
    directory: Path
    port: int
    # Every port the service binds, each with the setting that moves it elsewhere.
    bound_ports: tuple[tuple[int, str], ...]
    log_path: Path
    # Logs worth showing when the service fails to start, besides its stdout/stderr.
    extra_logs: tuple[Path, ...]
    answers: Callable[[], bool]
    # The command line after the binary: the stack's own ports and paths, so together with the
    # working directory it tells this stack's server from any other.
    args: tuple[str, ...]
    url: str | None = None
    # Set in the server's environment on top of ours (Tansu's S3 endpoint and keys).
    env: tuple[tuple[str, str], ...] = ()
    # A floor under the stop timeout, for a server known to take longer to exit cleanly.
    stop_seconds: float = 0.0

    @property
    def pid_file(self) -> Path:
        return self.directory / f"{self.name}.pid"

    @property
    def cmdline_file(self) -> Path:
        return self.directory / f"{self.name}.cmdline"

    @property
    def stdout_log(self) -> Path:
        return self.directory / f"{self.name}.stdout.log"


def proc_state(pid: int) -> str | None:
    """The /proc state letter of ``pid``, or None when no such process exists."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # The command name in parentheses may itself contain spaces and parentheses.
    return stat.rsplit(")", 1)[1].split()[0]


def gone(pid: int) -> bool:
    child = _CHILDREN.get(pid)
    if child is not None and child.poll() is not None:
        del _CHILDREN[pid]
    return proc_state(pid) in (None, "Z", "X")


def is_ours(service: Service, pid: int) -> bool:
    try:
        recorded = service.cmdline_file.read_bytes()
        live = Path(f"/proc/{pid}/cmdline").read_bytes()
        cwd = os.readlink(f"/proc/{pid}/cwd")
    except OSError:
        return False
    return live == recorded and cwd == str(service.directory.resolve()) and not gone(pid)


def recorded_pid(service: Service, *, forget_stale: bool) -> int | None:
    """The pid from the pid file if that process is still the one we started."""
    try:
        pid = int(service.pid_file.read_text().strip())
    except (OSError, ValueError):
        pid = None
    if pid is not None and is_ours(service, pid):
        return pid
    if forget_stale:
        forget(service)
    return None


def forget(service: Service) -> None:
    service.pid_file.unlink(missing_ok=True)
    service.cmdline_file.unlink(missing_ok=True)


def unrecorded_pids(service: Service) -> list[int]:
    """Live processes that are this service although no pid file says so: the folder was removed
    under them, or a start was cut short before the pid file was written. Identified by working
    directory (the kernel appends `` (deleted)`` once it is removed) and exact arguments."""
    directory = str(service.directory.resolve())
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cwd = os.readlink(entry / "cwd")
            argv = (entry / "cmdline").read_bytes().split(b"\0")[:-1]
        except OSError:  # gone meanwhile, or not ours to look at
            continue
        if cwd in (directory, f"{directory} (deleted)") and [
            os.fsdecode(arg) for arg in argv[1:]
        ] == list(service.args):
            pid = int(entry.name)
            if not gone(pid):
                found.append(pid)
    return found


@contextlib.contextmanager
def interrupts_held() -> Iterator[None]:
    """Hold Ctrl-C (SIGINT) until the block is done, then deliver it.

    For cleanups that must not stop half-way: a server left running once its folder is gone is
    found again only by a process scan. In the main thread only (where Python handles signals);
    elsewhere the block runs as it is."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held: list[int] = []

    def hold(signum: int, frame: FrameType | None) -> None:
        held.append(signum)

    previous = signal.signal(signal.SIGINT, hold)
    try:
        yield
    finally:
        # None: a handler installed outside Python, which cannot be put back; leave ours off.
        signal.signal(signal.SIGINT, previous if previous is not None else signal.SIG_DFL)
        if held:
            # Through the handler that was in place (asyncio's cancels its main task).
            signal.raise_signal(signal.SIGINT)


def log_tail(service: Service) -> str:
    parts = []
    for path in (service.stdout_log, *service.extra_logs):
        try:
            lines = path.read_text(errors="replace").splitlines()[-_LOG_TAIL_LINES:]
        except OSError:
            continue
        if lines:
            parts.append(f"--- last lines of {path} ---\n" + "\n".join(lines))
    return "\n".join(parts) or "(no log output)"


def launch(service: Service, binary: Path) -> int:
    argv = [str(binary), *service.args]
    service.directory.mkdir(parents=True, exist_ok=True)
    with service.stdout_log.open("ab") as log:
        child = subprocess.Popen(
            argv,
            cwd=service.directory,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **dict(service.env)} if service.env else None,
            stdout=log,
            stderr=subprocess.STDOUT,
            # Its own session: the server outlives the CLI and ignores the terminal's Ctrl-C.
            start_new_session=True,
        )
    _CHILDREN[child.pid] = child
    # /proc/<pid>/cmdline is the argv with a NUL after every element.
    service.cmdline_file.write_bytes(b"".join(os.fsencode(arg) + b"\0" for arg in argv))
    service.pid_file.write_text(f"{child.pid}\n")
    return child.pid


def terminate(service: Service, pid: int, timeout: float) -> None:
    timeout = max(timeout, service.stop_seconds)
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
        deadline = time.monotonic() + wait
        while not gone(pid) and time.monotonic() < deadline:
            time.sleep(POLL_SECONDS)
        if gone(pid):
            return
    raise StackError(f"{service.name} (pid {pid}) survived SIGKILL\n{log_tail(service)}")


def abort(service: Service, pid: int | None, timeout: float) -> None:
    """Undo a start that failed: stop the child this interpreter started, forget its files."""
    # Not the stack's stop by pid file: a failed start may have changed its command line (a
    # wrapper that exec'd), and an unreaped child of ours cannot have had its pid recycled.
    child = _CHILDREN.pop(pid, None) if pid is not None else None
    if child is not None:
        child.terminate()
        try:
            child.wait(timeout)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
    forget(service)
