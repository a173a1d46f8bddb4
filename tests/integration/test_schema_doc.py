"""Every example query in docs/schema.md runs, on both engines, over real data, and every
table's engine and sorting key are the ones it shows: the documentation cannot silently rot."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from sinks.clickhouse.alert_history import record_notices
from sinks.clickhouse.client import ClickHouse
from sinks.clickhouse.migrations import apply_migrations
from sinks.clickhouse.rollup import rebuild
from sinks.clickhouse.sink import ClickHouseSink
from tests.alert_samples import fired, resolved, sample_alert
from tests.integration.test_rollups import every_scenario, process

DOC = Path(__file__).resolve().parents[2] / "docs" / "schema.md"
TEXT = DOC.read_text()
QUERIES = re.findall(r"```sql\n(.*?)```", TEXT, flags=re.DOTALL)
PARAMS = {
    "department": "msk",
    "manager": "sidorova",
    "day": date(2026, 11, 26),
    "first": date(2026, 10, 1),
    "last": date(2026, 11, 30),
    "since": int(datetime(2026, 11, 26, 6, 0, tzinfo=UTC).timestamp()),
}

# One alert that resolved and one still firing, after PARAMS["since"].
_DIP = sample_alert(datetime(2026, 11, 26, 10, 0, tzinfo=UTC))
ALERTS = [
    fired(_DIP),
    resolved(_DIP, datetime(2026, 11, 26, 10, 40, tzinfo=UTC)),
    fired(sample_alert(datetime(2026, 11, 26, 11, 0, tzinfo=UTC))),
]


def test_the_document_has_examples() -> None:
    assert len(QUERIES) >= 8


def test_the_tables_are_as_documented(clickhouse: ClickHouse) -> None:
    apply_migrations(clickhouse)
    documented = re.findall(r"^\| `(\w+)` \| (\w+(?:\(\w+\))?), `\((.+?)\)`", TEXT, re.M)
    assert len(documented) >= 8
    tables = {
        str(name): (str(engine), str(key))
        for name, engine, key in clickhouse.execute(
            "SELECT name, engine_full, sorting_key FROM system.tables WHERE database = %(db)s",
            {"db": clickhouse.database},
        )
    }
    for name, engine, key in documented:
        assert name in tables, name
        assert tables[name][0].startswith(engine + " "), (name, tables[name][0])
        assert tables[name][1] == key, name


@pytest.mark.parametrize("sql", QUERIES, ids=[q.split("\n", 1)[0][:40] for q in QUERIES])
async def test_example_query_runs_and_answers(clickhouse: ClickHouse, sql: str) -> None:
    apply_migrations(clickhouse)
    await ClickHouseSink(lambda: clickhouse).write_events(process(every_scenario()).rows)
    rebuild(clickhouse, date(2026, 10, 24), date(2026, 11, 27))
    record_notices(clickhouse, ALERTS)
    rows = clickhouse.execute(sql.replace("salespulse.", f"{clickhouse.database}."), PARAMS)
    # No batches are logged here, and every identity of the examples is in the directory.
    if "ingest_batches" not in sql and "manager_id = ''" not in sql:
        assert rows, sql
