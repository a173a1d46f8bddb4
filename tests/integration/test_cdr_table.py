"""``salespulse cdrdb`` against a real MariaDB holding FreePBX's CDR table, and the real broker.

The calls, in FreePBX's ``asteriskcdrdb.cdr`` (PBX time, Moscow):

| row | calldate | what | written |
|---|---|---|---|
| 1 | 09:00:00 | 201 calls a client, 60 s talk | at first |
| 2 | 09:05:00 | a client calls 202, not answered | at first |
| 3 | 09:10:00 | 203 calls a client, 30 s talk | at first |
| 4 | 08:30:00 | 204's call of 1 h 50 min | later: written when it ended, behind newer rows |
| 5 | 09:20:00 | 201 calls a client, 10 s talk | after a restart of the follower |

Every row must reach the raw topic exactly once, as the JSON of its columns, and read back as
the call it is: row 4 through the lookback, row 5 after the restart, and nothing twice.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ingest.cdr_table import CdrTableFollower
from ingest.cdr_table_settings import CdrTableSettings
from ingest.raw_producer import RawProducer
from processors.parsers import AsteriskCdrDbParser
from salespulse.models import SourceRef
from salespulse.settings import Settings, to_environment
from tests.conftest import LocalStack
from tests.integration.pipeline_harness import everything_on, isolated_settings
from tests.mariadb import FREEPBX_CDR_TABLE, MariaDb, running_mariadb

INSERT = (
    "INSERT INTO cdr (calldate, clid, src, dst, dcontext, channel, dstchannel, lastapp, duration,"
    " billsec, disposition, uniqueid, linkedid, sequence) VALUES (%s, '', %s, %s, %s, %s, %s,"
    " 'Dial', %s, %s, %s, %s, %s, %s)"
)
ROWS = {
    1: (
        "2026-11-26 09:00:00",
        "201",
        "79990000001",
        "from-internal",
        "SIP/201-00000001",
        "SIP/trunk-00000002",
        65,
        60,
        "ANSWERED",
        "1795672800.1",
        "1795672800.1",
        1,
    ),
    2: (
        "2026-11-26 09:05:00",
        "79990000002",
        "202",
        "from-trunk",
        "SIP/trunk-00000003",
        "SIP/202-00000004",
        20,
        0,
        "NO ANSWER",
        "1795673100.3",
        "1795673100.3",
        2,
    ),
    3: (
        "2026-11-26 09:10:00",
        "203",
        "79990000003",
        "from-internal",
        "SIP/203-00000005",
        "SIP/trunk-00000006",
        35,
        30,
        "ANSWERED",
        "1795673400.5",
        "1795673400.5",
        3,
    ),
    4: (
        "2026-11-26 08:30:00",
        "204",
        "79990000004",
        "from-internal",
        "SIP/204-00000007",
        "SIP/trunk-00000008",
        6600,
        6590,
        "ANSWERED",
        "1795671000.7",
        "1795671000.7",
        4,
    ),
    5: (
        "2026-11-26 09:20:00",
        "201",
        "79990000005",
        "from-internal",
        "SIP/201-00000009",
        "SIP/trunk-0000000a",
        15,
        10,
        "ANSWERED",
        "1795674000.9",
        "1795674000.9",
        5,
    ),
}


@pytest.fixture(scope="module")
def mariadb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MariaDb]:
    with running_mariadb(tmp_path_factory.mktemp("mariadb")) as server:
        yield server


def fresh_table(server: MariaDb, database: str) -> None:
    server.execute(f"CREATE DATABASE {database}")
    server.execute(FREEPBX_CDR_TABLE, database=database)
    # The follower logs in as a user of its own, with a password, reading only.
    server.execute("CREATE USER IF NOT EXISTS 'sp'@'127.0.0.1' IDENTIFIED BY 'cdr-reader-pw'")
    server.execute(f"GRANT SELECT ON {database}.* TO 'sp'@'127.0.0.1'")


def insert(server: MariaDb, database: str, *numbers: int) -> None:
    for number in numbers:
        server.execute(INSERT, ROWS[number], database=database)


def table_settings(server: MariaDb, database: str, state_dir: Path) -> CdrTableSettings:
    return CdrTableSettings(
        port=server.port,
        user="sp",
        password="cdr-reader-pw",  # type: ignore[arg-type]
        database=database,
        state_dir=state_dir,
        lookback_seconds=4 * 3600,
        poll_seconds=0.2,
    )


async def raw_records(settings: Settings) -> list[bytes]:
    """Every row on the raw PBX topic, each message split into its rows."""
    records: list[bytes] = []
    for message in await everything_on(settings, settings.topics.raw_pbx):
        assert message["sp-format"] == b"asterisk-cdr-db"
        records += message["value"].split(b"\n")
    return records


def calls(records: list[bytes]) -> list[tuple[str, str, bool, int]]:
    parser = AsteriskCdrDbParser(timezone="Europe/Moscow")
    events = [
        event
        for index, record in enumerate(records)
        for event in parser.parse(record, SourceRef("asterisk-cdr-db", "pbx", 0, 0, index))
    ]
    return sorted(
        (e.actor.id, e.occurred_at.isoformat(), bool(e.answered), e.talk_seconds or 0)
        for e in events
    )


async def follow_once(table: CdrTableSettings, settings: Settings) -> int:
    async with RawProducer(settings.kafka, settings.topics) as producer:
        follower = CdrTableFollower(table, producer)
        await follower.start()
        try:
            sent = await follower.poll()
            while follower.catching_up:
                sent += await follower.poll()
            return sent
        finally:
            follower.close()


async def test_every_row_once_long_calls_and_restarts_included(
    stack: LocalStack, tmp_path: Path, mariadb: MariaDb
) -> None:
    settings = isolated_settings(stack, tmp_path)
    database = f"cdr_{os.getpid()}_once"
    fresh_table(mariadb, database)
    table = table_settings(mariadb, database, tmp_path / "state")

    insert(mariadb, database, 1, 2, 3)
    assert await follow_once(table, settings) == 3
    insert(mariadb, database, 4)  # the long call's row, dated 40 minutes before row 1
    assert await follow_once(table, settings) == 1
    assert await follow_once(table, settings) == 0  # a restart sends nothing again
    insert(mariadb, database, 5)
    assert await follow_once(table, settings) == 1

    records = await raw_records(settings)
    assert len(records) == 5
    assert calls(records) == [
        ("201", "2026-11-26T06:00:00+00:00", True, 60),
        ("201", "2026-11-26T06:20:00+00:00", True, 10),
        ("202", "2026-11-26T06:05:00+00:00", False, 0),
        ("203", "2026-11-26T06:10:00+00:00", True, 30),
        ("204", "2026-11-26T05:30:00+00:00", True, 6590),
    ]


async def test_a_backlog_is_read_in_pages_and_start_at_now_skips_it(
    stack: LocalStack, tmp_path: Path, mariadb: MariaDb
) -> None:
    settings = isolated_settings(stack, tmp_path)
    database = f"cdr_{os.getpid()}_pages"
    fresh_table(mariadb, database)
    connection = mariadb.connect(database)
    with connection.cursor() as cursor:
        cursor.executemany(
            INSERT,
            [
                (
                    f"2026-11-25 {8 + n // 3600:02d}:{n // 60 % 60:02d}:{n % 60:02d}",
                    "201",
                    "79990000001",
                    "from-internal",
                    f"SIP/201-{n:08x}",
                    "SIP/trunk-1",
                    5,
                    3,
                    "ANSWERED",
                    f"1795580000.{n}",
                    f"1795580000.{n}",
                    n,
                )
                for n in range(250)
            ],
        )
    connection.close()
    table = table_settings(mariadb, database, tmp_path / "state").model_copy(
        update={"rows_per_query": 100}
    )
    assert await follow_once(table, settings) == 250  # three pages, nothing twice
    later = table.model_copy(update={"start_at": "now", "state_dir": tmp_path / "other"})
    assert await follow_once(later, settings) == 0
    insert(mariadb, database, 1)
    assert await follow_once(later, settings) == 1
    assert len(await raw_records(settings)) == 251


def test_the_command_follows_the_table_and_stops_cleanly(
    stack: LocalStack, tmp_path: Path, mariadb: MariaDb
) -> None:
    settings = isolated_settings(stack, tmp_path)
    database = f"cdr_{os.getpid()}_command"
    fresh_table(mariadb, database)
    insert(mariadb, database, 1, 2)
    env = {
        **to_environment(settings),
        "SALESPULSE_CDR_TABLE__PORT": str(mariadb.port),
        "SALESPULSE_CDR_TABLE__USER": "sp",
        "SALESPULSE_CDR_TABLE__PASSWORD": "cdr-reader-pw",
        "SALESPULSE_CDR_TABLE__DATABASE": database,
        "SALESPULSE_CDR_TABLE__STATE_DIR": str(tmp_path / "state"),
        "SALESPULSE_CDR_TABLE__POLL_SECONDS": "0.2",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "salespulse.cli", "cdrdb"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        records: list[bytes] = []
        for _ in range(60):
            records = asyncio.run(raw_records(settings))
            if len(records) >= 2:
                break
            time.sleep(0.5)
        assert len(records) == 2
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=30)
    assert process.returncode == 0, output.decode(errors="replace")
    assert b"cdr-reader-pw" not in output
