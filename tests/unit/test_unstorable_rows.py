"""Rows ClickHouse refuses are isolated by bisection; the rest of the batch is stored.

The fake client stands for a server that refuses some rows for reasons nobody foresaw: it
fails every insert that contains one of them, as a real insert fails whole. What matters to a
user: every other record is stored exactly once per attempt that landed, the refused ones come
back whole (all rows of their record), and failures that are not about the rows still stop.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from sinks.clickhouse.client import ClickHouseError
from sinks.clickhouse.sink import ClickHouseSink, units_of

Row = tuple[Any, ...]


class RefusingClickHouse:
    """Stores whole inserts, unless one holds a row whose value is in ``poison``."""

    database = "test"

    def __init__(self, poison: set[str], *, about_data: bool = True) -> None:
        self.poison = poison
        self.about_data = about_data
        self.stored: list[Row] = []
        self.inserts = 0

    def insert_columns(
        self, table: str, names: Sequence[str], data: Sequence[Sequence[Any]]
    ) -> None:
        self.inserts += 1
        rows = list(zip(*data, strict=True))
        if any(row[1] in self.poison for row in rows):
            raise ClickHouseError(
                "Value passed to 'throwIf' function is non zero",
                retriable=False,
                about_data=self.about_data,
            )
        self.stored += rows

    def execute(self, sql: str, params: dict[str, Any] | None = None) -> list[Row]:
        return []

    def server_version(self) -> tuple[int, ...]:
        return (18, 16, 1)

    def close(self) -> None:
        pass


def record(row: Row) -> object:
    return row[0]


def batch(records: int, rows_per_record: int = 1) -> list[Row]:
    """Rows (record, value): record ``n`` has values ``n.0``, ``n.1``, …"""
    return [(n, f"{n}.{k}") for n in range(records) for k in range(rows_per_record)]


async def isolate(client: RefusingClickHouse, rows: list[Row]) -> list[tuple[int, int]]:
    sink = ClickHouseSink(lambda: client)
    refused = await sink.insert_isolating("events", ("record", "value"), rows, record)
    return [(r.start, r.end) for r in refused]


async def test_a_batch_without_bad_rows_is_one_insert() -> None:
    client = RefusingClickHouse(set())
    assert await isolate(client, batch(1000)) == []
    assert (client.inserts, len(client.stored)) == (1, 1000)


@pytest.mark.parametrize("bad", [{0}, {999}, {3, 500, 501, 998}, set(range(0, 1000, 7))])
async def test_exactly_the_bad_records_are_refused_and_the_rest_stored(bad: set[int]) -> None:
    rows = batch(1000)
    client = RefusingClickHouse({f"{n}.0" for n in bad})
    refused = await isolate(client, rows)
    assert refused == [(n, n + 1) for n in sorted(bad)]
    assert sorted(client.stored) == [row for row in rows if row[0] not in bad]  # each once


async def test_a_record_is_refused_whole_when_one_of_its_rows_is_bad() -> None:
    """A call whose second leg cannot be stored: neither leg is counted."""
    rows = batch(50, rows_per_record=3)
    client = RefusingClickHouse({"17.2"})
    assert await isolate(client, rows) == [(51, 54)]
    assert {row[0] for row in client.stored} == set(range(50)) - {17}
    assert len(client.stored) == 49 * 3


async def test_one_bad_record_costs_a_logarithmic_number_of_inserts() -> None:
    client = RefusingClickHouse({"4242.0"})
    await isolate(client, batch(10_000))
    assert client.inserts <= 1 + 2 * 14  # the batch, then two halves per level of 10,000


async def test_a_failure_not_about_the_rows_still_stops_the_batch() -> None:
    """A missing column or a refused login: isolating would dead-letter every row."""
    client = RefusingClickHouse({"3.0"}, about_data=False)
    with pytest.raises(ClickHouseError):
        await isolate(client, batch(10))
    assert client.stored == []


def test_units_are_runs_of_one_record() -> None:
    rows = [(1, "a"), (1, "b"), (2, "c"), (1, "d")]
    assert units_of(rows, record) == [(0, 2), (2, 3), (3, 4)]
    assert units_of([], record) == []
