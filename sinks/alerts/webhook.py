"""A plain JSON webhook: the notice payload POSTed to one URL, signed, with an idempotency key.

Signature (when ``webhook_secret`` is set), the scheme Stripe and Slack use::

    X-Salespulse-Timestamp: 1795768800
    X-Salespulse-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>

Signing the timestamp with the body lets a receiver refuse replays of an old request
(``verify_signature``'s ``max_age``). ``Idempotency-Key`` is the notice id: the same notice sent
again (a retry after a timeout, a restart) carries the same key, so a receiver can drop it.

A 2xx answer is delivery. 408, 429, 5xx, a refused connection or a timeout are worth retrying;
any other answer (400, 401, 404..., and a redirect, which is not followed) will not change by
retrying, so the notice is given up.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable

import aiohttp

from salespulse.alert_model import Notice
from sinks.alerts.channel import post
from sinks.alerts.payload import encode_payload

SIGNATURE_HEADER = "X-Salespulse-Signature"
TIMESTAMP_HEADER = "X-Salespulse-Timestamp"


def sign(secret: str | bytes, timestamp: int | str, body: bytes) -> str:
    """The ``X-Salespulse-Signature`` value for ``body`` sent at ``timestamp``."""
    key = secret.encode() if isinstance(secret, str) else secret
    digest = hmac.new(key, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def verify_signature(
    secret: str | bytes,
    timestamp: str | int,
    body: bytes,
    header: str,
    max_age: float = 300.0,
    *,
    now: float | None = None,
) -> bool:
    """For receivers: True when ``header`` signs ``body`` at ``timestamp`` with ``secret``, and
    the timestamp is within ``max_age`` seconds of now (either way: clocks drift)."""
    try:
        sent = int(timestamp)
    except (TypeError, ValueError):
        return False
    current = time.time() if now is None else now
    if abs(current - sent) > max_age:
        return False
    # compare_digest takes the same time whatever the first differing byte is.
    return hmac.compare_digest(sign(secret, sent, body).encode(), header.strip().encode())


class WebhookChannel:
    name = "webhook"
    for_people = True

    def __init__(
        self,
        url: str,
        *,
        secret: str | None = None,
        timeout_seconds: float = 5.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._url = url
        self._secret = secret
        self._timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self._clock = clock
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(timeout=self._timeout)

    async def stop(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def headers(self, notice: Notice, body: bytes) -> dict[str, str]:
        timestamp = int(self._clock())
        headers = {
            "Content-Type": "application/json",
            "Idempotency-Key": notice.notice_id,
            TIMESTAMP_HEADER: str(timestamp),
        }
        if self._secret:
            headers[SIGNATURE_HEADER] = sign(self._secret, timestamp, body)
        return headers

    async def send(self, notice: Notice) -> None:
        if self._session is None:
            raise RuntimeError("WebhookChannel.send before start")
        body = encode_payload(notice)
        await post(
            self._session, "webhook", self._url, data=body, headers=self.headers(notice, body)
        )
