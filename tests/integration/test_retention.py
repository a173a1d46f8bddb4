"""Retention drops exactly the partitions older than each table's retention, on both engines,
and leaves the rollups of the dropped days as they were.

The worked example, at NOW = 10 December 2026 12:00 UTC with the shortest retentions allowed
(events 90 days, alerts 45, ingest batches 30; rollups 400): Ivanova (extension 101, Moscow)
called customers on 20 August (2 calls), 15 September (1) and 26 November (3); an alert fired
on 20 August and one on 26 November; each day's batch was logged that day.

* events: the first day kept is 10 December - 90 days = 11 September. August's last day
  (31 August) is before it: partition 202608 goes. September's last day is after it: 202609
  stays whole, although its first ten days are older (partitions are dropped whole, never cut).
* alerts and alert_deliveries: first day kept 26 October: 202608 goes, 202611 stays.
* ingest_batches: first day kept 10 November (the rollup watermark, 26 November, is later):
  202608 and 202609 go, 202611 stays.
* rollups (400 days: first day kept 5 November 2025): nothing goes, and the rollups of
  20 August still say 2 calls after its events are gone, whatever is recomputed.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, date, datetime

import pytest
from prometheus_client import REGISTRY

from processors.pipeline import RawMessage
from salespulse.cli import main
from salespulse.retention_settings import RetentionSettings
from salespulse.sections import CountingSettings
from salespulse.settings import Settings
from sinks.clickhouse.alert_history import record_delivery, record_notices
from sinks.clickhouse.client import ClickHouse, NativeClickHouse
from sinks.clickhouse.migrations import apply_migrations
from sinks.clickhouse.retention import apply, plan
from sinks.clickhouse.rollup import RollupUpdater, frozen_through, rebuild
from sinks.clickhouse.sink import BATCH_COLUMNS, BATCHES_TABLE, ClickHouseSink
from tests.alert_samples import fired, sample_alert
from tests.integration.test_cli import cli_env  # noqa: F401 (a fixture)
from tests.integration.test_rollups import process, rolled_up
from tests.integration.test_worked_examples import cdr

NOW = datetime(2026, 12, 10, 12, 0, tzinfo=UTC)
SHORTEST = RetentionSettings(
    events_days=90, rollups_days=400, alerts_days=45, ingest_batches_days=30
)
AUG20, SEP15, NOV26 = date(2026, 8, 20), date(2026, 9, 15), date(2026, 11, 26)
CALLS = {AUG20: 2, SEP15: 1, NOV26: 3}
EXPECTED_DROPS = [
    ("events", "202608", 2),
    ("alerts", "202608", 1),
    ("alert_deliveries", "202608", 1),
    (BATCHES_TABLE, "202608", 1),
    (BATCHES_TABLE, "202609", 1),
]


def calls_on(day: date, count: int) -> RawMessage:
    lines = [
        cdr(caller="101", callee=f"7916222000{n}", start=f"{day}T1{n}:00:00+03:00", talk=60)
        for n in range(count)
    ]
    return RawMessage("pbx", 0, 0, [("sp-format", b"asterisk-cdr-csv")], b"\n".join(lines))


async def store_day(ch: ClickHouse, day: date, count: int, logged_at: datetime) -> None:
    """``count`` calls of Ivanova on ``day``, and their batch logged at ``logged_at``."""
    sink = ClickHouseSink(lambda: ch)
    await sink.write_events(process([calls_on(day, count)]).rows)
    batch = ("pbx", 0, 0, 0, 1, count, 0, [day], "test", logged_at)
    await sink.insert(BATCHES_TABLE, BATCH_COLUMNS, [batch])


async def three_months(ch: ClickHouse) -> None:
    apply_migrations(ch)
    for day, count in CALLS.items():
        await store_day(ch, day, count, datetime(day.year, day.month, day.day, 18, tzinfo=UTC))
        alert = sample_alert(datetime(day.year, day.month, day.day, 9, tzinfo=UTC), key=str(day))
        if day != SEP15:
            notice = fired(alert)
            record_notices(ch, [notice], now=alert.fired_at)
            record_delivery(ch, notice.notice_id, "webhook", alert.fired_at)
    assert RollupUpdater(ch, CountingSettings()).run_once() > 0


def partitions(ch: ClickHouse) -> dict[str, list[str]]:
    rows = ch.execute(
        "SELECT DISTINCT table, partition FROM system.parts WHERE database = %(db)s "
        "AND active = 1 ORDER BY table, partition",
        {"db": ch.database},
    )
    found: dict[str, list[str]] = {}
    for table, partition in rows:
        found.setdefault(str(table), []).append(str(partition))
    return found


def dropped_partitions(table: str) -> float:
    sample = REGISTRY.get_sample_value(
        "salespulse_retention_dropped_partitions_total", {"table": table}
    )
    return sample or 0.0


def calls_out(ch: ClickHouse, day: date) -> dict[str, int]:
    """Ivanova's outgoing calls on ``day`` in the 15-minute and the daily rollups."""
    return {
        table: rolled_up(ch, day, table).get("ivanova", {}).get("calls_out", 0)
        for table in ("activity_15m", "activity_daily")
    }


