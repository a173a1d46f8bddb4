"""The migrations' cluster variants (``NNNN_name.cluster.sql``): one for every migration, every
statement ``ON CLUSTER``, and the single-node files chosen exactly as before without a cluster."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from sinks.clickhouse.migrations import MIGRATIONS_DIR, MigrationError, discover


def test_every_migration_has_a_cluster_variant_and_single_node_is_unchanged() -> None:
    plain = discover()
    clustered = discover(cluster=True)
    assert [(m.version, m.name) for m in clustered] == [(m.version, m.name) for m in plain]
    for migration in plain:
        # Without a cluster the file itself runs: its checksum is the one databases recorded.
        path = MIGRATIONS_DIR / f"{migration.version:04d}_{migration.name}.sql"
        assert migration.sql == path.read_text(encoding="utf-8")
        assert "{cluster}" not in migration.sql
    assert all(a.sql != b.sql for a, b in zip(plain, clustered, strict=True))


def test_every_cluster_statement_runs_on_the_cluster() -> None:
    engines = set()
    for migration in discover(cluster=True):
        for statement in migration.statements("db", "prod"):
            assert " ON CLUSTER prod" in statement, statement
            assert "{cluster}" not in statement
            assert "{database}" not in statement
            engine = re.search(r"ENGINE = (\w+)\((.*?)\)(?:\n|$)", statement, re.S)
            if engine is None:
                continue
            name, args = engine.groups()
            engines.add(name)
            if name == "Distributed":
                assert args.startswith("prod, db, ")
            else:
                # The servers fill in their own macros; the path names the creating migration.
                assert name.startswith("Replicated")
                assert args.startswith("'/clickhouse/tables/{shard}/db/")
                assert f"/{migration.version:04d}', '{{replica}}'" in args
    assert {"Distributed", "ReplicatedMergeTree", "ReplicatedReplacingMergeTree"} <= engines


def test_a_cluster_refuses_a_schema_with_a_migration_lacking_its_variant(tmp_path: Path) -> None:
    (tmp_path / "0001_one.sql").write_text("SELECT 1;\n")
    (tmp_path / "0001_one.cluster.sql").write_text("SELECT 1;\n")
    (tmp_path / "0002_two.sql").write_text("SELECT 2;\n")
    assert [m.version for m in discover(tmp_path)] == [1, 2]
    with pytest.raises(MigrationError, match=r"0002_two\.sql has no cluster variant"):
        discover(tmp_path, cluster=True)
