"""Durable writes to ClickHouse: one columnar insert per table per batch, retried until it lands.

One insert per batch is the native protocol's fast path, and one part per insert keeps
ClickHouse from drowning in small parts. Retriable failures (server down, restarting, busy) are
retried with capped exponential backoff for as long as it takes: the worker stops consuming while
it waits, which is the backpressure that keeps memory bounded, and offsets stay uncommitted, so
nothing is lost.

A failure about the values sent (``ClickHouseError.about_data``: a value a column cannot hold,
a row the server refuses) would fail the same batch on every restart and stop the stream for
everyone. ``insert_isolating`` then finds the rows that cannot be stored by bisection, stores
the rest, and returns the refused ones for the caller to dead-letter. Rows come in units (the
rows of one source record) that are stored or refused together, so a record is never half
counted. Halves inserted during the search are ordinary inserts of keyed rows: a crash midway
replays the batch and stores them again, which changes nothing. Any other non-retriable
failure (a missing table or column, a refused login) propagates and stops the worker: no row
is at fault, and only an operator can fix it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from operator import itemgetter
from typing import Any, NamedTuple

from processors.pipeline import EVENT_COLUMNS
from salespulse import metrics
from salespulse.backoff import Backoff
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

# A row's source record (topic, partition, offset, index in the message): the rows of one
# record are stored or refused together, so a record is never half counted.
record_of_row = itemgetter(
    *(
        EVENT_COLUMNS.index(name)
        for name in ("source_topic", "source_partition", "source_offset", "source_index")
    )
)


class Refused(NamedTuple):
    """A unit of rows ClickHouse would not store: ``rows[start:end]`` of the batch, and why."""

    start: int
    end: int
    error: ClickHouseError


def units_of(
    rows: Sequence[tuple[Any, ...]], unit: Callable[[tuple[Any, ...]], object]
) -> list[tuple[int, int]]:
    """``(start, end)`` of each run of consecutive rows with the same ``unit`` key."""
    bounds: list[tuple[int, int]] = []
    start = 0
    for index in range(1, len(rows) + 1):
        if index == len(rows) or unit(rows[index]) != unit(rows[start]):
            bounds.append((start, index))
            start = index
    return bounds


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
        waits = Backoff(first=0.5, cap=self._retry_max)
        while True:
            started = time.perf_counter()
            try:
                await asyncio.to_thread(self._insert, table, names, columns)
            except ClickHouseError as exc:
                metrics.CLICKHOUSE_INSERT_ERRORS.labels(table, exc.reason).inc()
                # A failed insert can leave the connection mid-statement: never reuse it.
                self._drop_client()
                if not exc.retriable:
                    raise
                metrics.CLICKHOUSE_RETRIES.labels(table, exc.reason).inc()
                delay = waits.next()
                log.warning("ClickHouse insert failed (%s); retrying in %.1f s", exc, delay)
                await self._sleep(delay)
                continue
            metrics.CLICKHOUSE_INSERT_SECONDS.labels(table).observe(time.perf_counter() - started)
            return

    async def insert_isolating(
        self,
        table: str,
        names: Sequence[str],
        rows: Sequence[tuple[Any, ...]],
        unit: Callable[[tuple[Any, ...]], object],
    ) -> list[Refused]:
        """``insert``, except that rows refused for their values are isolated and returned
        (in batch order) while every other unit is stored; empty when all landed."""
        try:
            await self.insert(table, names, rows)
            return []
        except ClickHouseError as exc:
            if not exc.about_data:
                raise
            first_error = exc
        units = units_of(rows, unit)
        log.warning(
            "ClickHouse refused a batch of %d rows for %s (%s): isolating the rows it cannot store",
            len(rows),
            table,
            first_error,
        )
        refused = await self._isolate(table, names, rows, units, first_error)
        count = sum(r.end - r.start for r in refused)
        metrics.UNSTORABLE_ROWS.labels(table).inc(count)
        log.warning("%d of %d rows for %s cannot be stored; the rest are", count, len(rows), table)
        return refused

    async def _isolate(
        self,
        table: str,
        names: Sequence[str],
        rows: Sequence[tuple[Any, ...]],
        units: Sequence[tuple[int, int]],
        error: ClickHouseError,
    ) -> list[Refused]:
        """Bisects ``units``, which failed together with ``error``: each half is inserted
        alone, and a half that fails is split again, down to single units."""
        if len(units) == 1:
            ((start, end),) = units
            return [Refused(start, end, error)]
        middle = len(units) // 2
        refused: list[Refused] = []
        for half in (units[:middle], units[middle:]):
            try:
                await self.insert(table, names, rows[half[0][0] : half[-1][1]])
            except ClickHouseError as exc:
                if not exc.about_data:
                    raise
                refused += await self._isolate(table, names, rows, half, exc)
        return refused

    async def write_events(self, rows: Sequence[tuple[Any, ...]]) -> list[Refused]:
        """The batch's events; what cannot be stored is returned, one entry per source record."""
        return await self.insert_isolating(EVENTS_TABLE, EVENT_COLUMNS, rows, record_of_row)

    def _drop_client(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def close(self) -> None:
        self._drop_client()
