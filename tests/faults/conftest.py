"""Fixtures of the fault suite: a stack of the test's own, so that stopping, freezing or filling
one of its parts cannot disturb any other test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from salespulse.settings import Settings
from salespulse.stack import stack_down, stack_up
from salespulse.stack_settings import pointed_at_stack, private_stack
from tests.conftest import LocalStack
from tests.integration.conftest import week_traffic

__all__ = ["own_stack", "week_traffic"]


@pytest.fixture
def own_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """A private Tansu, ClickHouse and Alertmanager for one test, stopped after it whatever the
    test left running or stopped."""
    stack_settings = private_stack(tmp_path_factory.mktemp("own-stack"))
    try:
        stack_up(stack_settings)
        yield LocalStack(settings=pointed_at_stack(Settings(), stack_settings))
    finally:
        stack_down(stack_settings)
