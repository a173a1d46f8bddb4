"""Dashboard rollups equal the exact numbers, on both ClickHouse engines, whatever happens."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from ingest.generator import Traffic
from processors.direct_load import store_traffic
from processors.parsers import build_parsers
from processors.pipeline import BatchProcessor, BatchResult, RawMessage
from processors.privacy import PhoneProtector
from processors.runtime import batch_log
from salespulse.activity_metrics import ACTIVITY_METRIC_NAMES
from salespulse.directory import Directory, load_directory, parse_directory
from salespulse.sections import CountingSettings, ParsingSettings
from salespulse.summary import query_summary
from sinks.clickhouse.client import ClickHouse
from sinks.clickhouse.metric_sql import day_params
from sinks.clickhouse.migrations import MIGRATIONS_DIR, apply_migrations
from sinks.clickhouse.rollup import RollupUpdater, rebuild, recompute_days
from sinks.clickhouse.sink import BATCH_COLUMNS, BATCHES_TABLE, ClickHouseSink
from sinks.clickhouse.worktime import WORKTIME_METRICS, query_working_time
from tests.grafana_macros import QueryContext, expand
from tests.integration.pipeline_harness import WEEK_END
from tests.integration.test_grafana_dashboards import GRAFANA, dialect_for, load, query_panels
from tests.integration.test_worked_examples import DIRECTORY, NOV26, SCENARIOS, cdr, crm

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


def rows_of(ch: ClickHouse, table: str, manager: str, day: date) -> list[tuple[Any, ...]]:
    """``manager``'s rows of ``day`` in ``table`` (latest versions), without the first three
    keys: the bucket or currency, if any, then the metrics, then the version."""
    rows = ch.execute(
        f"SELECT * FROM {ch.database}.{table} FINAL "
        "WHERE manager_id = %(manager)s AND local_date = %(day)s",
        {"manager": manager, "day": day},
    )
    return [tuple(row[3:]) for row in rows]


async def test_a_reattributed_event_leaves_an_explicit_zero_row_in_every_rollup(
    clickhouse: ClickHouse,
) -> None:
    apply_migrations(clickhouse)
    sink = ClickHouseSink(lambda: clickhouse)
    day = date(2026, 11, 26)
    payment = crm(
        "p-zero", "payment.received", "2026-11-26T12:05:00+03:00", amount="99.90", currency="RUB"
    )
    messages = [
        RawMessage("pbx", 0, 0, [("sp-format", b"asterisk-cdr-csv")], OUTGOING_FROM_101[0]),
        RawMessage("crm", 0, 1, [("sp-format", b"crm-event-json")], payment),
    ]
    await sink.write_events(process(messages).rows)
    recompute_days(clickhouse, [day])
    # Extension 101 and CRM user u-101 were Sidorova's: the replay moves both events to her.
    corrected = parse_directory(
        "departments: [{id: msk, timezone: Europe/Moscow}]\n"
        "managers: [{id: sidorova, department: msk, identities: "
        "[{family: pbx, id: '101'}, {family: crm, id: u-101}]}]\n",
        suffix=".yaml",
    )
    await sink.write_events(process(messages, corrected).rows)
    recompute_days(clickhouse, [day])

    db = clickhouse.database
    ((version,),) = clickhouse.execute(f"SELECT max(version) FROM {db}.activity_15m")
    # Ivanova's quarter (07:00 local, the call; 12:00, the payment), her day and her roubles are
    # still there, all zero, written by the latest pass.
    quarters = rows_of(clickhouse, "activity_15m", "ivanova", day)
    assert len(quarters) == 2
    assert all(set(map(int, row[1:-1])) == {0} for row in quarters)
    assert {int(row[-1]) for row in quarters} == {int(version)}
    (daily,) = rows_of(clickhouse, "activity_daily", "ivanova", day)
    assert set(map(int, daily[:-1])) == {0}
    assert int(daily[-1]) == int(version)
    ((currency, payments, amount, payment_version),) = rows_of(
        clickhouse, "payments_daily", "ivanova", day
    )
    assert (currency, int(payments), Decimal(str(amount))) == ("RUB", 0, Decimal(0))
    assert int(payment_version) == int(version)
    ((moved, paid),) = clickhouse.execute(
        f"SELECT sum(calls_out), sum(payments) FROM {db}.activity_daily FINAL "
        "WHERE manager_id = 'sidorova' AND local_date = %(day)s",
        {"day": day},
    )
    assert (int(moved), int(paid)) == (1, 1)
    # A pass finding nothing new writes the zero rows again, and nothing else changes.
    recompute_days(clickhouse, [day])
    assert len(rows_of(clickhouse, "activity_15m", "ivanova", day)) == 2


# Ivanova's time events (Moscow time), with the rules' corner cases; see worktime.py.
NOV25 = date(2026, 11, 25)
TIME_EVENTS = [
    ("workday.start", "2026-11-25T22:00:00", "remote"),
    ("workday.pause", "2026-11-25T23:00:00", ""),  # 1 h remote on the 25th
    ("workday.resume", "2026-11-25T23:30:00", "office"),  # open at midnight: counts nothing
    ("workday.stop", "2026-11-26T00:30:00", ""),  # nothing open on the 26th: ignored
    ("workday.pause", "2026-11-26T08:55:00", ""),  # nothing open: ignored
    ("workday.start", "2026-11-26T09:00:00", "office"),
    ("workday.start", "2026-11-26T09:00:00", "office"),  # sent twice (two ids)
    ("visit.trip_start", "2026-11-26T09:30:00", ""),
    ("visit.visit_end", "2026-11-26T10:00:00", ""),  # nothing open: ignored
    ("visit.visit_start", "2026-11-26T10:30:00", "visit"),
    ("visit.visit_start", "2026-11-26T10:45:00", "visit"),  # already open: ignored
    ("workday.pause", "2026-11-26T11:00:00", ""),  # 2 h in the office
    ("visit.visit_end", "2026-11-26T11:30:00", ""),  # 1 h on the visit
    ("workday.stop", "2026-11-26T11:30:00", ""),  # nothing open: ignored
    ("workday.resume", "2026-11-26T12:00:00", "remote"),
    ("visit.trip_start", "2026-11-26T12:00:00", ""),
    ("workday.resume", "2026-11-26T13:00:00", "office"),  # already open: still remote
    ("visit.visit_start", "2026-11-26T14:00:00", "visit"),
    ("visit.visit_end", "2026-11-26T14:20:00", ""),  # 20 min
    ("visit.trip_end", "2026-11-26T14:30:00", ""),
    ("workday.stop", "2026-11-26T15:00:00", ""),  # 3 h remote
    ("workday.start", "2026-11-26T16:00:00", "office"),  # never stopped: counts nothing
    ("visit.visit_start", "2026-11-26T17:00:00", "visit"),  # never ended
]
EXPECTED_WORKTIME = {NOV25: [0, 3600, 0, 0], NOV26: [7200, 10800, 4800, 2]}


def daily_worktime(ch: ClickHouse, first: date, last: date) -> dict[tuple[Any, ...], list[int]]:
    rows = ch.execute(
        f"SELECT manager_id, department_id, toString(local_date), {', '.join(WORKTIME_METRICS)} "
        f"FROM {ch.database}.activity_daily FINAL "
        "WHERE local_date >= %(first)s AND local_date <= %(last)s",
        {"first": first, "last": last},
    )
    return {
        (m, d, date.fromisoformat(day)): [int(v) for v in values]
        for m, d, day, *values in rows
        if any(int(v) for v in values)
    }


def reference_worktime(ch: ClickHouse, first: date, last: date) -> dict[tuple[Any, ...], list[int]]:
    """Working time by the Python rules over the stored events."""
    computed = query_working_time(ch, day_params(first, last, CountingSettings()))
    return {
        (m, d, day): values
        for (m, d, day), values in computed.items()
        if first <= day <= last and any(values)
    }


async def test_working_time_is_computed_in_clickhouse_by_the_rules(
    clickhouse: ClickHouse,
) -> None:
    apply_migrations(clickhouse)
    lines = [
        crm(f"t-{n}", kind_action, f"{at}+03:00", location=location)
        if location
        else crm(f"t-{n}", kind_action, f"{at}+03:00")
        for n, (kind_action, at, location) in enumerate(TIME_EVENTS)
    ]
    messages = [RawMessage("crm", 0, 0, [("sp-format", b"crm-event-json")], b"\n".join(lines))]
    await ClickHouseSink(lambda: clickhouse).write_events(process(messages).rows)
    rebuild(clickhouse, NOV25, NOV26)
    expected = {("ivanova", "msk", day): values for day, values in EXPECTED_WORKTIME.items()}
    assert daily_worktime(clickhouse, NOV25, NOV26) == expected
    assert reference_worktime(clickhouse, NOV25, NOV26) == expected


async def test_working_time_of_a_generated_week_equals_the_python_rules(
    clickhouse: ClickHouse, week_traffic: tuple[Traffic, Path]
) -> None:
    apply_migrations(clickhouse)
    traffic, directory_path = week_traffic
    store_traffic(clickhouse, traffic, load_directory(directory_path), WEEK_END)
    first, last = (WEEK_END - timedelta(days=7)).date(), WEEK_END.date()
    rebuild(clickhouse, first, last)
    computed = daily_worktime(clickhouse, first, last)
    assert len(computed) >= 12 * 5  # every manager's working days
    assert computed == reference_worktime(clickhouse, first, last)


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


# Ivanova's 26 November (Moscow time, UTC+3, in both departments): three outgoing calls in the
# morning while the directory has her in msk, then the directory moves her to spb and she makes
# two more in the afternoon. Each call is attributed with the directory of its batch, so the
# day is msk 3 and spb 2, 5 in all; no number of either department may be lost.
MORNING_IN_MSK = [
    cdr(caller="101", callee="79162220001", start="2026-11-26T09:05:00+03:00", talk=40),
    cdr(caller="101", callee="79162220002", start="2026-11-26T09:20:00+03:00", talk=50),
    cdr(caller="101", callee="79162220003", start="2026-11-26T11:40:00+03:00", talk=60),
]
AFTERNOON_IN_SPB = [
    cdr(caller="101", callee="79162220004", start="2026-11-26T14:10:00+03:00", talk=70),
    cdr(caller="101", callee="79162220005", start="2026-11-26T16:50:00+03:00", talk=80),
]
# The local 15-minute buckets the calls start in, and whose they are.
EXPECTED_BUCKETS = [
    ("msk", "09:00", 1),
    ("msk", "09:15", 1),
    ("msk", "11:30", 1),
    ("spb", "14:00", 1),
    ("spb", "16:45", 1),
]
EVENING = datetime(2026, 11, 26, 15, 0, tzinfo=UTC)  # 18:00 in Moscow
MOSCOW_OFFSET = "10800"


def ivanova_in(department: str) -> Directory:
    return parse_directory(
        "departments: [{id: msk, timezone: Europe/Moscow}, {id: spb, timezone: Europe/Moscow}]\n"
        f"managers: [{{id: ivanova, department: {department}, "
        "identities: [{family: pbx, id: '101'}]}]\n",
        suffix=".yaml",
    )


def department_panel(
    ch: ClickHouse, title: str, columns: str, department: str = "msk"
) -> list[tuple[Any, ...]]:
    """``columns`` of what the department overview's panel ``title`` shows at 18:00 Moscow time
    on 26 November, for ``department``."""
    dashboard = load(GRAFANA / "dashboards" / "department-overview.json")
    (panel,) = [p for p in query_panels(dashboard) if p["title"] == title]
    variables = {"department": department, "utc_offset": MOSCOW_OFFSET}
    context = QueryContext(EVENING - timedelta(days=30), EVENING, 60, variables)
    sql = expand(panel["targets"][0]["rawSql"], context, dialect_for(ch))
    ch.execute(f"USE {ch.database}")  # panels name tables without a database, as Grafana sends
    try:
        return [tuple(row) for row in ch.execute(f"SELECT {columns} FROM ({sql})")]
    finally:
        ch.execute("USE default")


async def ivanova_moves(ch: ClickHouse) -> None:
    """The morning's batch processed with the directory of the morning, the afternoon's with
    the directory of the afternoon, and the rollup timer passing after each."""
    sink = ClickHouseSink(lambda: ch)
    updater = RollupUpdater(ch, CountingSettings())
    for offset, (calls, department) in enumerate(
        [(MORNING_IN_MSK, "msk"), (AFTERNOON_IN_SPB, "spb")]
    ):
        messages = [
            RawMessage("pbx", 0, offset, [("sp-format", b"asterisk-cdr-csv")], b"\n".join(calls))
        ]
        result = process(messages, ivanova_in(department))
        await sink.write_events(result.rows)
        await sink.insert(BATCHES_TABLE, BATCH_COLUMNS, batch_log(messages, result, "test"))
        assert updater.run_once() > 0


def ivanova_by_department(ch: ClickHouse) -> list[tuple[str, int]]:
    """Her outgoing calls of 26 November per department, as ``activity_daily`` holds them."""
    rows = ch.execute(
        f"SELECT department_id, calls_out FROM {ch.database}.activity_daily FINAL "
        "WHERE manager_id = 'ivanova' AND local_date = %(day)s ORDER BY department_id",
        {"day": NOV26},
    )
    return [(str(d), int(n)) for d, n in rows]


async def test_a_manager_moved_to_another_department_keeps_both_departments_numbers(
    clickhouse: ClickHouse,
) -> None:
    apply_migrations(clickhouse)
    await ivanova_moves(clickhouse)
    db = clickhouse.database

    assert ivanova_by_department(clickhouse) == [("msk", 3), ("spb", 2)]
    (total,) = clickhouse.execute(
        f"SELECT sum(calls_out) FROM {db}.activity_daily FINAL "
        "WHERE manager_id = 'ivanova' AND local_date = %(day)s",
        {"day": NOV26},
    )
    assert int(total[0]) == 5
    summary = query_summary(clickhouse, ivanova_in("spb"), last_day=NOV26, days=1)
    assert [row.counts["calls_out"] for row in summary] == [5]  # the events agree

    quarters = clickhouse.execute(
        f"SELECT department_id, substring(toString(bucket), 12, 5), calls_out "
        f"FROM {db}.activity_15m FINAL "
        "WHERE manager_id = 'ivanova' AND local_date = %(day)s AND calls_out > 0 "
        "ORDER BY bucket",
        {"day": NOV26},
    )
    assert [(d, b, int(n)) for d, b, n in quarters] == EXPECTED_BUCKETS

    for department, outgoing in (("msk", 3), ("spb", 2)):
        today = department_panel(clickhouse, "Today in ${department}", "outgoing", department)
        assert [int(n) for (n,) in today] == [outgoing], department
        managers = department_panel(clickhouse, "Managers today", "manager, outgoing", department)
        assert [(m, int(n)) for m, n in managers] == [("ivanova", outgoing)], department
        by_day = department_panel(clickhouse, "Activity per day", "outgoing", department)
        assert [int(n) for (n,) in by_day] == [outgoing], department
    departments = department_panel(clickhouse, "All departments today", "department, outgoing")
    assert sorted((d, int(n)) for d, n in departments) == [("msk", 3), ("spb", 2)]


async def test_upgrading_recomputes_the_rollups_a_department_move_had_cut(
    clickhouse: ClickHouse, tmp_path: Path
) -> None:
    # A database from before migration 0010, whose rollups lost one department's row. Today's
    # rollup code plays the old worker, so the rollups get the columns it writes (0012's).
    migrations_before(10, tmp_path)
    apply_migrations(clickhouse, tmp_path)
    for table in ("activity_15m", "activity_daily"):
        for column in ("calls_in_answered", "calls_out_answered", "internal_talk_seconds"):
            clickhouse.execute(
                f"ALTER TABLE {clickhouse.database}.{table} ADD COLUMN {column} UInt64 DEFAULT 0"
            )
    await ivanova_moves(clickhouse)
    assert len(ivanova_by_department(clickhouse)) == 1

    assert 10 in [m.version for m in apply_migrations(clickhouse)]
    assert ivanova_by_department(clickhouse) == []  # recreated, with the watermark
    assert RollupUpdater(clickhouse, CountingSettings()).run_once() > 0
    assert ivanova_by_department(clickhouse) == [("msk", 3), ("spb", 2)]


def migrations_before(version: int, folder: Path) -> None:
    for entry in MIGRATIONS_DIR.iterdir():
        if entry.name.endswith(".sql") and int(entry.name[:4]) < version:
            (folder / entry.name).write_bytes(entry.read_bytes())


async def test_upgrading_recounts_conversations_with_customers_only(
    clickhouse: ClickHouse, tmp_path: Path
) -> None:
    # A database from before migration 0012: Ivanova's 120 s call to her colleague Petrov is
    # stored, and the rollups the old worker wrote count it as a conversation of each, with
    # their watermark past its batch.
    migrations_before(12, tmp_path)
    apply_migrations(clickhouse, tmp_path)
    call = cdr(caller="101", callee="201", start="2026-11-26T09:00:00+00:00", talk=120)
    messages = [RawMessage("pbx", 0, 0, [("sp-format", b"asterisk-cdr-csv")], call)]
    result = process(messages)
    sink = ClickHouseSink(lambda: clickhouse)
    await sink.write_events(result.rows)
    await sink.insert(BATCHES_TABLE, BATCH_COLUMNS, batch_log(messages, result, "test"))
    old_rows = [(m, d, NOV26, 1, 1, 120, 1) for m, d in (("ivanova", "msk"), ("petrov", "vvo"))]
    columns = "manager_id department_id local_date calls_internal conversations talk_seconds"
    await sink.insert("activity_daily", (*columns.split(), "version"), old_rows)
    far = datetime(2100, 1, 1, tzinfo=UTC)
    await sink.insert(
        "rollup_state", ("name", "watermark", "version"), [(RollupUpdater.name, far, 1)]
    )
    db = clickhouse.database

    assert 12 in [m.version for m in apply_migrations(clickhouse)]
    assert RollupUpdater(clickhouse, CountingSettings()).run_once() > 0
    rows = clickhouse.execute(
        f"SELECT manager_id, calls_internal, conversations, talk_seconds, internal_talk_seconds "
        f"FROM {db}.activity_daily FINAL WHERE local_date = %(day)s ORDER BY manager_id",
        {"day": NOV26},
    )
    # Each has one internal call and 120 s of internal talk, and no customer conversation.
    assert [tuple(row) for row in rows] == [("ivanova", 1, 0, 0, 120), ("petrov", 1, 0, 0, 120)]
