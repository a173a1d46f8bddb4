"""The local ClickHouse cluster: ZooKeeper and two 18.16 servers as one shard with two replicas
(and as two shards); and the schema on it (``SALESPULSE_CLICKHOUSE__CLUSTER``): ``salespulse
schema apply`` creates every table through the migrations' cluster variants, once, and events
the sink writes on one replica are read on the other.

The cluster is the module's own (its own state dir and free ports). A missing ZooKeeper (Debian's
``zookeeper``, which dev.sh installs) is a ``StackError`` that errors these tests: they never skip.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from datetime import date

import pytest

from processors.pipeline import RawMessage
from salespulse.cli import main
from salespulse.sections import ClickHouseSettings
from salespulse.stack_cluster import (
    ClusterNode,
    ClusterSettings,
    cluster_up,
    node_pid,
    private_cluster,
    running_cluster,
)
from salespulse.stack_processes import gone
from sinks.clickhouse.client import NativeClickHouse
from sinks.clickhouse.migrations import apply_migrations, discover
from sinks.clickhouse.rollup import rebuild
from sinks.clickhouse.sink import ClickHouseSink
from tests.conftest import LocalStack
from tests.integration.test_alert_queries import CDRS, CHATS, CRM
from tests.integration.test_rollups import process
from tests.polling import eventually

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterSettings]:
    settings = private_cluster(tmp_path_factory.mktemp("cluster"), shards=1, replicas=2)
    started = time.monotonic()
    with running_cluster(settings):
        print(f"\ncluster up in {time.monotonic() - started:.1f} s")
        yield settings


def connect(
    node: ClusterNode, database: str = "default", cluster: str | None = None
) -> NativeClickHouse:
    settings = ClickHouseSettings(
        port=node.stack.clickhouse_tcp_port, database=database, cluster=cluster
    )
    return NativeClickHouse(settings)


def test_both_replicas_are_in_the_cluster_and_a_row_replicates(cluster: ClusterSettings) -> None:
    first, second = (connect(node) for node in cluster.nodes)
    try:
        rows = first.execute(
            "SELECT shard_num, replica_num, port FROM system.clusters WHERE cluster = %(c)s "
            "ORDER BY replica_num",
            {"c": cluster.name},
        )
        ports = [node.stack.clickhouse_tcp_port for node in cluster.nodes]
        assert rows == [(1, 1, ports[0]), (1, 2, ports[1])]
        macros = dict(second.execute("SELECT macro, substitution FROM system.macros"))
        assert macros == {"shard": "01", "replica": "shard1-replica2"}

        first.execute(
            f"CREATE TABLE default.replicated ON CLUSTER {cluster.name} (id UInt32, note String) "
            "ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/default/replicated', "
            "'{replica}') ORDER BY id"
        )
        # ON CLUSTER returns once every node ran the statement, so the table is on both.
        first.insert_columns("replicated", ("id", "note"), ([1], ["written on replica 1"]))
        seen = eventually(
            lambda: second.execute("SELECT id, note FROM default.replicated"), seconds=30
        )
        assert seen == [(1, "written on replica 1")]
    finally:
        first.close()
        second.close()


def tables(ch: NativeClickHouse) -> dict[str, str]:
    rows = ch.execute(
        "SELECT name, engine FROM system.tables WHERE database = %(db)s", {"db": ch.database}
    )
    return {str(name): str(engine) for name, engine in rows}


async def test_the_schema_applies_once_on_the_cluster_and_events_replicate(
    cluster: ClusterSettings,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    first, second = cluster.nodes
    monkeypatch.setenv("SALESPULSE_CLICKHOUSE__PORT", str(first.stack.clickhouse_tcp_port))
    monkeypatch.setenv("SALESPULSE_CLICKHOUSE__DATABASE", "clustered")
    monkeypatch.setenv("SALESPULSE_CLICKHOUSE__CLUSTER", cluster.name)
    assert main(["schema", "apply"]) == 0
    assert "applied now: 0001_events" in capsys.readouterr().out
    on_first, on_second = (connect(node, "clustered", cluster.name) for node in cluster.nodes)
    try:
        schema = tables(on_first)
        # ON CLUSTER returned once every node had run each statement: the same tables on both.
        assert tables(on_second) == schema
        for table in ("events", "ingest_batches", "activity_15m", "activity_daily", "alerts"):
            assert schema[table] == "Distributed"
            assert schema[f"{table}_local"].startswith("Replicated")
        assert schema["schema_migrations"] == "ReplicatedReplacingMergeTree"
        versions = [m.version for m in discover(cluster=True)]
        recorded = "SELECT version FROM clustered.schema_migrations FINAL ORDER BY version"
        assert [v for (v,) in on_first.execute(recorded)] == versions
        # Recorded once per cluster: the other node reads the same history, and so a second
        # apply through it changes nothing.
        assert eventually(lambda: [v for (v,) in on_second.execute(recorded)] == versions, 30)
        monkeypatch.setenv("SALESPULSE_CLICKHOUSE__PORT", str(second.stack.clickhouse_tcp_port))
        assert main(["schema", "apply"]) == 0
        assert "applied now: nothing" in capsys.readouterr().out
        assert tables(on_first) == schema

        messages = [
            RawMessage("pbx", 0, 0, [("sp-format", b"asterisk-cdr-csv")], b"\n".join(CDRS)),
            RawMessage("chat", 0, 1, [("sp-format", b"chat-session-json")], b"\n".join(CHATS)),
            RawMessage("crm", 0, 2, [("sp-format", b"crm-event-json")], b"\n".join(CRM)),
        ]
        result = process(messages)
        assert not result.dead_letters
        assert await ClickHouseSink(lambda: on_first).write_events(result.rows) == []
        per_manager = (
            "SELECT manager_id, count(), uniqExact(event_id) FROM clustered.events FINAL "
            "GROUP BY manager_id ORDER BY manager_id"
        )
        written = on_first.execute(per_manager)
        assert sum(int(row[1]) for row in written) == len({row[0] for row in result.rows})
        assert eventually(lambda: on_second.execute(per_manager) == written, 30)
        local = "SELECT count() FROM clustered.events_local"
        assert eventually(lambda: on_second.execute(local) == on_first.execute(local), 30)
    finally:
        on_first.close()
        on_second.close()


@pytest.fixture(scope="module")
def two_shards(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterSettings]:
    settings = private_cluster(tmp_path_factory.mktemp("shards"), shards=2, replicas=1)
    with running_cluster(settings):
        yield settings


async def test_on_two_shards_each_managers_events_live_on_one_shard(
    two_shards: ClusterSettings,
) -> None:
    nodes = [connect(node, "sharded", two_shards.name) for node in two_shards.nodes]
    try:
        apply_migrations(nodes[0], cluster=two_shards.name)
        # The record table has no shard in its path: the other shard has the whole history.
        recorded = "SELECT count() FROM sharded.schema_migrations FINAL"
        expected = [(len(discover(cluster=True)),)]
        assert eventually(lambda: nodes[1].execute(recorded) == expected, 30)
        assert apply_migrations(nodes[1], cluster=two_shards.name) == []

        messages = [
            RawMessage("pbx", 0, 0, [("sp-format", b"asterisk-cdr-csv")], b"\n".join(CDRS)),
            RawMessage("crm", 0, 2, [("sp-format", b"crm-event-json")], b"\n".join(CRM)),
        ]
        result = process(messages)
        assert await ClickHouseSink(lambda: nodes[0]).write_events(result.rows) == []
        # Synchronous inserts: both shards have their rows when the insert returns.
        per_shard = [
            dict(
                node.execute(
                    "SELECT manager_id, count() FROM sharded.events_local GROUP BY manager_id"
                )
            )
            for node in nodes
        ]
        assert not set(per_shard[0]) & set(per_shard[1]), "a manager's rows on both shards"
        assert all(per_shard), "the test data should reach both shards"
        # Where the Distributed table's key sends each manager: shard (hash % 2) + 1.
        for shard, managers in enumerate(per_shard):
            for manager in managers:
                ((index,),) = nodes[0].execute(
                    "SELECT modulo(cityHash64(%(m)s), 2)", {"m": manager}
                )
                assert index == shard, manager
        # Read through either node, the per-manager numbers are the whole cluster's.
        per_manager = (
            "SELECT manager_id, count() FROM sharded.events FINAL GROUP BY manager_id "
            "ORDER BY manager_id"
        )
        merged = sorted({**per_shard[0], **per_shard[1]}.items())
        assert nodes[0].execute(per_manager) == merged
        assert nodes[1].execute(per_manager) == merged
    finally:
        for node in nodes:
            node.close()


async def test_a_replica_killed_with_sigkill_catches_up_after_restart(
    cluster: ClusterSettings,
) -> None:
    first, second = cluster.nodes
    on_first = connect(first, "catchup", cluster.name)
    try:
        apply_migrations(on_first, cluster=cluster.name)
        pid = node_pid(second)
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        assert eventually(lambda: gone(pid), 10)

        # Writes go on through the live replica while the other is dead.
        messages = [
            RawMessage("pbx", 0, 0, [("sp-format", b"asterisk-cdr-csv")], b"\n".join(CDRS)),
            RawMessage("crm", 0, 2, [("sp-format", b"crm-event-json")], b"\n".join(CRM)),
        ]
        result = process(messages)
        assert await ClickHouseSink(lambda: on_first).write_events(result.rows) == []
        count = "SELECT count() FROM catchup.events_local"
        written = on_first.execute(count)
        assert written[0][0] == len(result.rows)

        started = time.monotonic()
        cluster_up(cluster)  # starts only what is not running: the killed replica
        on_second = connect(second, "catchup", cluster.name)
        try:
            assert eventually(lambda: on_second.execute(count) == written, 60)
            print(f"\nkilled replica caught up in {time.monotonic() - started:.1f} s")
        finally:
            on_second.close()
    finally:
        on_first.close()


ROLLUPS = {
    "activity_daily": "manager_id, department_id, local_date",
    "activity_15m": "manager_id, department_id, local_date, bucket",
    "payments_daily": "manager_id, department_id, local_date, currency",
}


async def load_and_roll_up(ch: NativeClickHouse, rows: list[tuple[object, ...]]) -> None:
    assert await ClickHouseSink(lambda: ch).write_events(rows) == []
    rebuild(ch, date(2026, 10, 1), date(2026, 11, 27))


async def test_rollups_on_two_shards_equal_a_single_servers(
    two_shards: ClusterSettings, stack: LocalStack
) -> None:
    """The rollups recomputed over the Distributed events of two shards are, row for row, those
    a single 18.16 server computes from the same events."""
    messages = [
        RawMessage("pbx", 0, 0, [("sp-format", b"asterisk-cdr-csv")], b"\n".join(CDRS)),
        RawMessage("chat", 0, 1, [("sp-format", b"chat-session-json")], b"\n".join(CHATS)),
        RawMessage("crm", 0, 2, [("sp-format", b"crm-event-json")], b"\n".join(CRM)),
    ]
    result = process(messages)
    on_cluster = connect(two_shards.nodes[1], "rolled", two_shards.name)
    single = NativeClickHouse(stack.settings.clickhouse, database="rolled_single")
    try:
        apply_migrations(on_cluster, cluster=two_shards.name)
        apply_migrations(single)
        for ch in (on_cluster, single):
            await load_and_roll_up(ch, result.rows)
        for table, key in ROLLUPS.items():
            # Every column but the version, which is the pass's own clock.
            columns = [
                str(name)
                for (name,) in single.execute(
                    "SELECT name FROM system.columns WHERE database = %(db)s AND table = %(t)s "
                    "AND name != 'version'",
                    {"db": single.database, "t": table},
                )
            ]
            query = f"SELECT {', '.join(columns)} FROM {{db}}.{table} FINAL ORDER BY {key}"
            expected = single.execute(query.format(db=single.database))
            # The sample has calls, chats and CRM events but no payments.
            assert expected or table == "payments_daily", table
            assert on_cluster.execute(query.format(db=on_cluster.database)) == expected, table
    finally:
        on_cluster.close()
        single.close()
