"""Erasure on request removes exactly one person's data, on both engines, and says so in the
audit log without the value it erased.

The worked example, on 26 November 2026: Ivanova (extension 101, Moscow) calls customer X
(+7 916 555-12-34) twice and customer Y (+7 916 777-88-99) once, and X calls her once; Petrov
(201, Vladivostok) calls X and Y once each. An alert fired about each of them and was delivered
by webhook. Numbers are hashed with the key the parsers use here (``k``).

* Erase X: no column of any table holds X's token any more (nor a digit run of X); the four
  calls that involved X are still stored, with ``erased`` where X's token was; Ivanova's and
  Petrov's counts, recomputed from the events, are what they were; Y's token is untouched.
* Erase petrov: no row of his in events, the three rollups, alerts, or the delivery log of his
  alert; Ivanova's rows are as they were; Vladivostok's department total drops by his calls.
* The audit log has one row per table touched, with ``m:`` + a hash or the number's token,
  never ``petrov`` or X's digits.
* A dry run counts and changes nothing; hostile input is refused before any query.
"""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, date, datetime
from typing import Any

import pytest

from processors.parsers import build_parsers
from processors.pipeline import BatchProcessor, RawMessage
from processors.privacy import PhoneProtector
from salespulse.cli import main
from salespulse.erase_commands import manager_subject, phone_subject, returned_subjects
from salespulse.sections import ParsingSettings
from salespulse.settings import Settings
from sinks.clickhouse.alert_history import record_delivery, record_notices
from sinks.clickhouse.client import ClickHouse, NativeClickHouse
from sinks.clickhouse.erasure import ERASED, erase
from sinks.clickhouse.migrations import apply_migrations
from sinks.clickhouse.rollup import rebuild
from sinks.clickhouse.sink import ClickHouseSink
from tests.alert_samples import fired, sample_alert
from tests.integration.test_cli import cli_env  # noqa: F401 (a fixture)
from tests.integration.test_rollups import process, rolled_up
from tests.integration.test_worked_examples import DIRECTORY, cdr

KEY = b"k"  # the key tests.integration.test_rollups.process hashes numbers with
DAY = date(2026, 11, 26)
X, Y = "+7 (916) 555-12-34", "79167778899"
X_DIGITS = "79165551234"


def calls() -> RawMessage:
    lines = [
        cdr(caller="101", callee=X_DIGITS, start="2026-11-26T10:00:00+03:00", talk=60),
        cdr(caller="101", callee=X_DIGITS, start="2026-11-26T11:00:00+03:00", talk=45),
        cdr(caller="101", callee=Y, start="2026-11-26T12:00:00+03:00", talk=90),
        cdr(caller=X_DIGITS, callee="101", start="2026-11-26T13:00:00+03:00", talk=120),
        cdr(caller="201", callee=X_DIGITS, start="2026-11-26T03:00:00+03:00", talk=30),
        cdr(caller="201", callee=Y, start="2026-11-26T04:00:00+03:00", talk=0),
    ]
    return RawMessage("pbx", 0, 0, [("sp-format", b"asterisk-cdr-csv")], b"\n".join(lines))


async def store(ch: ClickHouse) -> None:
    apply_migrations(ch)
    await ClickHouseSink(lambda: ch).write_events(process([calls()]).rows)
    rebuild(ch, DAY, DAY)
    at = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
    ivanova = sample_alert(at)
    petrov = dataclasses.replace(
        sample_alert(at),
        key="calls_out_dip:petrov:2026-11-26",
        manager_id="petrov",
        manager_name="Pavel Petrov",
        department_id="vvo",
        summary_en="Pavel Petrov: 2 outgoing calls since 09:00, usually 11.5",
        summary_ru="Павел Петров: 2 исходящих звонка с 09:00, обычно 11,5",
        dashboard_url="https://salespulse.example.com/managers/petrov",
    )
    for alert in (ivanova, petrov):
        notice = fired(alert)
        record_notices(ch, [notice], now=at)
        record_delivery(ch, notice.notice_id, "webhook", at)


