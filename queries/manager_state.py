"""Per manager, what today's snapshot needs besides minute counts: when their latest call or
chat ended, whether a call is up now, whether their day is being loaded after the fact, their
open tasks, and the daily totals of the last week (``salespulse.activity.ActivitySnapshot``).

Each is one date-restricted query (``read_*``) and a parser of its rows (``parse_*``), so that
``queries.todays_activity`` can keep a parsed value while its rows do not change. Times travel
as Unix seconds (``toUInt32``): old servers cannot compare a DateTime with a time literal, and
the two engines return DateTime values in different shapes.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

from salespulse.activity import CHANNEL_UP_MAX, LOADED_AFTER, OpenTask
from salespulse.sections import CountingSettings
from sinks.clickhouse.client import ClickHouse, Row, as_date
from sinks.clickhouse.metric_sql import day_params
from sinks.clickhouse.rollup import DAILY

# An open task older than this is a CRM's forgotten leftover, not today's work.
OPEN_TASK_DAYS = 45


# Daily rollup rows in the snapshot: a week back from every time zone's today.
SNAPSHOT_DAYS = 8


def snapshot_params(now: datetime, counting: CountingSettings) -> dict[str, Any]:
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must carry a time zone; naive times are ambiguous")
    utc_today = now.astimezone(UTC).date()
    params = day_params(utc_today - timedelta(days=1), utc_today + timedelta(days=1), counting)
    since = now - timedelta(days=OPEN_TASK_DAYS)
    params |= {
        "days_low": utc_today - timedelta(days=SNAPSHOT_DAYS),
        "tasks_utc_low": since.astimezone(UTC).date(),
        "tasks_since": int(since.timestamp()),
        "loaded_after": int(LOADED_AFTER.total_seconds()),
        "busy_low": int((now - CHANNEL_UP_MAX).timestamp()),
    }
    return params


# The latest version of an event without FINAL, which old servers run in one thread (over 45
# days of task events at 200 managers: 580 ms with FINAL, 86 ms without): group by event id and
# take each field by the highest processed_at, as ReplacingMergeTree(processed_at) keeps it.
# Only fields a replay can change (attribution, exclusion, local day) need it; every copy of an
# event agrees on the rest.
_LATEST = "argMax({column}, processed_at)"


def read_last_active(ch: ClickHouse, params: dict[str, Any]) -> list[Row]:
    # Per leg, not per consolidated call: each manager was busy until their own leg ended.
    # Calls to service numbers (excluded) are not work with a customer. A manager's channel
    # going up or down (never counted, so stored as excluded) is activity at that moment: a
    # Hangup seen before its CDR arrives ends the call as well.
    # Also, per manager, the latest of their records stored long after it ended (loaded after
    # the fact) and its local day: while a day is being loaded, inactivity is not judged. A
    # channel announced again after a reconnect is stored long after it came up, and says
    # nothing about a day being loaded.
    return ch.execute(
        "SELECT owner, max(busy_until), "
        "maxIf(stored, presence = 0 AND stored > busy_until + %(loaded_after)s) AS loaded_at, "
        "argMaxIf(owner_day, stored, presence = 0 AND stored > busy_until + %(loaded_after)s) "
        "AS loaded_day "
        "FROM ("
        f"SELECT event_id, {_LATEST.format(column='manager_id')} AS owner, "
        f"{_LATEST.format(column='excluded')} AS not_counted, "
        f"{_LATEST.format(column='local_date')} AS owner_day, "
        "toUInt64(max(processed_at)) AS stored, "
        "any(kind = 'channel') AS presence, "
        "any(if(kind = 'call', toUInt64(occurred_at) + duration_seconds, "
        "toUInt64(ifNull(ended_at, occurred_at)))) AS busy_until "
        f"FROM {ch.database}.events "
        "WHERE kind IN ('call', 'chat_session', 'channel') "
        "AND toDate(occurred_at) >= %(utc_low)s AND toDate(occurred_at) <= %(utc_high)s "
        "GROUP BY event_id) AS latest "
        "WHERE owner != '' AND (not_counted = 0 OR presence = 1) "
        "AND owner_day >= %(low)s AND owner_day <= %(high)s GROUP BY owner",
        params,
    )


def read_busy(ch: ClickHouse, params: dict[str, Any]) -> list[Row]:
    # Per manager, since when the earliest of their channels still up came up: a channel with an
    # up row and no down row, up for less than CHANNEL_UP_MAX (a lost Hangup must not keep a
    # manager busy for ever). Channels are told apart by external_ref: an Asterisk channel's
    # uniqueid, a Bitrix24 CALL_ID (whose end, from the call-end event or the export, is its
    # down). Rows of one channel are few, so no FINAL: duplicates change neither count being
    # zero nor the min.
    return ch.execute(
        "SELECT owner, min(up_at) FROM ("
        "SELECT external_ref AS line, "
        f"{_LATEST.format(column='manager_id')} AS owner, "
        "minIf(toUInt64(occurred_at), action = 'up') AS up_at, "
        "countIf(action = 'up') AS ups, countIf(action = 'down') AS downs "
        f"FROM {ch.database}.events "
        "WHERE kind = 'channel' "
        "AND toDate(occurred_at) >= %(utc_low)s AND toDate(occurred_at) <= %(utc_high)s "
        "AND toUInt64(occurred_at) >= %(busy_low)s "
        "GROUP BY line) AS lines "
        "WHERE ups > 0 AND downs = 0 AND owner != '' GROUP BY owner",
        params,
    )


def parse_ends(rows: list[Row]) -> dict[str, datetime]:
    return {row[0]: datetime.fromtimestamp(int(row[1]), UTC) for row in rows}


def parse_loading(rows: list[Row]) -> dict[str, tuple[date, datetime]]:
    return {
        row[0]: (as_date(row[3]), datetime.fromtimestamp(int(row[2]), UTC))
        for row in rows
        if int(row[2])
    }


def read_open_tasks(ch: ClickHouse, params: dict[str, Any]) -> list[Row]:
    # A task is its CRM entity (external_ref); without one its events cannot be tied together.
    # Without FINAL (see _LATEST): copies of one event agree on everything but attribution, so
    # the owner is taken by event time, then processed_at; the rest is unaffected by copies.
    # argMaxIf picks the deadline of the latest event that carries one (0: none did).
    latest = "toUInt64(toUInt32(occurred_at)) * 4294967296 + toUInt32(processed_at)"
    return ch.execute(
        f"SELECT external_ref AS task_ref, argMax(manager_id, {latest}) AS owner, "
        f"argMax(department_id, {latest}) AS owner_department, "
        "argMaxIf(ifNull(toUInt32(due_at), 0), occurred_at, isNotNull(due_at)) AS deadline, "
        "toUInt32(min(occurred_at)) AS first_seen, "
        "toUInt32(min(processed_at)) AS known, "
        "countIf(action = 'completed') AS completions "
        f"FROM {ch.database}.events "
        "WHERE kind = 'task' AND external_ref != '' AND toDate(occurred_at) >= %(tasks_utc_low)s "
        "GROUP BY task_ref "
        "HAVING completions = 0 AND deadline > 0 AND owner != '' "
        "AND first_seen >= %(tasks_since)s "
        "ORDER BY deadline, task_ref",
        params,
    )


def parse_tasks(rows: list[Row]) -> tuple[OpenTask, ...]:
    return tuple(
        OpenTask(
            task_id=task_id,
            manager_id=manager_id,
            department_id=department_id,
            due_at=datetime.fromtimestamp(int(due), UTC),
            created_at=datetime.fromtimestamp(int(created), UTC),
            known_at=datetime.fromtimestamp(int(known), UTC),
        )
        for task_id, manager_id, department_id, due, created, known, _ in rows
    )


def read_day_totals(ch: ClickHouse, params: dict[str, Any], names: Sequence[str]) -> list[Row]:
    if not names:
        return []
    sums = ", ".join(f"sum({name})" for name in names)
    return ch.execute(
        f"SELECT manager_id, local_date, {sums} FROM {ch.database}.{DAILY.table} FINAL "
        "WHERE local_date >= %(days_low)s AND local_date <= %(high)s AND manager_id != '' "
        "GROUP BY manager_id, local_date",
        params,
    )


def parse_day_totals(
    rows: list[Row], names: Sequence[str]
) -> dict[str, dict[date, dict[str, int]]]:
    days: dict[str, dict[date, dict[str, int]]] = defaultdict(dict)
    for manager_id, day, *values in rows:
        days[manager_id][as_date(day)] = {
            name: int(value) for name, value in zip(names, values, strict=True) if value
        }
    return dict(days)
