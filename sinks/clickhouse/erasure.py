"""Erasure of one person's data on request (docs/erasure.md): a manager who left, or a
customer's phone number.

Rows go by ``ALTER TABLE … DELETE`` and numbers by ``ALTER TABLE … UPDATE``: mutations, which
every server we support has (18.16 and current ones) and which rewrite the affected parts in
the background after the statement returns. So each mutation is waited for in
``system.mutations`` (``is_done``), with a bound, before the next table's starts, and the rows
are counted again at the end: what is still there (a rollup pass that wrote a row while the
erasure ran, a mutation not finished in time) is reported, never hidden.

* A manager: their events, rollup rows, alert history and its delivery log are deleted.
* A customer's number: the calls stay (they were the managers' work, and every count keeps its
  value); the number's token is replaced by ``erased`` wherever it appears in ``events``
  (``counterpart``, ``location``, ``actor_id``), so no row can be tied to that customer again.

Values travel as parameters. The caller computes the token (the application layer owns the
parsers' protector); this module never sees a number in clear. Each erasure writes one
``erasure_log`` row per table, with the token or a hash of the manager id, never the value.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sinks.clickhouse.alert_history import DELIVERIES
from sinks.clickhouse.alert_history import TABLE as ALERTS_TABLE
from sinks.clickhouse.client import ClickHouse
from sinks.clickhouse.rollup import ACTIVITY_TABLE, DAILY_TABLE, PAYMENTS_TABLE
from sinks.clickhouse.sink import EVENTS_TABLE

log = logging.getLogger(__name__)

ERASURE_LOG = "erasure_log"
# What an erased number's token is replaced by: a word, so that a meeting place that was a
# number stays a place somewhere (not '' or 'office', which would count it as an office meeting).
ERASED = "erased"
# The text columns of events the parsers' protector fills: every one that can hold a token.
NUMBER_COLUMNS = ("counterpart", "location", "actor_id")
# Tables keyed by manager, in the order they are erased: events first, so a rollup pass that
# runs meanwhile recomputes from events that no longer hold the manager.
MANAGER_TABLES = (EVENTS_TABLE, ACTIVITY_TABLE, DAILY_TABLE, PAYMENTS_TABLE, ALERTS_TABLE)
_NOTICE_CHUNK = 1000


@dataclass(frozen=True)
class Subject:
    """Whose data: ``kind`` is ``manager`` or ``phone``; ``match`` is what the rows hold (the
    manager id, or the number's token or mask); ``recorded`` what the audit keeps instead."""

    kind: str
    match: str
    recorded: str


@dataclass
class Erasure:
    """What one run erased (or, in a dry run, would erase): stored rows per table, counted
    before; the rows still matching afterwards; the tables whose mutation did not finish."""

    subject: Subject
    dry_run: bool
    erasure_id: str
    at: datetime
    rows: dict[str, int] = field(default_factory=dict)
    left: dict[str, int] = field(default_factory=dict)
    pending: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return not self.pending and not any(self.left.values())


@dataclass(frozen=True)
class _Step:
    table: str
    action: str  # 'delete' or 'blank'
    where: str  # a condition on the table's rows, with %(name)s parameters
    params: dict[str, Any]
    set_sql: str = ""  # for 'blank': the UPDATE list


def number_pattern(token: str) -> str:
    """A regular expression (re2, as the server reads it) that finds ``token`` in a value,
    alone or inside longer text (``sip:h:…@trunk``). A mask (``*********67``) must not match
    the tail of a longer one (``***********67``): the character before it is not a star."""
    return "(^|[^*])" + re.escape(token)


def _phone_steps(token: str) -> list[_Step]:
    params = {"pattern": number_pattern(token), "erased": "\\1" + ERASED}
    where = " OR ".join(f"match({column}, %(pattern)s)" for column in NUMBER_COLUMNS)
    assignments = ", ".join(
        f"{column} = replaceRegexpAll({column}, %(pattern)s, %(erased)s)"
        for column in NUMBER_COLUMNS
    )
    return [_Step(EVENTS_TABLE, "blank", where, params, assignments)]


def _manager_steps(ch: ClickHouse, manager_id: str) -> list[_Step]:
    by_manager = {"manager": manager_id}
    steps = [
        _Step(table, "delete", "manager_id = %(manager)s", by_manager) for table in MANAGER_TABLES
    ]
    # The delivery log names notices, not managers: its rows of the manager's notices go
    # before the notices themselves, while they can still be found.
    notices = [
        str(notice_id)
        for (notice_id,) in ch.execute(
            f"SELECT DISTINCT notice_id FROM {ch.database}.{ALERTS_TABLE} "
            "WHERE manager_id = %(manager)s",
            by_manager,
        )
    ]
    for start in range(0, len(notices), _NOTICE_CHUNK):
        chunk = tuple(notices[start : start + _NOTICE_CHUNK])
        steps.insert(
            -1, _Step(DELIVERIES, "delete", "notice_id IN %(notices)s", {"notices": chunk})
        )
    return steps


def _count(ch: ClickHouse, step: _Step) -> int:
    (row,) = ch.execute(
        f"SELECT count() FROM {ch.database}.{step.table} WHERE {step.where}", step.params
    )
    return int(row[0])


def _mutate(ch: ClickHouse, step: _Step) -> None:
    if step.action == "delete":
        sql = f"ALTER TABLE {ch.database}.{step.table} DELETE WHERE {step.where}"
    else:
        sql = f"ALTER TABLE {ch.database}.{step.table} UPDATE {step.set_sql} WHERE {step.where}"
    ch.execute(sql, step.params)


def mutations_done(ch: ClickHouse, table: str) -> bool:
    """Whether every mutation of ``table`` has been applied to all its parts."""
    (row,) = ch.execute(
        "SELECT count() FROM system.mutations "
        "WHERE database = %(db)s AND table = %(table)s AND is_done = 0",
        {"db": ch.database, "table": table},
    )
    return int(row[0]) == 0


def wait_for_mutations(
    ch: ClickHouse,
    table: str,
    timeout_seconds: float,
    *,
    sleep: Callable[[float], None] = time.sleep,
) -> bool:
    """Wait until ``table``'s mutations are done, at most ``timeout_seconds``; False if they
    were not. A mutation left running goes on in the server after we stop waiting."""
    deadline = time.monotonic() + timeout_seconds
    pause = 0.05
    while not mutations_done(ch, table):
        if time.monotonic() >= deadline:
            return False
        sleep(pause)
        pause = min(pause * 2, 1.0)
    return True


def erase(
    ch: ClickHouse,
    subject: Subject,
    *,
    dry_run: bool = False,
    requested_by: str = "",
    timeout_seconds: float = 300.0,
    now: datetime | None = None,
) -> Erasure:
    """Erase ``subject``'s rows (see the module's text); a dry run counts them and changes
    nothing. Running it again finds nothing more to erase and is harmless."""
    at = (now or datetime.now(UTC)).astimezone(UTC).replace(microsecond=0)
    result = Erasure(subject, dry_run, uuid.uuid4().hex, at)
    if subject.kind == "phone":
        steps = _phone_steps(subject.match)
    elif subject.kind == "manager":
        steps = _manager_steps(ch, subject.match)
    else:
        raise ValueError(f"unknown kind of subject: {subject.kind!r}")
    for step in steps:
        result.rows[step.table] = result.rows.get(step.table, 0) + _count(ch, step)
    if dry_run:
        return result
    for step in steps:
        if result.rows[step.table] == 0:
            continue
        _mutate(ch, step)
        if not wait_for_mutations(ch, step.table, timeout_seconds):
            result.pending.append(step.table)
            log.warning("erasure: %s mutation not done within %ss", step.table, timeout_seconds)
    for step in steps:
        if step.table not in result.pending:
            result.left[step.table] = result.left.get(step.table, 0) + _count(ch, step)
    _record(ch, result, steps, requested_by)
    log.info(
        "erasure %s of a %s (%s): %s",
        result.erasure_id,
        subject.kind,
        subject.recorded,
        ", ".join(f"{table} {rows}" for table, rows in result.rows.items()),
    )
    return result


def _record(ch: ClickHouse, result: Erasure, steps: list[_Step], requested_by: str) -> None:
    actions = {step.table: step.action for step in steps}
    tables = list(actions)
    ch.insert_columns(
        ERASURE_LOG,
        (
            "erasure_id",
            "subject_kind",
            "subject",
            "table_name",
            "action",
            "rows",
            "done",
            "requested_by",
            "erased_at",
        ),
        [
            [result.erasure_id] * len(tables),
            [result.subject.kind] * len(tables),
            [result.subject.recorded] * len(tables),
            tables,
            [actions[table] for table in tables],
            [result.rows[table] for table in tables],
            [
                int(table not in result.pending and result.left.get(table, 0) == 0)
                for table in tables
            ],
            [requested_by] * len(tables),
            [result.at] * len(tables),
        ],
    )


def logged_subjects(ch: ClickHouse) -> list[tuple[str, str]]:
    """Every subject erased so far, as the audit recorded it: (kind, token or hash)."""
    rows = ch.execute(
        f"SELECT DISTINCT subject_kind, subject FROM {ch.database}.{ERASURE_LOG} "
        "ORDER BY subject_kind, subject"
    )
    return [(str(kind), str(subject)) for kind, subject in rows]


def stored_manager_ids(ch: ClickHouse) -> set[str]:
    """Every manager id the tables keyed by manager hold now (a few hundred at most)."""
    found: set[str] = set()
    for table in MANAGER_TABLES:
        rows = ch.execute(f"SELECT DISTINCT manager_id FROM {ch.database}.{table}")
        found.update(str(manager_id) for (manager_id,) in rows if manager_id)
    return found
