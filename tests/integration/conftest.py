"""ClickHouse on both engines we ship for: the 18.16 server over the network, and chDB 26.9."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from ingest.generator import Traffic, make_population, simulate, write_directory_yaml
from sinks.clickhouse.chdb_client import ChdbClickHouse
from sinks.clickhouse.client import ClickHouse, NativeClickHouse
from tests.conftest import LocalStack
from tests.integration.pipeline_harness import DAYS, WEEK_END

_database_numbers = itertools.count(1)


@pytest.fixture(scope="session")
def chdb_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChdbClickHouse]:
    # chDB keeps process-wide state, so the whole test session shares one instance.
    session = ChdbClickHouse(str(tmp_path_factory.mktemp("chdb")))
    yield session
    session.close()


@pytest.fixture(params=["server", "chdb"])
def clickhouse(
    request: pytest.FixtureRequest, stack: LocalStack, chdb_session: ChdbClickHouse
) -> Iterator[ClickHouse]:
    """A ClickHouse with a fresh, empty database of its own, on each engine in turn."""
    database = f"test_{next(_database_numbers)}"
    if request.param == "server":
        client: ClickHouse = NativeClickHouse(stack.settings.clickhouse, database=database)
    else:
        chdb_session.database = database
        client = chdb_session
    try:
        yield client
    finally:
        client.execute(f"DROP DATABASE IF EXISTS {database}")
        if request.param == "server":
            client.close()


@pytest.fixture(scope="session")
def week_traffic(tmp_path_factory: pytest.TempPathFactory) -> tuple[Traffic, Path]:
    """A generated working week of 12 managers in 4 time zones, and its directory file."""
    population = make_population(managers=12, departments=4, seed=7)
    directory_path = tmp_path_factory.mktemp("directory") / "directory.yaml"
    write_directory_yaml(population, directory_path)
    return simulate(population, WEEK_END - timedelta(days=DAYS), WEEK_END, seed=7), directory_path
