"""The Bitrix24 bridge against a fake portal on 127.0.0.1 serving recorded REST answers
(tests/samples/bitrix24/rest): enrichment of CRM and Open Lines events, retries, auth errors,
caching, pacing, secrecy, one enriched record through the real broker and one Open Lines event
through the receiver."""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import time
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from aiokafka import AIOKafkaConsumer, ConsumerRecord
from prometheus_client import REGISTRY
from pydantic import SecretStr, ValidationError

from ingest.bitrix24.client import (
    Bitrix24AuthError,
    Bitrix24Client,
    Bitrix24Error,
    Bitrix24Unavailable,
)
from ingest.bitrix24.enrich import WebhookRejected, enrich, enrich_event, receiver_transform
from ingest.bitrix24.settings import Bitrix24Settings
from ingest.raw_producer import RawProducer
from ingest.receiver import ReceiverSettings, build_receiver_app
from processors.parsers.bitrix24_crm_rest import Bitrix24CrmRestParser
from processors.parsers.bitrix24_openlines import Bitrix24OpenLinesParser
from salespulse.models import SourceFamily, SourceRef, derive_event_id
from salespulse.sections import KafkaSettings, TopicSettings
from salespulse.stack_settings import free_ports
from salespulse.topics import ensure_topics
from tests.conftest import LocalStack

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
REST_DIR = SAMPLES / "bitrix24" / "rest"
SECRET = "k7x2m9q4w8e1r5t3"
TOKEN = "f4a8c2e6b1d9"
TS = 1764160812  # 2025-11-26 12:40:12 UTC: in the past, so a copy fetched now postdates it

# A scripted answer: (HTTP status, JSON body or raw text, seconds to stall first).
Answer = tuple[int, Any, float]


