"""``salespulse cdrdb``: follow the PBX's CDR table in MySQL/MariaDB onto the raw topic.

FreePBX, Issabel and VitalPBX keep CDRs in ``asteriskcdrdb.cdr`` (``cdr_adaptive_odbc`` or
``cdr_mysql``), not only in Master.csv. Each row becomes one JSON object of the columns
salespulse reads, exactly as the table holds them (format ``asterisk-cdr-db``); the worker reads
them with the Asterisk CDR rules, so a CDR from the table and the same CDR from Master.csv or
AMI get one event id and count once.

How rows are found without full scans: every query is a range on ``calldate``, which these
schemas index. A row is written when its call ends but dated when it began, so a long call's
row appears behind newer ones: each poll re-reads the rows dated within ``lookback_seconds`` of
the newest seen, and sends only those whose fingerprint it has not sent. While catching up on a
backlog (a query came back full), it reads forward from the newest row seen instead. The
newest ``calldate`` and the fingerprints within the lookback are the saved position, written
atomically only after Kafka acknowledged the rows: a restart sends nothing twice that it
acknowledged, and re-sends at most the rows of one poll (event ids make that harmless).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pymysql
from pydantic import BaseModel, Field

from ingest.bridge_metrics import BRIDGE_ERRORS, BRIDGE_RECORDS
from ingest.cdr_table_settings import CdrTableError, CdrTableSettings
from ingest.raw_producer import ProduceError, RawProducer, RawRecordOut
from ingest.tailer_state import StateStore, state_name
from salespulse.models import SourceFamily

log = logging.getLogger(__name__)

FORMAT = "asterisk-cdr-db"
_BRIDGE = "cdr_table"
# The columns the worker reads, where the table has them; calldate is required (the cursor).
COLUMNS = (
    "calldate",
    "answer",
    "end",
    "clid",
    "src",
    "dst",
    "dcontext",
    "channel",
    "dstchannel",
    "duration",
    "billsec",
    "disposition",
    "uniqueid",
    "linkedid",
    "sequence",
)
_TIME = "%Y-%m-%d %H:%M:%S"


class TablePosition(BaseModel):
    """Where the follower is: the newest ``calldate`` sent, and the fingerprint of every row
    sent that is dated within the lookback (and its date, to let it go once older)."""

    newest: str | None = None
    sent: dict[str, str] = Field(default_factory=dict)


def _plain(value: Any) -> Any:
    """A column value as JSON holds it: times as the table writes them (wall clock)."""
    if isinstance(value, datetime):
        return value.strftime(_TIME)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value


def row_record(row: dict[str, Any]) -> bytes:
    """One row as the raw record: a JSON object of the columns, in a stable order."""
    return json.dumps({k: _plain(v) for k, v in row.items()}, ensure_ascii=False).encode()


def fingerprint(record: bytes) -> str:
    return hashlib.sha256(record).hexdigest()[:24]


class CdrTable:
    """The table, through one connection, queried in a worker thread."""

    def __init__(self, settings: CdrTableSettings) -> None:
        self._settings = settings
        self._connection: Any = None  # a pymysql connection, opened on first use
        self.columns: tuple[str, ...] = ()

    def _connect(self) -> Any:
        if self._connection is None:
            s = self._settings
            self._connection = pymysql.connect(
                host=s.host,
                port=s.port,
                user=s.user,
                password=s.password.get_secret_value(),
                database=s.database,
                connect_timeout=int(s.connect_timeout_seconds),
                cursorclass=pymysql.cursors.DictCursor,
                autocommit=True,  # each poll sees rows committed since the last
                charset="utf8mb4",
            )
            self.columns = self._present_columns(self._connection)
        return self._connection

    def _present_columns(self, connection: Any) -> tuple[str, ...]:
        with connection.cursor() as cursor:
            cursor.execute(f"SHOW COLUMNS FROM `{self._settings.table}`")
            present = {str(row["Field"]).lower() for row in cursor.fetchall()}
        if "calldate" not in present:
            raise CdrTableError(f"{self._settings.table} has no calldate column to follow")
        return tuple(column for column in COLUMNS if column in present)

    def rows_since(self, since: datetime | None, limit: int) -> list[dict[str, Any]]:
        connection = self._connect()
        columns_sql = ", ".join(f"`{column}`" for column in self.columns)  # known names only
        where_sql = "WHERE `calldate` >= %s " if since is not None else ""
        table = self._settings.table  # a plain name: the settings refuse anything else
        sql = f"SELECT {columns_sql} FROM `{table}` {where_sql}ORDER BY `calldate` LIMIT %s"
        with connection.cursor() as cursor:
            cursor.execute(sql, (since, limit) if since is not None else (limit,))
            return list(cursor.fetchall())

    def newest(self) -> datetime | None:
        connection = self._connect()
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT MAX(`calldate`) AS newest FROM `{self._settings.table}`")
            row = cursor.fetchone()
        value = row["newest"] if row else None
        return value if isinstance(value, datetime) else None

    def close(self) -> None:
        if self._connection is not None:
            with contextlib.suppress(pymysql.Error):
                self._connection.close()
            self._connection = None


class CdrTableFollower:
    def __init__(self, settings: CdrTableSettings, producer: RawProducer) -> None:
        self.settings = settings
        self.producer = producer
        self.table = CdrTable(settings)
        name = state_name(settings.source_key, settings.state_dir / settings.table)
        self.store = StateStore(settings.state_dir, name, TablePosition)
        self.position = TablePosition()
        self.catching_up = False  # a query came back full: read forward, not the lookback

    async def start(self) -> None:
        self.store.lock()
        saved = self.store.load()
        if saved is not None:
            self.position = saved
        elif self.settings.start_at == "now":
            await self._skip_what_is_there()

    async def _skip_what_is_there(self) -> None:
        """Starting "now": every row the table holds within the lookback counts as sent, so
        that only rows written from now on go out (a long call begun before is among them)."""
        newest = await asyncio.to_thread(self.table.newest)
        if newest is None:
            return
        rows = await self._lookback(newest)
        self._remember([(row, row_record(row)) for row in rows], rows)
        self.store.save(self.position)

    def close(self) -> None:
        self.table.close()
        self.store.unlock()

    async def poll(self) -> int:
        """Reads and sends what is new; returns the rows sent. Saves the position after Kafka
        acknowledged them. While a backlog is read (no position yet, or a page came back full)
        one page goes at a time; after that each poll reads the whole lookback."""
        limit = self.settings.rows_per_query
        newest = self.position.newest
        if newest is None or self.catching_up:
            since = None if newest is None else datetime.strptime(newest, _TIME)
            # From the newest sent: rows of that very second are told apart by fingerprint.
            rows = await asyncio.to_thread(self.table.rows_since, since, limit)
            self.catching_up = len(rows) >= limit
        else:
            rows = await self._lookback(datetime.strptime(newest, _TIME))
        sent = self.position.sent
        fresh = [
            (row, record) for row in rows if fingerprint(record := row_record(row)) not in sent
        ]
        if fresh:
            await self._send([record for _, record in fresh])
        self._remember(fresh, rows)
        if fresh:
            # Only when something was sent: the fingerprints of a busy lookback are a file of
            # some hundred kilobytes, not to be rewritten and synced every few seconds for
            # nothing. Fingerprints pruned meanwhile are pruned again after a restart.
            self.store.save(self.position)
        return len(fresh)

    async def _lookback(self, newest: datetime) -> list[dict[str, Any]]:
        """Every row dated from ``lookback_seconds`` before ``newest`` on, page by page."""
        since = newest - timedelta(seconds=self.settings.lookback_seconds)
        return await asyncio.to_thread(self._pages, since)

    def _pages(self, since: datetime) -> list[dict[str, Any]]:
        limit = self.settings.rows_per_query
        rows: list[dict[str, Any]] = []
        while True:
            page = self.table.rows_since(since, limit)
            rows += page
            if len(page) < limit:
                return rows
            last = page[-1]["calldate"]
            if last == since:  # a whole page of one second: the next would be the same
                log.warning("more than %d rows dated %s; raise ROWS_PER_QUERY", limit, since)
                return rows
            since = last  # the rows of that second come again; fingerprints tell them apart

    async def _send(self, records: Sequence[bytes]) -> None:
        per = self.settings.rows_per_message
        messages = [b"\n".join(records[i : i + per]) for i in range(0, len(records), per)]
        await self.producer.send_many(
            RawRecordOut(SourceFamily.PBX, FORMAT, self.settings.source_key.encode(), message)
            for message in messages
        )
        BRIDGE_RECORDS.labels(_BRIDGE).inc(len(records))

    def _remember(
        self, fresh: Sequence[tuple[dict[str, Any], bytes]], rows: Sequence[dict[str, Any]]
    ) -> None:
        for row, record in fresh:
            self.position.sent[fingerprint(record)] = _plain(row["calldate"])
        dates = [_plain(row["calldate"]) for row in rows]
        if dates:
            self.position.newest = max([*dates, self.position.newest or dates[0]])
        if self.position.newest is not None:
            oldest = datetime.strptime(self.position.newest, _TIME) - timedelta(
                seconds=self.settings.lookback_seconds
            )
            floor = oldest.strftime(_TIME)
            self.position.sent = {k: d for k, d in self.position.sent.items() if d >= floor}


async def run_cdr_table(
    settings: CdrTableSettings, producer: RawProducer, stop: asyncio.Event
) -> None:
    """Follow the table until ``stop`` is set. A database that does not answer is retried
    every poll; Kafka that does not take rows is retried the same way (the position does not
    move until it does)."""
    follower = CdrTableFollower(settings, producer)
    await follower.start()
    try:
        while not stop.is_set():
            try:
                sent = await follower.poll()
            except pymysql.Error as exc:
                BRIDGE_ERRORS.labels(_BRIDGE, "database").inc()
                follower.table.close()
                log.warning("CDR table not read: %s", exc)
                sent = 0
            except ProduceError as exc:
                BRIDGE_ERRORS.labels(_BRIDGE, "kafka").inc()
                log.warning("Kafka did not take CDR rows (%s); the position stays", exc)
                sent = 0
            if sent and follower.catching_up:
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), settings.poll_seconds)
    finally:
        follower.close()
