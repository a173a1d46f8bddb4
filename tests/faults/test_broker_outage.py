"""The bridges while the broker is unreachable: records keep arriving, nothing is lost or made up.

Each test runs one bridge as its service runs (``python -m salespulse tail|ami|receive``) against
a Tansu of its own behind a ``TcpProxy``, feeds it records at a steady rate, takes the broker away
for ``OUTAGE_SECONDS`` while the feed goes on, and gives it back. Two kinds of outage:

* ``frozen``: the broker process is stopped (SIGSTOP): connections are accepted by the kernel,
  nothing is ever answered, as with a hung broker or a network that drops packets;
* ``refused``: the proxy resets every open connection and refuses new ones, as with a broker
  that is down or firewalled.

Afterwards every record must be in the raw topic; a copy of a record is counted, and must stay
within the bound each bridge documents (docs/operations.md). The bridge must have stayed up,
said in its log what was happening, kept its memory flat, and found the broker again by itself.
Each test prints what it measured (``pytest -rP`` shows it).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import signal
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Literal

import aiohttp
import pytest
from aiokafka import AIOKafkaConsumer
from prometheus_client.parser import text_string_to_metric_families

from ingest.ami import RECORDS_PER_WRITE
from ingest.raw_producer import STALL_WARNING_SECONDS
from ingest.receiver_auth import ReceiverSettings
from ingest.tailer_state import Position, StateStore, state_name
from salespulse.sections import KafkaSettings, TopicSettings
from salespulse.stack_settings import free_ports
from salespulse.topics import ensure_topics
from tests.faults.mode import scaled
from tests.faults.tcp_proxy import ProxiedBroker
from tests.integration.test_ami_bridge import SECRET, FakeAsterisk, Script
from tests.integration.test_ami_bridge import cdr as ami_cdr
from tests.integration.test_tailer import lines

OUTAGE_SECONDS = scaled(20, 180)
# Room for the outage, the catch-up after it and a loaded machine.
pytestmark = [pytest.mark.integration, pytest.mark.timeout(OUTAGE_SECONDS * 5 + 120)]
Outage = Literal["frozen", "refused"]
KINDS: list[Outage] = ["frozen", "refused"]
STALL_WARNING = "has not acknowledged a write"
RECORDS = "salespulse_bridge_records_total"
TOPICS = TopicSettings()  # the broker is the test's own: the default names are free
_TICK = 0.1  # seconds between two batches of the feed


@pytest.fixture
async def broker(tmp_path: Path) -> AsyncIterator[ProxiedBroker]:
    async with ProxiedBroker(tmp_path / "broker") as running:
        await ensure_topics(KafkaSettings(bootstrap_servers=running.bootstrap), TOPICS)
        yield running


@contextlib.asynccontextmanager
async def outage(broker: ProxiedBroker, kind: Outage) -> AsyncIterator[None]:
    """The broker unreachable for the body of the ``async with``, then back whatever happens."""
    if kind == "frozen":
        broker.freeze()
    else:
        await broker.proxy.refuse()
    try:
        yield
    finally:
        broker.thaw()
        await broker.proxy.accept()


class BridgeProcess:
    """``python -m salespulse <command>`` with its settings in the environment, as a service
    unit starts it; its log is kept in a file and its counters are read from ``/metrics``."""

    def __init__(self, command: str, env: dict[str, str], directory: Path) -> None:
        self.metrics_port = free_ports(1)[0]
        self.argv = [sys.executable, "-m", "salespulse", command]
        self.argv += ["--metrics-port", str(self.metrics_port)]
        self.env = {**os.environ, **env, "SALESPULSE_LOG_LEVEL": "INFO"}
        self.log_path = directory / f"{command}.log"
        self._process: asyncio.subprocess.Process | None = None

    async def __aenter__(self) -> BridgeProcess:
        with self.log_path.open("ab") as log:
            self._process = await asyncio.create_subprocess_exec(
                *self.argv, env=self.env, stdout=log, stderr=log
            )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        process = self._process
        if process is not None and process.returncode is None:
            process.kill()
            await process.wait()

    @property
    def process(self) -> asyncio.subprocess.Process:
        assert self._process is not None
        return self._process

    async def stop(self) -> int:
        """SIGTERM, as systemd stops it; the exit status."""
        self.process.send_signal(signal.SIGTERM)
        return await asyncio.wait_for(self.process.wait(), 60)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    async def until_logged(self, text: str, seconds: float = 30, times: int = 1) -> None:
        """Until ``text`` is in the log ``times`` times (the bridge must stay up meanwhile)."""
        deadline = time.monotonic() + seconds
        while self.log().count(text) < times:
            assert self.process.returncode is None, self.log()
            assert time.monotonic() < deadline, f"{text!r} not logged {times}x:\n{self.log()}"
            await asyncio.sleep(0.05)

    def memory_kib(self, field: Literal["VmRSS", "VmHWM"]) -> int:
        """Resident memory now (``VmRSS``) or at its peak so far (``VmHWM``)."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1])
        raise AssertionError(f"no {field} for pid {self.process.pid}")

    async def counter(self, name: str, **labels: str) -> float:
        """A counter on the bridge's ``/metrics`` (0 before it is first counted)."""
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        text = await asyncio.to_thread(_fetch, url)
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == name and labels.items() <= sample.labels.items():
                    return sample.value
        return 0.0

    async def until_counted(self, name: str, value: float, seconds: float, **labels: str) -> None:
        deadline = time.monotonic() + seconds
        while True:
            assert self.process.returncode is None, f"the bridge exited:\n{self.log()[-3000:]}"
            with contextlib.suppress(OSError):  # /metrics not served yet
                if await self.counter(name, **labels) >= value:
                    return
            assert time.monotonic() < deadline, f"{name} {labels} below {value} after {seconds} s"
            await asyncio.sleep(0.2)


