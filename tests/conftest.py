"""Shared fixtures: a private local stack (Tansu + ClickHouse) for the whole test session."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from salespulse.settings import ClickHouseSettings, KafkaSettings, Settings, StackSettings
from salespulse.stack import stack_down, stack_up


def free_ports(count: int) -> list[int]:
    """Ports the kernel just handed out; the sockets stay open together so the ports differ."""
    with contextlib.ExitStack() as sockets:
        ports = []
        for _ in range(count):
            sock = sockets.enter_context(socket.socket())
            sock.bind(("127.0.0.1", 0))
            ports.append(sock.getsockname()[1])
        return ports


def stack_settings_in(state_dir: Path) -> StackSettings:
    kafka_port, tcp_port, http_port = free_ports(3)
    return StackSettings(
        state_dir=state_dir,
        kafka_port=kafka_port,
        clickhouse_tcp_port=tcp_port,
        clickhouse_http_port=http_port,
    )


@dataclass(frozen=True)
class LocalStack:
    settings: Settings

    @property
    def kafka_bootstrap(self) -> str:
        return self.settings.kafka.bootstrap_servers

    @property
    def clickhouse_host(self) -> str:
        return self.settings.clickhouse.host

    @property
    def clickhouse_port(self) -> int:
        return self.settings.clickhouse.port

    @property
    def clickhouse_http_port(self) -> int:
        return self.settings.stack.clickhouse_http_port


@pytest.fixture(scope="session")
def stack_settings_factory() -> Callable[[Path], StackSettings]:
    """Build StackSettings for a state dir with freshly picked free ports."""
    return stack_settings_in


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    stack_settings = stack_settings_in(tmp_path_factory.mktemp("stack"))
    settings = Settings(
        kafka=KafkaSettings(bootstrap_servers=f"127.0.0.1:{stack_settings.kafka_port}"),
        clickhouse=ClickHouseSettings(host="127.0.0.1", port=stack_settings.clickhouse_tcp_port),
        stack=stack_settings,
    )
    try:
        # A StackError propagates as is: tests depending on the stack error out, never skip.
        stack_up(stack_settings)
        yield LocalStack(settings=settings)
    finally:
        stack_down(stack_settings)
