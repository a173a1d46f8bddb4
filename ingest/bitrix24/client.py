"""An async client for a Bitrix24 portal's REST API through an incoming webhook.

``GET <webhook_url><method>.json?<params>`` answers ``{"result": ...}`` or
``{"error": CODE, "error_description": text}``. Calls are paced by a token bucket, retried
with exponential backoff when the portal is busy or unreachable (5xx, 429,
``QUERY_LIMIT_EXCEEDED``, network errors, timeouts) and never retried when retrying cannot
help (authentication, missing scope, blocked webhook, not found). ``get_entity`` results are
cached for a short time.

The webhook URL carries the portal secret in its path, so nothing here logs or raises a URL or
an aiohttp exception text (which would include it): messages name the REST method only.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal

import aiohttp

from ingest.bitrix24.limits import TtlCache
from ingest.bitrix24.settings import Bitrix24Settings
from ingest.pacing import TokenBucket
from salespulse.backoff import backoff_delay
from salespulse.errors import SourceError

log = logging.getLogger(__name__)

CrmEntity = Literal["lead", "deal", "activity"]
ENTITY_METHODS: dict[CrmEntity, str] = {
    "lead": "crm.lead.get",
    "deal": "crm.deal.get",
    "activity": "crm.activity.get",
}

_METHOD = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z0-9_]+)+$", re.ASCII | re.IGNORECASE)
_RATE_LIMITED = frozenset({"QUERY_LIMIT_EXCEEDED"})
_AUTH_ERRORS = frozenset(
    {
        "NO_AUTH_FOUND",
        "INVALID_CREDENTIALS",
        "EXPIRED_TOKEN",
        "INVALID_TOKEN",
        "INSUFFICIENT_SCOPE",
        "ACCESS_DENIED",
        "WRONG_AUTH_TYPE",
        "PAYMENT_REQUIRED",
        # The portal's plan has no Open Lines reports (imopenlines.v2.*): retrying cannot help.
        "TARIFF_RESTRICTION",
    }
)
_NOT_FOUND = frozenset({"NOT_FOUND", "ERROR_NOT_FOUND"})
# The portal blocked this webhook for overload; it stays blocked until its admin acts.
_BLOCKED = frozenset({"OVERLOAD_LIMIT"})


class Bitrix24Error(SourceError):
    """A REST call that failed. ``code`` is the portal's error code or ``http_<status>``."""

    def __init__(self, method: str, code: str, detail: str = "") -> None:
        super().__init__(f"Bitrix24 {method}: {code}" + (f" ({detail})" if detail else ""))
        self.method = method
        self.code = code


class Bitrix24AuthError(Bitrix24Error):
    """The webhook is not accepted (wrong or revoked secret, missing scope): fix the config."""


class Bitrix24NotFound(Bitrix24Error):
    """The entity does not exist (any more): deleted between its event and our fetch."""


class Bitrix24Unavailable(Bitrix24Error):
    """The portal stayed busy or unreachable through every retry."""


@dataclass
class ClientStats:
    requests: int = 0
    retries: int = 0
    cache_hits: int = 0


class _Retry(Exception):
    def __init__(self, code: str, delay: float | None = None) -> None:
        self.code = code
        self.delay = delay


