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
* ``logger``: aiohttp's server log with malformed requests rate-limited (``salespulse.http_log``).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Sequence
from typing import Any

from aiohttp import hdrs, web
from aiohttp.typedefs import Handler, Middleware

from salespulse.http_log import REQUEST_LOG

HANDLER_OPTIONS: dict[str, Any] = {
    "auto_decompress": False,
    "lingering_time": 0.0,
    "logger": REQUEST_LOG,
}


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


# A Host header: a bracketed IPv6 literal or a name (or IPv4 literal), and an optional port.
_HOST = re.compile(r"^(?:\[(?P<ip6>[0-9A-Fa-f:.]+)\]|(?P<name>[^:\[\]]+))(?::[0-9]{1,5})?$")
ANY_HOST = "*"


def host_name(value: str) -> str | None:
    """The name (or IP literal) of a Host header value, lower-case, without a port or trailing
    dot; None if the value is not a host."""
    found = _HOST.match(value.strip())
    if found is None:
        return None
    return (found["ip6"] or found["name"]).lower().rstrip(".") or None


def is_ip_literal(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def host_allowed(values: Sequence[str], allowed: frozenset[str]) -> bool:
    """Whether a request with these Host header values is for us.

    An IP literal always is: DNS rebinding needs a name the attacker controls (their page's
    origin), and a browser sends that name as Host, never the address it resolved to. A
    request without Host is not a browser's (HTTP/1.0 tools, some health checkers)."""
    if not values:
        return True
    if len(values) > 1:
        return False
    name = host_name(values[0])
    if name is None:
        return False
    return ANY_HOST in allowed or name in allowed or is_ip_literal(name)


def host_check(names: Iterable[str]) -> Middleware:
    """A middleware answering 421 to a request whose Host is not one of ``names`` nor an IP
    literal: a page reached through someone else's DNS name (DNS rebinding) gets nothing."""
    allowed = frozenset(name.lower().rstrip(".") for name in names)

    @web.middleware
    async def check_host(request: web.Request, handler: Handler) -> web.StreamResponse:
        if host_allowed(request.headers.getall(hdrs.HOST, []), allowed):
            return await handler(request)
        return web.Response(status=421, text="this server does not answer for that host name\n")

    return check_host
