"""The receiver never takes a post without a credential by accident (issue 21, finding 2): an
empty credential matches nothing, a receiver with no usable credential does not start, and
posts go without one only where ``allow_anonymous`` says so, which is logged at WARNING."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
from collections.abc import AsyncIterator, Iterable

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from pydantic import SecretStr, ValidationError

from ingest.bitrix24.enrich import WebhookEvent, WebhookRejected, check_token
from ingest.raw_producer import RawProducer, RawRecordOut
from ingest.receiver import ReceiverNotSecured, build_receiver_app
from ingest.receiver_auth import Credentials, ReceiverSettings, matches
from salespulse.sections import KafkaSettings, TopicSettings

TOKEN = "s3cret-token"
BITRIX_TOKEN = "bx-app-token"
CDR = b'{"variables": {"uuid": "a1b2"}}'
CHAT = b'{"session_id": "c-1"}'
BITRIX_EVENT = "event=ONCRMDEALUPDATE&data%5BFIELDS%5D%5BID%5D=5531&ts=1732605302"
FREESWITCH = "/ingest/freeswitch/json-cdr"
GENERIC = "/ingest/chat/chat-session-json"
BITRIX24 = "/ingest/bitrix24/event"
Client = TestClient[web.Request, web.Application]
CONFIGURED = {
    "shared_token": SecretStr(TOKEN),
    "basic_user": "freeswitch",
    "basic_password": SecretStr("cdr-pass"),
    "bitrix24_application_token": SecretStr(BITRIX_TOKEN),
}


class StoredProducer(RawProducer):
    """A producer whose broker always answers: what the receiver admits is stored here."""

    def __init__(self) -> None:
        super().__init__(KafkaSettings(), TopicSettings())
        self.stored: list[RawRecordOut] = []

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    async def send_many(self, records: Iterable[RawRecordOut]) -> int:
        batch = list(records)
        self.stored += batch
        return len(batch)


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


GUESSES: list[dict[str, str]] = [
    {},
    {"Authorization": "Bearer"},
    {"Authorization": "Bearer "},
    {"X-Salespulse-Token": ""},
    basic("", ""),
    basic("freeswitch", ""),
]


@contextlib.asynccontextmanager
async def served(receiver: ReceiverSettings) -> AsyncIterator[tuple[Client, StoredProducer]]:
    producer = StoredProducer()
    app = build_receiver_app(receiver, producer, topics=TopicSettings())
    async with TestClient(TestServer(app)) as client:
        for _ in range(100):  # the producer starts in the background
            async with client.get("/readyz") as response:
                if response.status == 200:
                    break
            await asyncio.sleep(0.01)
        yield client, producer


async def status(client: Client, path: str, body: bytes, headers: dict[str, str]) -> int:
    async with client.post(path, data=body, headers=headers) as response:
        return response.status


@pytest.mark.parametrize("blank", ["", " ", "\n"])
def test_an_empty_credential_matches_nothing(blank: str) -> None:
    assert not matches(blank, SecretStr(blank))
    assert not matches("", None)
    credentials = Credentials(SecretStr(blank), "freeswitch", SecretStr(blank))
    for headers in [*GUESSES, {"X-Salespulse-Token": blank}, basic("freeswitch", blank)]:
        assert not credentials.check_headers(headers, allow_basic=True), headers
    assert matches(TOKEN, SecretStr(TOKEN))
    # The enrichment checks the Bitrix24 section's token the same way.
    event = WebhookEvent("ONCRMDEALUPDATE", "5531", 1732605302, application_token=blank)
    with pytest.raises(WebhookRejected):
        check_token(event, SecretStr(blank))


@pytest.mark.parametrize(
    "credentials",
    [
        {},
        # Built in code, past the settings' own refusal of empty secrets.
        {"shared_token": SecretStr(""), "bitrix24_application_token": SecretStr(" ")},
        {"basic_user": "freeswitch", "basic_password": SecretStr("\n")},
    ],
)
def test_a_receiver_without_a_usable_credential_refuses_to_start(
    credentials: dict[str, object],
) -> None:
    receiver = ReceiverSettings.model_validate(credentials)
    with pytest.raises(ReceiverNotSecured, match="SALESPULSE_RECEIVER__ALLOW_ANONYMOUS"):
        build_receiver_app(receiver, StoredProducer(), topics=TopicSettings())


def test_one_route_without_its_credential_refuses_every_post_and_says_so(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # A receiver serving FreeSWITCH alone need not configure Bitrix24; that route stays shut.
    receiver = ReceiverSettings(shared_token=SecretStr(TOKEN))
    with caplog.at_level(logging.WARNING, logger="ingest.receiver"):
        build_receiver_app(receiver, StoredProducer(), topics=TopicSettings())
    assert f"route {BITRIX24} has no credential configured: it refuses every post" in caplog.text
    assert receiver.anonymous_auths() == frozenset()


async def test_with_allow_anonymous_it_starts_warns_and_takes_posts_from_anyone(
    caplog: pytest.LogCaptureFixture,
) -> None:
    receiver = ReceiverSettings(allow_anonymous=True)
    with caplog.at_level(logging.WARNING, logger="ingest.receiver"):
        async with served(receiver) as (client, producer):
            assert await status(client, FREESWITCH, CDR, {}) == 200
            assert await status(client, GENERIC, CHAT, {}) == 200
            assert await status(client, BITRIX24, BITRIX_EVENT.encode(), {}) == 200
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert any("ALLOW_ANONYMOUS is set" in r.getMessage() for r in warnings)
    assert all(path in caplog.text for path in (FREESWITCH, BITRIX24, "/ingest/{family}"))
    assert len(producer.stored) == 3


@pytest.mark.parametrize("allow_anonymous", [False, True])
async def test_where_a_credential_is_configured_a_post_without_it_is_refused(
    allow_anonymous: bool,
) -> None:
    receiver = ReceiverSettings.model_validate(CONFIGURED | {"allow_anonymous": allow_anonymous})
    async with served(receiver) as (client, producer):
        for headers in GUESSES:
            assert await status(client, FREESWITCH, CDR, headers) == 401, headers
            assert await status(client, GENERIC, CHAT, headers) == 401, headers
        for token in ("", " ", "None"):
            form = f"{BITRIX_EVENT}&auth%5Bapplication_token%5D={token}".encode()
            assert await status(client, BITRIX24, form, {}) == 403, token
        assert producer.stored == []
        # The credentials themselves still open their routes.
        assert await status(client, FREESWITCH, CDR, basic("freeswitch", "cdr-pass")) == 200
        assert await status(client, GENERIC, CHAT, {"Authorization": f"Bearer {TOKEN}"}) == 200
        form = f"{BITRIX_EVENT}&auth%5Bapplication_token%5D={BITRIX_TOKEN}".encode()
        assert await status(client, BITRIX24, form, {}) == 200
        assert len(producer.stored) == 3


def test_an_empty_basic_user_is_refused_and_basic_comes_in_pairs() -> None:
    with pytest.raises(ValidationError, match="empty or only white space"):
        ReceiverSettings(basic_user=" ", basic_password=SecretStr("pw-long"))
    with pytest.raises(ValidationError, match="go together"):
        ReceiverSettings(basic_user="freeswitch")
    with pytest.raises(ValidationError, match="go together"):
        ReceiverSettings(basic_password=SecretStr("pw-long"))