def text_columns(ch: ClickHouse) -> list[tuple[str, str]]:
    rows = ch.execute(
        "SELECT table, name FROM system.columns WHERE database = %(db)s "
        "AND position(type, 'String') > 0 ORDER BY table, name",
        {"db": ch.database},
    )
    return [(str(table), str(name)) for table, name in rows]


def holding(ch: ClickHouse, needle: str) -> dict[str, int]:
    """Rows of every text column (String, LowCardinality, Nullable, Array) holding ``needle``."""
    found = {}
    for table, column in text_columns(ch):
        (row,) = ch.execute(
            f"SELECT count() FROM {ch.database}.{table} "
            f"WHERE position(toString({column}), %(needle)s) > 0",
            {"needle": needle},
        )
        if int(row[0]):
            found[f"{table}.{column}"] = int(row[0])
    return found


def snapshot(ch: ClickHouse) -> dict[str, list[Any]]:
    """Every row of every table of the database, to show that nothing changed."""
    tables = [
        str(name)
        for (name,) in ch.execute(
            "SELECT name FROM system.tables WHERE database = %(db)s ORDER BY name",
            {"db": ch.database},
        )
    ]
    return {
        table: sorted(map(repr, ch.execute(f"SELECT * FROM {ch.database}.{table}")))
        for table in tables
    }


def counts(ch: ClickHouse) -> dict[str, dict[str, int]]:
    """Each manager's non-zero numbers of DAY, recomputed from the events now stored."""
    rebuild(ch, DAY, DAY)
    return {
        manager: {name: value for name, value in numbers.items() if value}
        for manager, numbers in rolled_up(ch, DAY, "activity_daily").items()
    }


def manager_rows(ch: ClickHouse, manager: str) -> dict[str, int]:
    found = {}
    for table in ("events", "activity_15m", "activity_daily", "payments_daily", "alerts"):
        (row,) = ch.execute(
            f"SELECT count() FROM {ch.database}.{table} WHERE manager_id = %(m)s", {"m": manager}
        )
        found[table] = int(row[0])
    return found


def deliveries(ch: ClickHouse) -> int:
    (row,) = ch.execute(f"SELECT count() FROM {ch.database}.alert_deliveries")
    return int(row[0])


def audit(ch: ClickHouse) -> list[tuple[Any, ...]]:
    return sorted(
        (str(kind), str(subject), str(table), str(action), int(rows), int(done))
        for kind, subject, table, action, rows, done in ch.execute(
            "SELECT subject_kind, subject, table_name, action, rows, done "
            f"FROM {ch.database}.erasure_log FINAL"
        )
    )


async def test_erasing_a_customer_number_forgets_the_person_and_keeps_the_work(
    clickhouse: ClickHouse,
) -> None:
    await store(clickhouse)
    x, y = phone_subject(X, KEY), phone_subject(Y, KEY)
    assert x.match.startswith("h:")
    assert x.match != y.match
    assert holding(clickhouse, x.match) == {"events.counterpart": 4}
    before = counts(clickhouse)
    assert before["ivanova"]["calls_out"] == 3
    assert before["ivanova"]["calls_in"] == 1
    assert before["petrov"]["calls_out"] == 2

    unchanged = snapshot(clickhouse)
    dry = erase(clickhouse, x, dry_run=True)
    assert dry.rows == {"events": 4}
    assert snapshot(clickhouse) == unchanged

    done = erase(clickhouse, x, requested_by="dpo ticket 17", timeout_seconds=60)
    assert done.rows == {"events": 4}
    assert done.left == {"events": 0}
    assert done.complete
    # The audit keeps the token, the rows' own form (never the number): it is what finds the
    # person's rows again if a replay brings them back.
    assert holding(clickhouse, x.match) == {"erasure_log.subject": 1}
    assert holding(clickhouse, X_DIGITS) == {}
    assert holding(clickhouse, "5551234") == {}
    assert holding(clickhouse, y.match) == {"events.counterpart": 2}
    assert holding(clickhouse, ERASED) == {"events.counterpart": 4}
    assert counts(clickhouse) == before
    assert audit(clickhouse) == [("phone", x.match, "events", "blank", 4, 1)]
    assert holding(clickhouse, X_DIGITS) == {}  # not in the audit log either

    again = erase(clickhouse, x, timeout_seconds=60)
    assert again.rows == {"events": 0}
    assert again.complete


