"""Versioned, idempotent schema migrations, recorded in ``schema_migrations``.

Migrations are SQL files ``NNNN_name.sql`` shipped in ``sinks/clickhouse/sql`` (package data,
read through ``importlib.resources``, so an installed wheel finds them); statements are
separated by a line ending in ``;`` and may use ``{database}``. Every statement is written to be
re-runnable (``IF NOT EXISTS``), and the record table is a ReplacingMergeTree, so two workers
starting at once both succeed and leave one record per version.

A file may have a variant for old servers, ``NNNN_name.v18.sql``, used when the server's major
version is below 19 (our CI runs an 18.16 server); otherwise the plain file is used.

On a cluster (``clickhouse.cluster`` set) every file has an explicit variant instead,
``NNNN_name.cluster.sql`` (``NNNN_name.cluster.v18.sql`` for old servers), which may also use
``{cluster}``: each table becomes a replicated ``<table>_local`` on every node plus a
``Distributed`` table ``<table>`` over them, all DDL runs ``ON CLUSTER``, and the record table is
replicated to every node of every shard, so a migration is recorded once per cluster
(docs/adr/0019-clickhouse-cluster.md). ``{shard}`` and ``{replica}`` are the servers' own macros
and are left for them to fill in. A cluster without a variant of some file is refused before
anything runs: rewriting a single-node statement on the fly would be guessing.
"""

from __future__ import annotations

import hashlib
import re
import time
from dataclasses import dataclass
from importlib.resources.abc import Traversable

from salespulse.errors import StorageError
from salespulse.locations import packaged
from salespulse.sections import sql_identifier
from sinks.clickhouse.client import ClickHouse, ClickHouseError

# Anchored at the regular package ``sinks``: ``sinks.clickhouse`` is a namespace package.
MIGRATIONS_DIR = packaged("sinks", "clickhouse", "sql")
_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()[:16]

    def statements(self, database: str, cluster: str | None = None) -> list[str]:
        text = self.sql.replace("{database}", database)
        if cluster is not None:
            text = text.replace("{cluster}", cluster)
        body = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("--"))
        return [stmt.strip() for stmt in body.split(";") if stmt.strip()]


def discover(
    directory: Traversable = MIGRATIONS_DIR, *, server_major: int = 99, cluster: bool = False
) -> list[Migration]:
    """The migrations in ``directory``, in order, each as the file this server runs: the
    ``.v18`` variant on an old server, the ``.cluster`` one on a cluster."""
    files = {entry.name: entry for entry in directory.iterdir() if entry.is_file()}
    migrations: list[Migration] = []
    for name in sorted(files):
        match = _NAME.match(name)
        if not match:
            continue  # variants (NNNN_name.v18.sql) are picked up next to their main file
        stem = name.removesuffix(".sql") + (".cluster" if cluster else "")
        variant = files.get(stem + ".v18.sql")
        if cluster:
            main = files.get(stem + ".sql")
            if main is None:
                raise MigrationError(
                    f"migration {name} has no cluster variant {stem}.sql; a clustered schema "
                    f"needs one for every migration"
                )
        else:
            main = files[name]
        chosen = variant if server_major < 19 and variant is not None else main
        # UTF-8 whatever the locale: the checksum recorded in databases is of these characters.
        text = chosen.read_text(encoding="utf-8")
        migrations.append(Migration(int(match.group(1)), match.group(2), text))
    versions = [m.version for m in migrations]
    if len(versions) != len(set(versions)):
        raise ValueError(f"duplicate migration versions in {directory}")
    return migrations


_ADD_COLUMN = re.compile(
    r"^ALTER\s+TABLE\s+(?:\w+\.)?(\w+)\s+(?:ON\s+CLUSTER\s+\w+\s+)?ADD\s+COLUMN\s+(\w+)",
    re.IGNORECASE,
)


def _already_done(ch: ClickHouse, statement: str) -> bool:
    """True for an ``ADD COLUMN`` whose column exists: another worker applied it a moment ago.

    ``ADD COLUMN IF NOT EXISTS`` would say this in SQL, but old servers do not parse it.
    """
    match = _ADD_COLUMN.match(statement)
    if match is None:
        return False
    rows = ch.execute(
        "SELECT count() FROM system.columns "
        "WHERE database = %(database)s AND table = %(table)s AND name = %(column)s",
        {"database": ch.database, "table": match.group(1), "column": match.group(2)},
    )
    return int(rows[0][0]) > 0


