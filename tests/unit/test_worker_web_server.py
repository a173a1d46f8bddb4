"""The worker's web server as faust runs it (its aiohttp driver, our application options), on a
loopback port, against hostile requests over real sockets. No broker or ClickHouse: only the
pages that need neither are asked for."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator

import pytest
from aiohttp.http_exceptions import BadHttpMessage
from prometheus_client import REGISTRY
from pydantic import ValidationError

from processors.worker import build_app
from salespulse.http_log import MalformedRequestFilter
from salespulse.http_server import ANY_HOST, host_allowed, host_name
from salespulse.sections import WorkerSettings
from salespulse.settings import Settings
from salespulse.stack_settings import free_ports
from tests.http_probes import gzip_bomb, gzip_head, inflate_seconds, send


def worker_settings(**worker: object) -> Settings:
    (port,) = free_ports(1)
    return Settings().model_copy(
        update={"worker": WorkerSettings.model_validate({"web_port": port} | worker)}
    )


@contextlib.asynccontextmanager
async def serving(settings: Settings) -> AsyncIterator[int]:
    """The worker's web server as faust starts it (without the rest of the worker)."""
    web = build_app(settings).web
    web.init_server()
    await web.start_server()
    try:
        yield settings.worker.web_port
    finally:
        await web.stop_server()


@pytest.fixture
async def web_port() -> AsyncIterator[int]:
    async with serving(worker_settings(web_hosts=["sales.example.com"])) as port:
        yield port


async def get(port: int, path: str, *hosts: str) -> int:
    head = "\r\n".join([f"GET {path} HTTP/1.1", *(f"Host: {host}" for host in hosts)])
    return (await asyncio.to_thread(send, port, head + "\r\nConnection: close")).status


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


async def test_pages_answer_only_for_their_own_host_names(web_port: int) -> None:
    """DNS rebinding: a page of attacker.example whose name now resolves to the worker sends
    ``Host: attacker.example``; it must not read the pages or /metrics."""
    for path in ("/api/today", "/metrics", "/", "/healthz", "/no/such/page"):
        assert await get(web_port, path, f"attacker.example:{web_port}") == 421, path
    assert await get(web_port, "/metrics", "localhost.attacker.example") == 421
    assert await get(web_port, "/metrics", "localhost", "attacker.example") == 400  # aiohttp's
    # Prometheus and people by address, the bind address, the loopback name, the configured one.
    for host in (f"127.0.0.1:{web_port}", f"[::1]:{web_port}", "10.1.2.3", "LOCALHOST.",
                 f"localhost:{web_port}", "sales.example.com"):  # fmt: skip
        assert await get(web_port, "/metrics", host) == 200, host
    # HTTP/1.0 without Host: not a browser (HTTP/1.1 without one is aiohttp's 400).
    without_host = await asyncio.to_thread(send, web_port, "GET /healthz HTTP/1.0")
    assert without_host.status == 200


@pytest.mark.parametrize(
    ("value", "name"),
    [
        ("Sales.Example.COM.", "sales.example.com"),
        ("localhost:6066", "localhost"),
        ("[::1]:6066", "::1"),
        ("[fe80::1]", "fe80::1"),
        ("203.0.113.5:80", "203.0.113.5"),
        ("::1", None),  # an IPv6 literal without brackets is not a Host value
        ("host:port", None),
        ("a b", "a b"),  # not a name we allow, but parsed as one
        ("", None),
        ("[nothex]", None),
    ],
)
def test_host_header_values(value: str, name: str | None) -> None:
    assert host_name(value) == name


def test_any_host_name_can_be_allowed() -> None:
    assert host_allowed(["attacker.example"], frozenset({ANY_HOST}))
    assert not host_allowed(["attacker.example"], frozenset({"localhost"}))
    with pytest.raises(ValidationError):
        WorkerSettings(web_hosts=["bad name"])


MALFORMED = "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nthis is no header line"


def http_count(name: str) -> float:
    return REGISTRY.get_sample_value(name) or 0.0


async def test_malformed_requests_are_logged_once_a_minute_and_counted(
    web_port: int, caplog: pytest.LogCaptureFixture
) -> None:
    before = http_count("salespulse_http_malformed_requests_total")

    def flood() -> list[int]:
        return [send(web_port, MALFORMED).status for _ in range(50)]

    with caplog.at_level(logging.DEBUG, logger="aiohttp"):
        statuses = await asyncio.to_thread(flood)
    assert statuses == [400] * 50
    assert http_count("salespulse_http_malformed_requests_total") - before == 50
    logged = [record for record in caplog.records if record.name.startswith("aiohttp.server")]
    # The first of them in this process's minute (another test may have had it): one line.
    assert len(logged) <= 1, [record.getMessage() for record in logged]
    assert all(record.exc_info is None and "\n" not in record.getMessage() for record in logged)


def malformed_record(message: str = "Invalid header line\n  b'x'\n  ^") -> logging.LogRecord:
    error = BadHttpMessage(message)
    return logging.LogRecord(
        "aiohttp.server.salespulse", logging.ERROR, __file__, 1,
        "Error handling request from %s", ("203.0.113.5",), (type(error), error, None),
    )  # fmt: skip


def test_the_malformed_request_filter_says_how_many_it_left_out() -> None:
    now = [0.0]
    log_filter = MalformedRequestFilter(interval=60, clock=lambda: now[0])
    first = malformed_record()
    assert log_filter.filter(first)
    assert first.getMessage() == (
        "Error handling request from 203.0.113.5: HTTP 400, Invalid header line b'x' ^"
    )
    assert first.exc_info is None
    assert [log_filter.filter(malformed_record()) for _ in range(5)] == [False] * 5
    now[0] = 61.0
    later = malformed_record()
    assert log_filter.filter(later)
    assert later.getMessage().endswith("(5 more malformed requests not logged before this one)")
    # Not a client's malformed request: untouched.
    failure = logging.LogRecord("aiohttp.server", logging.ERROR, __file__, 1, "boom", (), None)
    assert log_filter.filter(failure)
    assert failure.getMessage() == "boom"
