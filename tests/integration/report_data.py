"""Generated traffic loaded into a ClickHouse database with its rollups, for the report tests."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from pathlib import Path

from ingest.generator import Traffic
from processors.direct_load import store_traffic
from salespulse.directory import Directory, load_directory
from salespulse.settings import Settings
from sinks.clickhouse.client import ClickHouse, NativeClickHouse
from sinks.clickhouse.migrations import apply_migrations
from sinks.clickhouse.rollup import rebuild
from tests.conftest import LocalStack
from tests.integration.pipeline_harness import WEEK_END

# The generated working week (Monday 16 to Friday 20 November 2026, local), with a margin.
FIRST_DAY, LAST_DAY = date(2026, 11, 14), date(2026, 11, 22)
_databases = itertools.count(1)


def load_week(ch: ClickHouse, traffic: Traffic, directory: Directory) -> int:
    """The traffic through the real parsers into ``events``, then the rollups rebuilt."""
    apply_migrations(ch)
    stored = store_traffic(ch, traffic, directory, WEEK_END)
    rebuild(ch, FIRST_DAY, LAST_DAY)
    return stored


@contextmanager
def week_database(
    stack: LocalStack, week_traffic: tuple[Traffic, Path], prefix: str
) -> Iterator[Settings]:
    """The stack's settings pointed at a server database of its own holding the generated week
    (dropped afterwards), for read-only command tests."""
    traffic, directory_path = week_traffic
    database = f"{prefix}_{next(_databases)}_{datetime.now(UTC):%H%M%S%f}"
    settings = stack.settings.model_copy(
        update={
            "clickhouse": stack.settings.clickhouse.model_copy(update={"database": database}),
            "directory_path": directory_path,
        }
    )
    client = NativeClickHouse(settings.clickhouse)
    try:
        load_week(client, traffic, load_directory(directory_path))
        yield settings
        client.execute(f"DROP DATABASE IF EXISTS {database}")
    finally:
        client.close()
