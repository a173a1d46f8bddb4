"""Asterisk Manager Interface bridge: Cdr and CEL events from a live AMI session onto the raw PBX
topic.

``cdr_manager`` raises an ``Event: Cdr`` for every CDR on each AMI session whose user may read
``cdr``. The bridge logs in asking for that event class only (``Events: cdr``), and writes each
Cdr message to Kafka byte for byte, format ``asterisk-ami-cdr``, keyed by the call (LinkedID, or
else UniqueID, or else Channel), in the order Asterisk sent them. While Kafka is slow or away the
events read wait in memory, up to ``AmiSettings.buffer_max_bytes``, and the session goes on
being read: see ``_Bridge`` for why.

With CEL enabled (``CelOptions``) the bridge also asks for the ``call`` class, where
``cel_manager`` raises ``Event: CEL``. A CEL event says nothing about a call by itself, so the
bridge holds each call's events (by LinkedID) until its ``LINKEDID_END`` and then writes them as
one record, format ``asterisk-cel-call``: the blocks exactly as received, in arrival order.

With presence on (``AmiSettings.presence_enabled``) the bridge also asks for the ``call``
class and writes each ``Newchannel``, ``Newstate`` and ``Hangup`` as one small JSON record,
format ``asterisk-ami-presence`` (``presence_record``): which channel, in which state, when.
That is what tells a manager on a call from an idle one before the call's CDR exists. At each
login it asks ``CoreShowChannels``, so the channels that came up while no session was logged in
(or before the bridge started) are announced too; Hangups missed meanwhile are not, and the
worker caps how long a channel counts as up (docs/sources/asterisk.md).

AMI has no replay: what Asterisk raises while no session is logged in is gone. So the bridge
reconnects promptly (capped exponential backoff with jitter), pings the session so that a
half-open TCP connection is noticed, and Master.csv stays the way to fill a gap (see
docs/sources/asterisk.md for when the same CDR gets the same event id from both).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections import deque

from ingest.ami_cel import CelCalls, CelOptions
from ingest.ami_protocol import AmiAuthError, AmiConnection, AmiError, AmiProtocolError, fields_of
from ingest.ami_records import cdr_record, presence_record
from ingest.ami_settings import AmiSettings
from ingest.bridge_metrics import BRIDGE_ERRORS, BRIDGE_RECONNECTS, BRIDGE_RECORDS
from ingest.raw_producer import ProduceError, RawProducer, RawRecordOut
from processors.parsers.asterisk_ami_presence import PRESENCE_EVENTS
from salespulse.backoff import Backoff, backoff_delay
from salespulse.sections import KafkaSettings, TopicSettings

__all__ = [
    "RECORDS_PER_WRITE",
    "AmiAuthError",
    "AmiBridge",
    "AmiError",
    "AmiKeepaliveError",
    "AmiProtocolError",
    "AmiSettings",
    "CelCalls",
    "CelOptions",
    "cdr_record",
    "presence_record",
    "run_ami_bridge",
]

log = logging.getLogger(__name__)

BRIDGE = "ami"
# Records in one write: a failed write is retried whole, so this bounds the copies one
# failure can leave on the topic.
RECORDS_PER_WRITE = 500


class AmiKeepaliveError(AmiError):
    reason = "keepalive"


class _Bridge:
    """Sessions one after another until stopped; the shared state run_ami_bridge looks at.

    Records read from Asterisk wait in an outbox for Kafka, written in order by one courier
    task, and the session goes on reading while they wait, up to ``buffer_max_bytes``. A bridge
    that stopped reading whenever Kafka was slow would leave Asterisk with a full socket, and
    Asterisk gives a write to a session only ``writetimeout`` (manager.conf, 100 ms by default)
    before dropping the session, and the events with it; AMI has no replay. Past the bound the
    session does stop reading: memory stays bounded, and the socket buffers hold the rest.
    """

    def __init__(
        self,
        ami: AmiSettings,
        producer: RawProducer,
        cel: CelOptions,
        buffer_max_bytes: int,
        presence: bool = False,
    ) -> None:
        self.ami = ami
        self.producer = producer
        self.cel_options = cel
        self.presence = presence
        self.buffer_max_bytes = buffer_max_bytes
        # Kept across sessions: a call's events before and after a reconnect still meet.
        self.cel = CelCalls(cel, asyncio.get_running_loop().time)
        self.stopping = False
        self._outbox: deque[RawRecordOut] = deque()
        self._outbox_bytes = 0
        self._room = asyncio.Event()
        self._room.set()
        self._courier: asyncio.Task[None] | None = None

    async def run(self) -> None:
        ami = self.ami
        failures = 0
        while not self.stopping:
            session = _Session(self)
            try:
                await session.run()
            except AmiError as exc:
                reason, problem = exc.reason, str(exc)
            except OSError as exc:  # refused, reset, unreachable, connect timeout
                reason, problem = "connection", f"{type(exc).__name__}: {exc}".rstrip(": ")
            else:
                break  # a session returns only when the bridge is stopping
            BRIDGE_ERRORS.labels(BRIDGE, reason).inc()
            if session.logged_in:
                failures = 0
            delay = backoff_delay(failures, ami.reconnect_min_seconds, ami.reconnect_max_seconds)
            failures += 1
            level = logging.ERROR if reason == "auth" else logging.WARNING
            log.log(
                level,
                "AMI %s:%d: %s; reconnecting in %.2g s",
                ami.host,
                ami.port,
                problem,
                delay,
            )
            BRIDGE_RECONNECTS.labels(BRIDGE).inc()
            await asyncio.sleep(delay)

    async def hand_over(self, records: list[RawRecordOut]) -> None:
        """Queue ``records`` for Kafka; returns at once unless the outbox is over its bound,
        then once the courier has made room. Records handed over are never taken back."""
        self._outbox.extend(records)
        self._outbox_bytes += sum(len(record.value) for record in records)
        if self._courier is None or self._courier.done():
            self._courier = asyncio.create_task(self._carry(), name="ami-courier")
        if self._outbox_bytes > self.buffer_max_bytes and self._room.is_set():
            self._room.clear()
            log.warning(
                "AMI: %d records (%d bytes) wait for Kafka; reading from Asterisk paused until "
                "it takes them",
                len(self._outbox),
                self._outbox_bytes,
            )
        await self._room.wait()

    async def flush(self) -> None:
        """Until everything handed over is written (or, when stopping, given up)."""
        while self._courier is not None and not self._courier.done():
            await asyncio.shield(self._courier)

    async def _carry(self) -> None:
        while self._outbox:
            records = list(itertools.islice(self._outbox, RECORDS_PER_WRITE))
            written = await self._deliver(records)
            if not written:
                log.error("AMI: stopping with %d records not written", len(self._outbox))
                records = list(self._outbox)
            for _ in records:
                self._outbox_bytes -= len(self._outbox.popleft().value)
            if self._outbox_bytes <= self.buffer_max_bytes and not self._room.is_set():
                log.info("AMI: Kafka took the backlog; reading from Asterisk again")
                self._room.set()

    async def _deliver(self, records: list[RawRecordOut]) -> bool:
        """Write ``records``, retrying while Kafka is away; False if stopped meanwhile."""
        waits = Backoff(first=self.ami.reconnect_min_seconds, cap=self.ami.reconnect_max_seconds)
        while True:
            try:
                await self.producer.send_many(records)
            except ProduceError as exc:
                BRIDGE_ERRORS.labels(BRIDGE, "produce").inc()
                if not exc.retriable:
                    if len(records) > 1:  # find the one Kafka refuses, keep the others
                        for record in records:
                            await self._deliver([record])
                        return True
                    log.error("AMI: Kafka refuses a record for good, dropping it: %s", exc)
                    return True
                if self.stopping:
                    log.error("AMI: Kafka did not take a write while stopping: %s", exc)
                    return False
                delay = waits.next()
                log.warning(
                    "AMI: %s; %d records held, retrying in %.2g s", exc, len(self._outbox), delay
                )
                await asyncio.sleep(delay)
            else:
                BRIDGE_RECORDS.labels(BRIDGE).inc(len(records))
                return True


class _Session:
    """One connection: login, then Cdr events until it fails or the bridge stops."""

    def __init__(self, bridge: _Bridge) -> None:
        self._bridge = bridge
        self._ami = bridge.ami
        self.logged_in = False

    async def run(self) -> None:
        ami = self._ami
        connection = await AmiConnection.open(
            ami.host, ami.port, seconds=ami.connect_timeout_seconds
        )
        try:
            try:
                await asyncio.wait_for(
                    connection.login(
                        ami.username,
                        ami.secret.get_secret_value(),
                        events="cdr,call" if self._wants_calls() else "cdr",
                        seconds=ami.connect_timeout_seconds,
                    ),
                    ami.connect_timeout_seconds,
                )
            except TimeoutError:
                raise AmiError(f"no login answer within {ami.connect_timeout_seconds} s") from None
            self.logged_in = True
            log.info("AMI %s:%d: logged in as %r", ami.host, ami.port, ami.username)
            if self._bridge.presence:
                # The channels already up: those that came up while no session was logged in
                # would otherwise be unknown until they hang up. Each comes back as a
                # CoreShowChannel event, written like the live ones.
                await connection.action("CoreShowChannels", seconds=ami.connect_timeout_seconds)
            await self._pump(connection)  # returns once the bridge is stopping
            await connection.logoff()
        except asyncio.CancelledError:
            if self.logged_in:
                await connection.logoff()
            raise
        finally:
            await connection.close()

    def _wants_calls(self) -> bool:
        return self._bridge.cel_options.enabled or self._bridge.presence

    async def _pump(self, connection: AmiConnection) -> None:
        ami = self._ami
        loop = asyncio.get_running_loop()
        next_ping = loop.time() + ami.ping_interval_seconds
        ping: str | None = None
        ping_deadline = 0.0
        presence = self._bridge.presence
        while not self._bridge.stopping:
            batch: list[RawRecordOut] = []
            for message in connection.messages():
                fields = fields_of(message)
                if "response" in fields:
                    # Ours echo their ActionID; an answer without one still proves a live peer.
                    if ping is not None and fields.get("actionid", ping) == ping:
                        ping = None
                else:
                    event = fields.get("event", "").lower()
                    if event == "cdr":
                        batch.append(cdr_record(message, fields))
                    elif event == "cel":
                        batch += self._bridge.cel.add(message, fields)
                    elif presence and event in PRESENCE_EVENTS:
                        batch.append(presence_record(fields, time.time()))
            batch += self._bridge.cel.expired()
            if batch:
                await self._bridge.hand_over(batch)
                if ping is not None:
                    # Nothing was read while a full outbox kept us waiting, so the Pong may sit
                    # unread: judged by the clock now, a healthy session would be dropped, and
                    # with it the events Asterisk already sent, which AMI never sends again.
                    ping_deadline = max(ping_deadline, loop.time() + ami.ping_timeout_seconds)
                continue
            now = loop.time()
            if ping is not None and now >= ping_deadline:
                raise AmiKeepaliveError(f"no answer to Ping within {ami.ping_timeout_seconds} s")
            if ping is None and now >= next_ping:
                # A half-open TCP connection never reports an error by itself.
                ping = await connection.action("Ping", seconds=ami.ping_timeout_seconds)
                ping_deadline = now + ami.ping_timeout_seconds
                next_ping = now + ami.ping_interval_seconds
            await connection.receive((ping_deadline if ping is not None else next_ping) - now)


async def run_ami_bridge(
    ami: AmiSettings,
    producer: RawProducer,
    *,
    stop: asyncio.Event,
    cel: CelOptions | None = None,
    buffer_max_bytes: int | None = None,
    presence: bool | None = None,
) -> None:
    """Forward Cdr events (and CEL calls, and channels up and down) from the AMI at ``ami``
    through ``producer`` until ``stop`` is set.

    Connection failures, refused logins and Kafka outages are logged and retried; only a bug
    escapes. The caller owns ``producer`` (started before, stopped after). On stop, a write in
    progress is finished first, then the session logs off, then CEL calls still open are
    written incomplete. ``cel`` defaults to what ``ami`` says (``CelOptions.of``), and so does
    ``presence`` (``ami.presence_enabled``: channels going up and down, ``presence_record``).
    """
    held = ami.buffer_max_bytes if buffer_max_bytes is None else buffer_max_bytes
    live = ami.presence_enabled if presence is None else presence
    bridge = _Bridge(ami, producer, cel or CelOptions.of(ami), held, live)
    runner = asyncio.create_task(bridge.run(), name="ami-bridge")
    stopped = asyncio.create_task(stop.wait(), name="ami-bridge-stop")
    try:
        await asyncio.wait((runner, stopped), return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopped.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await stopped
        bridge.stopping = True
        # Safe to cancel anywhere: what was read is in the outbox, which is flushed below.
        runner.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await runner
        if leftover := bridge.cel.drain():
            await bridge.hand_over(leftover)
        await bridge.flush()


class AmiBridge:
    """The bridge as a service that owns its Kafka producer: ``start()``, later ``stop()``."""

    def __init__(
        self,
        ami: AmiSettings,
        kafka: KafkaSettings,
        topics: TopicSettings,
        cel: CelOptions | None = None,
    ) -> None:
        self._ami = ami
        self._cel = cel
        # No linger: each write is awaited before the next read, so batching would only wait.
        self._producer = RawProducer(kafka, topics, linger_ms=0)
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self._producer.start()
        self._stop.clear()
        self._task = asyncio.create_task(
            run_ami_bridge(self._ami, self._producer, stop=self._stop, cel=self._cel),
            name="ami-bridge-service",
        )

    async def stop(self) -> None:
        self._stop.set()
        try:
            if self._task is not None:
                await self._task
        finally:
            self._task = None
            await self._producer.stop()