async def test_erasing_a_manager_deletes_every_row_of_theirs_and_nobody_elses(
    clickhouse: ClickHouse,
) -> None:
    await store(clickhouse)
    before = counts(clickhouse)
    ivanova = manager_rows(clickhouse, "ivanova")
    # Stored rows: each rebuild writes the rollups again until a merge collapses them.
    stored = manager_rows(clickhouse, "petrov")
    assert stored["events"] == 2
    assert stored["alerts"] == 1
    assert stored["payments_daily"] == 0
    assert stored["activity_15m"] >= 2
    assert stored["activity_daily"] >= 1
    assert deliveries(clickhouse) == 2
    petrov = manager_subject("petrov", KEY)

    unchanged = snapshot(clickhouse)
    dry = erase(clickhouse, petrov, dry_run=True)
    assert dry.rows["events"] == 2
    assert dry.rows["alert_deliveries"] == 1
    assert snapshot(clickhouse) == unchanged

    done = erase(clickhouse, petrov, requested_by="hr ticket 9", timeout_seconds=60)
    assert done.complete, done
    assert set(manager_rows(clickhouse, "petrov").values()) == {0}
    assert manager_rows(clickhouse, "ivanova") == ivanova
    assert deliveries(clickhouse) == 1
    assert holding(clickhouse, "petrov") == {}
    assert holding(clickhouse, "Petrov") == {}
    assert holding(clickhouse, "Петров") == {}
    # Recomputing the day brings nothing of his back; Ivanova's numbers are as they were.
    after = counts(clickhouse)
    assert after == {manager: n for manager, n in before.items() if manager != "petrov"}
    assert audit(clickhouse) == sorted(
        ("manager", petrov.recorded, table, "delete", rows, 1) for table, rows in done.rows.items()
    )
    assert petrov.recorded.startswith("m:")
    assert "petrov" not in petrov.recorded


async def test_a_replay_brings_erased_people_back_and_erase_again_finds_them(
    clickhouse: ClickHouse,
) -> None:
    """A replay of the raw topics (or an import) stores X's calls and Petrov's rows again;
    ``erase --again`` finds both from the audit log alone, which holds neither value."""
    await store(clickhouse)
    x, petrov = phone_subject(X, KEY), manager_subject("petrov", KEY)
    for subject in (x, petrov):
        assert erase(clickhouse, subject, timeout_seconds=60).complete
    assert returned_subjects(clickhouse, KEY) == []

    await store(clickhouse)  # the replay: the same records, processed again
    assert holding(clickhouse, x.match)["events.counterpart"] == 4
    assert manager_rows(clickhouse, "petrov")["events"] == 2
    again = returned_subjects(clickhouse, KEY)
    assert sorted(subject.recorded for subject in again) == sorted([x.recorded, petrov.recorded])
    for subject in again:
        assert erase(clickhouse, subject, timeout_seconds=60).complete
    assert holding(clickhouse, x.match) == {"erasure_log.subject": 2}
    assert set(manager_rows(clickhouse, "petrov").values()) == {0}
    assert returned_subjects(clickhouse, KEY) == []
    # With another key the old hashes match nothing: the erasure must be asked for again.
    await store(clickhouse)
    assert [s.kind for s in returned_subjects(clickhouse, b"another key")] == ["phone"]


