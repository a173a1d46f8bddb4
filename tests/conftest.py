"""Shared fixtures: a private local stack (Tansu, ClickHouse, Alertmanager) for the session."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from salespulse.sections import StackSettings
from salespulse.settings import Settings
from salespulse.stack import stack_down, stack_up
from salespulse.stack_settings import pointed_at_stack, private_stack

_REAL_PEERS = ("integration", "faults")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test that needs real services carries the ``integration`` marker, so that
    ``pytest -m "not integration"`` is the fast suite: those under tests/integration and
    tests/faults (real servers, browsers, processes), and any other that asks for the stack."""
    for item in items:
        folder = item.path.parent.name
        if folder in _REAL_PEERS or "stack" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.integration)


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

    @property
    def alertmanager_url(self) -> str:
        """The stack's Alertmanager, shared by the session: tests tell their alerts apart by
        label values of their own (``salespulse_key``)."""
        return self.settings.stack.alertmanager_url


@pytest.fixture(scope="session")
def stack_settings_factory() -> Callable[[Path], StackSettings]:
    """Build StackSettings for a state dir with freshly picked free ports."""
    return private_stack


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    stack_settings = private_stack(tmp_path_factory.mktemp("stack"))
    settings = pointed_at_stack(Settings(), stack_settings)
    try:
        # A StackError propagates as is: tests depending on the stack error out, never skip.
        stack_up(stack_settings)
        yield LocalStack(settings=settings)
    finally:
        stack_down(stack_settings)