def _fetch(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        body: bytes = response.read()
    return body.decode()


def kafka_env(broker: ProxiedBroker) -> dict[str, str]:
    return {"SALESPULSE_KAFKA__BOOTSTRAP_SERVERS": broker.bootstrap}


class MemoryWatch:
    """The bridge's resident memory sampled through the outage: before, and its peak."""

    def __init__(self, bridge: BridgeProcess) -> None:
        self.bridge = bridge
        self.before_kib = bridge.memory_kib("VmRSS")
        self.peak_kib = self.before_kib

    async def through(self, seconds: float) -> None:
        """Sample for ``seconds``, checking all along that the bridge is still up."""
        for _ in range(int(seconds / 0.5)):
            await asyncio.sleep(0.5)
            self.peak_kib = max(self.peak_kib, self.bridge.memory_kib("VmRSS"))
            assert self.bridge.process.returncode is None, self.bridge.log()[-3000:]

    @property
    def growth_mib(self) -> float:
        return (self.peak_kib - self.before_kib) / 1024


async def read_topic(
    broker: ProxiedBroker, topic: str, complete: Callable[[list[bytes]], bool]
) -> list[bytes]:
    """Every message value on ``topic`` from its start, once ``complete`` says all expected
    arrived, plus what arrives in two more seconds: a late copy is counted, not missed."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=broker.bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        fetch_max_bytes=64 * 1024 * 1024,
    )
    await consumer.start()
    values: list[bytes] = []
    try:
        deadline = time.monotonic() + 120
        settle_until: float | None = None
        while settle_until is None or time.monotonic() < settle_until:
            for records in (await consumer.getmany(timeout_ms=200)).values():
                values += [record.value or b"" for record in records]
            if settle_until is None and complete(values):
                settle_until = time.monotonic() + 2
            assert settle_until is not None or time.monotonic() < deadline, (
                f"only {len(values)} messages on {topic} after 120 s"
            )
    finally:
        await consumer.stop()
    return values


def copies(values: list[bytes]) -> int:
    """How many values are repeats of an earlier one."""
    return len(values) - len(set(values))


def report(test: str, **numbers: object) -> None:
    """One line of measurements, for docs/reliability.md."""
    print(f"MEASURED {test}: " + ", ".join(f"{key}={value}" for key, value in numbers.items()))


@contextlib.asynccontextmanager
async def feeding(feed: Callable[[], None]) -> AsyncIterator[None]:
    """Call ``feed`` every tick for the body of the ``async with``: the source goes on
    producing whatever happens to the broker."""
    stop = asyncio.Event()

    async def run() -> None:
        while not stop.is_set():
            feed()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), _TICK)

    task = asyncio.create_task(run())
    try:
        yield
    finally:
        stop.set()
        await task


@contextlib.contextmanager
def timed() -> Iterator[Callable[[], float]]:
    start = time.monotonic()
    yield lambda: time.monotonic() - start


# ---------------------------------------------------------------------------------------------
# The CDR file tailer

# Lines the PBX appends per second during the outage: 20 s of it is about 30 MB, far more than
# the tailer may hold in memory, so a tailer that buffered instead of pausing would show it.
TAIL_LINES_PER_SECOND = scaled(7500, 2500)
TAIL_MEMORY_BOUND_MIB = 16


class TailedCdrFile:
    """The PBX's CDR file, and the tailer following it as ``salespulse tail`` with its state in
    ``state_dir``: what it wrote, what the tailer recorded, what reached the topic."""

    def __init__(self, directory: Path, state_dir: Path, broker: ProxiedBroker, **env: str) -> None:
        self.directory = directory
        self.path = directory / "cdr" / "Master.csv"
        self.path.parent.mkdir()
        self.path.touch()
        self.store = StateStore(state_dir, state_name("pbx-faults", self.path), Position)
        self.env = kafka_env(broker) | {
            "SALESPULSE_TAILER__PATH": str(self.path),
            "SALESPULSE_TAILER__STATE_DIR": str(state_dir),
            "SALESPULSE_TAILER__SOURCE_KEY": "pbx-faults",
            "SALESPULSE_TAILER__POLL_INTERVAL_SECONDS": "0.05",
            **env,
        }
        self.written = 0  # lines

    def append(self, count: int) -> None:
        with self.path.open("ab") as file:
            file.write(lines(self.written, count))
        self.written += count

    def tailer(self) -> BridgeProcess:
        return BridgeProcess("tail", self.env, self.directory)

    async def all_recorded(self, bridge: BridgeProcess, seconds: float = 60) -> None:
        """Until the saved position is the end of the file: all of it acknowledged."""
        deadline = time.monotonic() + seconds
        size = self.path.stat().st_size
        while (position := self.store.load()) is None or position.offset < size:
            assert bridge.process.returncode is None, f"the tailer exited:\n{bridge.log()}"
            assert time.monotonic() < deadline, f"position {position} after {seconds} s"
            await asyncio.sleep(0.05)

    def shipped_whole(self, values: list[bytes]) -> bool:
        """Whether ``values``, repeats dropped, are the file's lines exactly: a tailer's copy
        is a chunk sent again whole."""
        unique = dict.fromkeys(values)
        return b"".join(value + b"\n" for value in unique) == self.path.read_bytes()


@pytest.mark.parametrize("kind", KINDS)
async def test_tailer_ships_every_line_once_across_a_broker_outage(
    broker: ProxiedBroker, tmp_path: Path, kind: Outage
) -> None:
    cdr_file = TailedCdrFile(tmp_path, tmp_path / "state", broker)
    cdr_file.append(100)
    with timed() as elapsed:
        async with cdr_file.tailer() as bridge:
            await cdr_file.all_recorded(bridge)
            memory = MemoryWatch(bridge)
            per_tick = int(TAIL_LINES_PER_SECOND * _TICK)
            before_outage = cdr_file.written
            async with outage(broker, kind), feeding(lambda: cdr_file.append(per_tick)):
                await memory.through(OUTAGE_SECONDS)
            during_outage = cdr_file.written - before_outage
            assert STALL_WARNING in bridge.log()
            with timed() as recovery:
                await cdr_file.all_recorded(bridge, scaled(120, 600))
                caught_up_seconds = recovery()
            cdr_file.append(100)  # and it follows the file live again
            await cdr_file.all_recorded(bridge, 30)
            assert await bridge.stop() == 0
    values = await read_topic(broker, TOPICS.raw_pbx, cdr_file.shipped_whole)
    assert cdr_file.shipped_whole(values), "lost or invented lines"
    duplicates = copies(values)
    retries = bridge.log().count("Kafka did not take a chunk")
    # One copy per failed attempt (the broker may have taken it unanswered), one more for the
    # request the outage cut off mid-flight.
    assert duplicates <= retries + 1
    assert memory.growth_mib < TAIL_MEMORY_BOUND_MIB
    report(
        f"tailer/{kind}",
        outage_s=OUTAGE_SECONDS,
        lines_during_outage=during_outage,
        mb_during_outage=round(during_outage * len(lines(0, 1)) / 1e6, 1),
        lines_total=cdr_file.written,
        duplicate_messages=duplicates,
        duplicate_lines=sum(value.count(b"\n") + 1 for value in values) - cdr_file.written,
        failed_attempts=retries,
        caught_up_s=round(caught_up_seconds, 1),
        rss_before_mib=round(memory.before_kib / 1024, 1),
        rss_growth_mib=round(memory.growth_mib, 1),
        log_lines=len(bridge.log().splitlines()),
        test_s=round(elapsed(), 1),
    )


async def test_tailer_started_while_the_broker_is_unreachable_waits_for_it(
    broker: ProxiedBroker, tmp_path: Path
) -> None:
    # After a reboot the tailer may well start before Kafka.
    cdr_file = TailedCdrFile(tmp_path, tmp_path / "state", broker)
    cdr_file.append(100)
    await broker.proxy.refuse()
    try:
        async with cdr_file.tailer() as bridge:
            # A few attempts, counted in the log: however long they take on a busy machine.
            await bridge.until_logged("cannot reach Kafka, retrying", 60, times=3)
            assert cdr_file.store.load() is None
            await broker.proxy.accept()
            await cdr_file.all_recorded(bridge)
            assert await bridge.stop() == 0
    finally:
        await broker.proxy.accept()
    values = await read_topic(broker, TOPICS.raw_pbx, cdr_file.shipped_whole)
    assert cdr_file.shipped_whole(values)
    assert copies(values) == 0


# ---------------------------------------------------------------------------------------------
# The Asterisk Manager Interface bridge

AMI_CDRS_PER_SECOND = 100
# The events held while Kafka is away (about 1.5 MB in CI, 13 MB in the long run) and Python's
# overhead on them, far below the bound of the bridge's outbox (``AmiSettings.buffer_max_bytes``,
# 32 MiB): the pause at that bound is tested in tests/integration/test_ami_bridge.py.
AMI_MEMORY_BOUND_MIB = scaled(16, 40)


@pytest.mark.parametrize("kind", KINDS)
async def test_ami_bridge_forwards_every_cdr_once_across_a_broker_outage(
    broker: ProxiedBroker, tmp_path: Path, kind: Outage
) -> None:
    live: asyncio.Queue[bytes] = asyncio.Queue()
    raised: list[bytes] = []

    def raise_cdrs(count: int) -> None:
        for _ in range(count):
            raised.append(ami_cdr(len(raised)))
            live.put_nowait(raised[-1])

    async with FakeAsterisk([Script(live=live)]) as asterisk:
        env = kafka_env(broker) | {
            "SALESPULSE_AMI__HOST": "127.0.0.1",
            "SALESPULSE_AMI__PORT": str(asterisk.port),
            "SALESPULSE_AMI__USERNAME": "salespulse",
            "SALESPULSE_AMI__SECRET": SECRET,
            # Frequent pings: a session judged dead because Kafka kept the bridge busy would
            # show within the outage.
            "SALESPULSE_AMI__PING_INTERVAL_SECONDS": "1",
            "SALESPULSE_AMI__PING_TIMEOUT_SECONDS": "2",
        }
        with timed() as elapsed:
            async with BridgeProcess("ami", env, tmp_path) as bridge:
                raise_cdrs(20)
                await bridge.until_counted(RECORDS, 20, 60, bridge="ami")
                memory = MemoryWatch(bridge)
                per_tick = int(AMI_CDRS_PER_SECOND * _TICK)
                before_outage = len(raised)
                pings_before = asterisk.pings
                async with outage(broker, kind), feeding(lambda: raise_cdrs(per_tick)):
                    await memory.through(OUTAGE_SECONDS)
                during_outage = len(raised) - before_outage
                # The session was read and kept alive while Kafka was away.
                pings_during_outage = asterisk.pings - pings_before
                assert pings_during_outage > 0
                # What Asterisk could not hand over, once the bridge held all it may.
                held_by_asterisk = live.qsize()
                assert STALL_WARNING in bridge.log()
                with timed() as recovery:
                    await bridge.until_counted(RECORDS, len(raised), scaled(120, 600), bridge="ami")
                    caught_up_seconds = recovery()
                raise_cdrs(20)  # and it forwards live again
                await bridge.until_counted(RECORDS, len(raised), 30, bridge="ami")
                assert await bridge.stop() == 0
        assert asterisk.connections == 1, "a Kafka outage is not the AMI session's fault"
    values = await read_topic(broker, TOPICS.raw_pbx, lambda got: set(raised) <= set(got))
    assert set(values) == set(raised), "lost or invented Cdr events"
    duplicates = copies(values)
    retries = bridge.log().count("records held, retrying in")
    # A failed write is retried whole; the write an outage cut off may have been taken too.
    assert duplicates <= (retries + 1) * RECORDS_PER_WRITE
    assert memory.growth_mib < AMI_MEMORY_BOUND_MIB
    report(
        f"ami/{kind}",
        outage_s=OUTAGE_SECONDS,
        cdrs_during_outage=during_outage,
        cdrs_total=len(raised),
        pings_during_outage=pings_during_outage,
        reading_paused="reading from Asterisk paused" in bridge.log(),
        held_by_asterisk_at_outage_end=held_by_asterisk,
        duplicates=duplicates,
        failed_attempts=retries,
        caught_up_s=round(caught_up_seconds, 1),
        rss_before_mib=round(memory.before_kib / 1024, 1),
        rss_growth_mib=round(memory.growth_mib, 1),
        test_s=round(elapsed(), 1),
    )


# ---------------------------------------------------------------------------------------------
# The HTTP receiver

RECEIVER_POSTS_PER_SECOND = 10  # new records; retries come on top, well under the rate limit
RECEIVER_MEMORY_BOUND_MIB = 32
TOKEN = "outage-token"


@dataclasses.dataclass(frozen=True)
class Answer:
    record: bytes
    status: int
    answered: float  # time.monotonic() when the answer came


class PostingSource:
    """A source as the receiver expects one to behave (FreeSWITCH, a CRM integration): each
    record is posted as it occurs and posted again after ``Retry-After`` until it is stored."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.records: list[bytes] = []
        self.answers: list[Answer] = []
        self.unexpected: list[str] = []
        self._posts: set[asyncio.Task[None]] = set()
        self._session = aiohttp.ClientSession(
            # Posts wait as long as the receiver makes them: no pool limit, no early give-up.
            connector=aiohttp.TCPConnector(limit=0),
            timeout=aiohttp.ClientTimeout(total=120),
            headers={"Authorization": f"Bearer {TOKEN}"},
        )

    def stored(self) -> set[bytes]:
        return {answer.record for answer in self.answers if answer.status == 200}

    def occur(self, count: int) -> None:
        for _ in range(count):
            record = json.dumps({"session_id": f"s-{len(self.records):06d}", "operator": "op-7"})
            self.records.append(record.encode())
            task = asyncio.create_task(self._post_until_stored(self.records[-1]))
            self._posts.add(task)
            task.add_done_callback(self._posts.discard)

    async def _post_until_stored(self, record: bytes) -> None:
        while True:
            try:
                async with self._session.post(self.url, data=record) as response:
                    status = response.status
                    retry_after = response.headers.get("Retry-After")
            except (aiohttp.ClientError, TimeoutError) as exc:
                self.unexpected.append(f"{type(exc).__name__}: {exc}")
                return
            self.answers.append(Answer(record, status, time.monotonic()))
            if status == 200:
                return
            if status not in (429, 503) or retry_after is None:
                self.unexpected.append(f"{status} Retry-After={retry_after}")
                return
            await asyncio.sleep(int(retry_after))

    async def settled(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while self._posts:
            assert time.monotonic() < deadline, f"{len(self._posts)} records never stored"
            await asyncio.sleep(0.1)

    async def close(self) -> None:
        for task in list(self._posts):
            task.cancel()
        await asyncio.gather(*self._posts, return_exceptions=True)
        await self._session.close()


class ReadinessWatch:
    """``/readyz`` polled through the test, as a load balancer does."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.seen: list[tuple[float, int]] = []
        self._task = asyncio.create_task(self._poll())

    async def _poll(self) -> None:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session:
            while True:
                with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                    async with session.get(self.url) as response:
                        self.seen.append((time.monotonic(), response.status))
                await asyncio.sleep(0.25)

    def first(self, status: int, since: float) -> float | None:
        return next((t for t, s in self.seen if s == status and t >= since), None)

    async def close(self) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


@pytest.mark.parametrize("kind", KINDS)
async def test_receiver_answers_503_during_a_broker_outage_and_loses_nothing_it_stored(
    broker: ProxiedBroker, tmp_path: Path, kind: Outage
) -> None:
    port = free_ports(1)[0]
    env = kafka_env(broker) | {
        "SALESPULSE_RECEIVER__PORT": str(port),
        "SALESPULSE_RECEIVER__SHARED_TOKEN": TOKEN,
    }
    base = f"http://127.0.0.1:{port}"
    with timed() as elapsed:
        async with BridgeProcess("receive", env, tmp_path) as bridge:
            readiness = ReadinessWatch(f"{base}/readyz")
            source = PostingSource(f"{base}/ingest/chat/chat-session-json")
            try:
                while readiness.first(200, 0) is None:
                    assert elapsed() < 60, f"never ready:\n{bridge.log()}"
                    await asyncio.sleep(0.1)
                source.occur(20)
                await source.settled(30)
                memory = MemoryWatch(bridge)
                per_tick = max(1, int(RECEIVER_POSTS_PER_SECOND * _TICK))
                async with feeding(lambda: source.occur(per_tick)):
                    before_outage = len(source.records)
                    began = time.monotonic()
                    async with outage(broker, kind):
                        await memory.through(OUTAGE_SECONDS)
                    ended = time.monotonic()
                    during_outage = len(source.records) - before_outage
                    await asyncio.sleep(5)  # records keep coming after the broker is back
                with timed() as recovery:
                    await source.settled(scaled(90, 300))
                    settled_seconds = recovery()
                while readiness.first(200, ended) is None:
                    assert time.monotonic() - ended < 60, "not ready again within 60 s"
                    await asyncio.sleep(0.1)
            finally:
                await source.close()
                await readiness.close()
            assert STALL_WARNING in bridge.log()
            assert await bridge.stop() == 0

    assert source.unexpected == []
    # The broker could acknowledge nothing during the outage: a 2xx then would be a lie.
    lies = [a for a in source.answers if a.status == 200 and began + 1 < a.answered < ended]
    assert lies == []
    refused = [a for a in source.answers if a.status == 503]
    assert [a for a in refused if began < a.answered < ended + 1], "no 503 during the outage"
    unready_at = readiness.first(503, began)
    assert unready_at is not None, "/readyz stayed 200 all along"
    # A write waiting STALL_WARNING_SECONDS gives the trouble away, well before any write times out.
    assert unready_at - began < STALL_WARNING_SECONDS + 5, "/readyz noticed the outage late"
    values = await read_topic(broker, TOPICS.raw_chat, lambda got: source.stored() <= set(got))
    assert source.stored() == set(source.records), "a record was never stored"
    assert set(values) == set(source.records), "lost or invented records"
    duplicates = copies(values)
    # A copy comes from a write that timed out (503) and reached Kafka later all the same: one
    # begun before the receiver saw the stall, or a probe (one per Retry-After) during it.
    probes = OUTAGE_SECONDS / ReceiverSettings().retry_after_seconds + 1
    assert duplicates <= RECEIVER_POSTS_PER_SECOND * (STALL_WARNING_SECONDS + 1) + probes
    assert memory.growth_mib < RECEIVER_MEMORY_BOUND_MIB
    report(
        f"receiver/{kind}",
        outage_s=OUTAGE_SECONDS,
        records_during_outage=during_outage,
        records_total=len(source.records),
        posts=len(source.answers),
        answered_503=len(refused),
        answered_429=sum(a.status == 429 for a in source.answers),
        readyz_503_after_s=round(unready_at - began, 1),
        duplicates=duplicates,
        all_stored_after_s=round(ended - began + 5 + settled_seconds, 1),
        rss_before_mib=round(memory.before_kib / 1024, 1),
        rss_growth_mib=round(memory.growth_mib, 1),
        test_s=round(elapsed(), 1),
    )
