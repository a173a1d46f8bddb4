"""A local ClickHouse cluster: ZooKeeper plus several clickhouse-server processes, as shards and
replicas of one cluster, for tests and experiments with ``SALESPULSE_CLICKHOUSE__CLUSTER``.

Each node is a single-node stack ClickHouse (the same config.xml, its own state dir and ports)
with a ``config.d/cluster.xml`` merged over it: ZooKeeper, its ``{shard}``/``{replica}`` macros,
the cluster in ``remote_servers`` (``internal_replication``: a Distributed table writes each block
to one replica and replication copies it), ``distributed_ddl`` for ``ON CLUSTER`` and an
interserver port. ZooKeeper starts first and stops last. Processes are started, recognised and
stopped like the rest of the stack's (salespulse.stack_processes).

    cluster = private_cluster(tmp_dir, shards=1, replicas=2)
    with running_cluster(cluster):
        ...  # cluster.nodes[0].stack.clickhouse_tcp_port, ...
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from pathlib import Path
from string import Template

from salespulse.sections import StackSettings
from salespulse.stack_clickhouse import (
    LISTEN_HOST,
    TEMPLATE_DIR,
    StackError,
    clickhouse_answers,
    clickhouse_config_path,
    clickhouse_dir,
    clickhouse_error_log_path,
    clickhouse_log_path,
    find_clickhouse_server,
    render_clickhouse_config,
)
from salespulse.stack_processes import (
    POLL_SECONDS,
    Service,
    abort,
    forget,
    gone,
    interrupts_held,
    launch,
    log_tail,
    recorded_pid,
    terminate,
    unrecorded_pids,
)
from salespulse.stack_settings import free_ports
from salespulse.stack_zookeeper import (
    find_java,
    find_zookeeper_jar,
    render_zookeeper_config,
    zookeeper_answers,
    zookeeper_args,
)

CLUSTER_NAME = "salespulse"
START_TIMEOUT_SECONDS = 60.0
STOP_TIMEOUT_SECONDS = 15.0


@dataclass(frozen=True)
class ClusterNode:
    """One clickhouse-server of the cluster; ``stack`` carries its state dir and client ports."""

    shard: int
    replica: int
    stack: StackSettings
    interserver_port: int

    @property
    def name(self) -> str:
        return f"shard{self.shard}-replica{self.replica}"


@dataclass(frozen=True)
class ClusterSettings:
    state_dir: Path
    zookeeper_port: int
    nodes: tuple[ClusterNode, ...]
    name: str = CLUSTER_NAME

    def shard_nodes(self, shard: int) -> tuple[ClusterNode, ...]:
        return tuple(node for node in self.nodes if node.shard == shard)

    @property
    def shards(self) -> tuple[int, ...]:
        return tuple(sorted({node.shard for node in self.nodes}))


def private_cluster(
    state_dir: Path, *, shards: int = 1, replicas: int = 2, name: str = CLUSTER_NAME
) -> ClusterSettings:
    """A cluster of its own in ``state_dir`` on free ports: ``shards`` × ``replicas`` servers."""
    count = shards * replicas
    zookeeper_port, *ports = free_ports(1 + 3 * count)
    nodes = []
    for index in range(count):
        shard, replica = index // replicas + 1, index % replicas + 1
        tcp, http, interserver = ports[3 * index : 3 * index + 3]
        stack = StackSettings(
            state_dir=state_dir / f"shard{shard}-replica{replica}",
            clickhouse_tcp_port=tcp,
            clickhouse_http_port=http,
        )
        nodes.append(ClusterNode(shard, replica, stack, interserver))
    return ClusterSettings(state_dir, zookeeper_port, tuple(nodes), name)


def _zookeeper_dir(cluster: ClusterSettings) -> Path:
    return cluster.state_dir / "zookeeper"


def _shards_xml(cluster: ClusterSettings) -> str:
    shards = []
    for shard in cluster.shards:
        replicas = "".join(
            f"\n                <replica><host>{LISTEN_HOST}</host>"
            f"<port>{node.stack.clickhouse_tcp_port}</port></replica>"
            for node in cluster.shard_nodes(shard)
        )
        shards.append(
            "            <shard>\n"
            "                <internal_replication>true</internal_replication>"
            f"{replicas}\n            </shard>"
        )
    return "\n".join(shards)


def render_node_config(cluster: ClusterSettings, node: ClusterNode) -> Path:
    """Write the node's single-node config plus its ``config.d/cluster.xml``."""
    config = render_clickhouse_config(node.stack)
    template = Template(TEMPLATE_DIR.joinpath("cluster.xml.template").read_text(encoding="utf-8"))
    rendered = template.substitute(
        listen_host=LISTEN_HOST,
        interserver_port=node.interserver_port,
        zookeeper_port=cluster.zookeeper_port,
        shard=f"{node.shard:02d}",
        replica=node.name,
        cluster=cluster.name,
        shards=_shards_xml(cluster),
    )
    overrides = config.parent / "config.d"
    overrides.mkdir(exist_ok=True)
    (overrides / "cluster.xml").write_text(rendered, encoding="utf-8")
    return config