class FakePortal:
    """``/rest/<user>/<secret>/<method>.json?id=N`` (or ``?configId=N``, the line a session list
    is for): scripted answers first, then the recorded file ``rest/<method>/<N>.json``, or
    Bitrix24's 400 "Not found"."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str]] = []
        self.queries: list[dict[str, str]] = []
        self.scripts: dict[tuple[str, str], list[Answer]] = {}
        self.url = ""

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if request.match_info["secret"] != SECRET:
            body = {"error": "NO_AUTH_FOUND", "error_description": "Wrong authorization data"}
            return web.json_response(body, status=401)
        method = request.match_info["method"].removesuffix(".json")
        entity_id = request.query.get("id") or request.query.get("configId", "")
        self.requests.append((method, entity_id))
        self.queries.append(dict(request.query))
        script = self.scripts.get((method, entity_id))
        if script:
            status, body, stall = script.pop(0)
            await asyncio.sleep(stall)
            if isinstance(body, str):
                return web.Response(text=body, status=status, content_type="text/html")
            return web.json_response(body, status=status)
        path = REST_DIR / method / f"{entity_id}.json"
        if not entity_id.isdigit() or not path.exists():
            return web.json_response({"error": "", "error_description": "Not found"}, status=400)
        return web.Response(body=path.read_bytes(), content_type="application/json")


@pytest.fixture
async def portal() -> AsyncIterator[FakePortal]:
    fake = FakePortal()
    app = web.Application()
    app.router.add_get("/rest/{user}/{secret}/{method}", fake.handle)
    # No access log: it would print request paths, secret included, into caplog.
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    fake.url = f"http://{host}:{port}"
    try:
        yield fake
    finally:
        await runner.cleanup()


def settings_for(portal: FakePortal, secret: str = SECRET, **overrides: Any) -> Bitrix24Settings:
    values: dict[str, Any] = {
        "webhook_url": f"{portal.url}/rest/1/{secret}",
        "application_token": TOKEN,
        "rate_per_second": 1000,
        "burst": 1000,
        "backoff_seconds": 0.01,
        "backoff_max_seconds": 0.05,
        "timeout_seconds": 2,
    }
    return Bitrix24Settings(**(values | overrides))


@pytest.fixture
async def client(portal: FakePortal) -> AsyncIterator[Bitrix24Client]:
    async with Bitrix24Client(settings_for(portal)) as bitrix:
        yield bitrix


def webhook(event: str, entity_id: str, *, ts: int = TS, token: str = TOKEN) -> bytes:
    return urlencode(
        [
            ("event", event),
            ("event_handler_id", "14"),
            ("data[FIELDS][ID]", entity_id),
            ("ts", str(ts)),
            ("auth[domain]", "example.bitrix24.ru"),
            ("auth[client_endpoint]", "https://example.bitrix24.ru/rest/"),
            ("auth[server_endpoint]", "https://oauth.bitrix.info/rest/"),
            ("auth[member_id]", "a223c6b3710f85df22e9377d6c4f7553"),
            ("auth[application_token]", token),
        ]
    ).encode()


def recorded(method: str, entity_id: str) -> dict[str, Any]:
    answer: dict[str, dict[str, Any]] = json.loads(
        (REST_DIR / method / f"{entity_id}.json").read_bytes()
    )
    return answer["result"]


def ignored(reason: str) -> float:
    labels = {"reason": reason}
    return REGISTRY.get_sample_value("salespulse_bitrix24_events_ignored_total", labels) or 0.0


# --- enrichment -----------------------------------------------------------------------------


async def test_deal_update_becomes_an_envelope(portal: FakePortal, client: Bitrix24Client) -> None:
    record = await enrich(webhook("ONCRMDEALUPDATE", "5531"), client)
    assert record is not None
    assert (record.family, record.format, record.key) == (
        SourceFamily.CRM,
        "bitrix24-crm-rest",
        b"1101",
    )
    envelope = json.loads(record.value)
    assert envelope == {
        "event": "ONCRMDEALUPDATE",
        "ts": TS,
        "entity": "deal",
        "result": recorded("crm.deal.get", "5531"),
    }
    assert b"\n" not in record.value  # one JSON Lines record
    assert portal.requests == [("crm.deal.get", "5531")]

    [event] = Bitrix24CrmRestParser().parse(record.value, SourceRef("t", "t", 0, 0))
    assert (event.kind.value, event.action, event.actor.id) == ("deal", "won", "1101")


@pytest.mark.parametrize(
    ("event", "entity_id", "method", "key"),
    [
        ("ONCRMLEADADD", "812", "crm.lead.get", b"1102"),
        ("ONCRMACTIVITYADD", "20418", "crm.activity.get", b"1102"),
        ("onCrmActivityUpdate", "20417", "crm.activity.get", b"1101"),
    ],
)
async def test_leads_and_activities(
    portal: FakePortal, client: Bitrix24Client, event: str, entity_id: str, method: str, key: bytes
) -> None:
    record = await enrich(webhook(event, entity_id), client)
    assert record is not None
    assert record.key == key
    assert json.loads(record.value)["event"] == event.upper()
    assert portal.requests == [(method, entity_id)]


async def test_unknown_event_is_ignored_without_a_call(
    portal: FakePortal, client: Bitrix24Client
) -> None:
    before = ignored("unknown_event")
    assert await enrich(webhook("ONCRMCONTACTADD", "77"), client) is None
    assert portal.requests == []
    assert ignored("unknown_event") == before + 1


async def test_receiver_transform_lists_the_records(
    portal: FakePortal, client: Bitrix24Client
) -> None:
    transform = receiver_transform(client)
    [record] = await transform(webhook("ONCRMLEADADD", "812"))
    assert record.key == b"1102"
    assert await transform(webhook("ONCRMCONTACTADD", "77")) == []


async def test_deleted_entity_is_ignored(portal: FakePortal, client: Bitrix24Client) -> None:
    before = ignored("not_found")
    assert await enrich(webhook("ONCRMDEALUPDATE", "999999"), client) is None
    assert ignored("not_found") == before + 1


async def test_wrong_token_and_malformed_bodies_are_rejected(
    portal: FakePortal, client: Bitrix24Client
) -> None:
    with pytest.raises(WebhookRejected) as caught:
        await enrich(webhook("ONCRMDEALUPDATE", "5531", token="guess"), client)
    assert caught.value.reason == "forbidden"
    for body in (b"\xff\xfe", b"event=ONCRMDEALUPDATE", webhook("ONCRMDEALUPDATE", "55 31")):
        with pytest.raises(WebhookRejected) as caught:
            await enrich(body, client)
        assert caught.value.reason == "malformed"
    assert portal.requests == []


# --- retries and errors ---------------------------------------------------------------------


async def test_503_twice_then_success(portal: FakePortal, client: Bitrix24Client) -> None:
    portal.scripts[("crm.deal.get", "5531")] = [
        (503, "<html><body>503 Service Temporarily Unavailable</body></html>", 0),
        (503, {"error": "INTERNAL_SERVER_ERROR", "error_description": "Internal error"}, 0),
    ]
    assert await enrich(webhook("ONCRMDEALUPDATE", "5531"), client) is not None
    assert len(portal.requests) == 3
    assert client.stats.retries == 2


@pytest.mark.parametrize("status", [503, 200])
async def test_query_limit_exceeded_is_retried(
    portal: FakePortal, client: Bitrix24Client, status: int
) -> None:
    portal.scripts[("crm.deal.get", "5531")] = [
        (status, {"error": "QUERY_LIMIT_EXCEEDED", "error_description": "Too many requests"}, 0)
    ]
    assert await enrich(webhook("ONCRMDEALUPDATE", "5531"), client) is not None
    assert len(portal.requests) == 2


async def test_timeout_is_retried(portal: FakePortal) -> None:
    portal.scripts[("crm.deal.get", "5531")] = [(200, {"result": {}}, 1.0)]
    async with Bitrix24Client(settings_for(portal, timeout_seconds=0.2)) as client:
        assert await enrich(webhook("ONCRMDEALUPDATE", "5531"), client) is not None
    assert len(portal.requests) == 2


async def test_401_is_not_retried(portal: FakePortal) -> None:
    async with Bitrix24Client(settings_for(portal, secret="revoked-secret")) as client:
        with pytest.raises(Bitrix24AuthError) as caught:
            await enrich(webhook("ONCRMDEALUPDATE", "5531"), client)
        assert client.stats.requests == 1
    assert "crm.deal.get" in str(caught.value)
    assert "NO_AUTH_FOUND" in str(caught.value)


async def test_gives_up_after_max_retries(portal: FakePortal) -> None:
    portal.scripts[("crm.deal.get", "5531")] = [(502, "Bad Gateway", 0)] * 5
    async with Bitrix24Client(settings_for(portal, max_retries=2)) as client:
        with pytest.raises(Bitrix24Unavailable, match="http_502"):
            await enrich(webhook("ONCRMDEALUPDATE", "5531"), client)
    assert len(portal.requests) == 3


async def test_a_redirect_is_not_followed_and_says_which_setting_to_fix(
    portal: FakePortal,
) -> None:
    # A portal moved to another address answers every webhook call with a redirect; following
    # it would send the call to an address nobody configured.
    elsewhere: list[str] = []

    async def moved(request: web.Request) -> web.StreamResponse:
        raise web.HTTPFound(f"{portal.url}/elsewhere{request.path_qs}")

    async def record(request: web.Request) -> web.StreamResponse:
        elsewhere.append(request.path)
        return web.json_response({"result": {"ID": "5531"}})

    app = web.Application()
    app.router.add_get("/elsewhere/{tail:.*}", record)
    app.router.add_get("/rest/{tail:.*}", moved)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    portal.url = f"http://{host}:{port}"
    try:
        async with Bitrix24Client(settings_for(portal)) as client:
            with pytest.raises(Bitrix24Error) as caught:
                await client.call("crm.deal.get", {"id": "5531"})
            assert client.stats.requests == 1  # not retried: only a setting can fix it
    finally:
        await runner.cleanup()
    assert elsewhere == []
    assert "http_302" in str(caught.value)
    assert "SALESPULSE_BITRIX24__WEBHOOK_URL" in str(caught.value)
    assert SECRET not in str(caught.value)


async def test_secret_never_logged_or_raised(
    portal: FakePortal, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    portal.scripts[("crm.deal.get", "5531")] = [(503, "busy", 0), (429, {"error": "x"}, 0)]
    errors: list[str] = []
    async with Bitrix24Client(settings_for(portal)) as client:
        await enrich(webhook("ONCRMDEALUPDATE", "5531"), client)
        assert repr(client.settings).count(SECRET) == 0
    async with Bitrix24Client(settings_for(portal, secret="revoked-" + SECRET)) as client:
        with pytest.raises(Bitrix24AuthError) as auth:
            await client.call("crm.deal.get", {"id": "5531"})
        errors.append(str(auth.value))
    # Nothing listens on the port of a stopped server: connection refused, retried, given up.
    closed = Bitrix24Settings(
        webhook_url=f"http://127.0.0.1:9/rest/1/{SECRET}/",
        application_token=TOKEN,
        max_retries=1,
        backoff_seconds=0.01,
    )
    async with Bitrix24Client(closed) as client:
        with pytest.raises(Bitrix24Unavailable) as gone:
            await client.call("crm.deal.get", {"id": "5531"})
        errors.append(str(gone.value))
    assert "retry" in caplog.text
    assert SECRET not in caplog.text
    assert all(SECRET not in error for error in errors)


@pytest.mark.parametrize(
    "url",
    [
        f"ftp://example.bitrix24.ru/rest/1/{SECRET}/",
        f"https://example.bitrix24.ru/rest/1/{SECRET}/?auth=1",
        f"example.bitrix24.ru/rest/1/{SECRET}/",
    ],
)
def test_bad_webhook_url_is_refused_without_quoting_it(url: str) -> None:
    with pytest.raises(ValidationError) as caught:
        Bitrix24Settings(webhook_url=url, application_token=TOKEN)
    assert "webhook_url" in str(caught.value)
    assert SECRET not in str(caught.value)


def test_webhook_url_gets_its_trailing_slash() -> None:
    settings = Bitrix24Settings(
        webhook_url=f"https://x.bitrix24.ru/rest/1/{SECRET}", application_token=TOKEN
    )
    assert settings.webhook_url.get_secret_value().endswith(f"{SECRET}/")


# --- cache and pacing -----------------------------------------------------------------------


async def test_repeated_event_within_ttl_is_served_from_cache(
    portal: FakePortal, client: Bitrix24Client
) -> None:
    first = await enrich(webhook("ONCRMDEALUPDATE", "5531"), client)
    again = await enrich(webhook("ONCRMDEALUPDATE", "5531"), client)
    assert first == again
    assert len(portal.requests) == 1
    assert client.stats.cache_hits == 1


async def test_change_after_the_fetch_is_fetched_again(
    portal: FakePortal, client: Bitrix24Client
) -> None:
    await enrich(webhook("ONCRMDEALUPDATE", "5531"), client)
    # An event stamped after our copy was taken describes a change that copy cannot contain.
    await enrich(webhook("ONCRMDEALUPDATE", "5531", ts=int(time.time()) + 5), client)
    assert len(portal.requests) == 2


async def test_cache_expires(portal: FakePortal) -> None:
    async with Bitrix24Client(settings_for(portal, cache_ttl_seconds=0.05)) as client:
        await enrich(webhook("ONCRMDEALUPDATE", "5531"), client)
        await asyncio.sleep(0.1)
        await enrich(webhook("ONCRMDEALUPDATE", "5531"), client)
    assert len(portal.requests) == 2


async def test_rate_limit_paces_requests(portal: FakePortal) -> None:
    rate, burst, count = 20.0, 2, 8
    settings = settings_for(portal, rate_per_second=rate, burst=burst, cache_ttl_seconds=0)
    async with Bitrix24Client(settings) as client:
        started = time.monotonic()
        await asyncio.gather(
            *(client.call("crm.deal.get", {"id": str(n)}) for n in range(5531, 5534)),
            *(client.call("crm.lead.get", {"id": "812"}) for _ in range(count - 3)),
        )
        elapsed = time.monotonic() - started
    assert len(portal.requests) == count
    assert elapsed >= (count - burst) / rate * 0.95


# --- through the broker ---------------------------------------------------------------------

_runs = itertools.count(1)


async def consume(kafka: KafkaSettings, topic: str) -> list[ConsumerRecord[bytes, bytes]]:
    """The first messages to arrive on ``topic`` (within 20 s)."""
    consumer = AIOKafkaConsumer(
        topic, **kafka.aiokafka_options(), auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    seen: list[ConsumerRecord[bytes, bytes]] = []
    try:
        for _ in range(40):
            for batch in (await consumer.getmany(timeout_ms=500)).values():
                seen.extend(batch)
            if seen:
                break
    finally:
        await consumer.stop()
    return seen


@pytest.mark.integration
async def test_enriched_record_through_the_broker(
    stack: LocalStack, portal: FakePortal, client: Bitrix24Client
) -> None:
    run = f"bx{next(_runs)}-{int(time.time())}"
    topics = TopicSettings(
        raw_pbx=f"{run}.pbx", raw_chat=f"{run}.chat", raw_crm=f"{run}.crm", dead_letter=f"{run}.dl"
    )
    kafka = stack.settings.kafka
    await ensure_topics(kafka, topics)
    record = await enrich(webhook("ONCRMDEALUPDATE", "5531"), client)
    assert record is not None
    async with RawProducer(kafka, topics) as producer:
        await producer.send(record)

    [message] = await consume(kafka, topics.raw_crm)
    assert message.value == record.value
    assert message.key == b"1101"
    assert dict(message.headers)["sp-format"] == b"bitrix24-crm-rest"


# --- Open Lines sessions ----------------------------------------------------------------------

# The documented ONSESSIONFINISH, as published (tests/samples/real/bitrix24): session 42 of line
# 128 closed, chat 10585, client 1984, sent at ts 1714649632 = 2024-05-02T11:33:52Z. Its token
# is the documentation's placeholder, configured as the application token below.
REAL_FINISH: dict[str, Any] = json.loads(
    (SAMPLES / "real" / "bitrix24" / "onsessionfinish.event.json").read_bytes()
)
REAL_TOKEN = REAL_FINISH["auth"]["application_token"]
SESSION_LIST = "imopenlines.v2.Session.list"
LINE_128 = recorded(SESSION_LIST, "128")["sessions"]  # sessions 42, 41 (spam) and 40


def php_form(document: Mapping[str, Any]) -> bytes:
    """An event as Bitrix24 POSTs it: PHP's http_build_query of the array the page shows as
    JSON (``data[DATA][0][session][id]=42``)."""
    pairs: list[tuple[str, str]] = []

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                walk(f"{prefix}[{key}]" if prefix else str(key), item)
        elif isinstance(value, list):
            for index, item in enumerate(value):
                walk(f"{prefix}[{index}]", item)
        else:
            pairs.append((prefix, str(value)))

    walk("", document)
    return urlencode(pairs).encode()


def session_event(event: str = "ONSESSIONFINISH", **session: Any) -> bytes:
    """The real event, renamed and with its session's fields replaced."""
    document = json.loads(json.dumps(REAL_FINISH))
    document["event"] = event
    document["data"]["DATA"][0]["session"].update(session)
    return php_form(document)


