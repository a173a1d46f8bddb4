"""What a delivery channel is, and the one error it raises.

::

    AlertDeliveryError            a channel could not take a notice
        .retriable           True: try again later (timeout, 5xx, broker away)
                             False: it will never work (rejected, 4xx): give up now
        .retry_after         seconds the receiver asked us to wait (429/503), if it said
"""

from __future__ import annotations

import logging
from typing import Any, Protocol, runtime_checkable

import aiohttp

from salespulse.alert_model import Notice
from salespulse.errors import DeliveryError

log = logging.getLogger(__name__)


class AlertDeliveryError(DeliveryError):
    def __init__(self, message: str, *, retriable: bool, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retriable = retriable
        self.retry_after = retry_after


# HTTP answers that may change by retrying: timeout, too early, too many requests; and 5xx.
_RETRIABLE_STATUS = frozenset({408, 425, 429})


def http_error(receiver: str, status: int, retry_after: str | None = None) -> AlertDeliveryError:
    """The error for a non-2xx answer: 408/425/429/5xx are retriable, other 4xx are not (the
    receiver refuses the request, and will refuse it again)."""
    seconds = float(retry_after) if retry_after and retry_after.isdigit() else None
    retriable = status in _RETRIABLE_STATUS or status >= 500
    return AlertDeliveryError(
        f"{receiver} answered HTTP {status}", retriable=retriable, retry_after=seconds
    )


async def post(session: aiohttp.ClientSession, receiver: str, url: str, **request: Any) -> None:
    """POST to an HTTP receiver; returns on a 2xx, raises ``AlertDeliveryError`` otherwise.

    Redirects are not followed: a 307 or 308 would re-post the (signed) notice to wherever the
    answer points, another host included, and count it delivered there. A redirect is a
    refusal that retrying will not change: the configured URL needs fixing."""
    try:
        async with session.post(url, allow_redirects=False, **request) as response:
            if 200 <= response.status < 300:
                return
            # The start of the answer only: a receiver's error page may be of any size.
            text = (await response.content.read(200)).decode(errors="replace")
            log.debug("%s answered %s: %s", receiver, response.status, text)
            if 300 <= response.status < 400:
                location = response.headers.get("Location", "")[:200]
                raise AlertDeliveryError(
                    f"{receiver} answered HTTP {response.status}, a redirect to {location!r}: "
                    "not followed, fix the URL",
                    retriable=False,
                )
            raise http_error(receiver, response.status, response.headers.get("Retry-After"))
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise AlertDeliveryError(f"{receiver} unreachable: {exc!r}", retriable=True) from exc


class Channel(Protocol):
    """One place notices go. ``send`` returns once the receiver has the notice, or raises
    ``AlertDeliveryError``; the dispatcher owns retries, ordering and the queue."""

    @property
    def name(self) -> str:
        """Short and fixed ('kafka', 'webhook'): a metric label and the name in logs."""
        ...

    @property
    def for_people(self) -> bool:
        """Whether it reaches people: suppressed notices (silenced, rate limited) skip it."""
        ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def send(self, notice: Notice) -> None: ...


@runtime_checkable
class Resumable(Protocol):
    """A channel that keeps state about open alerts (Alertmanager re-posts the firing ones).

    After a restart the engine does not fire its open alerts again; it hands their last
    notices to ``resume`` instead, so such a channel carries on where it was. The notices
    replace what the channel held: ``resume([])`` makes it forget every open alert."""

    def resume(self, notices: list[Notice]) -> None: ...