class MigrationError(StorageError):
    """The database's schema history disagrees with the migration files."""


# Workers starting together on an empty database each run every migration. One that is a
# migration ahead may find a table another has just dropped to recreate it (0010 recreates the
# rollups that 0012 alters): the table is back a moment later. Statements are idempotent, so
# a failed one is tried again for this long before the error stands.
_RACE_SECONDS = 10.0
_RACE_PAUSE = 0.2
_RACE_SIGNS = re.compile(r"doesn't exist|already exists", re.IGNORECASE)


def _execute_beside_others(ch: ClickHouse, statement: str) -> None:
    deadline = time.monotonic() + _RACE_SECONDS
    while not _already_done(ch, statement):
        try:
            ch.execute(statement)
            return
        except ClickHouseError as exc:
            # Another worker added the column between the check and this statement, or holds
            # the table between its DROP and its CREATE. Any other error is no race: it stands.
            if _already_done(ch, statement):
                return
            if not _RACE_SIGNS.search(str(exc)) or time.monotonic() > deadline:
                raise
            time.sleep(_RACE_PAUSE)


def applied_versions(ch: ClickHouse) -> dict[int, str]:
    """Applied migration versions and the checksums of the SQL they ran."""
    rows = ch.execute(f"SELECT version, checksum FROM {ch.database}.schema_migrations FINAL")
    return {int(version): str(checksum) for version, checksum in rows}


def _create_record_table(ch: ClickHouse, cluster: str | None) -> None:
    columns = "(version UInt32, name String, checksum String, applied_at DateTime)"
    table = f"{ch.database}.schema_migrations"
    if cluster is None:
        ch.execute(
            f"CREATE TABLE IF NOT EXISTS {table} {columns} "
            "ENGINE = ReplacingMergeTree(applied_at) ORDER BY version"
        )
        return
    # One replica on every node of every shard (the path names no shard): each node reads the
    # whole history locally, and a migration is recorded once for the cluster.
    path_sql = f"/clickhouse/tables/all/{ch.database}/schema_migrations"
    ch.execute(
        f"CREATE TABLE IF NOT EXISTS {table} ON CLUSTER {cluster} {columns} "
        f"ENGINE = ReplicatedReplacingMergeTree('{path_sql}', '{{replica}}', applied_at) "
        "ORDER BY version"
    )


def apply_migrations(
    ch: ClickHouse, directory: Traversable = MIGRATIONS_DIR, *, cluster: str | None = None
) -> list[Migration]:
    """Bring the schema up to date; returns the migrations applied by this call.

    ``cluster``: the schema lives on that cluster (``clickhouse.cluster``), through each file's
    ``.cluster`` variant; ``ch`` may be any node of it."""
    # The settings check the name when they load; a client built with another name (tests,
    # benchmarks) is checked here, before the first statement that writes it into SQL.
    try:
        sql_identifier(ch.database)
    except ValueError as exc:
        raise MigrationError(f"database name {ch.database!r} {exc}") from None
    if cluster is not None:
        try:
            sql_identifier(cluster)
        except ValueError as exc:
            raise MigrationError(f"cluster name {cluster!r} {exc}") from None
    # Every file is chosen (and a missing cluster variant refused) before anything is created.
    migrations = discover(
        directory, server_major=ch.server_version()[0], cluster=cluster is not None
    )
    on_cluster_sql = f" ON CLUSTER {cluster}" if cluster is not None else ""
    ch.execute(f"CREATE DATABASE IF NOT EXISTS {ch.database}{on_cluster_sql}")
    _create_record_table(ch, cluster)
    done = applied_versions(ch)
    applied: list[Migration] = []
    for migration in migrations:
        if migration.version in done:
            # A migration edited after it ran would leave this database unlike any other.
            if done[migration.version] != migration.checksum:
                raise MigrationError(
                    f"migration {migration.version:04d}_{migration.name} changed after it was "
                    f"applied to {ch.database}; add a new migration instead of editing it"
                )
            continue
        for statement in migration.statements(ch.database, cluster):
            _execute_beside_others(ch, statement)
        ch.execute(
            f"INSERT INTO {ch.database}.schema_migrations (version, name, checksum, applied_at) "
            "SELECT %(version)s, %(name)s, %(checksum)s, now()",
            {"version": migration.version, "name": migration.name, "checksum": migration.checksum},
        )
        applied.append(migration)
    return applied
