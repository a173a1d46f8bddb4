"""``salespulse tail``, ``receive`` and ``ami``: the long-running bridges onto Kafka.

Each runs until SIGTERM or SIGINT, then finishes the write in flight, saves its position where
it has one, and exits 0. ``--metrics-port`` serves the Prometheus counters of the process.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
from collections.abc import Awaitable, Callable

from prometheus_client import start_http_server

from ingest.raw_producer import RawProducer, serve_when_reachable
from salespulse.errors import ConfigurationError
from salespulse.settings import Settings


class BridgeNotConfigured(ConfigurationError):
    """A bridge was started without the settings it cannot do without."""


def add_bridge_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    for name, help_text, func in (
        ("tail", "follow a CDR file and ship its lines to Kafka", cmd_tail),
        ("receive", "HTTP receiver for FreeSWITCH, Bitrix24 and JSON sources", cmd_receive),
        ("ami", "ship Asterisk Manager Interface Cdr events to Kafka", cmd_ami),
        ("cdrdb", "follow the PBX's CDR table (FreePBX asteriskcdrdb.cdr) onto Kafka", cmd_cdrdb),
    ):
        parser = sub.add_parser(name, help=help_text)
        parser.add_argument("--metrics-port", type=int, help="serve /metrics on this port")
        parser.set_defaults(func=func)


def _run(args: argparse.Namespace, body: Callable[[asyncio.Event], Awaitable[None]]) -> int:
    if args.metrics_port:
        start_http_server(args.metrics_port, addr="127.0.0.1")

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await body(stop)

    asyncio.run(main())
    return 0


def cmd_tail(args: argparse.Namespace, settings: Settings) -> int:
    from ingest.tailer import run_tailer

    # One chunk at a time, each awaited: lingering for more would only add latency.
    producer = RawProducer(settings.kafka, settings.topics, linger_ms=0)
    return _run(args, lambda stop: run_tailer(settings.tailer, producer, stop))


def cmd_receive(args: argparse.Namespace, settings: Settings) -> int:
    from ingest.receiver import run_receiver

    async def body(stop: asyncio.Event) -> None:
        async with contextlib.AsyncExitStack() as stack:
            transform = None
            if settings.bitrix24 is not None:
                from ingest.bitrix24.client import Bitrix24Client
                from ingest.bitrix24.enrich import receiver_transform

                client = await stack.enter_async_context(Bitrix24Client(settings.bitrix24))
                transform = receiver_transform(client)
            producer = RawProducer(settings.kafka, settings.topics)
            await run_receiver(
                settings.receiver, producer, stop, topics=settings.topics, transform=transform
            )

    return _run(args, body)


def cmd_ami(args: argparse.Namespace, settings: Settings) -> int:
    from ingest.ami import run_ami_bridge

    ami = settings.ami
    if ami is None:
        raise BridgeNotConfigured(
            "set SALESPULSE_AMI__USERNAME and SALESPULSE_AMI__SECRET (and __HOST, __PORT)"
        )

    async def body(stop: asyncio.Event) -> None:
        # Asterisk and Kafka may come up in either order: wait for the broker, do not crash.
        producer = RawProducer(settings.kafka, settings.topics)
        await serve_when_reachable(
            producer, stop, "ami", lambda: run_ami_bridge(ami, producer, stop=stop)
        )

    return _run(args, body)


def cmd_cdrdb(args: argparse.Namespace, settings: Settings) -> int:
    from ingest.cdr_table import run_cdr_table

    table = settings.cdr_table
    if table is None:
        raise BridgeNotConfigured(
            "set SALESPULSE_CDR_TABLE__USER and SALESPULSE_CDR_TABLE__PASSWORD "
            "(and __HOST, __PORT, __DATABASE, __TABLE)"
        )

    async def body(stop: asyncio.Event) -> None:
        # The database and Kafka may come up in either order: wait for the broker.
        producer = RawProducer(settings.kafka, settings.topics)
        await serve_when_reachable(
            producer, stop, "cdr_table", lambda: run_cdr_table(table, producer, stop)
        )

    return _run(args, body)
