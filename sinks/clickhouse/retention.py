"""Retention: whole partitions older than each table's retention are dropped (docs/retention.md).

``ALTER TABLE … DROP PARTITION`` removes a partition's files at once, on every server we support
(18.16 has no TTL, and row deletes are mutations that rewrite every part in the background).
Every table that grows is partitioned by month (``toYYYYMM`` of a time or a date); a month is
dropped only when its last day is older than the retention, so nothing younger is lost and a
month is kept up to a month longer than the retention says. Partitions by day
(``toYYYYMMDD``, ``toDate``) are understood too; any other partition key is left alone, said in
the plan. ``rollup_state``, ``schema_migrations``, ``retention_log`` and ``erasure_log`` have no
partition key: they are small and kept whole.

Before a partition is dropped, a row naming it goes into ``retention_log`` (the audit, and what
the rollups read: a day whose events were dropped is never recomputed, see
``rollup.frozen_through``). Running again drops nothing more: the partitions are gone.
``ingest_batches`` is also held to the rollup watermark: a batch the rollups have not consumed
yet names days still to recompute, whatever its age.
"""

from __future__ import annotations

import logging
import re
from calendar import monthrange
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from salespulse import metrics
from salespulse.retention_settings import RetentionSettings
from sinks.clickhouse.client import ClickHouse, ClickHouseError
from sinks.clickhouse.erasure import ERASURE_LOG
from sinks.clickhouse.rollup import (
    ACTIVITY_TABLE,
    DAILY_TABLE,
    PAYMENTS_TABLE,
    RETENTION_LOG,
    watermark,
)

log = logging.getLogger(__name__)

BATCHES_TABLE = "ingest_batches"
# Tables without a partition key: nothing to drop, by design (docs/retention.md).
UNPARTITIONED = {
    "rollup_state": "one row per rollup: its watermark",
    "schema_migrations": "one row per migration",
    RETENTION_LOG: "a few rows a month: what the retention dropped",
    ERASURE_LOG: "a few rows per request: what erasures removed, the audit",
}
_MONTH = re.compile(r"[0-9]{6}")  # toYYYYMM
_DAY = re.compile(r"[0-9]{8}")  # toYYYYMMDD
# toDate: system.parts names it 2026-09-09 (quoted on some versions)
_DATE_DAY = re.compile(r"([0-9]{4}-[0-9]{2}-[0-9]{2})|'([0-9]{4}-[0-9]{2}-[0-9]{2})'")


@dataclass(frozen=True)
class Policy:
    """One table's retention: ``days`` (0 keeps it for ever), and the setting that says so."""

    table: str
    days: int
    setting: str


def policies(settings: RetentionSettings) -> list[Policy]:
    """Every partitioned table and its retention, in the order they are applied: events first,
    so that their drops are logged before anything that depends on them."""
    by_setting = {
        "events_days": ("events",),
        "rollups_days": (ACTIVITY_TABLE, DAILY_TABLE, PAYMENTS_TABLE),
        "alerts_days": ("alerts", "alert_deliveries"),
        "ingest_batches_days": (BATCHES_TABLE,),
    }
    return [
        Policy(table, int(getattr(settings, name)), name)
        for name, tables in by_setting.items()
        for table in tables
    ]


@dataclass(frozen=True)
class Partition:
    table: str
    partition: str  # as the server names it (system.parts.partition) and DROP PARTITION takes it
    first_day: date
    last_day: date
    rows: int


@dataclass
class Plan:
    """What one run drops (or, in a dry run, would drop), keeps, and leaves alone."""

    now: datetime
    dry_run: bool
    drop: list[Partition] = field(default_factory=list)
    kept: dict[str, int] = field(default_factory=dict)  # table: partitions kept
    notes: list[str] = field(default_factory=list)  # tables left alone, and why
    failed: list[str] = field(default_factory=list)  # partitions the server would not drop

    @property
    def rows(self) -> int:
        return sum(partition.rows for partition in self.drop)


def partition_days(partition: str) -> tuple[date, date] | None:
    """The first and last day a partition holds, from its name; None for a key we do not
    understand (left alone)."""
    try:
        if _MONTH.fullmatch(partition):
            year, month = int(partition[:4]), int(partition[4:])
            first = date(year, month, 1)
            return first, first.replace(day=monthrange(year, month)[1])
        if _DAY.fullmatch(partition):
            day = date(int(partition[:4]), int(partition[4:6]), int(partition[6:]))
            return day, day
        iso = _iso_day(partition)
        if iso is not None:
            day = date.fromisoformat(iso)
            return day, day
    except ValueError:  # 202413, 0000-00-00: not a day this code can reason about
        return None
    return None


def _partition_value(partition: str) -> int | str:
    """The value DROP PARTITION names ``partition`` by, as a parameter: a number for a month or
    day number (a string there is refused by old servers), the date for a ``toDate`` key."""
    iso = _iso_day(partition)
    return iso if iso is not None else int(partition)


def _iso_day(partition: str) -> str | None:
    match = _DATE_DAY.fullmatch(partition)
    return None if match is None else match.group(1) or match.group(2)


