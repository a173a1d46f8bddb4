"""Settings that point at a local stack: the demo's, a test session's, a benchmark's."""

from __future__ import annotations

import contextlib
import socket
from pathlib import Path

from salespulse.sections import StackSettings
from salespulse.settings import Settings


def free_ports(count: int) -> list[int]:
    """Ports the kernel just handed out; the sockets stay open together so the ports differ."""
    with contextlib.ExitStack() as sockets:
        ports = []
        for _ in range(count):
            sock = sockets.enter_context(socket.socket())
            sock.bind(("127.0.0.1", 0))
            ports.append(sock.getsockname()[1])
        return ports


def private_stack(state_dir: Path, *, durable: bool = False) -> StackSettings:
    """A stack of its own in ``state_dir`` on free ports, beside any other running stack;
    ``durable``: its broker stores in its own SeaweedFS."""
    kafka_port, tcp_port, http_port, alertmanager_port, *seaweedfs = free_ports(12)
    names = ("s3", "s3_grpc", "master", "master_grpc", "volume", "volume_grpc", "filer")
    seaweedfs_ports = {
        f"seaweedfs_{name}_port": port
        for name, port in zip((*names, "filer_grpc"), seaweedfs, strict=True)
    }
    return StackSettings(
        state_dir=state_dir,
        kafka_port=kafka_port,
        clickhouse_tcp_port=tcp_port,
        clickhouse_http_port=http_port,
        alertmanager_port=alertmanager_port,
        broker_storage="s3" if durable else "memory",
        **seaweedfs_ports,
    )


def pointed_at_stack(settings: Settings, stack: StackSettings | None = None) -> Settings:
    """``settings`` aimed at the local ``stack``'s Kafka, ClickHouse and Alertmanager.

    ``stack`` defaults to the settings' own. Every address is replaced, an Alertmanager URL the
    user configured included: whatever runs against the local stack (the demo, tests,
    benchmarks) must not page anyone through a real Alertmanager.
    """
    stack = stack or settings.stack
    kafka = settings.kafka.model_copy(update={"bootstrap_servers": f"127.0.0.1:{stack.kafka_port}"})
    clickhouse = settings.clickhouse.model_copy(
        update={"host": "127.0.0.1", "port": stack.clickhouse_tcp_port}
    )
    alerts = settings.alerts.model_copy(update={"alertmanager_url": stack.alertmanager_url})
    return settings.model_copy(
        update={"kafka": kafka, "clickhouse": clickhouse, "alerts": alerts, "stack": stack}
    )
