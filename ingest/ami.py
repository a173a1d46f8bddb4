"""Asterisk Manager Interface bridge: Cdr events from a live AMI session onto the raw PBX topic.

``cdr_manager`` raises an ``Event: Cdr`` for every CDR on each AMI session whose user may read
``cdr``. The bridge logs in asking for that event class only (``Events: cdr``), and writes each
Cdr message to Kafka byte for byte, format ``asterisk-ami-cdr``, keyed by the call (LinkedID, or
else UniqueID, or else Channel), reading on only after the broker acknowledged the write.

AMI has no replay: what Asterisk raises while no session is logged in is gone. So the bridge
reconnects promptly (capped exponential backoff with jitter), pings the session so that a
half-open TCP connection is noticed, and Master.csv stays the way to fill a gap (see
docs/sources/asterisk.md for when the same CDR gets the same event id from both).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random

from ingest.ami_protocol import AmiAuthError, AmiConnection, AmiError, AmiProtocolError, fields_of
from ingest.ami_settings import AmiSettings
from ingest.bridge_metrics import BRIDGE_ERRORS, BRIDGE_RECONNECTS, BRIDGE_RECORDS
from ingest.raw_producer import ProduceError, RawProducer, RawRecordOut
from processors.parsers.asterisk_ami_cdr import AsteriskAmiCdrParser
from salespulse.models import SourceFamily
from salespulse.settings import KafkaSettings, TopicSettings

__all__ = [
    "AmiAuthError",
    "AmiBridge",
    "AmiError",
    "AmiKeepaliveError",
    "AmiProtocolError",
    "AmiSettings",
    "backoff_delay",
    "cdr_record",
    "run_ami_bridge",
]

log = logging.getLogger(__name__)

BRIDGE = "ami"
_FORMAT = AsteriskAmiCdrParser.format_name


class AmiKeepaliveError(AmiError):
    reason = "keepalive"


def backoff_delay(failures: int, low: float, high: float) -> float:
    """Capped exponential backoff with jitter: about ``low``·2^failures, never above ``high``,
    randomised down to half so that bridges restarted together do not reconnect in step."""
    ceiling = min(high, low * 2.0 ** min(failures, 32))
    return ceiling * random.uniform(0.5, 1.0)


def cdr_record(message: bytes, fields: dict[str, str]) -> RawRecordOut:
    """The raw record of one Cdr message: keyed so that every leg of a call shares a partition."""
    key = fields.get("linkedid") or fields.get("uniqueid") or fields.get("channel")
    return RawRecordOut(SourceFamily.PBX, _FORMAT, key.encode() if key else None, message)


class _Bridge:
    """Sessions one after another until stopped; the shared state run_ami_bridge looks at."""

    def __init__(self, ami: AmiSettings, producer: RawProducer) -> None:
        self.ami = ami
        self.producer = producer
        self.stopping = False
        # While True the bridge holds Cdr messages Asterisk will not send again, so a stop waits
        # for the write to finish instead of cancelling it.
        self.delivering = False

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

    async def deliver(self, records: list[RawRecordOut]) -> None:
        self.delivering = True
        try:
            await self._deliver(records)
        finally:
            self.delivering = False

    async def _deliver(self, records: list[RawRecordOut]) -> None:
        delay = self.ami.reconnect_min_seconds
        while True:
            try:
                await self.producer.send_many(records)
            except ProduceError as exc:
                BRIDGE_ERRORS.labels(BRIDGE, "produce").inc()
                if not exc.retriable:
                    if len(records) > 1:  # find the one Kafka refuses, keep the others
                        for record in records:
                            await self._deliver([record])
                        return
                    log.error("AMI: Kafka refuses a Cdr event for good, dropping it: %s", exc)
                    return
                if self.stopping:
                    log.error("AMI: stopping with %d Cdr events not written: %s", len(records), exc)
                    return
                log.warning("AMI: %s; retrying in %.2g s", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.ami.reconnect_max_seconds)
            else:
                BRIDGE_RECORDS.labels(BRIDGE).inc(len(records))
                return


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
                        events="cdr",
                        seconds=ami.connect_timeout_seconds,
                    ),
                    ami.connect_timeout_seconds,
                )
            except TimeoutError:
                raise AmiError(f"no login answer within {ami.connect_timeout_seconds} s") from None
            self.logged_in = True
            log.info("AMI %s:%d: logged in as %r", ami.host, ami.port, ami.username)
            await self._pump(connection)  # returns once the bridge is stopping
            await connection.logoff()
        except asyncio.CancelledError:
            if self.logged_in:
                await connection.logoff()
            raise
        finally:
            await connection.close()

    async def _pump(self, connection: AmiConnection) -> None:
        ami = self._ami
        loop = asyncio.get_running_loop()
        next_ping = loop.time() + ami.ping_interval_seconds
        ping: str | None = None
        ping_deadline = 0.0
        while not self._bridge.stopping:
            batch: list[RawRecordOut] = []
            for message in connection.messages():
                fields = fields_of(message)
                if "response" in fields:
                    # Ours echo their ActionID; an answer without one still proves a live peer.
                    if ping is not None and fields.get("actionid", ping) == ping:
                        ping = None
                elif fields.get("event", "").lower() == "cdr":
                    batch.append(cdr_record(message, fields))
            if batch:
                await self._bridge.deliver(batch)
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


async def run_ami_bridge(ami: AmiSettings, producer: RawProducer, *, stop: asyncio.Event) -> None:
    """Forward Cdr events from the AMI at ``ami`` through ``producer`` until ``stop`` is set.

    Connection failures, refused logins and Kafka outages are logged and retried; only a bug
    escapes. The caller owns ``producer`` (started before, stopped after). On stop, a write in
    progress is finished first, then the session logs off.
    """
    bridge = _Bridge(ami, producer)
    runner = asyncio.create_task(bridge.run(), name="ami-bridge")
    stopped = asyncio.create_task(stop.wait(), name="ami-bridge-stop")
    try:
        await asyncio.wait((runner, stopped), return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopped.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await stopped
        bridge.stopping = True
        if not bridge.delivering:
            runner.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await runner


class AmiBridge:
    """The bridge as a service that owns its Kafka producer: ``start()``, later ``stop()``."""

    def __init__(self, ami: AmiSettings, kafka: KafkaSettings, topics: TopicSettings) -> None:
        self._ami = ami
        # No linger: each write is awaited before the next read, so batching would only wait.
        self._producer = RawProducer(kafka, topics, linger_ms=0)
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self._producer.start()
        self._stop.clear()
        self._task = asyncio.create_task(
            run_ami_bridge(self._ami, self._producer, stop=self._stop), name="ami-bridge-service"
        )

    async def stop(self) -> None:
        self._stop.set()
        try:
            if self._task is not None:
                await self._task
        finally:
            self._task = None
            await self._producer.stop()