def stored_events(ch: ClickHouse) -> dict[str, int]:
    # Counted here: 18.16 refuses toDate(occurred_at), a sorting key column, beside FINAL.
    rows = ch.execute(f"SELECT toString(occurred_at) FROM {ch.database}.events FINAL")
    return dict(sorted(Counter(str(at)[:10] for (at,) in rows).items()))


async def test_exactly_the_expired_months_are_dropped_and_rollups_keep_their_numbers(
    clickhouse: ClickHouse,
) -> None:
    await three_months(clickhouse)
    before = partitions(clickhouse)
    assert before["events"] == ["202608", "202609", "202611"]
    assert {day: calls_out(clickhouse, day) for day in CALLS} == {
        day: {"activity_15m": n, "activity_daily": n} for day, n in CALLS.items()
    }

    # A dry run says what would go and drops nothing.
    dry = apply(clickhouse, SHORTEST, NOW, dry_run=True)
    assert [(p.table, p.partition, p.rows) for p in dry.drop] == EXPECTED_DROPS
    assert partitions(clickhouse) == before
    assert frozen_through(clickhouse) is None

    counted = dropped_partitions("events")
    done = apply(clickhouse, SHORTEST, NOW)
    assert [(p.table, p.partition, p.rows) for p in done.drop] == EXPECTED_DROPS
    assert dropped_partitions("events") == counted + 1
    assert done.failed == []
    after = partitions(clickhouse)
    assert after["events"] == ["202609", "202611"]
    assert after["alerts"] == after["alert_deliveries"] == ["202611"]
    assert after[BATCHES_TABLE] == ["202611"]
    for table in ("activity_15m", "activity_daily", "payments_daily"):
        assert after.get(table) == before.get(table), table
    assert stored_events(clickhouse) == {"2026-09-15": 1, "2026-11-26": 3}
    logged = clickhouse.execute(
        f"SELECT table_name, partition, toString(kept_from), rows "
        f"FROM {clickhouse.database}.retention_log FINAL ORDER BY table_name, partition"
    )
    assert (
        "events",
        "202608",
        "2026-09-01",
        2,
    ) in [(str(t), str(p), str(k), int(r)) for t, p, k, r in logged]
    # September 1st starts before its UTC day in zones east of UTC: it is frozen too.
    assert frozen_through(clickhouse) == date(2026, 9, 1)

    # Running again drops nothing more.
    assert apply(clickhouse, SHORTEST, NOW).drop == []
    assert partitions(clickhouse) == after

    # Recomputing every day of the three months leaves 20 August's rollups as they were.
    rebuild(clickhouse, date(2026, 8, 1), date(2026, 11, 30))
    assert {day: calls_out(clickhouse, day) for day in CALLS} == {
        day: {"activity_15m": n, "activity_daily": n} for day, n in CALLS.items()
    }


async def test_a_late_record_for_a_dropped_day_does_not_rewrite_its_rollups(
    clickhouse: ClickHouse,
) -> None:
    await three_months(clickhouse)
    apply(clickhouse, SHORTEST, NOW)
    # A replay brings one more call of 20 August, logged as a batch of today: the updater
    # would recompute 20 August from that one event (1 call, not 2, and not 3).
    await store_day(clickhouse, AUG20, 1, NOW)
    RollupUpdater(clickhouse, CountingSettings()).run_once()
    assert calls_out(clickhouse, AUG20) == {"activity_15m": 2, "activity_daily": 2}
    # The partition it brought back is dropped again on the next run.
    again = apply(clickhouse, SHORTEST, NOW)
    assert [(p.table, p.partition) for p in again.drop] == [("events", "202608")]
    assert calls_out(clickhouse, AUG20) == {"activity_15m": 2, "activity_daily": 2}


