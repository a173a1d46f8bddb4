"""Readiness reflects what the worker depends on, checked for real over the network."""

from __future__ import annotations

from processors.health import readiness
from salespulse.sections import ClickHouseSettings, KafkaSettings
from salespulse.stack_settings import free_ports
from tests.conftest import LocalStack


async def test_ready_when_both_answer(stack: LocalStack) -> None:
    checks = await readiness(stack.settings.kafka, stack.settings.clickhouse)
    assert checks == {"kafka": True, "clickhouse": True}


async def test_not_ready_when_a_dependency_does_not_answer(stack: LocalStack) -> None:
    (closed,) = free_ports(1)  # nothing listens there
    no_broker = KafkaSettings(bootstrap_servers=f"127.0.0.1:{closed}")
    no_clickhouse = ClickHouseSettings(host="127.0.0.1", port=closed)
    assert await readiness(no_broker, stack.settings.clickhouse) == {
        "kafka": False,
        "clickhouse": True,
    }
    assert await readiness(stack.settings.kafka, no_clickhouse) == {
        "kafka": True,
        "clickhouse": False,
    }
