"""The HTTP receiver on the real broker: what it accepts lands raw on the topic, what it refuses
leaves no trace, and it never says 2xx for a body Kafka did not take."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import gzip
import hmac
import itertools
import json
import os
import signal
import sys
import time
import zlib
from collections.abc import AsyncIterator
from typing import NamedTuple
from urllib.parse import quote

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from aiokafka import AIOKafkaConsumer, TopicPartition
from pydantic import SecretStr

from ingest import receiver_auth
from ingest.raw_producer import RawProducer, RawRecordOut
from ingest.receiver import ReceiverSettings, Transform, build_receiver_app, run_receiver
from salespulse.models import SourceFamily
from salespulse.sections import KafkaSettings, TopicSettings
from salespulse.settings import Settings
from salespulse.stack_settings import free_ports
from salespulse.topics import ensure_topics
from tests.conftest import LocalStack
from tests.http_probes import gzip_bomb, gzip_head, inflate_seconds, send

pytestmark = pytest.mark.integration
Client = TestClient[web.Request, web.Application]
_runs = itertools.count(1)

TOKEN = "s3cret-token"
BITRIX_TOKEN = "bx-app-token"
CDR = {"core-uuid": "1f0e", "variables": {"uuid": "a1b2", "billsec": "25"}, "callflow": []}
CDR_BODY = json.dumps(CDR, separators=(",", ":")).encode()
BITRIX_EVENT = (
    "event=ONCRMDEALUPDATE&data%5BFIELDS%5D%5BID%5D=5531&ts=1732605302"
    "&auth%5Bdomain%5D=example.bitrix24.ru&auth%5Bapplication_token%5D="
)


class Seen(NamedTuple):
    key: bytes | None
    value: bytes
    format: bytes


def receiver_settings(**changes: object) -> ReceiverSettings:
    values: dict[str, object] = {
        "shared_token": SecretStr(TOKEN),
        "basic_user": "freeswitch",
        "basic_password": SecretStr("cdr-pass"),
        "bitrix24_application_token": SecretStr(BITRIX_TOKEN),
        "port": free_ports(1)[0],
        "read_timeout_seconds": 0.5,
    }
    values.update(changes)
    return ReceiverSettings.model_validate(values)


@pytest.fixture
async def settings(stack: LocalStack) -> Settings:
    run = f"recv{next(_runs)}-{os.getpid()}"
    topics = TopicSettings(
        raw_pbx=f"{run}.pbx", raw_chat=f"{run}.chat", raw_crm=f"{run}.crm", dead_letter=f"{run}.dl"
    )
    await ensure_topics(stack.settings.kafka, topics)
    return stack.settings.model_copy(update={"topics": topics})


async def read(settings: Settings, topic: str, *until: bytes, seconds: float = 20) -> list[Seen]:
    """Every message on ``topic`` until all of the values ``until`` arrived. A refused body
    shares the key, so the partition, of the accepted one sent after it: had it been written,
    it would arrive first."""
    consumer = AIOKafkaConsumer(
        topic,
        **settings.kafka.aiokafka_options(),
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    seen: list[Seen] = []
    deadline = time.monotonic() + seconds
    try:
        while not set(until) <= {message.value for message in seen}:
            assert time.monotonic() < deadline, f"{until!r} never arrived; saw {seen}"
            for records in (await consumer.getmany(timeout_ms=200)).values():
                seen += [Seen(r.key, r.value or b"", dict(r.headers)["sp-format"]) for r in records]
    finally:
        await consumer.stop()
    return seen


async def total_messages(settings: Settings, topic: str) -> int:
    consumer = AIOKafkaConsumer(**settings.kafka.aiokafka_options(), enable_auto_commit=False)
    await consumer.start()
    try:
        await consumer.topics()  # loads the metadata partitions_for_topic answers from
        partitions = [
            TopicPartition(topic, partition)
            for partition in consumer.partitions_for_topic(topic) or ()
        ]
        assert partitions, f"no metadata for {topic}"
        return sum((await consumer.end_offsets(partitions)).values())
    finally:
        await consumer.stop()


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[Client]:
    async with started_client(settings, receiver_settings()) as test_client:
        yield test_client


def started_client(
    settings: Settings, receiver: ReceiverSettings, transform: Transform | None = None
) -> Client:
    """A test client whose application starts its own producer on the stack's broker."""
    producer = RawProducer(settings.kafka, settings.topics)
    app = build_receiver_app(receiver, producer, topics=settings.topics, transform=transform)
    return TestClient(TestServer(app))


