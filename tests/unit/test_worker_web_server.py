"""The worker's web server as faust runs it (its aiohttp driver, our application options), on a
loopback port, against hostile requests over real sockets. No broker or ClickHouse: only the
pages that need neither are asked for."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from processors.worker import build_app
from salespulse.settings import Settings, WorkerSettings
from salespulse.stack_settings import free_ports
from tests.http_probes import gzip_bomb, gzip_head, inflate_seconds, send


def worker_settings(**worker: object) -> Settings:
    (port,) = free_ports(1)
    return Settings().model_copy(
        update={"worker": WorkerSettings.model_validate({"web_port": port} | worker)}
    )


@pytest.fixture
async def web_port() -> AsyncIterator[int]:
    settings = worker_settings()
    web = build_app(settings).web
    web.init_server()
    await web.start_server()
    try:
        yield settings.worker.web_port
    finally:
        await web.stop_server()


async def test_a_gzip_bomb_to_any_page_is_not_inflated(web_port: int) -> None:
    bomb = gzip_bomb()
    one_inflation = inflate_seconds(bomb)
    requests = [
        gzip_head("GET", "/healthz", bomb),
        gzip_head("POST", "/metrics", bomb),
        gzip_head("GET", "/no/such/page", bomb),
    ]
    started = time.process_time()
    outcomes = [await asyncio.to_thread(send, web_port, head, bomb) for head in requests]
    spent = time.process_time() - started
    print(f"{len(requests)} gzip bombs to the worker cost {spent:.3f} s; one {one_inflation:.3f}")
    assert [outcome.status for outcome in outcomes] == [200, 405, 404]
    assert all(outcome.closed and outcome.connection == "close" for outcome in outcomes)
    # Generous, for a busy machine: three inflations would cost twelve times this.
    assert spent < one_inflation / 4