class Bitrix24Client:
    def __init__(self, settings: Bitrix24Settings) -> None:
        self.settings = settings
        self.stats = ClientStats()
        self._bucket = TokenBucket(settings.rate_per_second, settings.burst)
        self._cache: TtlCache[tuple[str, str], dict[str, Any]] = TtlCache(
            settings.cache_ttl_seconds, settings.cache_max_entries
        )
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        if self._session is None:
            timeout = aiohttp.ClientTimeout(total=self.settings.timeout_seconds)
            self._session = aiohttp.ClientSession(timeout=timeout, raise_for_status=False)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> Bitrix24Client:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def get_entity(
        self, entity: CrmEntity, entity_id: str, *, fetched_after: float | None = None
    ) -> dict[str, Any]:
        """``crm.<entity>.get`` for one id, from the cache when a fresh enough copy is there.

        ``fetched_after`` (Unix seconds) refuses copies fetched at or before it: pass the time
        of the change being looked up, so a copy older than the change is never used.
        """
        method = ENTITY_METHODS[entity]
        cached = self.cached(method, entity_id, fetched_after=fetched_after)
        if cached is not None:
            return cached
        result = await self.call(method, {"id": entity_id})
        if not isinstance(result, dict):
            raise Bitrix24Error(method, "unexpected_result", "result is not an object")
        self.remember(method, entity_id, result)
        return result

    def cached(
        self, method: str, key: str, *, fetched_after: float | None = None
    ) -> dict[str, Any] | None:
        """What ``method`` answered about ``key`` within the cache's time to live, if fetched
        after ``fetched_after`` (see ``TtlCache.get``)."""
        found = self._cache.get((method, key), fetched_after=fetched_after)
        if found is not None:
            self.stats.cache_hits += 1
        return found

    def remember(self, method: str, key: str, result: dict[str, Any]) -> None:
        """Keep ``result`` as what ``method`` says about ``key``: a method answering for many
        objects at once (a list) can then answer later questions about each of them."""
        self._cache.put((method, key), result)

    async def call(self, method: str, params: Mapping[str, str]) -> Any:
        """The ``result`` of one REST method call, after retries."""
        if not _METHOD.match(method):
            raise ValueError("not a REST method name")
        attempt = 0
        while True:
            await self._bucket.acquire()
            try:
                return await self._attempt(method, params)
            except _Retry as retry:
                if attempt >= self.settings.max_retries:
                    raise Bitrix24Unavailable(
                        method, retry.code, f"gave up after {attempt + 1} attempts"
                    ) from None
                delay = retry.delay if retry.delay is not None else self._backoff(attempt)
                attempt += 1
                self.stats.retries += 1
                log.warning(
                    "Bitrix24 %s: %s, retry %d in %.2f s", method, retry.code, attempt, delay
                )
                await asyncio.sleep(delay)

    def _backoff(self, attempt: int) -> float:
        return backoff_delay(
            attempt, self.settings.backoff_seconds, self.settings.backoff_max_seconds
        )

    async def _attempt(self, method: str, params: Mapping[str, str]) -> Any:
        if self._session is None:
            raise RuntimeError("Bitrix24Client used before start()")
        url = self.settings.webhook_url.get_secret_value() + method + ".json"
        self.stats.requests += 1
        try:
            # Never follow a redirect: the answer would come from an address nobody configured
            # (and an http:// portal moved to https:// is a setting to fix, said below).
            async with self._session.get(
                url, params=dict(params), allow_redirects=False
            ) as response:
                status = response.status
                retry_after = response.headers.get("Retry-After")
                body = await response.read()
        except (TimeoutError, aiohttp.ClientError) as exc:
            # The exception's text may contain the URL: report its type only.
            raise _Retry(type(exc).__name__) from None
        return self._interpret(method, status, body, retry_after)

    def _interpret(self, method: str, status: int, body: bytes, retry_after: str | None) -> Any:
        try:
            payload = json.loads(body, parse_constant=_no_constants)
        except ValueError:
            payload = None
        error = ""
        description = ""
        if isinstance(payload, dict) and "error" in payload:
            error = str(payload.get("error") or "").upper()[:64]
            description = str(payload.get("error_description") or "")[:200]

        if status == 429 or error in _RATE_LIMITED:
            delay = _seconds(retry_after, self.settings.backoff_max_seconds)
            raise _Retry(error or "http_429", delay)
        if status in (401, 403) or error in _AUTH_ERRORS:
            raise Bitrix24AuthError(method, error or f"http_{status}", description)
        if error in _BLOCKED:
            raise Bitrix24Error(method, error, description)
        if status >= 500:
            raise _Retry(error or f"http_{status}")
        if error in _NOT_FOUND or description.strip().lower() == "not found" or status == 404:
            raise Bitrix24NotFound(method, error or "not_found", description)
        if 300 <= status < 400:
            raise Bitrix24Error(
                method,
                f"http_{status}",
                "the portal answered with a redirect, which is not followed: set "
                "SALESPULSE_BITRIX24__WEBHOOK_URL to the address it redirects to (https, the "
                "portal's current domain)",
            )
        if error or status != 200:
            raise Bitrix24Error(method, error or f"http_{status}", description)
        if not isinstance(payload, dict) or "result" not in payload:
            raise Bitrix24Error(method, "unexpected_response", "no result in the answer")
        return payload["result"]


def _seconds(header: str | None, cap: float) -> float | None:
    """A ``Retry-After`` given in seconds, capped; None when absent or an HTTP date."""
    if header is None or not header.strip().isdigit():
        return None
    return min(float(header.strip()), cap)


def _no_constants(name: str) -> Any:
    # NaN and Infinity are not JSON; passing them on would make the envelope unreadable.
    raise ValueError(f"{name} is not JSON")