def cut_off(now: datetime, days: int) -> date:
    """The first day kept: a partition is dropped when its last day is before it."""
    return now.astimezone(UTC).date() - timedelta(days=days)


def _partitions(ch: ClickHouse, tables: list[str]) -> dict[str, list[tuple[str, int]]]:
    """Each table's active partitions and their rows, from system.parts."""
    rows = ch.execute(
        "SELECT table, partition, sum(rows) FROM system.parts "
        "WHERE database = %(db)s AND active = 1 AND table IN %(tables)s "
        "GROUP BY table, partition ORDER BY table, partition",
        {"db": ch.database, "tables": tuple(tables)},
    )
    found: dict[str, list[tuple[str, int]]] = {}
    for table, partition, count in rows:
        found.setdefault(str(table), []).append((str(partition), int(count)))
    return found


def _batches_horizon(ch: ClickHouse) -> date | None:
    """The first day of ``ingest_batches`` the rollups may still need: the day of their
    watermark. None when there is no watermark (no pass yet, or a migration recreated
    ``rollup_state`` to recompute every logged day): nothing of the log may go."""
    consumed = watermark(ch)
    return None if consumed is None else datetime.fromtimestamp(consumed, UTC).date()


def plan(
    ch: ClickHouse, settings: RetentionSettings, now: datetime, *, dry_run: bool = True
) -> Plan:
    """What a run at ``now`` drops, without dropping anything."""
    result = Plan(now, dry_run)
    rules = policies(settings)
    found = _partitions(ch, [rule.table for rule in rules])
    horizon = _batches_horizon(ch)
    for rule in rules:
        partitions = found.get(rule.table, [])
        if rule.days == 0:
            result.kept[rule.table] = len(partitions)
            continue
        first_kept = cut_off(now, rule.days)
        if rule.table == BATCHES_TABLE:
            if horizon is None:
                result.notes.append(
                    f"{BATCHES_TABLE}: kept whole until the rollups have consumed it "
                    "(no rollup watermark yet)"
                )
                result.kept[rule.table] = len(partitions)
                continue
            first_kept = min(first_kept, horizon)
        kept = 0
        for name, rows in partitions:
            days = partition_days(name)
            if days is None:
                result.notes.append(
                    f"{rule.table}: partition {name!r} is not by month or day; kept"
                )
                kept += 1
            elif days[1] < first_kept:
                result.drop.append(Partition(rule.table, name, days[0], days[1], rows))
            else:
                kept += 1
        result.kept[rule.table] = kept
    for table, why in UNPARTITIONED.items():
        result.notes.append(f"{table}: no partition key ({why}); kept whole")
    return result


def _log_drop(ch: ClickHouse, partition: Partition, now: datetime) -> None:
    ch.insert_columns(
        RETENTION_LOG,
        ("table_name", "partition", "first_day", "last_day", "kept_from", "rows", "dropped_at"),
        [
            [partition.table],
            [partition.partition],
            [partition.first_day],
            [partition.last_day],
            [partition.last_day + timedelta(days=1)],
            [partition.rows],
            [now.astimezone(UTC).replace(microsecond=0)],
        ],
    )


def apply(
    ch: ClickHouse, settings: RetentionSettings, now: datetime, *, dry_run: bool = False
) -> Plan:
    """Drop every partition older than its table's retention at ``now``; returns the plan,
    with the partitions the server refused in ``failed`` (the others are dropped all the same).
    A dry run drops nothing and writes nothing."""
    result = plan(ch, settings, now, dry_run=dry_run)
    for partition in result.drop if not dry_run else ():
        # Logged first: if the drop is then cut short, the rollups of its days are frozen a
        # little early, which is harmless; the other order could recompute them as zeros.
        _log_drop(ch, partition, now)
        try:
            ch.execute(
                f"ALTER TABLE {ch.database}.{partition.table} DROP PARTITION %(partition)s",
                {"partition": _partition_value(partition.partition)},
            )
        except ClickHouseError as exc:
            # The usual one: a partition over the server's max_partition_size_to_drop.
            result.failed.append(f"{partition.table} {partition.partition}: {exc}")
            log.warning(
                "retention: %s %s not dropped: %s", partition.table, partition.partition, exc
            )
            continue
        metrics.RETENTION_DROPPED_PARTITIONS.labels(partition.table).inc()
        log.info(
            "retention: dropped %s partition %s (%s to %s, %d rows)",
            partition.table,
            partition.partition,
            partition.first_day,
            partition.last_day,
            partition.rows,
        )
    return result


class DailyRetention:
    """The worker leader's duty: ``apply`` at most once per UTC day. A run that could not
    start (the server unreachable) is tried again at the next call; partitions the server
    refused are tried again the next day."""

    def __init__(self, ch: ClickHouse, settings: RetentionSettings) -> None:
        self._ch = ch
        self._settings = settings
        self._done_on: date | None = None

    def run_if_due(self, now: datetime) -> Plan | None:
        today = now.astimezone(UTC).date()
        if self._done_on == today:
            return None
        result = apply(self._ch, self._settings, now)
        self._done_on = today
        return result
