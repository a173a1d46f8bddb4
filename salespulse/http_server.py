"""What both HTTP servers (the receiver, the worker's web port) ask of aiohttp underneath them.

``server_options`` are keyword arguments of ``aiohttp.web.Application``; its ``handler_args``
reach aiohttp's per-connection protocol whatever runs the application (``AppRunner``, faust's
web driver, a test server):

* ``auto_decompress`` off: aiohttp would otherwise inflate a gzip or deflate body in its parser
  as the bytes arrive, before any handler has looked at the request, and again while it drains
  a body nobody read. A 1 MB gzip body inflating to 1 GiB cost 0.8 s of CPU sent to a 404 or an
  unauthenticated route. Handlers that take a body inflate it themselves, after authentication
  and within a bound (``ingest.receiver_body``).
* ``lingering_time`` 0: a body the handler did not read is not drained (read and thrown away for
  up to 10 s, holding the connection): the connection is closed after the answer, and the
  answer says so (``Connection: close``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from aiohttp import hdrs, web
from aiohttp.typedefs import Middleware

HANDLER_OPTIONS: dict[str, Any] = {"auto_decompress": False, "lingering_time": 0.0}


def server_options(middlewares: Sequence[Middleware] = ()) -> dict[str, Any]:
    """``web.Application`` keyword arguments for a salespulse server (see the module text)."""
    return {"handler_args": dict(HANDLER_OPTIONS), "middlewares": list(middlewares)}


async def close_if_body_unread(request: web.Request, response: web.StreamResponse) -> None:
    """An ``on_response_prepare`` hook: the connection of a request whose body was not read
    whole is closed after the answer (``lingering_time`` 0), so the answer says so, and a
    keep-alive client does not send its next request into a closing connection."""
    if not request.content.is_eof():
        response.force_close()
        # aiohttp writes its Connection header before this hook runs: say it here.
        response.headers[hdrs.CONNECTION] = "close"


def guard(app: web.Application) -> web.Application:
    """``app`` with the hooks every salespulse server needs; returns it."""
    app.on_response_prepare.append(close_if_body_unread)
    return app
