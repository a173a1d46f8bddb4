"""A request body as the receiver reads it: raw bytes, inflated as their Content-Encoding says,
both bounded.

aiohttp's own inflation is off on salespulse's servers (``salespulse.http_server``), so that no
body is inflated before the handler has authenticated and routed the request. The receiver
reads a body only after that, and stops inflating as soon as the result passes the limit: an
authorised gzip bomb costs at most ``limit`` bytes of inflating, not its full size.

The codings are those aiohttp accepted before: ``gzip`` and ``deflate`` (with or without the
zlib header, as senders disagree on which ``deflate`` means) are inflated; ``br`` and ``zstd``
are refused, as aiohttp refused them without their optional modules, which salespulse does not
install; any other value (``identity``, an unknown one) leaves the body as sent.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping

from aiohttp import web

from salespulse.errors import SourceError

INFLATED = frozenset({"gzip", "deflate"})
REFUSED = frozenset({"br", "zstd"})
_ZLIB_METHOD = 8  # the low four bits of a zlib stream's first byte


class BodyTooLarge(SourceError):
    """The body, as sent or once inflated, is larger than the limit."""


class BodyNotDecoded(SourceError):
    """The body does not decode as its Content-Encoding says, or the coding is not supported."""


def content_coding(headers: Mapping[str, str]) -> str:
    """The request's Content-Encoding, lower-cased, or ``""``."""
    coding = headers.get("Content-Encoding", "").strip()
    # Non-ASCII cannot name a coding; lower() of it could turn into one (as aiohttp reasons).
    return coding.lower() if coding.isascii() else ""


class _Inflater:
    """zlib fed piece by piece, never producing more than ``limit`` bytes in all."""

    def __init__(self, coding: str, limit: int) -> None:
        self._coding = coding
        self._limit = limit
        self._stream: zlib._Decompress | None = None
        self._parts: list[bytes] = []
        self._size = 0

    def _window_bits(self, first: int) -> int:
        if self._coding == "gzip":
            return 16 + zlib.MAX_WBITS
        # "deflate" is meant to be a zlib stream; some senders send raw deflate instead.
        return zlib.MAX_WBITS if first & 0x0F == _ZLIB_METHOD else -zlib.MAX_WBITS

    def feed(self, data: bytes) -> None:
        if not data:
            return
        if self._stream is None:
            self._stream = zlib.decompressobj(self._window_bits(data[0]))
        try:
            # One byte more than may still come: getting it proves the body too large, and
            # zlib stops there instead of inflating the rest.
            out = self._stream.decompress(data, self._limit - self._size + 1)
        except zlib.error as exc:
            raise BodyNotDecoded(f"body does not decode as {self._coding}") from exc
        self._size += len(out)
        if self._size > self._limit:
            raise BodyTooLarge
        self._parts.append(out)

    def result(self) -> bytes:
        if self._stream is not None and not self._stream.eof:
            raise BodyNotDecoded(f"the {self._coding} stream is cut short")
        return b"".join(self._parts)


async def read_body(request: web.Request, limit: int) -> bytes:
    """The body, inflated; raises ``BodyTooLarge`` past ``limit`` bytes (sent or inflated),
    ``BodyNotDecoded``, or aiohttp's ``RequestPayloadError`` for broken chunked framing."""
    coding = content_coding(request.headers)
    if coding in REFUSED:
        raise BodyNotDecoded(f"Content-Encoding {coding} is not supported")
    inflater = _Inflater(coding, limit) if coding in INFLATED else None
    received: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_any():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        if inflater is not None:
            inflater.feed(chunk)
        else:
            received.append(chunk)
    return inflater.result() if inflater is not None else b"".join(received)
