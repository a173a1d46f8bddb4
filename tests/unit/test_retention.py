"""Retention without a server: which partitions lie wholly before the cut-off, which settings
are refused, and that every table the migrations create has a retention or a reason not to."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import Any

import pytest
from prometheus_client import REGISTRY
from pydantic import ValidationError

from processors.worker import retention_duty
from salespulse.retention_settings import RetentionSettings
from salespulse.settings import Settings
from sinks.clickhouse.client import ClickHouseError, Row
from sinks.clickhouse.migrations import MIGRATIONS_DIR
from sinks.clickhouse.retention import (
    UNPARTITIONED,
    DailyRetention,
    cut_off,
    partition_days,
    policies,
)

NOW = datetime(2026, 12, 10, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("partition", "days"),
    [
        ("202608", (date(2026, 8, 1), date(2026, 8, 31))),
        ("202402", (date(2024, 2, 1), date(2024, 2, 29))),  # a leap year's February
        ("20260820", (date(2026, 8, 20), date(2026, 8, 20))),  # toYYYYMMDD
        ("2026-08-20", (date(2026, 8, 20), date(2026, 8, 20))),  # toDate
        ("'2026-08-20'", (date(2026, 8, 20), date(2026, 8, 20))),
        ("'2026-08-20", None),
        ("all", None),  # no partition key
        ("202613", None),
        ("(1, 202608)", None),  # a tuple key: not understood, left alone
        ("202608; DROP TABLE events", None),
    ],
)
def test_a_partition_name_gives_the_days_it_holds(
    partition: str, days: tuple[date, date] | None
) -> None:
    assert partition_days(partition) == days


def test_a_month_goes_only_when_its_last_day_is_older_than_the_retention() -> None:
    # 90 days before 10 December 2026 is 11 September: August is wholly older, September not.
    first_kept = cut_off(NOW, 90)
    assert first_kept == date(2026, 9, 11)
    august, september = partition_days("202608"), partition_days("202609")
    assert august is not None
    assert september is not None
    assert august[1] < first_kept <= september[1]
    # The last day of the month exactly 400 days back is kept the day it turns 400 days old.
    assert cut_off(datetime(2027, 10, 5, tzinfo=UTC), 400) == date(2026, 8, 31)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"events_days": -1}, "must be 0 (keep for ever) or from 90 to 36500 days"),
        ({"events_days": 10**12}, "must be 0 (keep for ever) or from 90 to 36500 days"),
        ({"events_days": 30}, "must be 0 (keep for ever) or from 90 to 36500 days"),
        ({"alerts_days": 36501}, "must be 0 (keep for ever) or from 45 to 36500 days"),
        ({"ingest_batches_days": -30}, "from 7 to 36500 days"),
        ({"rollups_days": 200}, "rollups_days must be 0 or at least events_days"),
        ({"events_days": 0}, "rollups_days must be 0 or at least events_days"),
        ({"events_days": 400.5}, "valid integer"),
        ({"events_days": "a year"}, "valid integer"),
    ],
)
def test_hostile_retentions_are_refused_with_the_rule(values: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=re.escape(message)):
        RetentionSettings(**values)


def test_retentions_are_read_from_the_environment_and_refused_there_too(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SALESPULSE_RETENTION__EVENTS_DAYS", "0")
    monkeypatch.setenv("SALESPULSE_RETENTION__ROLLUPS_DAYS", "0")
    assert Settings().retention.events_days == 0
    monkeypatch.setenv("SALESPULSE_RETENTION__ALERTS_DAYS", "-5")
    with pytest.raises(ValidationError, match="from 45 to 36500 days"):
        Settings()


def _created_tables() -> dict[str, bool]:
    """Every table the migrations create, and whether it has a partition key."""
    tables: dict[str, bool] = {}
    for entry in sorted(MIGRATIONS_DIR.iterdir(), key=lambda e: e.name):
        # The single-node schema; a cluster's variants name the same tables (and their _local
        # halves), and its retention is not cluster-aware yet (ADR 19).
        if not entry.name.endswith(".sql") or ".cluster." in entry.name:
            continue
        text = entry.read_text(encoding="utf-8")
        for name, body in re.findall(
            r"CREATE TABLE IF NOT EXISTS \{database\}\.(\w+)(.*?);", text, re.DOTALL
        ):
            tables[name] = "PARTITION BY" in body
    return tables


def test_every_table_has_a_retention_or_a_reason_to_be_kept_whole() -> None:
    tables = _created_tables()
    covered = {policy.table for policy in policies(RetentionSettings())}
    assert covered == {name for name, partitioned in tables.items() if partitioned}
    unpartitioned = {name for name, partitioned in tables.items() if not partitioned}
    assert unpartitioned | {"schema_migrations"} == set(UNPARTITIONED)


class _Empty:
    """A ClickHouse with nothing stored: no partitions, no watermark."""

    database = "salespulse"

    def __init__(self) -> None:
        self.statements: list[str] = []

    def execute(self, sql: str, params: dict[str, Any] | None = None) -> list[Row]:
        self.statements.append(sql)
        return []

    def insert_columns(
        self, table: str, columns: Sequence[str], data: Sequence[Sequence[Any]]
    ) -> None:
        raise AssertionError("nothing to log")

    def server_version(self) -> tuple[int, ...]:
        return (18, 16, 1)

    def close(self) -> None:
        pass


def test_the_worker_applies_it_once_a_day() -> None:
    ch = _Empty()
    daily = DailyRetention(ch, RetentionSettings())
    assert daily.run_if_due(NOW) is not None
    assert daily.run_if_due(NOW.replace(hour=23)) is None
    assert daily.run_if_due(datetime(2026, 12, 11, 0, 5, tzinfo=UTC)) is not None
    assert not any("DROP" in statement for statement in ch.statements)


class _Unreachable(_Empty):
    def execute(self, sql: str, params: dict[str, Any] | None = None) -> list[Row]:
        raise ClickHouseError("ClickHouse unreachable: refused", retriable=True)


def _runs(result: str) -> float:
    return REGISTRY.get_sample_value("salespulse_retention_runs_total", {"result": result}) or 0.0


async def test_only_the_leader_applies_it_and_a_failed_run_is_tried_again() -> None:
    leading = False
    clock = iter([NOW, NOW, NOW.replace(hour=13), NOW.replace(hour=14)])
    broken = DailyRetention(_Unreachable(), RetentionSettings())
    duty = retention_duty(broken, lambda: leading, asyncio.Lock(), lambda: next(clock))
    ok, error = _runs("ok"), _runs("error")
    await duty()  # not the leader: nothing asked of ClickHouse, no time read
    assert _runs("error") == error

    leading = True
    await duty()  # the server is unreachable: counted, and tried again at the next look
    await duty()
    assert _runs("error") == error + 2

    working = DailyRetention(_Empty(), RetentionSettings())
    duty = retention_duty(working, lambda: leading, asyncio.Lock(), lambda: next(clock))
    await duty()
    await duty()  # done for today
    assert _runs("ok") == ok + 1
