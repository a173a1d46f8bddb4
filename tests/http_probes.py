"""Hostile bodies and a raw-socket client for the tests of both HTTP servers (the receiver and
the worker's web port): what an answer cost the server, and whether it closed the connection."""

from __future__ import annotations

import contextlib
import http.client
import socket
import struct
import time
import zlib
from functools import cache
from typing import NamedTuple

_GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"
_MIB = 1 << 20


@cache
def gzip_bomb(inflated_mib: int = 1024) -> bytes:
    """A valid gzip body of about 1 KB per MiB it inflates to (1 MB for 1 GiB of zeros).

    Made without compressing a GiB: one MiB of zeros is compressed once and repeated, which is a
    valid deflate stream because a full flush makes each copy stand alone."""
    zeros = bytes(_MIB)
    deflate = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    block = deflate.compress(zeros) + deflate.flush(zlib.Z_FULL_FLUSH)
    crc = 0
    for _ in range(inflated_mib):
        crc = zlib.crc32(zeros, crc)
    trailer = struct.pack("<II", crc, (inflated_mib * _MIB) & 0xFFFFFFFF)
    return _GZIP_HEADER + block * inflated_mib + deflate.flush() + trailer


def inflate_seconds(body: bytes) -> float:
    """CPU seconds this process takes to inflate a gzip ``body`` (in pieces: memory stays
    small), the cost a server pays if it inflates a body it then throws away."""
    started = time.process_time()
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    data = body
    while data:
        inflater.decompress(data, 4 * _MIB)
        data = inflater.unconsumed_tail
    return time.process_time() - started


class Outcome(NamedTuple):
    status: int
    connection: str  # the answer's Connection header
    closed: bool  # the server closed the connection after answering


def send(port: int, head: str, body: bytes = b"", *, wait_for_close: float = 3.0) -> Outcome:
    """``head`` (request line and headers, without the blank line) and ``body`` on a fresh
    connection, the answer, then whether the server closes within ``wait_for_close`` s."""
    request = head.rstrip("\r\n").encode() + b"\r\n\r\n" + body
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        # The server may close after an early answer, which is still there to read.
        with contextlib.suppress(OSError):
            sock.sendall(request)
        method = head.split(" ", 1)[0]
        response = http.client.HTTPResponse(sock, method=method)
        response.begin()
        response.read()
        sock.settimeout(wait_for_close)
        try:
            closed = sock.recv(1) == b""
        except TimeoutError:
            closed = False
        except ConnectionResetError:
            closed = True
        return Outcome(response.status, response.getheader("Connection", ""), closed)


def gzip_head(method: str, path: str, body: bytes, *headers: str, host: str = "127.0.0.1") -> str:
    """The head of a request carrying ``body`` gzip-encoded."""
    lines = [
        f"{method} {path} HTTP/1.1",
        f"Host: {host}",
        "Content-Encoding: gzip",
        f"Content-Length: {len(body)}",
        *headers,
    ]
    return "\r\n".join(lines)
