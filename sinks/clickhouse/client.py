"""A narrow ClickHouse client interface, so schema and queries run unchanged on two engines.

Production talks to a ClickHouse server over the native protocol (clickhouse-driver). Tests also
run the same DDL and queries on chDB, an in-process modern ClickHouse, so that what we ship works
on both the oldest server we can run here and a current one. Queries use clickhouse-driver's
``%(name)s`` client-side parameters everywhere; identifiers come only from validated settings.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Sequence
from datetime import date, datetime
from typing import Any, Protocol

from clickhouse_driver import Client
from clickhouse_driver import errors as driver_errors

from salespulse.errors import StorageError
from salespulse.sections import ClickHouseSettings, sql_identifier

Row = tuple[Any, ...]


class ClickHouseError(StorageError):
    """A ClickHouse call failed. ``retriable`` says whether trying again may succeed
    (network trouble, server restarting) or not (bad SQL, schema mismatch). ``reason`` is a
    short fixed code for metrics: ``unreachable``, ``busy`` (a retriable server error),
    ``server`` (any other server error) or ``client``.

    ``about_data`` says the failure is about the values sent (one the column cannot hold, one
    the server refuses), not about the server, the schema or the credentials: the same rows
    will always fail, other rows may pass. Only such failures are worth isolating row by row."""

    def __init__(
        self, message: str, *, retriable: bool, reason: str = "server", about_data: bool = False
    ) -> None:
        super().__init__(message)
        self.retriable = retriable
        self.reason = reason
        self.about_data = about_data and not retriable


_NETWORK_ERRORS = (
    driver_errors.NetworkError,
    driver_errors.SocketTimeoutError,
    ConnectionError,
    TimeoutError,
    EOFError,
)
# Server error codes that mean "busy or restarting", not "wrong": too many parts or queries,
# memory limit, timeouts, table read-only during a restart.
_RETRIABLE_SERVER_CODES = frozenset({159, 164, 202, 209, 210, 241, 242, 252, 425})
# Server error codes that mean "the statement, schema or login is wrong", whatever the rows:
# no column, table or database of that name, bad SQL, unknown setting, not allowed. Every other
# non-retriable server error of an insert is taken to be about the values sent, so that a row
# nobody foresaw cannot stop the stream; these stop the worker, since only an operator can
# fix them and isolating rows would only dead-letter every one.
_SETUP_SERVER_CODES = frozenset(
    {1, 8, 10, 16, 44, 47, 48, 60, 62, 81, 115, 192, 193, 194, 195, 452, 497, 516}
)
# What clickhouse-driver raises, unwrapped, when a value cannot be serialised for its column.
_SERIALISATION_ERRORS = (struct.error, OverflowError, TypeError, ValueError, AttributeError)


class ClickHouse(Protocol):
    database: str

    def execute(self, sql: str, params: dict[str, Any] | None = None) -> list[Row]: ...

    def insert_columns(
        self, table: str, columns: Sequence[str], data: Sequence[Sequence[Any]]
    ) -> None:
        """Insert column-major data (one sequence per column) into ``database.table``."""
        ...

    def server_version(self) -> tuple[int, ...]: ...

    def close(self) -> None: ...


def as_date(value: object) -> date:
    """A Date column's value: a ``date`` from the native client, ISO text from chDB's JSON."""
    return value if isinstance(value, date) else date.fromisoformat(str(value))


def as_datetime(value: object) -> datetime:
    """A DateTime column's value: a ``datetime`` from the native client, text from chDB."""
    return value if isinstance(value, datetime) else datetime.fromisoformat(str(value))


def parse_version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", text)[:3])


def epoch_seconds(column: Sequence[Any]) -> Sequence[Any]:
    """A column of time-zone-aware datetimes (None allowed) as Unix seconds; anything else as
    it is. clickhouse-driver passes integers for a DateTime straight through, where each
    datetime costs it a pytz conversion: the largest per-row cost of an insert. Naive datetimes
    are left to the driver, which reads them in the server's zone. (No column here is a
    DateTime64, whose integers would mean ticks, not seconds.)"""
    converted: list[int | None] = []
    for value in column:
        if value is None:
            converted.append(None)
        elif isinstance(value, datetime) and value.tzinfo is not None:
            converted.append(int(value.timestamp()))
        else:
            return column
    return converted


def _is_datetimes(column: Sequence[Any]) -> bool:
    first = next((value for value in column if value is not None), None)
    return isinstance(first, datetime)


class NativeClickHouse:
    """clickhouse-driver over the native TCP protocol. Not thread-safe: one per thread."""

    def __init__(self, settings: ClickHouseSettings, *, database: str | None = None) -> None:
        # A name given here bypasses the settings' check, and it is written into SQL.
        self.database = settings.database if database is None else sql_identifier(database)
        # On a cluster an insert into a Distributed table returns only once every shard has
        # its rows: offsets are committed after the rows are durable, not queued on this node.
        options = {"insert_distributed_sync": 1} if settings.cluster else {}
        self._client = Client(
            host=settings.host,
            port=settings.port,
            user=settings.user,
            password=settings.password.get_secret_value(),
            secure=settings.secure,
            connect_timeout=settings.connect_timeout_seconds,
            send_receive_timeout=60,
            settings=options,
        )

    def _run(self, sql: str, params: Any = None, **options: Any) -> Any:
        try:
            return self._client.execute(sql, params, **options)
        except _NETWORK_ERRORS as exc:
            self._client.disconnect()
            raise ClickHouseError(
                f"ClickHouse unreachable: {exc}", retriable=True, reason="unreachable"
            ) from exc
        except driver_errors.ServerException as exc:
            retriable = exc.code in _RETRIABLE_SERVER_CODES
            # The server appends its C++ stack trace to the message; people need the first line.
            first_line = str(exc.message).split("\n", 1)[0]
            raise ClickHouseError(
                f"ClickHouse error: {first_line}",
                retriable=retriable,
                reason="busy" if retriable else "server",
                about_data=exc.code not in _SETUP_SERVER_CODES,
            ) from exc
        except driver_errors.Error as exc:
            # The driver's own errors (a type mismatch, a value out of a column's range) are
            # raised while it serialises the rows, before the server saw them.
            raise ClickHouseError(
                f"ClickHouse client error: {exc}", retriable=False, reason="client", about_data=True
            ) from exc

    def execute(self, sql: str, params: dict[str, Any] | None = None) -> list[Row]:
        result = self._run(sql, params)
        return list(result) if isinstance(result, list) else []

    def insert_columns(
        self, table: str, columns: Sequence[str], data: Sequence[Sequence[Any]]
    ) -> None:
        sql = f"INSERT INTO {self.database}.{table} ({', '.join(columns)}) VALUES"
        prepared = [epoch_seconds(c) if _is_datetimes(c) else c for c in data]
        try:
            self._run(sql, prepared, columnar=True)
        except _SERIALISATION_ERRORS as exc:
            # Not every column type wraps its serialisation errors in the driver's own type;
            # the connection is mid-insert and cannot be reused.
            self._client.disconnect()
            raise ClickHouseError(
                f"ClickHouse client error: {type(exc).__name__}: {exc}",
                retriable=False,
                reason="client",
                about_data=True,
            ) from exc

    def server_version(self) -> tuple[int, ...]:
        (row,) = self.execute("SELECT version()")
        return parse_version(str(row[0]))

    def close(self) -> None:
        self._client.disconnect()