@pytest.fixture
async def openlines_client(portal: FakePortal) -> AsyncIterator[Bitrix24Client]:
    async with Bitrix24Client(settings_for(portal, application_token=REAL_TOKEN)) as bitrix:
        yield bitrix


async def test_real_session_finish_becomes_its_session(
    portal: FakePortal, openlines_client: Bitrix24Client
) -> None:
    [record] = await enrich_event(php_form(REAL_FINISH), openlines_client)
    # The record is session 42 exactly as the portal listed it, keyed by its operator.
    assert (record.family, record.format, record.key) == (
        SourceFamily.CHAT,
        "bitrix24-openlines-session",
        b"1101",
    )
    assert json.loads(record.value) == LINE_128[0]
    assert b"\n" not in record.value
    # One request: line 128's sessions closed in the day before the event was sent (plus a
    # minute), newest closing first.
    assert portal.requests == [(SESSION_LIST, "128")]
    assert portal.queries == [
        {
            "configId": "128",
            "dateCloseFrom": "2024-05-01T11:33:52+00:00",
            "dateCloseTo": "2024-05-02T11:34:52+00:00",
            "order": "dateClose",
            "orderDirection": "desc",
            "limit": "200",
            "offset": "0",
        }
    ]
    # By hand: opened 14:21:07+03:00, first operator answer 14:21:50 (43 s), closed 14:33:49,
    # operator 1101, live chat = web chat, client 1984, chat 10585 -> one served chat.
    [event] = Bitrix24OpenLinesParser().parse(record.value, SourceRef("t", "t", 0, 0))
    assert (event.kind.value, event.action, event.actor.id) == ("chat_session", "served", "1101")
    assert (event.occurred_at.isoformat(), event.ended_at and event.ended_at.isoformat()) == (
        "2024-05-02T11:21:07+00:00",
        "2024-05-02T11:33:49+00:00",
    )
    assert (event.first_response_seconds, event.channel) == (43, "webchat")
    assert (event.counterpart, event.external_ref) == ("1984", "chat:10585")