async def test_a_masked_number_is_erased_without_touching_longer_masks(
    clickhouse: ClickHouse,
) -> None:
    """Without a key every number is a mask: X's ``*********34`` is not the tail of the
    13-digit ``***********34`` of a customer abroad, which stays."""
    apply_migrations(clickhouse)
    abroad = "4930123456734"
    lines = [
        cdr(caller="101", callee=X_DIGITS, start="2026-11-26T10:00:00+03:00", talk=60),
        cdr(caller="101", callee=abroad, start="2026-11-26T11:00:00+03:00", talk=60),
    ]
    message = RawMessage("pbx", 0, 0, [("sp-format", b"asterisk-cdr-csv")], b"\n".join(lines))
    rows = (
        BatchProcessor(
            build_parsers(ParsingSettings()),
            lambda: DIRECTORY,
            PhoneProtector(None),
            max_message_bytes=1 << 20,
            clock=lambda: datetime(2026, 11, 28, tzinfo=UTC),
        )
        .process([message])
        .rows
    )
    await ClickHouseSink(lambda: clickhouse).write_events(rows)
    x = phone_subject(X, None)
    assert x.match == "*********34"
    done = erase(clickhouse, x, timeout_seconds=60)
    assert done.rows == {"events": 1}
    assert done.complete
    stored = clickhouse.execute(f"SELECT counterpart FROM {clickhouse.database}.events")
    assert sorted(str(value) for (value,) in stored) == ["***********34", ERASED]


def test_the_command_refuses_hostile_input_and_changes_nothing(
    cli_env: Settings,  # noqa: F811 (the fixture imported above)
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:

    monkeypatch.setenv("SALESPULSE_PARSING__PHONE_HASH_KEY", KEY.decode())
    client = NativeClickHouse(cli_env.clickhouse)
    try:
        client.execute(f"CREATE DATABASE IF NOT EXISTS {client.database}")
        asyncio.run(store(client))
        unchanged = snapshot(client)
        refused = {
            ("--manager", ""): "empty one names nobody",
            ("--manager", "   "): "empty one names nobody",
            ("--manager", "petrov' OR 1=1 --"): "quotes, spaces, semicolons",
            ("--manager", "petrov;DROP TABLE events"): "quotes, spaces, semicolons",
            ("--manager", "x" * 65): "1 to 64 letters",
            ("--phone", ""): "--phone must be a phone number",
            ("--phone", "+-() ./"): "--phone must be a phone number",
            ("--phone", "101"): "extensions",
            ("--phone", "79165551234' OR '1'='1"): "--phone must be a phone number",
            ("--phone", "7916555123456789012345"): "7 to 20 digits",
        }
        for (option, value), message in refused.items():
            assert main(["erase", option, value]) == 2, value
            err = capsys.readouterr().err
            assert message in err, (value, err)
            if option == "--phone" and len(value) > 3:
                assert value not in err
        assert snapshot(client) == unchanged

        assert main(["erase", "--phone", X, "--dry-run"]) == 0
        out = capsys.readouterr().out
        assert "would erase events: 4 rows" in out
        assert X_DIGITS not in out
        assert snapshot(client) == unchanged

        assert main(["erase", "--manager", "petrov", "--by", "hr ticket 9"]) == 0
        out = capsys.readouterr().out
        assert "erased events: 2 rows deleted" in out
        assert "directory publish --delete-manager petrov" in out
        assert "retention.ms" in out
        assert "erase again after any replay" in out
        assert set(manager_rows(client, "petrov").values()) == {0}

        asyncio.run(store(client))  # a replay
        assert main(["erase", "--again"]) == 0
        out = capsys.readouterr().out
        assert "erased events: 2 rows deleted" in out
        assert "m:" in out
        assert set(manager_rows(client, "petrov").values()) == {0}
        assert main(["erase", "--again"]) == 0
        assert "no row of an erased manager or number is stored" in capsys.readouterr().out
    finally:
        client.close()
