"""The HTTP receiver: sources POST their records, each body goes raw to a Kafka topic.

A 2xx answer means Kafka acknowledged the write; any failure to store is a 503 with Retry-After,
so that the source keeps the record and retries (FreeSWITCH's mod_json_cdr retries, then spools
to disk). A retried body that had in fact been written becomes a duplicate record with the same
deterministic event id, which collapses in storage (ADR 0003).

The application starts the producer itself, in the background: the receiver listens, answers
/healthz and reports not-ready on /readyz (and 503 to posts) until the broker is reachable.

Admission, cheapest check first: open connections (503 beyond ``max_connections``), rate limit per
client address (429), credentials in headers (401), readiness (503: the broker not reached yet, a
write unacknowledged for ``STALL_WARNING_SECONDS`` or a recent failed write; one post per Retry-
After still writes, as a probe), declared body size (413), body read and inflated under a
deadline (408, 413, 400 if it does not decompress), body shape (400), the Bitrix24 application
token inside the body (403). Nothing is inflated before the body is read, and a body left unread
closes its connection instead of being drained (``salespulse.http_server``). A request head must
be complete within ``keepalive_timeout_seconds`` of the connection opening or the previous
answer; aiohttp closes the connection otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

from aiohttp import web

from ingest.bitrix24.enrich import WebhookRejected
from ingest.bridge_metrics import BRIDGE_ERRORS, BRIDGE_RECORDS
from ingest.raw_producer import ProduceError, RawProducer, RawRecordOut, start_when_reachable
from ingest.receiver_auth import (
    GENERIC_AUTH,
    GENERIC_PATH,
    FormError,
    RateLimiter,
    ReceiverNotSecured,
    ReceiverSettings,
    RouteSettings,
    check_bitrix24,
    forwarded_client,
    freeswitch_cdr_problem,
    json_lines_problem,
    parse_form,
    retry_after,
    without_credentials,
)
from ingest.receiver_body import BodyNotDecoded, BodyTooLarge, read_body
from salespulse.http_server import guard, server_options
from salespulse.models import SourceFamily
from salespulse.sections import TopicSettings

__all__ = [
    "ReceiverNotSecured",
    "ReceiverSettings",
    "RouteSettings",
    "Transform",
    "build_receiver_app",
    "check_credentials",
    "run_receiver",
]

log = logging.getLogger(__name__)

Transform = Callable[[bytes], Awaitable[list[RawRecordOut]]]
KEY_HEADER = "X-Salespulse-Key"
_BRIDGE = "http"


class _Health:
    """Whether Kafka takes the receiver's writes, as those writes show it.

    A write the producer reports stalled (unacknowledged for ``STALL_WARNING_SECONDS``) is a
    problem at once, long before it times out: a hung broker otherwise showed only after the
    write timeout (15 s), and every post meanwhile waited that long for its 503 and mostly
    reached Kafka later all the same (a copy).
    A failed write is a problem until a later write succeeds, or for ``window`` seconds.
    While there is a problem, posts are answered 503 without writing, except one probe every
    ``probe_every`` seconds: its success is what ends the problem.
    """

    def __init__(self, producer: RawProducer, window: float, probe_every: float) -> None:
        self.producer = producer
        self.window = window
        self.probe_every = probe_every
        self.started = False
        self.last_failure: float | None = None
        self.last_success: float | None = None
        self._next_probe = 0.0

    def wrote(self, ok: bool) -> None:
        if ok:
            self.last_success = time.monotonic()
        else:
            self.last_failure = time.monotonic()

    def problem(self) -> str | None:
        if not self.started:
            return "Kafka producer not started"
        waited = self.producer.stalled_seconds()
        if waited is not None:
            return f"Kafka has not acknowledged a write for {waited:.0f} s"
        now = time.monotonic()
        failure = self.last_failure
        if failure is None or (self.last_success is not None and self.last_success > failure):
            return None
        if now - failure < self.window:
            return "the last Kafka write failed"
        return None

    def may_probe(self) -> bool:
        now = time.monotonic()
        if now < self._next_probe:
            return False
        self._next_probe = now + self.probe_every
        return True


def _error(status: int, message: str, **headers: str) -> web.Response:
    return web.json_response({"error": message}, status=status, headers=headers)


class _Receiver:
    def __init__(
        self,
        settings: ReceiverSettings,
        producer: RawProducer,
        transform: Transform | None,
    ) -> None:
        self.settings = settings
        self.producer = producer
        self.transform = transform
        self.credentials = settings.credentials()
        # Fixed at start: which checks allow_anonymous waives (those without a credential).
        self.anonymous = settings.anonymous_auths()
        self.limiter = RateLimiter(settings.rate_per_ip, settings.burst)
        self.health = _Health(
            producer,
            settings.unready_after_failure_seconds,
            probe_every=settings.retry_after_seconds,
        )
        self._starter: asyncio.Task[None] | None = None

    async def on_startup(self, app: web.Application) -> None:
        self._starter = asyncio.create_task(self._keep_starting())

    async def on_cleanup(self, app: web.Application) -> None:
        if self._starter is not None:
            self._starter.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._starter
        self.health.started = False
        await self.producer.stop()  # flushes whatever is still buffered

    async def _keep_starting(self) -> None:
        # Never gives up (no stop event): on_cleanup cancels it if the broker never answers.
        if await start_when_reachable(self.producer, asyncio.Event(), _BRIDGE):
            self.health.started = True
            log.info("Kafka producer started; the receiver is ready")

    def client(self, request: web.Request) -> str:
        if self.settings.trust_forwarded_for:
            forwarded = forwarded_client(
                request.headers.getall("X-Forwarded-For", []), self.settings.trusted_proxy_hops
            )
            if forwarded is not None:
                return forwarded
        return request.remote or "unknown"

    async def healthz(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "alive"})

    async def readyz(self, request: web.Request) -> web.Response:
        problem = self.health.problem()
        if problem is not None:
            return _error(503, problem, **{"Retry-After": str(self.settings.retry_after_seconds)})
        return web.json_response({"status": "ready"})

    def _unavailable(self, message: str) -> web.Response:
        return _error(503, message, **{"Retry-After": str(self.settings.retry_after_seconds)})

    def _refuse(self, status: int, reason: str, message: str, **headers: str) -> web.Response:
        BRIDGE_ERRORS.labels(_BRIDGE, reason).inc()
        return _error(status, message, **headers)

    def handler(
        self, route: RouteSettings | None
    ) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def handle(request: web.Request) -> web.Response:
            target = route or self._generic_route(request)
            if target is None:
                return _error(404, "no such source format")
            return await self._ingest(request, target)

        return handle

    def _generic_route(self, request: web.Request) -> RouteSettings | None:
        family, format_name = request.match_info["family"], request.match_info["format"]
        if self.settings.generic_formats.get(format_name) != family:
            return None
        return RouteSettings(
            path=f"/ingest/{family}/{format_name}",
            format=format_name,
            family=SourceFamily(family),
            auth=GENERIC_AUTH,  # what check_credentials judged the generic route by
        )

    def _headers_admit(self, request: web.Request, route: RouteSettings) -> bool:
        """Whether the request's headers carry the route's credential. A Bitrix24 route's
        token is in the body, checked once it is read."""
        if route.auth == "bitrix24" or route.auth in self.anonymous:
            return True
        return self.credentials.check_headers(
            request.headers, allow_basic=route.auth == "token-or-basic"
        )

    async def _ingest(self, request: web.Request, route: RouteSettings) -> web.Response:
        client = self.client(request)
        wait = self.limiter.take(client)
        if wait > 0:
            return self._refuse(
                429, "rate_limited", "too many requests", **{"Retry-After": retry_after(wait)}
            )
        if not self._headers_admit(request, route):
            log.info("unauthorised POST %s from %s", route.path, client)
            challenge = 'Basic realm="salespulse"' if route.auth == "token-or-basic" else "Bearer"
            return self._refuse(
                401, "unauthorized", "unauthorized", **{"WWW-Authenticate": challenge}
            )
        if not self.health.started:
            BRIDGE_ERRORS.labels(_BRIDGE, "not_ready").inc()
            return self._unavailable("Kafka is not reachable yet")
        problem = self.health.problem()
        if problem is not None and not self.health.may_probe():
            BRIDGE_ERRORS.labels(_BRIDGE, "kafka_unavailable").inc()
            return self._unavailable(f"cannot store the record now: {problem}")
        length = request.content_length
        if length is not None and length > self.settings.max_body_bytes:
            return self._refuse(413, "too_large", "body too large")
        try:
            async with asyncio.timeout(self.settings.read_timeout_seconds):
                body = await read_body(request, self.settings.max_body_bytes)
        except TimeoutError:
            return self._refuse(408, "read_timeout", "body not received in time")
        except BodyTooLarge:
            return self._refuse(413, "too_large", "body too large")
        except BodyNotDecoded as exc:
            return self._refuse(400, "bad_body", str(exc))
        except web.RequestPayloadError:
            # A broken chunked framing: the client's fault, not a 500 with a traceback.
            return self._refuse(400, "bad_body", "body does not decode as sent")
        return await self._check_and_store(request, route, body)

    async def _check_and_store(
        self, request: web.Request, route: RouteSettings, body: bytes
    ) -> web.Response:
        transform = None
        stored = body
        if route.body == "bitrix24-form":
            try:
                form = parse_form(body)
            except FormError as exc:
                return self._refuse(400, "bad_body", str(exc))
            if (
                route.auth == "bitrix24"
                and route.auth not in self.anonymous
                and not check_bitrix24(form, self.settings.bitrix24_application_token)
            ):
                log.info(
                    "Bitrix24 event with a wrong application token from %s", self.client(request)
                )
                return self._refuse(403, "unauthorized", "wrong application token")
            event = form.get("event", "").strip().upper()
            problem = None if event else "no event name"
            raw_format = self.settings.bitrix24_raw_events.get(event)
            stored = without_credentials(form)
            if raw_format is not None:
                # A self-contained event (a finished call): nothing to enrich.
                route = route.model_copy(update={"format": raw_format})
            else:
                transform = self.transform
        elif route.body == "freeswitch-cdr":
            problem = freeswitch_cdr_problem(body)
        else:
            problem = json_lines_problem(body)
        if problem is not None:
            return self._refuse(400, "bad_body", problem)
        if transform is not None:
            try:
                records = await transform(body)
            except WebhookRejected as exc:
                status = 403 if exc.reason == "forbidden" else 400
                return self._refuse(status, "rejected", exc.detail)
            except Exception as exc:  # the enrichment could not ask its source: retry later
                BRIDGE_ERRORS.labels(_BRIDGE, "transform").inc()
                log.warning("enrichment of %s failed: %s", route.path, exc)
                return self._unavailable("cannot process the event now")
        else:
            key = request.headers.get(KEY_HEADER) or route.key
            if key is not None and len(key) > 255:
                return self._refuse(400, "bad_body", f"{KEY_HEADER} too long")
            # Bytes beyond ASCII in a header arrive as surrogate escapes: the key as sent.
            raw_key = key.encode("utf-8", "surrogateescape") if key else None
            records = [RawRecordOut(route.family, route.format, raw_key, stored)]
        return await self._store(route, records)

    async def _store(self, route: RouteSettings, records: list[RawRecordOut]) -> web.Response:
        try:
            async with asyncio.timeout(self.settings.write_timeout_seconds):
                await self.producer.send_many(records)
        except (ProduceError, TimeoutError) as exc:
            self.health.wrote(False)
            BRIDGE_ERRORS.labels(_BRIDGE, "kafka").inc()
            log.warning("Kafka did not take a %s body: %s", route.format, str(exc) or "timed out")
            return self._unavailable("cannot store the record now")
        self.health.wrote(True)
        BRIDGE_RECORDS.labels(_BRIDGE).inc(len(records))
        return web.json_response({"stored": len(records)})


def build_receiver_app(
    settings: ReceiverSettings,
    producer: RawProducer,
    *,
    topics: TopicSettings,
    transform: Transform | None = None,
) -> web.Application:
    """The receiver as an aiohttp application. It owns ``producer``: starts it in the background
    at startup and stops it at cleanup. ``transform``, when given, turns a Bitrix24 event body
    into the records to write instead of the body itself (the enrichment plugs in there)."""
    check_credentials(settings)
    receiver = _Receiver(settings, producer, transform)
    app = guard(web.Application(client_max_size=settings.max_body_bytes, **server_options()))
    app.on_startup.append(receiver.on_startup)
    app.on_cleanup.append(receiver.on_cleanup)
    app.router.add_get("/healthz", receiver.healthz)
    app.router.add_get("/readyz", receiver.readyz)
    for route in settings.routes:
        app.router.add_post(route.path, receiver.handler(route))
        log.info("POST %s → %s (%s)", route.path, topics.for_family(route.family), route.format)
    # Registered last, so that a configured route with a matching path wins.
    app.router.add_post(GENERIC_PATH, receiver.handler(None))
    return app


def check_credentials(settings: ReceiverSettings) -> None:
    """Refuse to start a receiver that would refuse every post (no route has a credential),
    unless ``allow_anonymous`` says its routes may take posts from anyone; say at WARNING
    which routes take posts from anyone, or refuse every one for want of a credential."""
    auths = settings.route_auths()
    bare = [path for path, auth in auths.items() if not settings.has_credential(auth)]
    if settings.allow_anonymous:
        log.warning(
            "SALESPULSE_RECEIVER__ALLOW_ANONYMOUS is set: %s accept posts from anyone",
            ", ".join(bare) or "no route (each has its credential)",
        )
        return
    if auths and len(bare) == len(auths):
        raise ReceiverNotSecured(
            "no route of the receiver has a credential: set SALESPULSE_RECEIVER__SHARED_TOKEN "
            "(or __BASIC_USER and __BASIC_PASSWORD, __BITRIX24_APPLICATION_TOKEN), or "
            "SALESPULSE_RECEIVER__ALLOW_ANONYMOUS=true to accept posts from anyone"
        )
    for path in bare:
        log.warning("receiver route %s has no credential configured: it refuses every post", path)


async def run_receiver(
    settings: ReceiverSettings,
    producer: RawProducer,
    stop: asyncio.Event,
    *,
    topics: TopicSettings,
    transform: Transform | None = None,
) -> None:
    """Serve until ``stop`` is set, then stop listening, let requests in flight finish (up to
    ``shutdown_timeout_seconds``) and stop the producer. The caller sets ``stop`` on SIGTERM."""
    app = build_receiver_app(settings, producer, topics=topics, transform=transform)
    runner = web.AppRunner(
        app,
        keepalive_timeout=settings.keepalive_timeout_seconds,
        shutdown_timeout=settings.shutdown_timeout_seconds,
        access_log=None,  # sources post continuously; the counters tell the story
    )
    await runner.setup()
    listener: asyncio.Server | None = None
    try:
        assert runner.server is not None  # set up above
        listener = await asyncio.get_running_loop().create_server(
            _capped(runner.server, settings.max_connections, settings.retry_after_seconds),
            settings.host,
            settings.port,
            reuse_address=True,
        )
        log.info("receiver listening on %s:%d", settings.host, settings.port)
        await stop.wait()
    finally:
        if listener is not None:
            listener.close()  # no new connections; those open finish below
        await runner.cleanup()


class _Busy(asyncio.Protocol):
    """A connection over the cap: told to come back later, then closed, before reading a
    byte of it."""

    def __init__(self, retry_after_seconds: int) -> None:
        self._answer = (
            "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n"
            f"Retry-After: {retry_after_seconds}\r\n\r\n"
        ).encode()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.WriteTransport)
        transport.write(self._answer)
        transport.close()


def _capped(
    server: web.Server, max_connections: int, retry_after_seconds: int
) -> Callable[[], asyncio.Protocol]:
    """aiohttp's protocol factory with a cap on open connections. aiohttp bounds each
    connection's time (keepalive_timeout also covers a request head sent slowly), not their
    number: without a cap, idle connections from one client can exhaust file descriptors."""

    def protocol() -> asyncio.Protocol:
        if len(server.connections) >= max_connections:
            BRIDGE_ERRORS.labels(_BRIDGE, "too_many_connections").inc()
            return _Busy(retry_after_seconds)
        return server()

    return protocol
