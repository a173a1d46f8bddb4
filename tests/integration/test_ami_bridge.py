"""The AMI bridge against a scripted Asterisk Manager Interface and the real broker."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from dataclasses import dataclass, field
from types import TracebackType

import pytest
from aiokafka import AIOKafkaConsumer
from prometheus_client import REGISTRY

from ingest.ami import AmiBridge, run_ami_bridge
from ingest.ami_settings import AmiSettings
from ingest.raw_producer import ProduceError, RawProducer, RawRecordOut
from processors.parsers.asterisk_ami_cdr import AsteriskAmiCdrParser
from salespulse.models import SourceRef
from salespulse.sections import TopicSettings
from salespulse.settings import Settings
from salespulse.topics import ensure_topics
from tests.conftest import LocalStack
from tests.polling import until_true

SECRET = "s3cret-Mgr-Pass"
_runs = itertools.count(1)


def cdr(number: int) -> bytes:
    """A Cdr event as cdr_manager raises it, with LinkedID mapped in cdr_manager.conf."""
    uniqueid = f"1795673702.{number}"
    return (
        b"Event: Cdr\r\n"
        b"Privilege: cdr,all\r\n"
        b"AccountCode: \r\n"
        b"Source: 79161234567\r\n"
        b"Destination: 101\r\n"
        b"DestinationContext: from-trunk\r\n"
        b'CallerID: "Client" <79161234567>\r\n'
        b"Channel: SIP/provider-%08x\r\n"
        b"DestinationChannel: SIP/101-%08x\r\n"
        b"LastApplication: Dial\r\n"
        b"LastData: SIP/101,30\r\n"
        b"StartTime: 2026-11-26 09:15:02\r\n"
        b"AnswerTime: 2026-11-26 09:15:09\r\n"
        b"EndTime: 2026-11-26 09:17:40\r\n"
        b"Duration: 158\r\n"
        b"BillableSeconds: 151\r\n"
        b"Disposition: ANSWERED\r\n"
        b"AMAFlags: DOCUMENTATION\r\n"
        b"UniqueID: %s\r\n"
        b"UserField: \r\n"
        b"LinkedID: %s\r\n"
        b"\r\n"
    ) % (number, number + 1, uniqueid.encode(), uniqueid.encode())


NEWCHANNEL = (
    b"Event: Newchannel\r\nPrivilege: call,all\r\nChannel: SIP/101-00000013\r\n"
    b"ChannelState: 0\r\nChannelStateDesc: Down\r\nUniqueid: 1795673702.46\r\n\r\n"
)


@dataclass
class Script:
    """What the fake Asterisk sends on one connection after a successful login."""

    send: list[bytes] = field(default_factory=list)
    # If set: these bytes (a cut-off message) go out, then the connection is closed.
    drop_after: bytes | None = None
    # If set: messages written as they are put, while the session lasts, as Asterisk raises
    # events during a call day. A message taken as the session ends is lost, as with Asterisk.
    live: asyncio.Queue[bytes] | None = None


class FakeAsterisk:
    """The AMI wire protocol as Asterisk speaks it: banner, Login, Ping, Logoff, events."""

    def __init__(
        self,
        scripts: list[Script],
        *,
        pong: bool = True,
        banner: bytes = b"Asterisk Call Manager/9.0.0\r\n",
        before_first_pong: bytes | None = None,
        channels: list[str] | None = None,
    ) -> None:
        self.scripts = scripts
        # The channels up, as CoreShowChannels lists them: each the fields of one
        # CoreShowChannel event, without its Event and ActionID lines.
        self.channels = channels or []
        self.channel_listings = 0
        self.pong = pong
        # An event raised between the first Ping and its Pong, which follows a moment later.
        self.before_first_pong = before_first_pong
        self.banner = banner
        self.connections = 0
        self.logins: list[dict[str, str]] = []
        self.pings = 0
        self.logoffs = 0
        self._handlers: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> FakeAsterisk:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()
        for task in self._handlers:
            task.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)

    @property
    def port(self) -> int:
        assert self._server is not None
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        script = self.scripts[min(self.connections, len(self.scripts) - 1)]
        self.connections += 1
        try:
            await self._converse(reader, writer, script)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def _converse(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, script: Script
    ) -> None:
        writer.write(self.banner)
        login = await read_message(reader)
        if login is None:
            return
        self.logins.append(login)
        action_id = login.get("actionid", "")
        if login.get("username") != "salespulse" or login.get("secret") != SECRET:
            # Asterisk answers a failed login and then hangs up.
            writer.write(respond(action_id, "Error", "Message: Authentication failed"))
            await writer.drain()
            return
        writer.write(respond(action_id, "Success", "Message: Authentication accepted"))
        for message in script.send:
            writer.write(message)
        await writer.drain()
        if script.drop_after is not None:
            writer.write(script.drop_after)
            await writer.drain()
            return
        live = asyncio.create_task(self._raise_live(writer, script.live))
        try:
            await self._answer_actions(reader, writer)
        finally:
            live.cancel()
            await asyncio.gather(live, return_exceptions=True)

    async def _raise_live(
        self, writer: asyncio.StreamWriter, queue: asyncio.Queue[bytes] | None
    ) -> None:
        while queue is not None:
            message = await queue.get()
            writer.write(message)
            await writer.drain()  # Kafka blocks the bridge, the bridge stops reading, we wait

    async def _answer_actions(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        while (action := await read_message(reader)) is not None:
            name = action.get("action", "").lower()
            action_id = action.get("actionid", "")
            if name == "ping":
                self.pings += 1
                if self.pings == 1 and self.before_first_pong is not None:
                    writer.write(self.before_first_pong)
                    await writer.drain()
                    await asyncio.sleep(0.05)
                if self.pong:
                    writer.write(respond(action_id, "Success", "Ping: Pong\r\nTimestamp: 1.5"))
            elif name == "coreshowchannels":
                self.channel_listings += 1
                writer.write(
                    respond(
                        action_id, "Success", "EventList: start\r\nMessage: Channels will follow"
                    )
                )
                for fields in self.channels:
                    writer.write(
                        f"Event: CoreShowChannel\r\nActionID: {action_id}\r\n{fields}\r\n".encode()
                    )
                writer.write(
                    f"Event: CoreShowChannelsComplete\r\nActionID: {action_id}\r\n"
                    f"EventList: Complete\r\nListItems: {len(self.channels)}\r\n\r\n".encode()
                )
                await writer.drain()
            elif name == "logoff":
                self.logoffs += 1
                writer.write(respond(action_id, "Goodbye", "Message: Thanks for all the fish."))
                await writer.drain()
                return


def respond(action_id: str, response: str, rest: str) -> bytes:
    return f"Response: {response}\r\nActionID: {action_id}\r\n{rest}\r\n\r\n".encode()


async def read_message(reader: asyncio.StreamReader) -> dict[str, str] | None:
    fields: dict[str, str] = {}
    while True:
        line = await reader.readline()
        if not line:
            return None
        text = line.decode().rstrip("\r\n")
        if not text:
            if fields:
                return fields
            continue
        key, _, value = text.partition(":")
        fields[key.strip().lower()] = value.strip()


def own_topics(stack: LocalStack) -> Settings:
    run = f"ami{next(_runs)}"
    topics = TopicSettings(
        raw_pbx=f"{run}.pbx",
        raw_chat=f"{run}.chat",
        raw_crm=f"{run}.crm",
        dead_letter=f"{run}.dl",
        partitions=1,  # one partition: the order Asterisk sent is the order to find
    )
    return stack.settings.model_copy(update={"topics": topics})


def ami_settings(port: int, secret: str = SECRET, **overrides: float) -> AmiSettings:
    options: dict[str, float] = {
        "ping_interval_seconds": 0.2,
        "ping_timeout_seconds": 1.0,
        "connect_timeout_seconds": 2.0,
        "reconnect_min_seconds": 0.05,
        "reconnect_max_seconds": 0.2,
        **overrides,
    }
    return AmiSettings(host="127.0.0.1", port=port, username="salespulse", secret=secret, **options)


Seen = tuple[bytes | None, bytes, dict[str, bytes]]  # key, value, headers


async def consume(settings: Settings, expected: int) -> list[Seen]:
    """Everything on the raw PBX topic once ``expected`` records arrived, plus a short wait
    that would catch a duplicate."""
    consumer = AIOKafkaConsumer(
        settings.topics.raw_pbx,
        **settings.kafka.aiokafka_options(),
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    seen: list[Seen] = []
    try:
        for _ in range(40):
            for records in (await consumer.getmany(timeout_ms=250)).values():
                seen += [(r.key, r.value or b"", dict(r.headers)) for r in records]
            if len(seen) >= expected:
                break
        for records in (await consumer.getmany(timeout_ms=500)).values():
            seen += [(r.key, r.value or b"", dict(r.headers)) for r in records]
    finally:
        await consumer.stop()
    return seen


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, {"bridge": "ami", **labels}) or 0.0


async def test_every_cdr_arrives_as_sent_across_a_dropped_connection(stack: LocalStack) -> None:
    settings = own_topics(stack)
    await ensure_topics(settings.kafka, settings.topics)
    lost = cdr(9)[:150]  # cut off mid-message by the drop: never a record
    scripts = [
        Script(send=[cdr(1), NEWCHANNEL, cdr(2)], drop_after=lost),
        Script(send=[cdr(3), NEWCHANNEL, cdr(4)]),
    ]
    records_before = metric("salespulse_bridge_records_total")
    reconnects_before = metric("salespulse_bridge_reconnects_total")
    async with FakeAsterisk(scripts) as asterisk:
        stop = asyncio.Event()
        async with RawProducer(settings.kafka, settings.topics) as producer:
            bridge = asyncio.create_task(
                run_ami_bridge(ami_settings(asterisk.port), producer, stop=stop)
            )
            try:
                seen = await consume(settings, expected=4)
                await until_true(lambda: asterisk.pings >= 1)
            finally:
                stop.set()
                await asyncio.wait_for(bridge, 10)
        assert asterisk.logoffs == 1  # a graceful stop says goodbye

    assert [value for _, value, _ in seen] == [cdr(1), cdr(2), cdr(3), cdr(4)]
    assert [key for key, _, _ in seen] == [f"1795673702.{n}".encode() for n in (1, 2, 3, 4)]
    assert all(headers == {"sp-format": b"asterisk-ami-cdr"} for _, _, headers in seen)
    assert asterisk.connections == 2
    assert [login["events"] for login in asterisk.logins] == ["cdr", "cdr"]
    assert metric("salespulse_bridge_records_total") - records_before == 4
    assert metric("salespulse_bridge_reconnects_total") - reconnects_before == 1

    # What lands on the topic is exactly what the worker's parser reads.
    parser = AsteriskAmiCdrParser(timezone="Europe/Moscow")
    source = SourceRef(parser.format_name, settings.topics.raw_pbx, 0, 0)
    for _, value, _ in seen:
        [block] = parser.split(value)
        [event] = parser.parse(block, source)
        assert event.actor.id == "101"


async def test_wrong_secret_is_logged_without_the_secret_and_retried(
    stack: LocalStack, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "Wr0ng-but-Secret-42"
    auth_errors_before = metric("salespulse_bridge_errors_total", reason="auth")
    async with FakeAsterisk([Script()]) as asterisk:
        stop = asyncio.Event()
        # The producer is never used: nothing gets past the login.
        producer = RawProducer(stack.settings.kafka, stack.settings.topics)
        bridge = asyncio.create_task(
            run_ami_bridge(ami_settings(asterisk.port, secret=wrong), producer, stop=stop)
        )
        try:
            await until_true(lambda: asterisk.connections >= 3)
        finally:
            stop.set()
            await asyncio.wait_for(bridge, 5)  # stops cleanly: no exception escaped
        assert asterisk.logins[0]["secret"] == wrong  # it was sent, and only there

    refusals = [r for r in caplog.records if r.name == "ingest.ami" and r.levelno == logging.ERROR]
    assert len(refusals) >= 2
    assert "login as 'salespulse' refused: Authentication failed" in refusals[0].getMessage()
    assert "reconnecting in" in refusals[0].getMessage()
    assert wrong not in caplog.text
    assert wrong not in repr(ami_settings(1, secret=wrong))
    assert metric("salespulse_bridge_errors_total", reason="auth") - auth_errors_before >= 2


async def test_unanswered_ping_reconnects(stack: LocalStack) -> None:
    settings = own_topics(stack)
    await ensure_topics(settings.kafka, settings.topics)
    keepalive_before = metric("salespulse_bridge_errors_total", reason="keepalive")
    # Asterisk never answers Ping here, so every session ends in a keepalive timeout; only the
    # second one carries a Cdr.
    scripts = [Script(), Script(send=[cdr(5)]), Script()]
    async with FakeAsterisk(scripts, pong=False) as asterisk:
        ami = ami_settings(asterisk.port, ping_interval_seconds=0.1, ping_timeout_seconds=0.3)
        bridge = AmiBridge(ami, settings.kafka, settings.topics)
        await bridge.start()
        try:
            seen = await consume(settings, expected=1)
        finally:
            await asyncio.wait_for(bridge.stop(), 10)
    assert [value for _, value, _ in seen] == [cdr(5)]
    assert asterisk.connections >= 2
    assert metric("salespulse_bridge_errors_total", reason="keepalive") > keepalive_before


async def test_a_peer_that_is_not_asterisk_is_a_protocol_error(
    stack: LocalStack, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="ingest.ami")
    async with FakeAsterisk([Script()], banner=b"SSH-2.0-OpenSSH_9.6\r\n") as peer:
        stop = asyncio.Event()
        producer = RawProducer(stack.settings.kafka, stack.settings.topics)
        bridge = asyncio.create_task(run_ami_bridge(ami_settings(peer.port), producer, stop=stop))
        try:
            await until_true(lambda: peer.connections >= 2)
        finally:
            stop.set()
            await asyncio.wait_for(bridge, 5)
    assert "not an Asterisk Manager Interface" in caplog.text
    assert peer.logins == []  # no credentials for a stranger


async def test_stop_while_connecting_to_nothing_is_prompt(stack: LocalStack) -> None:
    # A port nobody listens on: connection refused, over and over, until stopped.
    async with FakeAsterisk([Script()]) as asterisk:
        port = asterisk.port
    stop = asyncio.Event()
    producer = RawProducer(stack.settings.kafka, stack.settings.topics)
    bridge = asyncio.create_task(run_ami_bridge(ami_settings(port), producer, stop=stop))
    await asyncio.sleep(0.3)
    assert not bridge.done()
    stop.set()
    await asyncio.wait_for(bridge, 1)


class HeldProducer:
    """Stands in for RawProducer: fails the first ``failures`` writes as Kafka would while
    unavailable, and holds each write until ``release`` is set."""

    def __init__(self, failures: int = 0) -> None:
        self.failures = failures
        self.release = asyncio.Event()
        self.called = asyncio.Event()
        self.written: list[RawRecordOut] = []

    async def send_many(self, records: list[RawRecordOut]) -> int:
        self.called.set()
        await self.release.wait()
        if self.failures:
            self.failures -= 1
            raise ProduceError("Kafka did not take the write: broker unavailable", retriable=True)
        self.written += records
        return len(records)


async def test_stop_during_a_write_finishes_the_write_then_logs_off() -> None:
    producer = HeldProducer()
    async with FakeAsterisk([Script(send=[cdr(7)])]) as asterisk:
        stop = asyncio.Event()
        bridge = asyncio.create_task(
            run_ami_bridge(ami_settings(asterisk.port), producer, stop=stop)  # type: ignore[arg-type]
        )
        await asyncio.wait_for(producer.called.wait(), 5)
        stop.set()
        await asyncio.sleep(0.1)
        assert not bridge.done()  # the Cdr cannot be had again: the write is not cancelled
        producer.release.set()
        await asyncio.wait_for(bridge, 5)
        assert asterisk.logoffs == 1
    assert [record.value for record in producer.written] == [cdr(7)]


async def test_a_write_kafka_refuses_for_a_while_is_retried() -> None:
    producer = HeldProducer(failures=2)
    producer.release.set()
    async with FakeAsterisk([Script(send=[cdr(8)])]) as asterisk:
        stop = asyncio.Event()
        bridge = asyncio.create_task(
            run_ami_bridge(ami_settings(asterisk.port), producer, stop=stop)  # type: ignore[arg-type]
        )
        try:
            await until_true(lambda: bool(producer.written))
        finally:
            stop.set()
            await asyncio.wait_for(bridge, 5)
    assert [record.value for record in producer.written] == [cdr(8)]
    assert asterisk.connections == 1  # a Kafka outage is not the AMI session's fault


async def test_the_session_is_read_on_while_kafka_holds_a_write() -> None:
    # Asterisk drops a session that stops reading (manager.conf writetimeout): while Kafka holds
    # a write the bridge goes on reading, holds the events, and keeps the session alive.
    producer = HeldProducer()
    live: asyncio.Queue[bytes] = asyncio.Queue()
    async with FakeAsterisk([Script(live=live)]) as asterisk:
        ami = ami_settings(asterisk.port, ping_interval_seconds=0.1, ping_timeout_seconds=0.3)
        stop = asyncio.Event()
        bridge = asyncio.create_task(run_ami_bridge(ami, producer, stop=stop))  # type: ignore[arg-type]
        try:
            live.put_nowait(cdr(0))
            await asyncio.wait_for(producer.called.wait(), 5)
            pings = asterisk.pings
            for number in range(1, 20):
                live.put_nowait(cdr(number))
            await until_true(lambda: live.empty() and asterisk.pings >= pings + 3)
            assert producer.written == []  # the first write is still held
            producer.release.set()
            await until_true(lambda: len(producer.written) == 20)
        finally:
            stop.set()
            await asyncio.wait_for(bridge, 5)
    assert [record.value for record in producer.written] == [cdr(n) for n in range(20)]
    assert asterisk.connections == 1


async def test_a_session_is_not_judged_by_the_time_kafka_kept_the_bridge_busy() -> None:
    # More Cdr events than the bridge may hold come between Ping and Pong, and Kafka holds the
    # first write longer than the Ping may go unanswered: reading pauses, the Pong waits
    # unread. Dropping the session then would lose whatever Asterisk had already sent.
    burst = [cdr(n) for n in range(300)]
    producer = HeldProducer()
    async with FakeAsterisk([Script()], before_first_pong=b"".join(burst)) as asterisk:
        ami = ami_settings(asterisk.port, ping_interval_seconds=0.1, ping_timeout_seconds=0.3)
        stop = asyncio.Event()
        bridge = asyncio.create_task(
            run_ami_bridge(
                ami,
                producer,  # type: ignore[arg-type]
                stop=stop,
                buffer_max_bytes=len(b"".join(burst)) // 3,
            )
        )
        try:
            await asyncio.wait_for(producer.called.wait(), 5)
            await asyncio.sleep(3 * ami.ping_timeout_seconds)
            producer.release.set()
            await until_true(lambda: len(producer.written) == len(burst))
            await until_true(lambda: asterisk.pings >= 3)
        finally:
            stop.set()
            await asyncio.wait_for(bridge, 5)
    assert [record.value for record in producer.written] == burst
    assert asterisk.connections == 1
