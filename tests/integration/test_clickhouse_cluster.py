"""The local ClickHouse cluster: ZooKeeper and two 18.16 servers as one shard with two replicas.

The cluster is the module's own (its own state dir and free ports). A missing ZooKeeper (Debian's
``zookeeper``, which dev.sh installs) is a ``StackError`` that errors these tests: they never skip.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from salespulse.sections import ClickHouseSettings
from salespulse.stack_cluster import ClusterNode, ClusterSettings, private_cluster, running_cluster
from sinks.clickhouse.client import NativeClickHouse
from tests.polling import eventually

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterSettings]:
    settings = private_cluster(tmp_path_factory.mktemp("cluster"), shards=1, replicas=2)
    started = time.monotonic()
    with running_cluster(settings):
        print(f"\ncluster up in {time.monotonic() - started:.1f} s")
        yield settings


def connect(node: ClusterNode, database: str = "default") -> NativeClickHouse:
    settings = ClickHouseSettings(port=node.stack.clickhouse_tcp_port, database=database)
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