async def wait_ready(client: Client) -> None:
    deadline = time.monotonic() + 20
    while (await client.get("/readyz")).status != 200:
        assert time.monotonic() < deadline, "the receiver never became ready"
        await asyncio.sleep(0.05)


def bearer(token: str = TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def basic(user: str, password: str) -> dict[str, str]:
    """What curl sends for mod_json_cdr's ``cred=user:pass``."""
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


async def test_freeswitch_cdr_lands_raw_with_its_format(settings: Settings, client: Client) -> None:
    await wait_ready(client)
    response = await client.post(
        "/ingest/freeswitch/json-cdr?uuid=a1b2",
        data=CDR_BODY,
        headers={**bearer(), "Content-Type": "application/json"},
    )
    assert response.status == 200, await response.text()
    assert await response.json() == {"stored": 1}
    seen = await read(settings, settings.topics.raw_pbx, CDR_BODY)
    assert seen == [Seen(b"freeswitch", CDR_BODY, b"freeswitch-json-cdr")]


async def test_freeswitch_basic_auth_and_encoded_forms(settings: Settings, client: Client) -> None:
    await wait_ready(client)
    auth = basic("freeswitch", "cdr-pass")
    form = b"cdr=" + quote(CDR_BODY.decode(), safe="").encode()
    response = await client.post(
        "/ingest/freeswitch/json-cdr",
        data=form,
        headers=auth | {"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status == 200, await response.text()
    base64_form = b"cdr=" + base64.b64encode(CDR_BODY)
    response = await client.post(
        "/ingest/freeswitch/json-cdr",
        data=base64_form,
        headers=auth | {"Content-Type": "application/x-www-form-base64-encoded"},
    )
    assert response.status == 200, await response.text()
    response = await client.post(
        "/ingest/freeswitch/json-cdr",
        data=CDR_BODY,
        headers={"X-Salespulse-Token": TOKEN, "X-Salespulse-Key": "fs-2"},
    )
    assert response.status == 200, await response.text()
    seen = await read(settings, settings.topics.raw_pbx, form, base64_form, CDR_BODY)
    assert sorted(seen) == sorted(
        [
            Seen(b"freeswitch", form, b"freeswitch-json-cdr"),
            Seen(b"freeswitch", base64_form, b"freeswitch-json-cdr"),
            Seen(b"fs-2", CDR_BODY, b"freeswitch-json-cdr"),
        ]
    )


async def test_refused_requests_leave_no_trace(settings: Settings, client: Client) -> None:
    await wait_ready(client)
    path = "/ingest/freeswitch/json-cdr"
    missing = await client.post(path, data=b'{"refused": 1}')
    assert missing.status == 401
    assert missing.headers["WWW-Authenticate"].startswith("Basic")
    wrong = await client.post(path, data=b'{"refused": 2}', headers=bearer("s3cret-tokem"))
    assert wrong.status == 401
    wrong_basic = await client.post(
        path, data=b'{"refused": 3}', headers=basic("freeswitch", "nope")
    )
    assert wrong_basic.status == 401
    generic_basic = await client.post(
        "/ingest/chat/chat-session-json",
        data=b'{"refused": 4}',
        headers=basic("freeswitch", "cdr-pass"),
    )
    assert generic_basic.status == 401, "Basic auth is for the FreeSWITCH route only"
    not_json = await client.post(path, data=b"<cdr/>", headers=bearer())
    assert not_json.status == 400
    not_a_cdr_form = await client.post(path, data=b"cdr=%7Bbroken", headers=bearer())
    assert not_a_cdr_form.status == 400
    unknown = await client.post("/ingest/chat/no-such-format", data=b"{}", headers=bearer())
    assert unknown.status == 404

    sentinel = b'{"accepted": true}'
    assert (await client.post(path, data=sentinel, headers=bearer())).status == 200
    seen = await read(settings, settings.topics.raw_pbx, sentinel)
    assert [message.value for message in seen] == [sentinel]
    assert await total_messages(settings, settings.topics.raw_pbx) == 1
    assert await total_messages(settings, settings.topics.raw_chat) == 0


async def test_bitrix24_event_needs_the_application_token(
    settings: Settings, client: Client
) -> None:
    await wait_ready(client)
    path = "/ingest/bitrix24/event"
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    wrong = await client.post(path, data=(BITRIX_EVENT + "guess").encode(), headers=form)
    assert wrong.status == 403
    # The shared token is no substitute for the application token.
    header_only = await client.post(path, data=BITRIX_EVENT.encode(), headers=form | bearer())
    assert header_only.status == 403
    body = (BITRIX_EVENT + BITRIX_TOKEN).encode()
    response = await client.post(path, data=body, headers=form)
    assert response.status == 200, await response.text()
    stored = b"event=ONCRMDEALUPDATE&data%5BFIELDS%5D%5BID%5D=5531&ts=1732605302"
    seen = await read(settings, settings.topics.raw_crm, stored)
    # Stored without its auth[...] fields: no token lands in Kafka or a dead letter.
    assert seen == [Seen(None, stored, b"bitrix24-event-webhook")]
    assert await total_messages(settings, settings.topics.raw_crm) == 1


async def test_bitrix24_transform_writes_what_it_returns(settings: Settings) -> None:
    calls: list[bytes] = []

    async def enrich(body: bytes) -> list[RawRecordOut]:
        calls.append(body)
        return [RawRecordOut(SourceFamily.CRM, "bitrix24-crm-rest", b"42", b'{"entity":"deal"}')]

    async with started_client(settings, receiver_settings(), transform=enrich) as client:
        await wait_ready(client)
        body = (BITRIX_EVENT + BITRIX_TOKEN).encode()
        response = await client.post("/ingest/bitrix24/event", data=body)
        assert response.status == 200, await response.text()
        # A finished call carries all it has to say: written as it came, not enriched.
        call_end = (
            "event=ONVOXIMPLANTCALLEND&data%5BCALL_ID%5D=externalCall.1&ts=1732605400"
            "&auth%5Bapplication_token%5D=" + BITRIX_TOKEN
        ).encode()
        response = await client.post("/ingest/bitrix24/event", data=call_end)
        assert response.status == 200, await response.text()
        # So does a call being answered (a manager on a call is not idle).
        call_start = (
            "event=ONVOXIMPLANTCALLSTART&data%5BCALL_ID%5D=externalCall.1&ts=1732605300"
            "&auth%5Bapplication_token%5D=" + BITRIX_TOKEN
        ).encode()
        response = await client.post("/ingest/bitrix24/event", data=call_start)
        assert response.status == 200, await response.text()
    assert calls == [body]
    stored = b"event=ONVOXIMPLANTCALLEND&data%5BCALL_ID%5D=externalCall.1&ts=1732605400"
    started = b"event=ONVOXIMPLANTCALLSTART&data%5BCALL_ID%5D=externalCall.1&ts=1732605300"
    seen = await read(settings, settings.topics.raw_crm, b'{"entity":"deal"}', stored, started)
    assert set(seen) == {
        Seen(b"42", b'{"entity":"deal"}', b"bitrix24-crm-rest"),
        Seen(None, stored, b"bitrix24-call-end-event"),
        Seen(None, started, b"bitrix24-call-start-event"),
    }
    assert len(seen) == 3


async def test_generic_route_takes_json_lines_for_allowed_formats(
    settings: Settings, client: Client
) -> None:
    await wait_ready(client)
    body = b'{"session_id": "s1"}\n{"session_id": "s2"}\n'
    response = await client.post(
        "/ingest/chat/chat-session-json",
        data=body,
        headers={"X-Salespulse-Token": TOKEN, "X-Salespulse-Key": "operator-7"},
    )
    assert response.status == 200, await response.text()
    wrong_family = await client.post("/ingest/crm/chat-session-json", data=body, headers=bearer())
    assert wrong_family.status == 404
    pretty = await client.post(
        "/ingest/chat/chat-session-json", data=b'{\n  "session_id": "s3"\n}\n', headers=bearer()
    )
    assert pretty.status == 400, "the worker frames JSON Lines: one object per line"
    seen = await read(settings, settings.topics.raw_chat, body)
    assert seen == [Seen(b"operator-7", body, b"chat-session-json")]


async def test_body_over_the_limit_is_413(settings: Settings) -> None:
    receiver = receiver_settings(max_body_bytes=1024)
    async with started_client(settings, receiver) as client:
        await wait_ready(client)
        big = json.dumps({"padding": "x" * 2000}).encode()
        declared = await client.post("/ingest/freeswitch/json-cdr", data=big, headers=bearer())
        assert declared.status == 413

        async def chunks() -> AsyncIterator[bytes]:
            for _ in range(4):
                yield b" " * 400  # chunked: no Content-Length to refuse early

        streamed = await client.post("/ingest/freeswitch/json-cdr", data=chunks(), headers=bearer())
        assert streamed.status == 413

        bomb = gzip.compress(b" " * 50_000)  # small on the wire, large once decompressed
        assert len(bomb) < 1024
        compressed = await client.post(
            "/ingest/freeswitch/json-cdr",
            data=bomb,
            headers=bearer() | {"Content-Encoding": "gzip"},
        )
        assert compressed.status == 413


async def test_compressed_bodies_cost_nothing_until_a_handler_reads_them(
    settings: Settings, client: Client
) -> None:
    """A 1 MB gzip body inflating to 1 GiB, sent where nobody reads it: answered, and the
    connection closed, without inflating it (aiohttp used to inflate such a body as it arrived
    and again while draining it after the answer: 0.8 s of CPU each)."""
    await wait_ready(client)
    bomb = gzip_bomb()
    one_inflation = inflate_seconds(bomb)
    port = client.server.port
    assert port is not None
    requests = [
        gzip_head("POST", "/ingest/freeswitch/json-cdr", bomb),  # no credential
        gzip_head("POST", "/no/such/route", bomb, f"Authorization: Bearer {TOKEN}"),
        gzip_head("GET", "/healthz", bomb),
        gzip_head("POST", "/healthz", bomb),
        gzip_head("POST", "/ingest/bitrix24/event", bomb),  # the token is in the body
    ]
    started = time.process_time()
    outcomes = [await asyncio.to_thread(send, port, head, bomb) for head in requests]
    spent = time.process_time() - started
    print(f"{len(requests)} unread gzip bombs cost {spent:.3f} s of CPU; one inflation "
          f"{one_inflation:.3f} s")  # fmt: skip
    assert [outcome.status for outcome in outcomes] == [401, 404, 200, 405, 413]
    assert all(outcome.closed for outcome in outcomes), outcomes
    assert all(outcome.connection == "close" for outcome in outcomes), outcomes
    # Generous, for a busy machine: five inflations would cost twenty times this.
    assert spent < one_inflation / 4


async def test_authorised_compressed_bodies_are_stored_inflated(
    settings: Settings, client: Client
) -> None:
    await wait_ready(client)
    deflater = zlib.compressobj(wbits=-zlib.MAX_WBITS)  # deflate without the zlib header
    encoded = {
        "gzip": gzip.compress(CDR_BODY),
        "deflate": zlib.compress(CDR_BODY),
        "Deflate ": deflater.compress(CDR_BODY) + deflater.flush(),
    }
    for coding, body in encoded.items():
        response = await client.post(
            "/ingest/freeswitch/json-cdr",
            data=body,
            headers=bearer() | {"Content-Encoding": coding},
        )
        assert response.status == 200, (coding, await response.text())
    seen = await read(settings, settings.topics.raw_pbx, CDR_BODY)
    assert [message.value for message in seen] == [CDR_BODY] * 3

    cut_short = await client.post(
        "/ingest/freeswitch/json-cdr",
        data=encoded["gzip"][:-12],
        headers=bearer() | {"Content-Encoding": "gzip"},
    )
    assert cut_short.status == 400
    brotli = await client.post(
        "/ingest/freeswitch/json-cdr", data=b"x", headers=bearer() | {"Content-Encoding": "br"}
    )
    assert brotli.status == 400


async def test_an_authorised_gzip_bomb_is_inflated_only_up_to_the_limit(
    settings: Settings, client: Client
) -> None:
    await wait_ready(client)
    bomb = gzip_bomb(inflated_mib=256)  # under the raw limit, far over it inflated
    assert len(bomb) < receiver_settings().max_body_bytes
    one_inflation = inflate_seconds(bomb)
    port = client.server.port
    assert port is not None
    head = gzip_head("POST", "/ingest/freeswitch/json-cdr", bomb, f"Authorization: Bearer {TOKEN}")
    started = time.process_time()
    outcome = await asyncio.to_thread(send, port, head, bomb)
    spent = time.process_time() - started
    print(f"an authorised 256 MiB gzip bomb cost {spent:.3f} s; inflating it {one_inflation:.3f}")
    assert outcome.status == 413
    assert spent < one_inflation / 4


async def test_rate_limit_answers_429_with_retry_after(settings: Settings) -> None:
    async with started_client(settings, receiver_settings(rate_per_ip=0.5, burst=2)) as client:
        await wait_ready(client)
        statuses = []
        for number in range(3):
            response = await client.post(
                "/ingest/freeswitch/json-cdr", data=b'{"n": %d}' % number, headers=bearer()
            )
            statuses.append(response.status)
        assert statuses == [200, 200, 429]
        assert int(response.headers["Retry-After"]) >= 1


async def test_rate_limit_behind_a_proxy_counts_the_forwarded_client(settings: Settings) -> None:
    receiver = receiver_settings(rate_per_ip=0.5, burst=1, trust_forwarded_for=True)
    async with started_client(settings, receiver) as client:
        await wait_ready(client)
        statuses = []
        for forwarded in ("203.0.113.5", "198.51.100.7, 203.0.113.9", "203.0.113.5"):
            response = await client.post(
                "/ingest/freeswitch/json-cdr",
                data=b'{"via": "proxy"}',
                headers=bearer() | {"X-Forwarded-For": forwarded},
            )
            statuses.append(response.status)
        assert statuses == [200, 200, 429]


async def test_rate_limit_behind_a_proxy_ignores_addresses_the_client_wrote(
    settings: Settings,
) -> None:
    receiver = receiver_settings(rate_per_ip=0.5, burst=1, trust_forwarded_for=True)
    async with started_client(settings, receiver) as client:
        await wait_ready(client)
        statuses = []
        # The client's own X-Forwarded-For line, a new address each time, then the proxy's.
        for number in range(3):
            response = await client.post(
                "/ingest/freeswitch/json-cdr",
                data=b'{"via": "proxy"}',
                headers=[
                    *bearer().items(),
                    ("X-Forwarded-For", f"198.51.100.{number}"),
                    ("X-Forwarded-For", "203.0.113.5"),
                ],
            )
            statuses.append(response.status)
        # An entry that is no address: the connection's peer is the client.
        response = await client.post(
            "/ingest/freeswitch/json-cdr",
            data=b'{"via": "proxy"}',
            headers=bearer() | {"X-Forwarded-For": "203.0.113.5, unknown"},
        )
        statuses.append(response.status)
        assert statuses == [200, 429, 429, 200]


async def test_slow_body_is_cut_off_with_408(settings: Settings) -> None:
    async with started_client(settings, receiver_settings(read_timeout_seconds=0.3)) as client:
        await wait_ready(client)
        server = client.server
        reader, writer = await asyncio.open_connection(server.host, server.port)
        writer.write(
            b"POST /ingest/freeswitch/json-cdr HTTP/1.1\r\nHost: test\r\n"
            + f"Authorization: Bearer {TOKEN}\r\n".encode()
            + b"Content-Length: 100\r\n\r\n{"
        )
        await writer.drain()
        status_line = await asyncio.wait_for(reader.readline(), 5)
        writer.close()
        await writer.wait_closed()
        assert status_line.startswith(b"HTTP/1.1 408")


async def test_unreachable_broker_means_not_ready_and_503(settings: Settings) -> None:
    closed = KafkaSettings(bootstrap_servers=f"127.0.0.1:{free_ports(1)[0]}")
    producer = RawProducer(closed, settings.topics)
    app = build_receiver_app(receiver_settings(), producer, topics=settings.topics)
    async with TestClient(TestServer(app)) as client:
        await asyncio.sleep(0.2)  # a start attempt or two
        assert (await client.get("/healthz")).status == 200
        ready = await client.get("/readyz")
        assert ready.status == 503
        response = await client.post("/ingest/freeswitch/json-cdr", data=CDR_BODY, headers=bearer())
        assert response.status == 503
        assert int(response.headers["Retry-After"]) >= 1


async def test_run_receiver_finishes_requests_in_flight_on_stop(settings: Settings) -> None:
    release = asyncio.Event()
    entered = asyncio.Event()

    async def slow_enrich(body: bytes) -> list[RawRecordOut]:
        entered.set()
        await release.wait()
        return [RawRecordOut(SourceFamily.CRM, "bitrix24-crm-rest", None, b'{"late": true}')]

    receiver = receiver_settings()
    stop = asyncio.Event()
    server = asyncio.create_task(
        run_receiver(
            receiver,
            RawProducer(settings.kafka, settings.topics),
            stop,
            topics=settings.topics,
            transform=slow_enrich,
        )
    )
    base = f"http://{receiver.host}:{receiver.port}"
    async with aiohttp.ClientSession() as session:
        deadline = time.monotonic() + 20
        while True:
            try:
                async with session.get(f"{base}/readyz") as ready:
                    if ready.status == 200:
                        break
            except aiohttp.ClientConnectionError:
                pass
            assert time.monotonic() < deadline, "the receiver never became ready"
            await asyncio.sleep(0.05)
        body = (BITRIX_EVENT + BITRIX_TOKEN).encode()
        in_flight = asyncio.create_task(session.post(f"{base}/ingest/bitrix24/event", data=body))
        await asyncio.wait_for(entered.wait(), 5)
        stop.set()
        await asyncio.sleep(0.1)
        release.set()
        response = await asyncio.wait_for(in_flight, 10)
        assert response.status == 200
        response.release()
    await asyncio.wait_for(server, 10)
    seen = await read(settings, settings.topics.raw_crm, b'{"late": true}')
    assert [message.value for message in seen] == [b'{"late": true}']


SERVICE = """
import asyncio, signal, sys
from ingest.raw_producer import RawProducer
from ingest.receiver import ReceiverSettings, run_receiver
from salespulse.settings import KafkaSettings, TopicSettings

async def main() -> None:
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    receiver = ReceiverSettings(port=int(sys.argv[1]), shared_token=sys.argv[2])
    kafka = KafkaSettings.model_validate_json(sys.argv[3])
    topics = TopicSettings.model_validate_json(sys.argv[4])
    await run_receiver(receiver, RawProducer(kafka, topics), stop, topics=topics)

asyncio.run(main())
"""


async def test_sigterm_stops_the_service_with_exit_status_zero(settings: Settings) -> None:
    port = free_ports(1)[0]
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        SERVICE,
        str(port),
        TOKEN,
        settings.kafka.model_dump_json(),
        settings.topics.model_dump_json(),
    )
    base = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as session:
            deadline = time.monotonic() + 20
            while True:
                with contextlib.suppress(aiohttp.ClientConnectionError):
                    async with session.get(f"{base}/readyz") as ready:
                        if ready.status == 200:
                            break
                assert time.monotonic() < deadline, "the receiver never became ready"
                await asyncio.sleep(0.05)
            async with session.post(
                f"{base}/ingest/freeswitch/json-cdr", data=CDR_BODY, headers=bearer()
            ) as response:
                assert response.status == 200
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 30) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert await read(settings, settings.topics.raw_pbx, CDR_BODY)


@pytest.mark.parametrize("configured", ["shared_token", "bitrix24_application_token"])
async def test_routes_without_their_credential_refuse_every_guess(
    settings: Settings, configured: str
) -> None:
    """With one credential configured the receiver starts (without any it refuses to: see
    tests/unit/test_receiver_credentials.py); the routes needing another refuse everyone."""
    unset: dict[str, object] = {
        "shared_token": None,
        "basic_user": None,
        "basic_password": None,
        "bitrix24_application_token": None,
    }
    receiver = receiver_settings(**(unset | {configured: SecretStr("the-one-credential")}))
    async with started_client(settings, receiver) as client:
        await wait_ready(client)
        guesses: list[dict[str, str]] = [
            {},
            {"Authorization": "Bearer"},
            {"Authorization": "Bearer "},
            {"Authorization": "Bearer None"},
            {"X-Salespulse-Token": ""},
            basic("", ""),
            basic("None", "None"),
        ]
        if configured == "bitrix24_application_token":
            for path in ("/ingest/freeswitch/json-cdr", "/ingest/chat/chat-session-json"):
                for headers in guesses:
                    response = await client.post(path, data=CDR_BODY, headers=headers)
                    assert response.status == 401, (path, headers)
        else:
            for token in ("", "None"):
                form = (BITRIX_EVENT + token).encode()
                assert (await client.post("/ingest/bitrix24/event", data=form)).status == 403
    assert await total_messages(settings, settings.topics.raw_pbx) == 0
    assert await total_messages(settings, settings.topics.raw_chat) == 0
    assert await total_messages(settings, settings.topics.raw_crm) == 0


def test_every_configured_credential_is_compared_in_constant_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """hmac.compare_digest for every comparison, and as many of them for a right guess as for a
    wrong one: neither the time of one comparison nor their number tells how close a guess was."""
    compared: list[bytes] = []
    real = hmac.compare_digest

    def recording(given: bytes, expected: bytes) -> bool:
        compared.append(expected)
        return real(given, expected)

    monkeypatch.setattr(receiver_auth.hmac, "compare_digest", recording)
    credentials = receiver_auth.Credentials(SecretStr(TOKEN), "freeswitch", SecretStr("cdr-pass"))
    every_secret = sorted([TOKEN.encode(), TOKEN.encode(), b"freeswitch", b"cdr-pass"])
    cases = [
        (bearer(), True),
        (bearer("s3cret-tokem"), False),
        ({"X-Salespulse-Token": TOKEN}, True),
        ({"X-Salespulse-Token": "x"}, False),
        (basic("freeswitch", "cdr-pass"), True),
        (basic("freeswitch", "cdr-pasS"), False),
        (basic("freeswitcH", "cdr-pass"), False),
        ({}, False),
    ]
    for headers, expected in cases:
        compared.clear()
        assert credentials.check_headers(headers, allow_basic=True) is expected, headers
        basic_scheme = headers.get("Authorization", "").startswith("Basic")
        # Both token places always; user and password both whenever Basic is offered.
        wanted = every_secret if basic_scheme else [TOKEN.encode(), TOKEN.encode()]
        assert sorted(compared) == wanted, headers
