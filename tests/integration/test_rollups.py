"""Dashboard rollups equal the exact numbers, on both ClickHouse engines, whatever happens."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime
from decimal import Decimal

from processors.parsers import build_parsers
from processors.pipeline import BatchProcessor, BatchResult, RawMessage
from processors.privacy import PhoneProtector
from processors.runtime import batch_log
from salespulse.directory import Directory, parse_directory
from salespulse.settings import CountingSettings, ParsingSettings
from salespulse.summary import query_summary
from sinks.clickhouse.client import ClickHouse
from sinks.clickhouse.migrations import apply_migrations
from sinks.clickhouse.rollup import ACTIVITY_METRIC_NAMES, RollupUpdater, rebuild
from sinks.clickhouse.sink import BATCH_COLUMNS, BATCHES_TABLE, ClickHouseSink
from tests.integration.test_worked_examples import DIRECTORY, SCENARIOS

OUTGOING_FROM_101 = [
    (
        f'"","101","7916000000{n}","from-internal","","SIP/101-0000000{n}",'
        f'"SIP/provider-0000001{n}","Dial","","2026-11-26 0{n}:00:00","2026-11-26 0{n}:00:05",'
        f'"2026-11-26 0{n}:01:05",65,60,"ANSWERED","DOCUMENTATION"'
    ).encode()
    for n in (7, 8)
]
DAYS = [date(2026, 10, 24), date(2026, 10, 25), date(2026, 11, 25), date(2026, 11, 26)]


def process(messages: list[RawMessage], directory: Directory = DIRECTORY) -> BatchResult:
    return BatchProcessor(
        build_parsers(ParsingSettings()),
        lambda: directory,
        PhoneProtector(b"k"),
        max_message_bytes=1 << 20,
        clock=lambda: datetime(2026, 11, 28, tzinfo=UTC),
    ).process(messages)


def every_scenario() -> list[RawMessage]:
    pbx = [line for scenario in SCENARIOS for line in scenario.cdrs]
    crm = [line for scenario in SCENARIOS for line in scenario.crm]
    return [
        RawMessage("pbx", 0, 0, [("sp-format", b"asterisk-cdr-csv")], b"\n".join(pbx)),
        RawMessage("crm", 0, 1, [("sp-format", b"crm-event-json")], b"\n".join(crm)),
    ]


def rolled_up(ch: ClickHouse, day: date, table: str = "activity_15m") -> dict[str, Counter[str]]:
    sums = ", ".join(f"sum({name})" for name in ACTIVITY_METRIC_NAMES)
    rows = ch.execute(
        f"SELECT manager_id, {sums} FROM {ch.database}.{table} FINAL "
        "WHERE local_date = %(day)s GROUP BY manager_id",
        {"day": day},
    )
    return {
        manager or "(unattributed)": +Counter(
            dict(zip(ACTIVITY_METRIC_NAMES, map(int, values), strict=True))
        )
        for manager, *values in rows
    }


def exact(ch: ClickHouse, day: date) -> dict[str, Counter[str]]:
    rows = query_summary(ch, DIRECTORY, last_day=day)
    return {row.manager_id: +Counter(row.counts) for row in rows if any(row.counts.values())}


async def test_rollups_equal_the_exact_numbers_for_every_worked_example(
    clickhouse: ClickHouse,
) -> None:
    apply_migrations(clickhouse)
    await ClickHouseSink(lambda: clickhouse).write_events(process(every_scenario()).rows)
    assert rebuild(clickhouse, DAYS[0], DAYS[-1]) > 0
    for day in DAYS:
        assert rolled_up(clickhouse, day) == exact(clickhouse, day), day
        assert rolled_up(clickhouse, day, "activity_daily") == exact(clickhouse, day), day
    assert rolled_up(clickhouse, date(2026, 11, 26))["sidorova"]["talk_seconds"] > 0


async def test_activity_moved_to_another_manager_leaves_no_stale_rows(
    clickhouse: ClickHouse,
) -> None:
    apply_migrations(clickhouse)
    sink = ClickHouseSink(lambda: clickhouse)
    day = date(2026, 11, 26)
    calls = [
        RawMessage("pbx", 0, 0, [("sp-format", b"asterisk-cdr-csv")], b"\n".join(OUTGOING_FROM_101))
    ]
    await sink.write_events(process(calls).rows)
    rebuild(clickhouse, day, day)
    assert rolled_up(clickhouse, day)["ivanova"]["calls_out"] == 2
    # Extension 101 turns out to have been Sidorova's all along; the history is replayed.
    corrected = parse_directory(
        "departments: [{id: msk, timezone: Europe/Moscow}]\n"
        "managers: [{id: sidorova, department: msk, identities: [{family: pbx, id: '101'}]}]\n",
        suffix=".yaml",
    )
    await sink.write_events(process(calls, corrected).rows)
    rebuild(clickhouse, day, day)
    for table in ("activity_15m", "activity_daily"):
        after = rolled_up(clickhouse, day, table)
        assert not after.get("ivanova"), table  # only zero rows left
        assert after["sidorova"]["calls_out"] == 2, table


async def test_the_updater_follows_the_batch_log_and_payments_keep_currencies(
    clickhouse: ClickHouse,
) -> None:
    apply_migrations(clickhouse)
    messages = every_scenario()
    result = process(messages)
    sink = ClickHouseSink(lambda: clickhouse)
    await sink.write_events(result.rows)
    await sink.insert(BATCHES_TABLE, BATCH_COLUMNS, batch_log(messages, result, "test"))

    assert RollupUpdater(clickhouse, CountingSettings()).run_once() > 0
    for day in DAYS:
        assert rolled_up(clickhouse, day) == exact(clickhouse, day), day
    payments = clickhouse.execute(
        f"SELECT currency, payments, toString(amount) FROM {clickhouse.database}.payments_daily "
        "FINAL WHERE manager_id = 'ivanova' ORDER BY currency"
    )
    assert [(c, int(n), Decimal(a)) for c, n, a in payments] == [
        ("RUB", 1, Decimal("1500.00")),
        ("USD", 1, Decimal("200.50")),
    ]
    (state,) = clickhouse.execute(f"SELECT count() FROM {clickhouse.database}.rollup_state")
    assert int(state[0]) == 1
