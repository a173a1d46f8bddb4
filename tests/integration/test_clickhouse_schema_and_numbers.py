"""Schema migrations and the per-manager numbers, on the 18.16 server and on chDB 26.9.

The worked example below is small enough to check by hand; every expected number is derived in
the comments next to it.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime

import pytest

from processors.parsers import build_parsers
from processors.pipeline import BatchProcessor, RawMessage
from processors.privacy import PhoneProtector
from salespulse.directory import parse_directory
from salespulse.sections import ParsingSettings
from salespulse.summary import query_summary
from sinks.clickhouse.client import ClickHouse, NativeClickHouse
from sinks.clickhouse.migrations import MigrationError, apply_migrations, discover
from sinks.clickhouse.sink import ClickHouseSink
from tests.conftest import LocalStack

DIRECTORY = parse_directory(
    """
departments:
  - {id: msk, timezone: Europe/Moscow}
  - {id: vvo, timezone: Asia/Vladivostok}
managers:
  - id: ivanova
    name: Anna Ivanova
    department: msk
    identities: [{family: pbx, id: "101"}, {family: chat, id: op-1}, {family: crm, id: u-1}]
  - id: petrov
    name: Pavel Petrov
    department: vvo
    identities: [{family: pbx, id: "201"}]
  - id: sidorova
    name: Olga Sidorova
    department: msk
    identities: [{family: pbx, id: "102"}]
""",
    suffix=".yaml",
)

CDR = (
    # 1. incoming to 101, answered, 151 s of talk (12:15 in Moscow)
    b'"","79161234567","101","from-trunk","""Client"" <79161234567>","SIP/provider-00000012",'
    b'"SIP/101-00000013","Dial","SIP/101,30","2026-11-26 09:15:02","2026-11-26 09:15:09",'
    b'"2026-11-26 09:17:40",158,151,"ANSWERED","DOCUMENTATION"\n'
    # 2. outgoing from 101, not answered
    b'"","101","79035550101","from-internal","""Anna"" <101>","SIP/101-00000020",'
    b'"SIP/provider-00000021","Dial","SIP/provider/79035550101","2026-11-26 09:30:00","",'
    b'"2026-11-26 09:30:20",20,0,"NO ANSWER","DOCUMENTATION"\n'
    # 3. outgoing from 101, answered, 25 s: a call but not a conversation
    b'"","101","79035550102","from-internal","""Anna"" <101>","SIP/101-00000030",'
    b'"SIP/provider-00000031","Dial","SIP/provider/79035550102","2026-11-26 09:40:00",'
    b'"2026-11-26 09:40:05","2026-11-26 09:40:30",30,25,"ANSWERED","DOCUMENTATION"\n'
    # 4. internal 101 -> 201, 40 s: one internal call and one conversation for each
    b'"","101","201","from-internal","""Anna"" <101>","SIP/101-00000040","SIP/201-00000041",'
    b'"Dial","SIP/201,30","2026-11-26 10:00:00","2026-11-26 10:00:03","2026-11-26 10:00:43",'
    b'43,40,"ANSWERED","DOCUMENTATION"\n'
    # 5. incoming to 201 at 14:30 UTC = 00:30 on 27 Nov in Vladivostok: Petrov's next day
    b'"","79140000001","201","from-trunk","""C"" <79140000001>","SIP/provider-00000050",'
    b'"SIP/201-00000051","Dial","SIP/201,30","2026-11-26 14:30:00","2026-11-26 14:30:02",'
    b'"2026-11-26 14:31:02",62,60,"ANSWERED","DOCUMENTATION"\n'
    # 6. a truncated line: a dead letter, no numbers
    b'"","79161234567","101","from-trunk"\n'
)
CHAT = (
    b'{"session_id":"wa-1","operator_id":"op-1","channel":"whatsapp",'
    b'"started_at":"2026-11-26T13:00:00+03:00","first_response_at":"2026-11-26T13:00:40+03:00",'
    b'"closed_at":"2026-11-26T13:10:00+03:00","status":"closed","client_id":"c-1","messages":6}'
)
CRM = [
    b'{"id":"e-1","type":"offer.sent","user_id":"u-1","occurred_at":"2026-11-26T15:00:00+03:00"}',
    b'{"id":"e-2","type":"payment.received","user_id":"u-1",'
    b'"occurred_at":"2026-11-26T16:00:00+03:00","amount":"1500.50","currency":"RUB"}',
]


def messages() -> list[RawMessage]:
    out = [RawMessage("raw.pbx", 0, 10, [("sp-format", b"asterisk-cdr-csv")], CDR)]
    out.append(RawMessage("raw.chat", 0, 3, [("sp-format", b"chat-session-json")], CHAT))
    out += [
        RawMessage("raw.crm", 1, n, [("sp-format", b"crm-event-json")], body)
        for n, body in enumerate(CRM)
    ]
    return out


def processor() -> BatchProcessor:
    return BatchProcessor(
        build_parsers(ParsingSettings()),
        lambda: DIRECTORY,
        PhoneProtector(b"test-key"),
        max_message_bytes=1 << 20,
        clock=lambda: datetime(2026, 11, 27, 12, 0, tzinfo=UTC),
    )


