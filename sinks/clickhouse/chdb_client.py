"""chDB (in-process modern ClickHouse) behind the same interface as the native client.

Used by the test suite to prove that our DDL and queries run on a current engine as well as on
the 18.16 server; chDB is a development dependency. Parameters are substituted client-side with
clickhouse-driver's own escaping, so the SQL text is exactly what the server path sends.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from clickhouse_driver.util.escape import escape_param

from sinks.clickhouse.client import ClickHouseError, Row, parse_version


def _literal(value: Any) -> str:
    # clickhouse-driver's escaping needs a live connection's time zone for datetimes; our
    # DateTime columns are all UTC, so aware datetimes are rendered in UTC here.
    if isinstance(value, datetime):
        utc = value.astimezone(UTC) if value.tzinfo else value
        return f"'{utc:%Y-%m-%d %H:%M:%S}'"
    return str(escape_param(value, None))


class ChdbClickHouse:
    def __init__(self, path: str, *, database: str = "salespulse") -> None:
        from chdb import session

        self.database = database
        self._session: Any = session.Session(path)  # type: ignore[no-untyped-call]
        # Plain JSON numbers, so results compare equal to what clickhouse-driver returns.
        self.execute("SET output_format_json_quote_64bit_integers = 0")
        self.execute("SET output_format_json_quote_decimals = 0")

    def execute(self, sql: str, params: dict[str, Any] | None = None) -> list[Row]:
        if params:
            sql = sql % {key: _literal(value) for key, value in params.items()}
        try:
            result = self._session.query(sql, "JSONCompact")
        except Exception as exc:  # chDB raises bare RuntimeError for every server error
            raise ClickHouseError(f"chDB error: {exc}", retriable=False) from exc
        payload = result.bytes()
        if not payload:
            return []
        return [tuple(row) for row in json.loads(payload)["data"]]

    def insert_columns(
        self, table: str, columns: Sequence[str], data: Sequence[Sequence[Any]]
    ) -> None:
        rows = zip(*data, strict=True)
        values = ",".join("(" + ",".join(_literal(value) for value in row) + ")" for row in rows)
        self.execute(f"INSERT INTO {self.database}.{table} ({', '.join(columns)}) VALUES {values}")

    def server_version(self) -> tuple[int, ...]:
        (row,) = self.execute("SELECT version()")
        return parse_version(str(row[0]))

    def close(self) -> None:
        self._session.close()
