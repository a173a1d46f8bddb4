"""The local stack behind ``salespulse stack up|down|status``: Tansu, ClickHouse and Alertmanager
on loopback, and SeaweedFS when the broker is durable (``broker_storage=s3``).

All run as plain detached processes with their files under ``StackSettings.state_dir``
(``kafka/``, ``clickhouse/``, ``alertmanager/``, ``seaweedfs/``). A durable Tansu needs its
S3 store: SeaweedFS starts first and Tansu only once the bucket exists, and Tansu stops first.
Each service has a pid file plus a record of the exact command line it was started with; a pid
is only reused or signalled while its live command line and working directory still match that
record, so a recycled pid is never mistaken for ours.

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

import contextlib
import fcntl
import os
import socket
import time
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass
from pathlib import Path

from salespulse.sections import StackSettings
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
from salespulse.stack_processes import (
    POLL_SECONDS,
    Service,
    abort,
    forget,
    gone,
    interrupts_held,
    launch,
    log_tail,
    recorded_pid,
    terminate,
    unrecorded_pids,
)
from salespulse.stack_seaweedfs import (
    BUCKET,
    create_bucket,
    find_weed,
    s3_answers,
    s3_endpoint,
    seaweedfs_argv,
    seaweedfs_dir,
    seaweedfs_log_path,
    seaweedfs_ports,
    tansu_s3_env,
)
from salespulse.stack_seaweedfs import STOP_SECONDS as SEAWEEDFS_STOP_SECONDS
from salespulse.stack_tansu import find_tansu, kafka_answers, tansu_argv

START_TIMEOUT_SECONDS = 30.0
SEAWEEDFS_START_SECONDS = 90.0
STOP_TIMEOUT_SECONDS = 15.0


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
    # Only for a durable broker, or while one of ours runs.
    seaweedfs: ServiceStatus | None = None

    def __iter__(self) -> Iterator[ServiceStatus]:
        services = (self.kafka, self.clickhouse, self.alertmanager, self.seaweedfs)
        return iter(service for service in services if service is not None)

    @property
    def all_answering(self) -> bool:
        return all(service.answering for service in self)

    def describe(self) -> str:
        """One line per service, as ``salespulse stack up|status`` prints it."""
        return "\n".join(service.describe() for service in self)


def _services(settings: StackSettings) -> tuple[Service, Service, Service, Service]:
    """Kafka, ClickHouse, Alertmanager and SeaweedFS, in the order they are stopped."""
    kafka_dir = settings.state_dir / "kafka"
    bucket = BUCKET if settings.durable else None
    kafka = Service(
        name="kafka",
        directory=kafka_dir,
        port=settings.kafka_port,
        bound_ports=((settings.kafka_port, "SALESPULSE_STACK__KAFKA_PORT"),),
        log_path=kafka_dir / "kafka.stdout.log",
        extra_logs=(),
        answers=lambda: kafka_answers(settings.kafka_port),
        args=tuple(tansu_argv(Path("tansu"), settings.kafka_port, s3_bucket=bucket)[1:]),
        env=tuple(tansu_s3_env(settings).items()) if settings.durable else (),
    )
    clickhouse = Service(
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
    alertmanager = Service(
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
    seaweedfs = Service(
        name="seaweedfs",
        directory=seaweedfs_dir(settings),
        port=settings.seaweedfs_s3_port,
        bound_ports=seaweedfs_ports(settings),
        log_path=seaweedfs_log_path(settings),
        extra_logs=(),
        answers=lambda: s3_answers(settings),
        args=tuple(seaweedfs_argv(Path("weed"), settings)[1:]),
        url=s3_endpoint(settings),
        stop_seconds=SEAWEEDFS_STOP_SECONDS,
    )
    return kafka, clickhouse, alertmanager, seaweedfs


def _wanted(settings: StackSettings) -> list[Service]:
    """The services this stack runs: SeaweedFS only for a durable broker."""
    return [s for s in _services(settings) if s.name != "seaweedfs" or settings.durable]


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


def _check_ports_free(service: Service) -> None:
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


def _wait_until_answering(service: Service, pid: int, deadline: float, timeout: float) -> None:
    while not service.answers():
        if gone(pid):
            raise StackError(
                f"{service.name} (pid {pid}) exited during startup\n{log_tail(service)}"
            )
        if time.monotonic() > deadline:
            raise StackError(
                f"{service.name} (pid {pid}) did not answer on {LISTEN_HOST}:{service.port} "
                f"within {timeout:g} s\n{log_tail(service)}"
            )
        time.sleep(POLL_SECONDS)


def _check_broker_unchanged(kafka: Service, pid: int | None) -> None:
    """A running Tansu started with other arguments (memory vs S3 storage) is not reused."""
    if pid is None:
        return
    recorded = [os.fsdecode(arg) for arg in kafka.cmdline_file.read_bytes().split(b"\0")[1:-1]]
    if recorded != list(kafka.args):
        raise StackError(
            f"the running broker (pid {pid}) was started as `tansu {' '.join(recorded)}`, not as "
            f"these settings ask (SALESPULSE_STACK__BROKER_STORAGE, --durable); run "
            f"`salespulse stack down` first"
        )


def stack_up(
    settings: StackSettings,
    *,
    install_missing: bool = True,
    tansu_bin: Path | None = None,
    clickhouse_bin: Path | None = None,
    alertmanager_bin: Path | None = None,
    weed_bin: Path | None = None,
    timeout: float = START_TIMEOUT_SECONDS,
) -> StackStatus:
    """Start whatever part of the stack is not already running and wait until all of it answers.

    ``tansu_bin``/``clickhouse_bin``/``alertmanager_bin``/``weed_bin`` override where the binaries
    are looked up; ``install_missing`` lets ClickHouse and Alertmanager be installed with apt (as
    root). A durable broker's SeaweedFS is started first and Tansu once its bucket exists.
    """
    services = _wanted(settings)
    by_name = {service.name: service for service in services}
    kafka, seaweedfs = by_name["kafka"], by_name.get("seaweedfs")
    finders: dict[str, Callable[[], Path]] = {
        "kafka": lambda: find_tansu(tansu_bin),
        "clickhouse": lambda: find_clickhouse_server(
            clickhouse_bin, install_missing=install_missing
        ),
        "alertmanager": lambda: find_alertmanager(
            alertmanager_bin, install_missing=install_missing
        ),
        "seaweedfs": lambda: find_weed(weed_bin),
    }
    with _state_lock(settings):
        pids = {service.name: recorded_pid(service, forget_stale=True) for service in services}
        _check_broker_unchanged(kafka, pids[kafka.name])
        # Resolve every binary and check every port before launching anything, so that a
        # missing piece never leaves half a stack running.
        planned = [
            (service, finders[service.name]()) for service in services if pids[service.name] is None
        ]
        for service, _ in planned:
            _check_ports_free(service)
        if pids["clickhouse"] is None:
            render_clickhouse_config(settings)
        if pids["alertmanager"] is None:
            render_alertmanager_config(settings)
        if seaweedfs is not None and pids[seaweedfs.name] is None:
            (seaweedfs.directory / "data").mkdir(parents=True, exist_ok=True)
            # SeaweedFS takes seconds to serve S3, more on a busy machine.
            timeout = max(timeout, SEAWEEDFS_START_SECONDS)

        deadline = time.monotonic() + timeout
        launched: list[Service] = []  # pids of these are unreaped children, so surely ours

        def start(service: Service, binary: Path) -> None:
            # A Ctrl-C between the launch and its note in ``launched`` would orphan it.
            with interrupts_held():
                pids[service.name] = launch(service, binary)
                launched.append(service)

        try:
            # Tansu last: a durable one must find its bucket when it starts.
            for service, binary in planned:
                if service is not kafka:
                    start(service, binary)
            if seaweedfs is not None:
                pid = pids[seaweedfs.name]
                assert pid is not None
                _wait_until_answering(seaweedfs, pid, deadline, timeout)
                create_bucket(settings)
            for service, binary in planned:
                if service is kafka:
                    start(service, binary)
            for service in services:
                pid = pids[service.name]
                assert pid is not None
                _wait_until_answering(service, pid, deadline, timeout)
        except BaseException:
            with interrupts_held():
                for service in launched:
                    abort(service, pids[service.name], STOP_TIMEOUT_SECONDS)
            raise
    return stack_status(settings)


def _stop(service: Service, timeout: float) -> str | None:
    pid = recorded_pid(service, forget_stale=True)
    pids = [pid] if pid is not None else unrecorded_pids(service)
    for each in pids:
        terminate(service, each, timeout)
    forget(service)
    return f"{service.name} (pid {', '.join(map(str, pids))})" if pids else None


# The order they stop in: Tansu before the SeaweedFS it stores in.
SERVICE_NAMES = ("kafka", "clickhouse", "alertmanager", "seaweedfs")


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
    statuses = {
        service.name: ServiceStatus(
            name=service.name,
            pid=recorded_pid(service, forget_stale=False),
            port=service.port,
            answering=service.answers(),
            log_path=service.log_path,
            url=service.url,
        )
        for service in _services(settings)
    }
    seaweedfs = statuses["seaweedfs"]
    return StackStatus(
        kafka=statuses["kafka"],
        clickhouse=statuses["clickhouse"],
        alertmanager=statuses["alertmanager"],
        # A memory stack shows SeaweedFS only while one of ours still runs.
        seaweedfs=seaweedfs if settings.durable or seaweedfs.pid else None,
    )