async def test_sessions_of_one_answer_are_cached(
    portal: FakePortal, openlines_client: Bitrix24Client
) -> None:
    await enrich_event(session_event(id=42), openlines_client)
    # Session 40 closed earlier on the same line: the first answer listed it already.
    [record] = await enrich_event(session_event(id=40), openlines_client)
    assert json.loads(record.value) == LINE_128[2]
    assert record.key is None  # nobody took it: operatorId null
    assert len(portal.requests) == 1
    assert openlines_client.stats.cache_hits == 1


async def test_spam_session_is_forwarded_for_the_parser_to_drop(
    portal: FakePortal, openlines_client: Bitrix24Client
) -> None:
    [record] = await enrich_event(session_event(id=41), openlines_client)
    assert Bitrix24OpenLinesParser().parse(record.value, SourceRef("t", "t", 0, 0)) == []


async def test_session_still_open_is_ignored_without_a_call(
    portal: FakePortal, openlines_client: Bitrix24Client
) -> None:
    before = ignored("session_open")
    # The documented ONSESSIONSTART is the same body with closed N.
    assert await enrich_event(session_event("ONSESSIONSTART", closed="N"), openlines_client) == []
    assert await enrich_event(session_event(closed="N"), openlines_client) == []
    assert portal.requests == []
    assert ignored("session_open") == before + 2


