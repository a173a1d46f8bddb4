"""What the alert engine reads, on both ClickHouse engines: today's minute-by-minute activity,
the end of each manager's latest call or chat, open tasks, day totals and the hourly history.

The directory is the worked examples' (tests/integration/test_worked_examples.py): Ivanova
(101, chat op-101, CRM u-101) and Sidorova (102, CRM 1102) in Moscow (UTC+3), Petrov (201) in
Vladivostok (UTC+10). It is 12:00 UTC on Thursday 26 November 2026 (15:00 in Moscow).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from processors.pipeline import RawMessage
from queries.history import query_hourly_history
from queries.todays_activity import TodaysActivity, _WallClock, query_activity_snapshot
from salespulse.activity import HourRow, OpenTask
from salespulse.activity_metrics import ACTIVITY_METRIC_NAMES
from salespulse.sections import CountingSettings
from sinks.clickhouse.client import ClickHouse, as_date
from sinks.clickhouse.migrations import apply_migrations
from sinks.clickhouse.rollup import rebuild
from sinks.clickhouse.sink import ClickHouseSink
from tests.integration.test_rollups import process
from tests.integration.test_worked_examples import DIRECTORY, cdr, chat, crm

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
NOV24, NOV25, NOV26 = date(2026, 11, 24), date(2026, 11, 25), date(2026, 11, 26)
STORED = datetime(2026, 11, 28, tzinfo=UTC)  # the clock of the worker that processed it all


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


CDRS = [
    # One call, three legs (linkedid L1): it rings Ivanova unanswered, rings her again and she
    # talks 60 s (until 09:01:25), then she transfers it to Sidorova, who talks 120 s (until
    # 09:03:30). One incoming call each, at the minute of each one's first leg.
    cdr(
        caller="79161110001", callee="101", start="2026-11-26T09:00:00+00:00", talk=0, linkedid="L1"
    ),
    cdr(
        caller="79161110001",
        callee="101",
        start="2026-11-26T09:00:20+00:00",
        talk=60,
        linkedid="L1",
    ),
    cdr(
        caller="79161110001",
        callee="102",
        start="2026-11-26T09:01:25+00:00",
        talk=120,
        linkedid="L1",
    ),
    # Two days ago in Moscow: not today in any zone, but in the day totals.
    cdr(caller="101", callee="79161110002", start="2026-11-24T08:00:00+00:00", talk=30),
    # 00:30 on 26 November in Vladivostok is 14:30 UTC on the 25th: Petrov's today.
    cdr(caller="201", callee="74232000000", start="2026-11-25T14:30:00+00:00", talk=45),
    # Extension 999 is nobody's: unattributed, so in none of the numbers below.
    cdr(caller="999", callee="79161110003", start="2026-11-26T10:00:00+00:00", talk=20),
]
CHATS = [
    # Served from 13:02:11 Moscow time, first answer after 54 s, closed at 13:30 (10:30 UTC).
    chat(
        "wa-1",
        started="2026-11-26T13:02:11+03:00",
        first_response="2026-11-26T13:03:05+03:00",
        closed="2026-11-26T13:30:00+03:00",
    ),
]
CRM = [
    # Open: a deadline, no completion.
    crm(
        "t1",
        "task.created",
        "2026-11-26T10:00:00+03:00",
        entity="task:1",
        due_at="2026-11-26T18:00:00+03:00",
    ),
    # Completed: not open.
    crm(
        "t2",
        "task.created",
        "2026-11-26T09:00:00+03:00",
        entity="task:2",
        due_at="2026-11-26T12:00:00+03:00",
    ),
    crm("t2d", "task.completed", "2026-11-26T11:00:00+03:00", entity="task:2"),
    # No deadline: nothing can be overdue.
    crm("t3", "task.created", "2026-11-26T09:30:00+03:00", entity="task:3"),
    # Created by Ivanova, handed to Sidorova a day later with a new deadline: Sidorova's, due
    # on the 27th, created when Ivanova created it.
    crm(
        "t4",
        "task.created",
        "2026-11-24T10:00:00+03:00",
        entity="task:4",
        due_at="2026-11-25T18:00:00+03:00",
    ),
    crm(
        "t4s",
        "task.created",
        "2026-11-25T09:00:00+03:00",
        entity="task:4",
        due_at="2026-11-27T18:00:00+03:00",
        user_id="1102",
    ),
    # Created 50 days ago: a forgotten leftover, not today's business.
    crm(
        "t5",
        "task.created",
        "2026-10-07T10:00:00+03:00",
        entity="task:5",
        due_at="2026-10-08T18:00:00+03:00",
    ),
    # An unknown CRM user's task, and a task without an entity (nothing ties its events).
    crm(
        "t6",
        "task.created",
        "2026-11-26T10:00:00+03:00",
        entity="task:6",
        due_at="2026-11-26T18:00:00+03:00",
        user_id="u-999",
    ),
    crm("t7", "task.created", "2026-11-26T10:00:00+03:00", due_at="2026-11-26T18:00:00+03:00"),
]


async def load(ch: ClickHouse) -> None:
    apply_migrations(ch)
    messages = [
        RawMessage("pbx", 0, 0, [("sp-format", b"asterisk-cdr-csv")], b"\n".join(CDRS)),
        RawMessage("chat", 0, 1, [("sp-format", b"chat-session-json")], b"\n".join(CHATS)),
        RawMessage("crm", 0, 2, [("sp-format", b"crm-event-json")], b"\n".join(CRM)),
    ]
    result = process(messages)
    assert not result.dead_letters, result.dead_letters
    await ClickHouseSink(lambda: ch).write_events(result.rows)
    rebuild(ch, date(2026, 10, 1), date(2026, 11, 27))


def one(at: str, value: int = 1) -> tuple[tuple[datetime, int], ...]:
    return ((utc(at), value),)


async def test_the_snapshot_has_todays_minutes_last_activity_and_open_tasks(
    clickhouse: ClickHouse,
) -> None:
    await load(clickhouse)
    snapshot = query_activity_snapshot(clickhouse, DIRECTORY, NOW, CountingSettings())

    assert snapshot.taken_at == NOW
    assert snapshot.minutes == {
        "ivanova": {
            "calls_in": one("2026-11-26T09:00Z"),
            "calls_in_answered": one("2026-11-26T09:00Z"),
            "conversations": one("2026-11-26T09:00Z"),
            "talk_seconds": one("2026-11-26T09:00Z", 60),
            "chats": one("2026-11-26T10:02Z"),
            "chats_answered": one("2026-11-26T10:02Z"),
            "chat_first_response_seconds": one("2026-11-26T10:02Z", 54),
            "tasks_created": (
                (utc("2026-11-26T06:00Z"), 1),  # task:2
                (utc("2026-11-26T06:30Z"), 1),  # task:3
                (utc("2026-11-26T07:00Z"), 2),  # task:1, and t7: a task, if an untracked one
            ),
            "tasks_done": one("2026-11-26T08:00Z"),
        },
        "sidorova": {
            "calls_in": one("2026-11-26T09:01Z"),
            "calls_in_answered": one("2026-11-26T09:01Z"),
            "conversations": one("2026-11-26T09:01Z"),
            "talk_seconds": one("2026-11-26T09:01Z", 120),
            "tasks_created": one("2026-11-25T06:00Z"),  # local yesterday is in range too
        },
        "petrov": {
            "calls_out": one("2026-11-25T14:30Z"),
            "calls_out_answered": one("2026-11-25T14:30Z"),
            "conversations": one("2026-11-25T14:30Z"),
            "talk_seconds": one("2026-11-25T14:30Z", 45),
        },
    }
    assert snapshot.count("ivanova", "tasks_created", utc("2026-11-26T06:00Z"), NOW) == 4
    assert snapshot.count("ivanova", "calls_in", utc("2026-11-26T09:01Z"), NOW) == 0

    # The latest end of any leg or chat: Ivanova's chat closed after her call ended.
    assert snapshot.last_active == {
        "ivanova": utc("2026-11-26T10:30:00Z"),
        "sidorova": utc("2026-11-26T09:03:30Z"),
        "petrov": utc("2026-11-25T14:30:50Z"),
    }
    # Each task as known since its first event was stored (by the worker's clock).
    assert {task.known_at for task in snapshot.open_tasks} == {STORED}
    assert tuple(replace(task, known_at=None) for task in snapshot.open_tasks) == (
        OpenTask("task:1", "ivanova", "msk", utc("2026-11-26T15:00Z"), utc("2026-11-26T07:00Z")),
        OpenTask("task:4", "sidorova", "msk", utc("2026-11-27T15:00Z"), utc("2026-11-24T07:00Z")),
    )
    # Everything was stored on the 28th, long after it ended: loaded after the fact.
    assert snapshot.loading == {
        "ivanova": (NOV26, STORED),
        "sidorova": (NOV26, STORED),
        "petrov": (NOV26, STORED),
    }


async def test_the_snapshot_has_the_day_totals_of_the_last_days(clickhouse: ClickHouse) -> None:
    await load(clickhouse)
    snapshot = query_activity_snapshot(clickhouse, DIRECTORY, NOW, CountingSettings())
    assert snapshot.days["ivanova"][NOV24] == {
        "calls_out": 1,
        "calls_out_answered": 1,
        "conversations": 1,
        "talk_seconds": 30,
        "tasks_created": 1,
    }
    assert snapshot.day_total("ivanova", "tasks_created", NOV26) == 4
    assert snapshot.day_total("ivanova", "chat_first_response_seconds", NOV26) == 54
    assert snapshot.day_total("sidorova", "tasks_created", NOV25) == 1
    assert "" not in snapshot.days
    assert min(day for days in snapshot.days.values() for day in days) >= date(2026, 11, 18)


async def test_the_hourly_history_equals_the_rollup(clickhouse: ClickHouse) -> None:
    await load(clickhouse)
    # From 1 November: task:5's day (7 October) is rolled up too, and must be left out.
    history = query_hourly_history(clickhouse, date(2026, 11, 1), date(2026, 11, 30))

    names = ", ".join(ACTIVITY_METRIC_NAMES)
    quarters = clickhouse.execute(
        f"SELECT manager_id, department_id, local_date, toUInt32(bucket), {names} "
        f"FROM {clickhouse.database}.activity_15m FINAL "
        "WHERE manager_id != '' AND local_date >= %(first)s",
        {"first": date(2026, 11, 1)},
    )
    rolled: dict[tuple[str, str, date, int], dict[str, int]] = defaultdict(dict)
    for manager, department, day, bucket, *values in quarters:
        counts = rolled[(manager, department, as_date(day), int(bucket) % 86400 // 3600)]
        for name, value in zip(ACTIVITY_METRIC_NAMES, values, strict=True):
            if value:
                counts[name] = counts.get(name, 0) + int(value)
    expected = {key: counts for key, counts in rolled.items() if counts}
    assert {(r.manager_id, r.department_id, r.local_date, r.hour): r.counts for r in history} == (
        expected
    )
    assert len(history) == len(expected)
    assert (
        HourRow(
            "ivanova",
            "msk",
            NOV26,
            12,
            {"calls_in": 1, "calls_in_answered": 1, "conversations": 1, "talk_seconds": 60},
        )
        in history
    )
    assert HourRow("ivanova", "msk", NOV26, 9, {"tasks_created": 2}) in history
    call = {"calls_out": 1, "calls_out_answered": 1, "conversations": 1, "talk_seconds": 45}
    assert HourRow("petrov", "vvo", NOV26, 0, call) in history
    assert all(row.manager_id for row in history)


async def store(ch: ClickHouse, offset: int, cdrs: list[bytes]) -> None:
    """CDRs stored as a batch of the worker: events, then the batch log."""
    message = RawMessage("pbx", 0, offset, [("sp-format", b"asterisk-cdr-csv")], b"\n".join(cdrs))
    result = process([message])
    assert not result.dead_letters, result.dead_letters
    await ClickHouseSink(lambda: ch).write_events(result.rows)
    columns = ("topic", "partition", "first_offset", "last_offset", "rows", "inserted_at")
    row = ["pbx", 0, offset, offset, len(result.rows), NOW]
    ch.insert_columns("ingest_batches", columns, [[value] for value in row])


async def test_reading_again_takes_up_recent_and_late_records_exactly(
    clickhouse: ClickHouse,
) -> None:
    await load(clickhouse)
    counting = CountingSettings()
    reader = TodaysActivity(counting)
    first = reader.read(clickhouse, DIRECTORY, NOW)
    assert first.minutes == query_activity_snapshot(clickhouse, DIRECTORY, NOW, counting).minutes
    assert reader.read(clickhouse, DIRECTORY, NOW + timedelta(seconds=1)) is first  # no batch

    # A call of Sidorova's a minute ago (after the cut), and two late records of the morning
    # (before it): one more leg of the 09:00 call, ringing Ivanova unanswered in between (the
    # call is consolidated anew), and an outgoing call of Ivanova's at 08:00 UTC.
    later = NOW + timedelta(minutes=1)
    await store(
        clickhouse,
        10,
        [
            cdr(caller="102", callee="79161110004", start="2026-11-26T11:59:00+00:00", talk=40),
            cdr(
                caller="79161110001",
                callee="101",
                start="2026-11-26T09:00:10+00:00",
                talk=0,
                linkedid="L1",
            ),
            cdr(caller="101", callee="79161110005", start="2026-11-26T08:00:00+00:00", talk=35),
        ],
    )
    second = reader.read(clickhouse, DIRECTORY, later)
    assert second.minutes == query_activity_snapshot(clickhouse, DIRECTORY, later, counting).minutes
    assert second.minutes["ivanova"]["calls_out"] == one("2026-11-26T08:00Z")
    assert second.minutes["sidorova"]["calls_out"] == one("2026-11-26T11:59Z")
    # Petrov's minutes did not change: the very same series, indexed once.
    assert second.minutes["petrov"] is first.minutes["petrov"]

    # Half an hour on, Sidorova's call is before the cut too; one more record of the evening.
    evening = later + timedelta(minutes=30)
    await store(
        clickhouse,
        11,
        [cdr(caller="201", callee="74232000001", start="2026-11-26T12:20:00+00:00", talk=50)],
    )
    third = reader.read(clickhouse, DIRECTORY, evening)
    full = query_activity_snapshot(clickhouse, DIRECTORY, evening, counting)
    assert third.minutes == full.minutes
    assert third.last_active == full.last_active
    assert third.open_tasks == full.open_tasks
    assert third.days == full.days
    assert third.minutes["sidorova"] is second.minutes["sidorova"]


def test_a_reader_for_some_metrics_reads_only_those() -> None:
    assert TodaysActivity(CountingSettings(), {"calls_out"}).metrics == {"calls_out"}
    assert TodaysActivity(CountingSettings()).metrics is None


def test_local_minutes_become_utc_instants_across_clock_changes() -> None:
    clock = _WallClock()

    def convert(zone: str, local: str) -> datetime:
        wall = int(datetime.fromisoformat(local).replace(tzinfo=UTC).timestamp())
        return datetime.fromtimestamp(clock.to_unix(ZoneInfo(zone), wall), UTC)

    # Berlin, 29 March 2026: 01:59 CET is followed by 03:00 CEST.
    assert convert("Europe/Berlin", "2026-03-29T01:59") == utc("2026-03-29T00:59Z")
    assert convert("Europe/Berlin", "2026-03-29T03:00") == utc("2026-03-29T01:00Z")
    # Berlin, 25 October 2026: 02:30 happened twice; the stored wall clock cannot tell which,
    # so it is the first (CEST).
    assert convert("Europe/Berlin", "2026-10-25T02:30") == utc("2026-10-25T00:30Z")
    assert convert("Europe/Berlin", "2026-10-25T03:00") == utc("2026-10-25T02:00Z")
    # Lord Howe Island moves its clocks by half an hour, at 02:00 on 4 October 2026, inside a
    # wall-clock hour: 01:59 is UTC+10:30, 02:45 already UTC+11.
    assert convert("Australia/Lord_Howe", "2026-10-04T01:59") == utc("2026-10-03T15:29Z")
    assert convert("Australia/Lord_Howe", "2026-10-04T02:45") == utc("2026-10-03T15:45Z")
    assert convert("Asia/Vladivostok", "2026-11-26T00:30") == utc("2026-11-25T14:30Z")
