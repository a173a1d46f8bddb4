"""The log of salespulse's HTTP servers, with malformed requests rate-limited.

aiohttp logs every request it cannot parse (a broken header, a bad chunk size, an overlong
line) at ERROR with its parser's traceback: 166 KB of log for 300 such requests, a client's
fault written as a server failure, and a cheap way to flood the log. ``REQUEST_LOG`` is the
logger salespulse's servers give aiohttp instead of ``aiohttp.server`` (a child of it, so its
level and handlers still apply); its filter lets one such record through per
``MALFORMED_LOG_SECONDS``, as a single line naming the problem, with the count of those not
logged since; each one is counted in ``salespulse_http_malformed_requests_total``. Anything
else aiohttp logs (an unhandled exception in a handler) passes untouched.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from aiohttp.http_exceptions import HttpProcessingError

from salespulse.metrics import HTTP_MALFORMED_REQUESTS

MALFORMED_LOG_SECONDS = 60.0
_REASON_CHARACTERS = 200  # the parser's message may quote the request: keep it short


def _malformed(record: logging.LogRecord) -> HttpProcessingError | None:
    error = record.exc_info[1] if record.exc_info else None
    return error if isinstance(error, HttpProcessingError) else None


def _one_line(error: HttpProcessingError) -> str:
    # Flattened: a request's bytes quoted in the message must not start lines of their own.
    return " ".join(str(error.message).split())[:_REASON_CHARACTERS]


class MalformedRequestFilter(logging.Filter):
    """One record about a malformed request per ``interval`` seconds, without its traceback."""

    def __init__(
        self, interval: float = MALFORMED_LOG_SECONDS, clock: Callable[[], float] = time.monotonic
    ) -> None:
        super().__init__()
        self._interval = interval
        self._clock = clock
        self._next = float("-inf")
        self._unlogged = 0

    def filter(self, record: logging.LogRecord) -> bool:
        error = _malformed(record)
        if error is None:
            return True
        HTTP_MALFORMED_REQUESTS.inc()
        now = self._clock()
        if now < self._next:
            self._unlogged += 1
            return False
        self._next = now + self._interval
        text = f"{record.getMessage()}: HTTP {error.code}, {_one_line(error)}"
        if self._unlogged:
            text += f" ({self._unlogged} more malformed requests not logged before this one)"
        self._unlogged = 0
        record.msg, record.args = text, None
        record.exc_info, record.exc_text = None, None
        return True


REQUEST_LOG = logging.getLogger("aiohttp.server.salespulse")
REQUEST_LOG.addFilter(MalformedRequestFilter())