async def test_session_the_portal_does_not_list_is_ignored(
    portal: FakePortal, openlines_client: Bitrix24Client, caplog: pytest.LogCaptureFixture
) -> None:
    before = ignored("session_not_found")
    assert await enrich_event(session_event(id=43), openlines_client) == []
    assert ignored("session_not_found") == before + 1
    assert "session 43" in caplog.text


async def test_session_list_is_paged(portal: FakePortal, openlines_client: Bitrix24Client) -> None:
    first_page = {"result": {"sessions": [LINE_128[1]], "hasNextPage": True}}
    portal.scripts[(SESSION_LIST, "128")] = [(200, first_page, 0)]
    [record] = await enrich_event(session_event(id=42), openlines_client)
    assert json.loads(record.value) == LINE_128[0]
    assert [query["offset"] for query in portal.queries] == ["0", "200"]


async def test_session_list_gives_up_after_max_pages(portal: FakePortal) -> None:
    page = {"result": {"sessions": [LINE_128[1]], "hasNextPage": True}}
    portal.scripts[(SESSION_LIST, "128")] = [(200, page, 0)] * 3
    settings = settings_for(portal, application_token=REAL_TOKEN, openlines_max_pages=2)
    async with Bitrix24Client(settings) as client:
        assert await enrich_event(session_event(id=42), client) == []
    assert len(portal.requests) == 2


