"""Durable writes to ClickHouse: one columnar insert per table per batch, retried until it lands.

One insert per batch is the native protocol's fast path, and one part per insert keeps
ClickHouse from drowning in small parts. Retriable failures (server down, restarting, busy) are
retried with capped exponential backoff for as long as it takes: the worker stops consuming while
it waits, which is the backpressure that keeps memory bounded, and offsets stay uncommitted, so
nothing is lost. A non-retriable failure (schema mismatch) propagates and stops the worker.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from processors.pipeline import EVENT_COLUMNS
from salespulse import metrics
from sinks.clickhouse.client import ClickHouse, ClickHouseError

log = logging.getLogger(__name__)

EVENTS_TABLE = "events"
BATCHES_TABLE = "ingest_batches"
BATCH_COLUMNS: tuple[str, ...] = (
    "topic",
    "partition",
    "first_offset",
    "last_offset",
    "messages",
    "rows",
    "dead_letters",
    "local_dates",
    "worker",
    "inserted_at",
)


class ClickHouseSink:
    """Writes row batches with retries. The client is used from one worker thread at a time."""

    def __init__(
        self,
        connect: Callable[[], ClickHouse],
        *,
        retry_max_seconds: float = 30.0,
        sleep: Callable[[float], Any] = asyncio.sleep,
    ) -> None:
        self._connect = connect
        self._client: ClickHouse | None = None
        self._retry_max = retry_max_seconds
        self._sleep = sleep

    def _insert(self, table: str, names: Sequence[str], columns: Sequence[Sequence[Any]]) -> None:
        if self._client is None:
            self._client = self._connect()
        self._client.insert_columns(table, names, columns)

    async def insert(
        self, table: str, names: Sequence[str], rows: Sequence[tuple[Any, ...]]
    ) -> None:
        if not rows:
            return
        columns: list[Sequence[Any]] = [list(column) for column in zip(*rows, strict=True)]
        delay = 0.5
        while True:
            started = time.perf_counter()
            try:
                await asyncio.to_thread(self._insert, table, names, columns)
            except ClickHouseError as exc:
                metrics.CLICKHOUSE_INSERT_ERRORS.labels(table, exc.reason).inc()
                if not exc.retriable:
                    raise
                self._drop_client()
                metrics.CLICKHOUSE_RETRIES.labels(table, exc.reason).inc()
                log.warning("ClickHouse insert failed (%s); retrying in %.1f s", exc, delay)
                await self._sleep(delay)
                delay = min(delay * 2, self._retry_max)
                continue
            metrics.CLICKHOUSE_INSERT_SECONDS.labels(table).observe(time.perf_counter() - started)
            return

    async def write_events(self, rows: Sequence[tuple[Any, ...]]) -> None:
        await self.insert(EVENTS_TABLE, EVENT_COLUMNS, rows)

    def _drop_client(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def close(self) -> None:
        self._drop_client()