async def test_rollups_go_only_after_their_own_retention(clickhouse: ClickHouse) -> None:
    await three_months(clickhouse)
    # Rollups kept 90 days like the events: their August goes too, the rest stays.
    both = SHORTEST.model_copy(update={"rollups_days": 90})
    dropped = {(p.table, p.partition) for p in apply(clickhouse, both, NOW).drop}
    assert {("activity_15m", "202608"), ("activity_daily", "202608")} <= dropped
    assert partitions(clickhouse)["activity_daily"] == ["202609", "202611"]
    assert calls_out(clickhouse, AUG20) == {"activity_15m": 0, "activity_daily": 0}
    assert calls_out(clickhouse, SEP15) == {"activity_15m": 1, "activity_daily": 1}


async def test_zero_keeps_for_ever_and_no_watermark_keeps_the_batch_log(
    clickhouse: ClickHouse,
) -> None:
    apply_migrations(clickhouse)
    await store_day(clickhouse, AUG20, 2, datetime(2026, 8, 20, 18, tzinfo=UTC))
    # No rollup pass yet: the batch log names days still to recompute, whatever its age.
    forever = RetentionSettings(events_days=0, rollups_days=0, alerts_days=0)
    result = plan(clickhouse, forever, NOW)
    assert result.drop == []
    assert any("no rollup watermark" in note for note in result.notes)
    assert any(note.startswith("rollup_state: no partition key") for note in result.notes)


def test_the_command_says_what_it_would_drop_then_drops_it(
    cli_env: Settings,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
) -> None:
    """With the default retention (events 400 days), calls of March 2020 are long expired."""
    assert main(["schema", "apply"]) == 0
    client = NativeClickHouse(cli_env.clickhouse)
    try:
        asyncio.run(store_day(client, date(2020, 3, 10), 2, datetime(2020, 3, 10, 18, tzinfo=UTC)))
        capsys.readouterr()
        assert main(["retention", "apply", "--dry-run"]) == 0
        out = capsys.readouterr().out
        assert "would drop events 202003 (2020-03-01 to 2020-03-31, 2 rows)" in out
        assert "ingest_batches: kept whole until the rollups have consumed it" in out
        assert "schema_migrations: no partition key" in out
        assert stored_events(client) == {"2020-03-10": 2}

        assert main(["retention", "apply"]) == 0
        assert "dropped events 202003 (2020-03-01 to 2020-03-31, 2 rows)" in capsys.readouterr().out
        assert stored_events(client) == {}
        assert main(["retention", "apply"]) == 0
        assert "nothing to drop" in capsys.readouterr().out
    finally:
        client.close()


@pytest.mark.parametrize("key", ["toYYYYMMDD(occurred_at)", "toDate(occurred_at)"])
def test_daily_partitions_go_day_by_day(clickhouse: ClickHouse, key: str) -> None:
    """Not what the migrations use, but a table partitioned by day is understood: with 90 days
    at NOW the first day kept is 11 September, so 10 September goes and 11 September stays."""
    apply_migrations(clickhouse)
    db = clickhouse.database
    clickhouse.execute(f"DROP TABLE {db}.events")
    clickhouse.execute(
        f"CREATE TABLE {db}.events (event_id String, occurred_at DateTime('UTC')) "
        f"ENGINE = ReplacingMergeTree PARTITION BY {key} ORDER BY event_id"
    )
    days = [datetime(2026, 9, day, 12, tzinfo=UTC) for day in (9, 10, 11, 12)]
    clickhouse.insert_columns(
        "events", ("event_id", "occurred_at"), [[f"e{n}" for n in range(4)], days]
    )
    done = apply(clickhouse, SHORTEST, NOW)
    assert [(p.table, p.first_day) for p in done.drop] == [
        ("events", date(2026, 9, 9)),
        ("events", date(2026, 9, 10)),
    ]
    assert done.failed == []
    assert stored_events(clickhouse) == {"2026-09-11": 1, "2026-09-12": 1}
    assert frozen_through(clickhouse) == date(2026, 9, 11)
    assert apply(clickhouse, SHORTEST, NOW).drop == []
