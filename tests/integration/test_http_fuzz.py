"""Hostile HTTP against both servers, over real sockets: the receiver (with a real broker behind
it) and a worker process's web server. Whatever a well-formed request holds (any method, path,
query, headers, body; huge, chunked, compressed or not UTF-8), the answer is one of the
documented statuses: never a 500, never a connection dropped without an answer. Slow and idle
clients are cut off in a stated time, and a 100 MB body costs the receiver about nothing."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import gzip
import http.client
import os
import select
import socket
import threading
import time
import tracemalloc
import zlib
from collections.abc import Iterator
from typing import NamedTuple
from urllib.parse import quote_from_bytes

import pytest
from hypothesis import event, given
from hypothesis import strategies as st
from pydantic import SecretStr

from ingest.raw_producer import RawProducer
from ingest.receiver import ReceiverSettings, run_receiver
from salespulse.sections import REPO_ROOT, TopicSettings
from salespulse.settings import Settings
from salespulse.stack_settings import free_ports
from salespulse.topics import ensure_topics
from salespulse.worker_process import stop_worker
from tests.conftest import LocalStack
from tests.integration.pipeline_harness import isolated_settings, launch
from tests.unit.fuzzing import fuzz_settings

pytestmark = pytest.mark.integration

TOKEN = "fuzz-token"
BASIC = ("freeswitch", "cdr-pass")
BITRIX_TOKEN = "bx-fuzz"
# Short enough to measure here, long enough that no fuzz request (one round trip) meets it.
KEEPALIVE_SECONDS = 2.0
# The fuzzed receiver's cap is the default, so that connections still closing do not turn part
# of a fuzz run into 503s. The cap itself is tested with 16.
SMALL_CAP = 16
MAX_BODY_BYTES = 1_048_576
HTTP_FUZZ = fuzz_settings(150)

RECEIVER_STATUSES = {200, 400, 401, 403, 404, 405, 408, 413, 429, 503}
WORKER_STATUSES = {200, 400, 404, 405, 421, 503}


class Answer(NamedTuple):
    status: int
    headers: dict[str, str]
    body: bytes


def exchange(port: int, request: bytes, method: str, *, seconds: float = 30.0) -> Answer:
    """One request on a fresh connection, sent while watching for the answer as a real client
    does (a server may answer before the body is in, e.g. 413); a connection closed without
    an answer raises."""
    with socket.create_connection(("127.0.0.1", port), timeout=seconds) as sock:
        unsent = memoryview(request)
        sock.setblocking(False)
        while unsent and not readable(sock):
            try:
                unsent = unsent[sock.send(unsent[:65536]) :]
            except BlockingIOError:
                select.select([sock], [sock], [], 0.1)
            except OSError:  # closed after an early answer: read it below
                break
        sock.settimeout(seconds)
        response = http.client.HTTPResponse(sock, method=method)
        response.begin()
        return Answer(response.status, dict(response.getheaders()), response.read())


def readable(sock: socket.socket) -> bool:
    return bool(select.select([sock], [], [], 0)[0])


def get(port: int, path: str) -> Answer:
    return exchange(
        port, f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode(), "GET"
    )


def wait_for_status(port: int, path: str, status: int, seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while True:
        with contextlib.suppress(OSError, http.client.HTTPException):
            if get(port, path).status == status:
                return
        assert time.monotonic() < deadline, f"{path} never answered {status}"
        time.sleep(0.1)


# --- the servers ------------------------------------------------------------------------------


class Receiver(NamedTuple):
    port: int
    settings: ReceiverSettings


@contextlib.contextmanager
def serving_receiver(stack: LocalStack, **changes: object) -> Iterator[Receiver]:
    """``run_receiver`` as the service runs it, on its own event loop in a thread, so that
    blocking test clients and hypothesis can drive it."""
    run = f"httpfuzz{os.getpid()}-{time.monotonic_ns()}"
    topics = TopicSettings(
        raw_pbx=f"{run}.pbx", raw_chat=f"{run}.chat", raw_crm=f"{run}.crm", dead_letter=f"{run}.dl"
    )
    values: dict[str, object] = {
        "port": free_ports(1)[0],
        "shared_token": SecretStr(TOKEN),
        "basic_user": BASIC[0],
        "basic_password": SecretStr(BASIC[1]),
        "bitrix24_application_token": SecretStr(BITRIX_TOKEN),
        "keepalive_timeout_seconds": KEEPALIVE_SECONDS,
        "read_timeout_seconds": 2.0,
        "rate_per_ip": 10_000.0,
        "burst": 10_000,
    }
    values.update(changes)
    receiver = ReceiverSettings.model_validate(values)
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    failure: list[BaseException] = []

    async def serve() -> None:
        await ensure_topics(stack.settings.kafka, topics)
        producer = RawProducer(stack.settings.kafka, topics)
        await run_receiver(receiver, producer, stop, topics=topics)

    def thread_main() -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(serve())
        except BaseException as exc:  # reported by the test, not lost in the thread
            failure.append(exc)
        # Handlers still discarding the rest of a refused body from a client that went away:
        # the service's process would exit here; the test's loop must end them itself.
        leftovers = asyncio.all_tasks(loop)
        for task in leftovers:
            task.cancel()
        loop.run_until_complete(asyncio.gather(*leftovers, return_exceptions=True))

    thread = threading.Thread(target=thread_main, name="receiver", daemon=True)
    thread.start()
    try:
        wait_for_status(receiver.port, "/readyz", 200)
        yield Receiver(receiver.port, receiver)
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(60)
        loop.close()
    assert not thread.is_alive(), "the receiver did not stop"
    assert not failure, f"the receiver failed: {failure}"


@pytest.fixture(scope="module")
def receiver(stack: LocalStack) -> Iterator[Receiver]:
    with serving_receiver(stack) as served:
        yield served


@pytest.fixture(scope="module")
def worker_port(stack: LocalStack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """A worker process serving its pages, /metrics, /healthz and /readyz."""
    tmp_path = tmp_path_factory.mktemp("web-fuzz")
    settings: Settings = isolated_settings(stack, tmp_path)
    answering = settings.worker.model_copy(update={"web_hosts": ["fuzz"]})
    settings = settings.model_copy(update={"worker": answering})
    settings.directory_path.write_bytes(
        (REPO_ROOT / "salespulse" / "examples" / "directory.example.yaml").read_bytes()
    )
    worker = launch(settings, tmp_path / "worker.log")
    try:
        wait_for_status(settings.worker.web_port, "/readyz", 200, seconds=120)
        yield settings.worker.web_port
    finally:
        assert stop_worker(worker.process) == 0


# --- well-formed requests of every kind -------------------------------------------------------

TOKEN_CHARS = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
TOKENS = st.text(alphabet=TOKEN_CHARS, min_size=1, max_size=16)
# Framing headers are the request builder's: fuzzed copies would make the request ill-formed.
FRAMING = {"host", "content-length", "transfer-encoding", "connection", "expect", "upgrade"}
# Field values: visible ASCII, space, tab and obs-text (bytes 0x80-0xFF), never CR or LF.
FIELD_VALUE = st.binary(max_size=80).map(
    lambda raw: bytes(b for b in raw if b == 9 or 32 <= b < 127 or b >= 128).strip()
)
# Methods a route may take, and a few that none does (aiohttp answers 400 to one it does not
# know at all).
COMMON_METHODS = st.sampled_from(["POST"] * 6 + ["GET"] * 3 + ["PUT", "DELETE", "HEAD", "OPTIONS"])
RARE_METHODS = st.one_of(st.sampled_from(["PATCH", "TRACE", "PROPFIND", "post"]), TOKENS)


def weighted(draw: st.DrawFn, common: st.SearchStrategy[str], rare: st.SearchStrategy[str]) -> str:
    """Nine times in ten from ``common``: hypothesis would otherwise spend most examples on
    requests refused before any of our code runs."""
    return draw(common if draw(st.integers(0, 9)) else rare)


def encoded(segment: bytes) -> str:
    return quote_from_bytes(segment, safe="")


def paths(draw: st.DrawFn, known: list[str]) -> str:
    segment = st.one_of(
        st.sampled_from(["ingest", "chat", "crm", "pbx", "..", ".", "", "%00", "%2F", "api"]),
        st.binary(max_size=12).map(encoded),
    )
    invented = st.lists(segment, min_size=1, max_size=4).map(lambda parts: "/" + "/".join(parts))
    extended = st.tuples(st.sampled_from(known), segment).map(
        lambda pair: f"{pair[0].rstrip('/')}/{pair[1]}"
    )
    return weighted(draw, st.sampled_from(known), st.one_of(invented, extended))


QUERIES = st.lists(
    st.tuples(st.binary(max_size=8), st.binary(max_size=16)).map(
        lambda pair: f"{encoded(pair[0])}={encoded(pair[1])}"
    ),
    max_size=4,
).map(lambda pairs: "?" + "&".join(pairs) if pairs else "")


def basic(user: str, password: str) -> bytes:
    return b"Basic " + base64.b64encode(f"{user}:{password}".encode())


AUTHORIZATION = st.sampled_from(
    [
        [],
        [(b"Authorization", f"Bearer {TOKEN}".encode())],
        [(b"X-Salespulse-Token", TOKEN.encode())],
        [(b"Authorization", basic(*BASIC))],
        [(b"Authorization", b"Bearer " + TOKEN.encode()[:-1])],
        [(b"Authorization", basic(BASIC[0], "wrong"))],
        [(b"Authorization", b"Basic %%%not-base64")],
        [(b"Authorization", b"Bearer")],
        [(b"Authorization", b"Bearer " + b"\xff" * 40)],
    ]
)
CREDENTIALS = [
    f"Authorization: Bearer {TOKEN}\r\n".encode(),
    f"X-Salespulse-Token: {TOKEN}\r\n".encode(),
    b"Authorization: " + basic(*BASIC) + b"\r\n",
    b"%5Bapplication_token%5D=" + BITRIX_TOKEN.encode(),
]
CDR = b'{"core-uuid":"1f0e","variables":{"uuid":"a1b2","billsec":"25"},"callflow":[]}'
FORM = (
    b"event=ONCRMDEALUPDATE&data%5BFIELDS%5D%5BID%5D=1&auth%5Bapplication_token%5D="
    + BITRIX_TOKEN.encode()
)
RIGHT_CREDENTIALS = st.sampled_from(
    [[(b"Authorization", f"Bearer {TOKEN}".encode())], [(b"X-Salespulse-Token", TOKEN.encode())],
     [(b"Authorization", basic(*BASIC))]]
)  # fmt: skip
VALID_BODIES = st.sampled_from([CDR, FORM, b'{"session_id":"s1"}\n{"event":"x"}\n'])
BODIES = st.one_of(
    st.just(b""),
    st.binary(max_size=600),
    st.sampled_from([CDR, b"cdr=" + CDR, FORM, b'{"session_id":"s1"}\n{"session_id":"s2"}\n',
                     b"[" * 5000, b'{"a":' * 3000, b"\xff\xfe" * 100]),
    st.just(b"x" * (MAX_BODY_BYTES + 1)),  # one byte over the limit
)  # fmt: skip
CONTENT_TYPES = st.sampled_from(
    [b"application/json", b"application/x-www-form-urlencoded", b"text/plain; charset=koi8-r",
     b"multipart/form-data; boundary=x"]
)  # fmt: skip
# The worker answers for "fuzz" (configured) and IP literals; the receiver does not look.
HOSTS = st.sampled_from([b"fuzz"] * 4 + [b"127.0.0.1:6066", b"attacker.example"])
CONTENT_ENCODINGS = st.sampled_from([None, "gzip", "deflate", "br", "identity", "x-unknown"])


class Request(NamedTuple):
    method: str
    raw: bytes
    body: bytes  # as the server reads it, once framing and compression are undone

    def __repr__(self) -> str:
        # A failing example is reported with this: the head, and the body's size only.
        head, _, body = self.raw.partition(b"\r\n\r\n")
        return f"Request({head!r} + {len(body)} bytes of body)"


@st.composite
def requests(draw: st.DrawFn, known_paths: list[str]) -> Request:
    """A syntactically valid HTTP/1.1 request: fuzzed, but every server must be able to answer."""
    method = weighted(draw, COMMON_METHODS, RARE_METHODS)
    target = paths(draw, known_paths) + draw(QUERIES)
    headers: list[tuple[bytes, bytes]] = [(b"Host", draw(HOSTS))]
    # Half the requests carry a right credential, so that bodies reach the checks behind it.
    headers += draw(RIGHT_CREDENTIALS if draw(st.booleans()) else AUTHORIZATION)
    headers += [
        (name.encode(), value)
        for name, value in draw(st.lists(st.tuples(TOKENS, FIELD_VALUE), max_size=5))
        if name.lower() not in FRAMING
    ]
    body = plain = draw(VALID_BODIES if draw(st.integers(0, 3)) == 0 else BODIES)
    coding = draw(CONTENT_ENCODINGS)
    if coding is not None:
        headers.append((b"Content-Encoding", coding.encode()))
        if coding in ("gzip", "deflate") and draw(st.booleans()):
            body = zlib.compress(body) if coding == "deflate" else gzip.compress(body)
    if draw(st.booleans()):
        headers.append((b"Content-Type", draw(CONTENT_TYPES)))
    if body and draw(st.booleans()):
        # Chunked, in pieces of fuzzed sizes: no Content-Length to refuse early.
        headers.append((b"Transfer-Encoding", b"chunked"))
        size = draw(st.integers(max(1, len(body) // 64), len(body)))
        pieces = [body[at : at + size] for at in range(0, len(body), size)]
        payload = b"".join(b"%x\r\n%s\r\n" % (len(piece), piece) for piece in pieces) + b"0\r\n\r\n"
    else:
        if body or method in ("POST", "PUT", "PATCH") or draw(st.booleans()):
            headers.append((b"Content-Length", str(len(body)).encode()))
        else:
            body = b""
        payload = body
    headers.append((b"Connection", b"close"))
    head = f"{method} {target} HTTP/1.1\r\n".encode()
    head += b"".join(name + b": " + value + b"\r\n" for name, value in headers)
    return Request(method, head + b"\r\n" + payload, plain)


INGEST_PATHS = ["/ingest/freeswitch/json-cdr", "/ingest/bitrix24/event",
                "/ingest/chat/chat-session-json", "/ingest/crm/crm-event-json",
                "/ingest/pbx/crm-event-json"]  # fmt: skip
# The ingest routes three times over: they are where the receiver's own code runs.
RECEIVER_PATHS = INGEST_PATHS * 3 + ["/healthz", "/readyz", "/"]
WORKER_PATHS = ["/", "/api/today", "/departments/msk", "/managers/ivanova", "/managers/nobody",
                "/assets/today.js", "/assets/today.css", "/assets/x", "/metrics", "/healthz",
                "/readyz"]  # fmt: skip


def answered(port: int, request: Request, documented: set[int]) -> Answer:
    try:
        answer = exchange(port, request.raw, request.method)
    except (OSError, http.client.HTTPException) as exc:
        raise AssertionError(f"no answer to {request.raw[:300]!r}: {exc!r}") from exc
    event(f"status {answer.status}")
    assert answer.status in documented, (answer.status, request.raw[:300], answer.body[:300])
    return answer


@HTTP_FUZZ
@given(request=requests(RECEIVER_PATHS))
def test_receiver_answers_every_request_with_a_documented_status(
    receiver: Receiver, request: Request
) -> None:
    answer = answered(receiver.port, request, RECEIVER_STATUSES)
    if answer.status == 200 and b" /ingest/" in request.raw.split(b"\r\n", 1)[0]:
        # Nothing is stored without one of the configured credentials.
        sent = request.raw.partition(b"\r\n\r\n")[0] + b"\r\n" + request.body
        assert any(credential in sent for credential in CREDENTIALS), request


@HTTP_FUZZ
@given(request=requests(WORKER_PATHS))
def test_worker_web_server_answers_every_request_with_a_documented_status(
    worker_port: int, request: Request
) -> None:
    answered(worker_port, request, WORKER_STATUSES)


# --- slow, idle and huge ----------------------------------------------------------------------

# aiohttp checks the keep-alive deadline on its own timer: allow one more period and scheduling.
CUT_OFF_SECONDS = KEEPALIVE_SECONDS * 2 + 1.0
POST_HEAD = (
    b"POST /ingest/freeswitch/json-cdr HTTP/1.1\r\nHost: fuzz\r\n"
    + f"Authorization: Bearer {TOKEN}\r\n".encode()
    + b"Content-Length: %d\r\n\r\n" % len(CDR)
)


def seconds_until_closed(sock: socket.socket, trickle: bytes, every: float) -> float:
    """Send ``trickle`` a byte every ``every`` seconds (slowloris) until the server closes the
    connection; the seconds that took, from the first byte."""
    started = time.monotonic()
    for byte in trickle:
        try:
            sock.sendall(bytes([byte]))
        except OSError:
            return time.monotonic() - started
        sock.settimeout(every)
        try:
            if sock.recv(4096) == b"":
                return time.monotonic() - started
        except TimeoutError:
            pass
        assert time.monotonic() - started < 60, "the slow client was never cut off"
    raise AssertionError("the whole request head went through")


def test_slow_request_head_is_cut_off(receiver: Receiver) -> None:
    trickle = POST_HEAD * 20  # far more than the deadline lets through at 4 bytes a second
    with socket.create_connection(("127.0.0.1", receiver.port)) as sock:
        first = seconds_until_closed(sock, trickle, 0.25)
    # The same after a complete request on a kept-alive connection.
    with socket.create_connection(("127.0.0.1", receiver.port), timeout=10) as sock:
        sock.sendall(POST_HEAD + CDR)
        response = http.client.HTTPResponse(sock, method="POST")
        response.begin()
        assert response.status == 200
        response.read()
        later = seconds_until_closed(sock, trickle, 0.25)
    print(f"slow request head cut off after {first:.2f} s; on a kept-alive one {later:.2f} s")
    assert first < CUT_OFF_SECONDS
    assert later < CUT_OFF_SECONDS


def test_idle_connections_are_capped_and_closed(stack: LocalStack) -> None:
    with serving_receiver(stack, max_connections=SMALL_CAP) as receiver:
        check_cap(receiver)


def check_cap(receiver: Receiver) -> None:
    idle = [socket.create_connection(("127.0.0.1", receiver.port)) for _ in range(SMALL_CAP)]
    try:
        # Every connection is registered by the time one more request is answered.
        deadline = time.monotonic() + 10
        while True:
            answer = get(receiver.port, "/healthz")
            if answer.status == 503:
                break
            assert time.monotonic() < deadline, "connections over the cap were still served"
            time.sleep(0.05)
        assert int(answer.headers["Retry-After"]) >= 1
        # The idle ones are closed by the server, after which the receiver serves again.
        started = time.monotonic()
        for sock in idle:
            sock.settimeout(CUT_OFF_SECONDS + 5)
            assert sock.recv(1) == b""
        closed_after = time.monotonic() - started
        print(f"{SMALL_CAP} idle connections closed within {closed_after:.2f} s")
        assert closed_after < CUT_OFF_SECONDS
        wait_for_status(receiver.port, "/healthz", 200, seconds=10)
    finally:
        for sock in idle:
            sock.close()


HUNDRED_MB = 100 * 1024 * 1024
# The receiver holds at most one body of max_body_bytes; the rest of 100 MB must not stay.
RECEIVER_PEAK_BYTES = 8 * 1024 * 1024


def send_huge(port: int, head: bytes, chunked: bool) -> tuple[Answer | None, int]:
    """Send ``head`` and then up to 100 MB of body (chunked or not), stopping when the server
    answers or closes; the answer (None if the connection was closed without one) and the
    bytes of body sent."""
    piece = b"7" * 65536
    sent = 0
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(head)
        sock.setblocking(False)
        try:
            while sent < HUNDRED_MB:
                if readable(sock):  # an answer, or the server closed the connection
                    break
                data = b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece
                try:
                    sock.send(data)
                    sent += len(piece)
                except BlockingIOError:
                    time.sleep(0.001)
        except OSError:
            pass
        sock.setblocking(True)
        sock.settimeout(30)
        try:
            response = http.client.HTTPResponse(sock, method="POST")
            response.begin()
            return Answer(response.status, dict(response.getheaders()), b""), sent
        except (OSError, http.client.HTTPException):
            return None, sent


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_a_100_mb_body_is_refused_early(receiver: Receiver, chunked: bool) -> None:
    framing = (
        b"Transfer-Encoding: chunked\r\n" if chunked else b"Content-Length: %d\r\n" % HUNDRED_MB
    )
    head = (
        b"POST /ingest/freeswitch/json-cdr HTTP/1.1\r\nHost: fuzz\r\n"
        + f"Authorization: Bearer {TOKEN}\r\n".encode()
        + framing
        + b"\r\n"
    )
    tracemalloc.start()
    try:
        started = time.monotonic()
        answer, sent = send_huge(receiver.port, head, chunked)
        seconds = time.monotonic() - started
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    print(f"100 MB body ({'chunked' if chunked else 'declared'}): answered after {sent} bytes "
          f"in {seconds:.2f} s; peak allocations {peak / 1e6:.1f} MB")  # fmt: skip
    assert answer is not None, "refused with an answer, not a dropped connection"
    assert answer.status == 413
    assert sent < HUNDRED_MB / 4, "refused early, not after reading the whole body"
    assert peak < RECEIVER_PEAK_BYTES