def test_migrations_apply_once_and_are_recorded(clickhouse: ClickHouse) -> None:
    first = apply_migrations(clickhouse)
    assert [m.version for m in first] == [m.version for m in discover()]
    assert apply_migrations(clickhouse) == []
    rows = clickhouse.execute(
        f"SELECT version, name FROM {clickhouse.database}.schema_migrations FINAL ORDER BY version"
    )
    assert [(int(v), n) for v, n in rows] == [(m.version, m.name) for m in first]


async def test_worked_example_numbers_survive_a_replay(clickhouse: ClickHouse) -> None:
    apply_migrations(clickhouse)
    result = processor().process(messages())
    assert [letter.reason for letter in result.dead_letters] == ["malformed"]

    sink = ClickHouseSink(lambda: clickhouse)
    await sink.write_events(result.rows)
    await sink.write_events(processor().process(messages()).rows)  # the whole batch again: a replay

    def summary(day: date) -> dict[str, dict[str, int]]:
        rows = query_summary(clickhouse, DIRECTORY, last_day=day, days=1)
        return {row.manager_id: row.counts for row in rows}

    nov26 = summary(date(2026, 11, 26))
    ivanova = nov26["ivanova"]
    assert (ivanova["calls_in"], ivanova["calls_in_answered"]) == (1, 1)  # record 1
    assert ivanova["calls_out"] == 2  # records 2 and 3
    assert ivanova["calls_out_answered"] == 1  # record 3; nobody picked up record 2
    assert ivanova["calls_internal"] == 1  # record 4
    assert ivanova["missed"] == 0  # the only incoming call was answered
    # With customers, 151 s; 25 s is under the 30 s threshold, record 4 is with Petrov.
    assert ivanova["conversations"] == 1
    assert ivanova["talk_seconds"] == 151 + 0 + 25
    assert ivanova["internal_talk_seconds"] == 40
    assert (ivanova["chats"], ivanova["offers"], ivanova["payments"]) == (1, 1, 1)

    petrov = nov26["petrov"]
    assert (petrov["calls_internal"], petrov["conversations"], petrov["talk_seconds"]) == (1, 0, 0)
    assert petrov["internal_talk_seconds"] == 40
    assert petrov["calls_in"] == 0  # record 5 belongs to his 27 November
    assert summary(date(2026, 11, 27))["petrov"]["calls_in"] == 1

    assert nov26["sidorova"].get("calls_out", 0) == 0  # listed, with zeros

    stored = clickhouse.execute(
        f"SELECT counterpart FROM {clickhouse.database}.events FINAL WHERE direction = 'incoming'"
    )
    assert stored
    assert all("7916" not in str(c) and "7914" not in str(c) for (c,) in stored)


async def test_payment_amount_is_stored_exactly(clickhouse: ClickHouse) -> None:
    apply_migrations(clickhouse)
    await ClickHouseSink(lambda: clickhouse).write_events(processor().process(messages()).rows)
    (row,) = clickhouse.execute(
        f"SELECT toString(sum(amount)) FROM {clickhouse.database}.events FINAL "
        "WHERE kind = 'payment' AND local_date = %(day)s",
        {"day": date(2026, 11, 26)},
    )
    assert str(row[0]) in ("1500.5", "1500.50")


def test_a_migration_another_worker_half_applied_completes(clickhouse: ClickHouse) -> None:
    apply_migrations(clickhouse)
    # As if another worker ran every statement but died before recording any migration.
    clickhouse.execute(f"DROP TABLE {clickhouse.database}.schema_migrations")
    assert [m.version for m in apply_migrations(clickhouse)] == [m.version for m in discover()]
    columns = clickhouse.execute(
        "SELECT name FROM system.columns WHERE database = %(db)s AND table = 'events'",
        {"db": clickhouse.database},
    )
    assert ("call_id",) in [tuple(c) for c in columns]


def test_a_migration_edited_after_it_ran_is_refused(clickhouse: ClickHouse) -> None:
    apply_migrations(clickhouse)
    clickhouse.execute(
        f"INSERT INTO {clickhouse.database}.schema_migrations "
        "(version, name, checksum, applied_at) SELECT 1, 'events', 'not-the-same', now() + 1"
    )
    with pytest.raises(MigrationError, match="0001_events changed after it was applied"):
        apply_migrations(clickhouse)


def test_workers_starting_together_on_an_empty_database_all_get_the_schema(
    stack: LocalStack,
) -> None:
    # Several workers started at once each bring the schema up to date; none may fail because
    # another added a column between its check and its statement, or dropped a table to
    # recreate it (0010) while it altered that table (0012). Races: tried several times.
    for attempt in range(8):
        database = f"race_{os.getpid()}_{attempt}"
        clients = [NativeClickHouse(stack.settings.clickhouse, database=database) for _ in range(4)]
        try:
            with ThreadPoolExecutor(len(clients)) as pool:
                list(pool.map(apply_migrations, clients))
            versions = clients[0].execute(
                f"SELECT version, count() FROM {database}.schema_migrations FINAL GROUP BY version"
            )
            assert sorted(v for v, _ in versions) == [m.version for m in discover()]
            assert all(count == 1 for _, count in versions)
            assert apply_migrations(clients[0]) == []  # nothing left to do
        finally:
            clients[0].execute(f"DROP DATABASE IF EXISTS {database}")
            for client in clients:
                client.close()
