"""Liveness and readiness of the worker, for orchestrators and load balancers.

Alive: the process answers. Ready: it can do its job right now, which means both the broker and
ClickHouse answer; a worker that cannot reach ClickHouse is alive (it keeps retrying, and its
offsets stay uncommitted) but not ready.
"""

from __future__ import annotations

import asyncio
import contextlib

from salespulse.sections import ClickHouseSettings, KafkaSettings
from sinks.clickhouse.client import ClickHouseError, NativeClickHouse

CHECK_TIMEOUT_SECONDS = 2.0


async def kafka_reachable(kafka: KafkaSettings) -> bool:
    """Whether any bootstrap server accepts a TCP connection within the check timeout."""
    for server in kafka.bootstrap_servers.split(","):
        host, _, port = server.strip().rpartition(":")
        try:
            async with asyncio.timeout(CHECK_TIMEOUT_SECONDS):
                _, writer = await asyncio.open_connection(host or "localhost", int(port))
        except (OSError, TimeoutError, ValueError):
            continue
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return True
    return False


def _clickhouse_answers(settings: ClickHouseSettings) -> bool:
    client = NativeClickHouse(
        settings.model_copy(update={"connect_timeout_seconds": CHECK_TIMEOUT_SECONDS})
    )
    try:
        return client.execute("SELECT 1") == [(1,)]
    except ClickHouseError:
        return False
    finally:
        client.close()


async def readiness(kafka: KafkaSettings, clickhouse: ClickHouseSettings) -> dict[str, bool]:
    """Each dependency and whether it answers now."""
    broker, database = await asyncio.gather(
        kafka_reachable(kafka), asyncio.to_thread(_clickhouse_answers, clickhouse)
    )
    return {"kafka": broker, "clickhouse": database}