async def test_no_open_lines_reports_on_the_plan_is_not_retried(
    portal: FakePortal, openlines_client: Bitrix24Client
) -> None:
    refusal = {"error": "TARIFF_RESTRICTION", "error_description": "Statistics reports are not"}
    portal.scripts[(SESSION_LIST, "128")] = [(400, refusal, 0)]
    with pytest.raises(Bitrix24AuthError, match="TARIFF_RESTRICTION"):
        await enrich_event(php_form(REAL_FINISH), openlines_client)
    assert len(portal.requests) == 1


@pytest.mark.parametrize(
    "body",
    [
        session_event(id="s42"),
        php_form({key: value for key, value in REAL_FINISH.items() if key != "data"}),
    ],
)
async def test_session_event_without_a_session_id_is_rejected(
    portal: FakePortal, openlines_client: Bitrix24Client, body: bytes
) -> None:
    with pytest.raises(WebhookRejected) as caught:
        await enrich_event(body, openlines_client)
    assert caught.value.reason == "malformed"
    assert portal.requests == []


@pytest.mark.integration
async def test_session_finish_through_the_receiver(
    stack: LocalStack, portal: FakePortal, openlines_client: Bitrix24Client
) -> None:
    run = f"ol{next(_runs)}-{int(time.time())}"
    topics = TopicSettings(
        raw_pbx=f"{run}.pbx", raw_chat=f"{run}.chat", raw_crm=f"{run}.crm", dead_letter=f"{run}.dl"
    )
    kafka = stack.settings.kafka
    await ensure_topics(kafka, topics)
    receiver = ReceiverSettings(
        bitrix24_application_token=SecretStr(REAL_TOKEN), port=free_ports(1)[0]
    )
    app = build_receiver_app(
        receiver,
        RawProducer(kafka, topics),
        topics=topics,
        transform=receiver_transform(openlines_client),
    )
    async with TestClient(TestServer(app)) as http:
        deadline = time.monotonic() + 20
        while (await http.get("/readyz")).status != 200:
            assert time.monotonic() < deadline, "the receiver never became ready"
            await asyncio.sleep(0.05)
        response = await http.post("/ingest/bitrix24/event", data=php_form(REAL_FINISH))
        assert response.status == 200
        assert await response.json() == {"stored": 1}

    [message] = await consume(kafka, topics.raw_chat)
    assert (message.key, dict(message.headers)["sp-format"]) == (
        b"1101",
        b"bitrix24-openlines-session",
    )
    [event] = Bitrix24OpenLinesParser().parse(message.value, SourceRef("t", "t", 0, 0))
    assert event.event_id == derive_event_id("bitrix24-openlines-session", "42")
    assert (event.action, event.actor.id, event.first_response_seconds) == ("served", "1101", 43)