def _zookeeper_service(cluster: ClusterSettings, jar: Path) -> Service:
    directory = _zookeeper_dir(cluster)
    return Service(
        name="zookeeper",
        directory=directory,
        port=cluster.zookeeper_port,
        bound_ports=((cluster.zookeeper_port, "the cluster's zookeeper_port"),),
        log_path=directory / "zookeeper.stdout.log",
        extra_logs=(),
        answers=lambda: zookeeper_answers(cluster.zookeeper_port),
        args=zookeeper_args(jar, directory / "zoo.cfg"),
    )


def _node_service(node: ClusterNode) -> Service:
    stack = node.stack
    return Service(
        name="clickhouse",
        directory=clickhouse_dir(stack),
        port=stack.clickhouse_tcp_port,
        bound_ports=(
            (stack.clickhouse_tcp_port, f"{node.name}'s tcp port"),
            (stack.clickhouse_http_port, f"{node.name}'s http port"),
            (node.interserver_port, f"{node.name}'s interserver port"),
        ),
        log_path=clickhouse_log_path(stack),
        extra_logs=(clickhouse_error_log_path(stack),),
        answers=lambda: clickhouse_answers(stack),
        args=(f"--config-file={clickhouse_config_path(stack)}",),
    )


def node_pid(node: ClusterNode) -> int | None:
    """The pid of the node's running server, if it is the one this stack started."""
    return recorded_pid(_node_service(node), forget_stale=False)


def _wait_until_answering(service: Service, pid: int, deadline: float) -> None:
    while not service.answers():
        if gone(pid):
            raise StackError(
                f"{service.name} (pid {pid}) exited during startup\n{log_tail(service)}"
            )
        if time.monotonic() > deadline:
            raise StackError(
                f"{service.name} (pid {pid}) in {service.directory} did not answer on "
                f"{LISTEN_HOST}:{service.port}\n{log_tail(service)}"
            )
        time.sleep(POLL_SECONDS)


def cluster_up(
    cluster: ClusterSettings,
    *,
    install_missing: bool = True,
    clickhouse_bin: Path | None = None,
    zookeeper_jar: Path | None = None,
    timeout: float = START_TIMEOUT_SECONDS,
) -> None:
    """Start ZooKeeper and every node not already running; wait until all of them answer.

    A node stopped with ``cluster_down(..., nodes=...)`` is started again on its old data, so it
    catches up from its replicas. A missing ZooKeeper is a ``StackError`` (never a quiet skip).
    """
    java = find_java()
    jar = find_zookeeper_jar(zookeeper_jar, install_missing=install_missing)
    server = find_clickhouse_server(clickhouse_bin, install_missing=install_missing)
    zookeeper = _zookeeper_service(cluster, jar)
    planned: list[tuple[Service, Path]] = [(zookeeper, java)]
    planned += [(_node_service(node), server) for node in cluster.nodes]
    pids = {service.directory: recorded_pid(service, forget_stale=True) for service, _ in planned}
    deadline = time.monotonic() + timeout
    launched: list[tuple[Service, int]] = []
    try:
        for index, (service, binary) in enumerate(planned):
            pid = pids[service.directory]
            if pid is None:
                if service is zookeeper:
                    render_zookeeper_config(service.directory, cluster.zookeeper_port)
                else:
                    render_node_config(cluster, cluster.nodes[index - 1])
                with interrupts_held():
                    pid = launch(service, binary)
                    launched.append((service, pid))
            if service is zookeeper:
                # The servers read ZooKeeper as they start: their tables come up read-only
                # without it.
                _wait_until_answering(service, pid, deadline)
        for service, pid in launched:
            _wait_until_answering(service, pid, deadline)
    except BaseException:
        with interrupts_held():
            for service, pid in reversed(launched):
                abort(service, pid, STOP_TIMEOUT_SECONDS)
        raise


def cluster_down(
    cluster: ClusterSettings,
    *,
    nodes: Collection[str] | None = None,
    timeout: float = STOP_TIMEOUT_SECONDS,
) -> list[str]:
    """Stop the servers (all of them, or only the ``nodes`` named) and then ZooKeeper; return
    what was stopped, e.g. ``["shard1-replica2 (pid 12)"]``."""
    chosen = [node for node in cluster.nodes if nodes is None or node.name in nodes]
    services = [(node.name, _node_service(node)) for node in chosen]
    if nodes is None:
        jar = Path("zookeeper.jar")  # only its arguments identify the service here
        with contextlib.suppress(StackError):
            jar = find_zookeeper_jar(install_missing=False)
        services.append(("zookeeper", _zookeeper_service(cluster, jar)))
    stopped = []
    with interrupts_held():
        for label, service in services:
            pid = recorded_pid(service, forget_stale=True)
            # A server whose pid file went with a removed folder is found by its arguments.
            pids = [pid] if pid is not None else unrecorded_pids(service)
            for each in pids:
                terminate(service, each, timeout)
                stopped.append(f"{label} (pid {each})")
            forget(service)
    return stopped


@contextlib.contextmanager
def running_cluster(cluster: ClusterSettings) -> Iterator[ClusterSettings]:
    """The cluster up for the block and down after it, however the block ends."""
    try:
        cluster_up(cluster)
        yield cluster
    finally:
        cluster_down(cluster)
