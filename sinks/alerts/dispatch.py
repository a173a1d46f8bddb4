"""Delivering notices to every channel, without ever making the alert engine wait.

Each channel has its own bounded queue and its own worker task, so a slow or dead receiver
delays only itself. A worker sends one notice at a time, in the order submitted: one alert's
resolve never overtakes its fire (the price: a notice being retried holds back the ones behind
it on that channel, as a receiver that is down would anyway).

A notice that fails with a retriable error is tried again after 1 s, 2 s, 4 s... capped at
``backoff_cap`` (each wait a random time between half and all of that, so many workers do not
retry in step), for up to ``retry_max_seconds``; then, or at once on a non-retriable error, it
is given up: logged and counted. A full queue drops its oldest notice (logged and counted):
memory stays bounded whatever happens to a receiver. Either way the notice is still in the
ClickHouse history, which the service writes before submitting.

Delivery is at least once per channel while the process lives: a timeout after the receiver
took a notice, or a restart, sends it again with the same notice id.

A worker that stops leading hands its queues over (``hand_over``): what it has not delivered
is dropped and the new leader sends it from the history. Two workers delivering one backlog
would send all of it twice, and could deliver an alert's fire after the other one's resolve.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from types import TracebackType

from salespulse.alert_model import Notice, utc
from salespulse.alert_settings import AlertsSettings
from salespulse.backoff import backoff_delay
from salespulse.sections import KafkaSettings
from sinks.alerts import metrics
from sinks.alerts.alertmanager import AlertmanagerChannel
from sinks.alerts.channel import AlertDeliveryError, Channel, Resumable
from sinks.alerts.kafka_topic import KafkaTopicChannel
from sinks.alerts.webhook import WebhookChannel

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RetryPolicy:
    """Waits between attempts: ``base`` doubled per attempt up to ``cap``, for ``max_seconds``."""

    base: float = 1.0
    cap: float = 60.0
    max_seconds: float = 3600.0

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """The wait after failed attempt number ``attempt`` (1, 2...)."""
        wait = backoff_delay(attempt - 1, self.base, self.cap)
        # A receiver that says how long to wait (429/503 Retry-After) is believed, up to the cap.
        return max(wait, min(retry_after, self.cap)) if retry_after else wait


DeliveryLog = Callable[[str, Notice], Awaitable[None]]
"""Told of every notice a channel took (channel name, notice): see ``AlertDispatcher``."""


class _Lane:
    """One channel's queue and worker."""

    def __init__(
        self,
        channel: Channel,
        queue_max: int,
        backoff: RetryPolicy,
        log_delivery: DeliveryLog | None,
    ) -> None:
        self.channel = channel
        self._log_delivery = log_delivery
        self.queue: asyncio.Queue[Notice] = asyncio.Queue(maxsize=queue_max)
        self._backoff = backoff
        self._dropped = 0
        # Grows at each hand-over: a notice taken before one is not tried again after it.
        self._epoch = 0
        self._gauge = metrics.QUEUE_NOTICES.labels(channel.name)
        # Every outcome's series from the start: a rule then sees the first give-up as an
        # increase, not as a series appearing out of nowhere.
        for outcome in metrics.OUTCOMES:
            metrics.NOTICES.labels(channel.name, outcome)

    def offer(self, notice: Notice) -> None:
        name = self.channel.name
        if self.channel.for_people and not notice.delivered_to_people:
            metrics.NOTICES.labels(name, "suppressed").inc()
            return
        if self.queue.full():
            oldest = self.queue.get_nowait()
            self.queue.task_done()
            self._dropped += 1
            metrics.NOTICES.labels(name, "dropped").inc()
            if self._dropped == 1 or self._dropped % 1000 == 0:  # a log line, not a log flood
                log.warning(
                    "%s: queue full (%d), dropped the oldest notice %s of %s (%d dropped so far)",
                    name,
                    self.queue.maxsize,
                    oldest.notice_id,
                    oldest.alert.key,
                    self._dropped,
                )
        self.queue.put_nowait(notice)
        self._gauge.set(self.queue.qsize())

    async def run(self) -> None:
        while True:
            notice = await self.queue.get()
            self._gauge.set(self.queue.qsize())
            try:
                await self._deliver(notice)
            finally:
                self.queue.task_done()

    def hand_over(self) -> int:
        """Drop the queue and stop retrying: another worker delivers from now on."""
        self._epoch += 1
        left = 0
        while not self.queue.empty():
            self.queue.get_nowait()
            self.queue.task_done()
            left += 1
        self._gauge.set(0)
        if left:
            metrics.NOTICES.labels(self.channel.name, "handed_over").inc(left)
        return left

    async def _deliver(self, notice: Notice) -> None:
        name = self.channel.name
        deadline = time.monotonic() + self._backoff.max_seconds
        epoch = self._epoch
        attempt = 0
        while True:
            if attempt and epoch != self._epoch:
                metrics.NOTICES.labels(name, "handed_over").inc()
                log.info("%s: notice %s left to the new leader", name, notice.notice_id)
                return
            attempt += 1
            try:
                await self.channel.send(notice)
            except AlertDeliveryError as exc:
                remaining = deadline - time.monotonic()
                if not exc.retriable or remaining <= 0:
                    self._give_up(notice, f"{exc} after {attempt} attempt(s)")
                    return
                metrics.NOTICES.labels(name, "retried").inc()
                log.info("%s: notice %s failed (%s), retrying", name, notice.notice_id, exc)
                await asyncio.sleep(min(self._backoff.delay(attempt, exc.retry_after), remaining))
            except Exception:
                # A bug, not the receiver: retrying would only repeat it and hold the queue.
                log.exception("%s: sending notice %s failed unexpectedly", name, notice.notice_id)
                self._give_up(notice, "unexpected error")
                return
            else:
                metrics.NOTICES.labels(name, "delivered").inc()
                latency = max(0.0, time.time() - utc(notice.at).timestamp())
                metrics.DELIVERY_SECONDS.labels(name).observe(latency)
                await self._logged(notice)
                return

    async def _logged(self, notice: Notice) -> None:
        if self._log_delivery is None:
            return
        try:
            await self._log_delivery(self.channel.name, notice)
        except Exception as exc:
            # Unlogged, the notice is sent again by the next leader; that is all it costs.
            log.warning(
                "%s: delivery of %s not logged: %s", self.channel.name, notice.notice_id, exc
            )

    def _give_up(self, notice: Notice, why: str) -> None:
        metrics.NOTICES.labels(self.channel.name, "given_up").inc()
        log.error(
            "%s: gave up notice %s (%s of %s): %s",
            self.channel.name,
            notice.notice_id,
            notice.state,
            notice.alert.key,
            why,
        )


class AlertDispatcher:
    """Delivers submitted notices to its channels; ``async with`` or ``start()``/``stop()``."""

    def __init__(
        self,
        channels: Sequence[Channel],
        *,
        queue_max: int = 10_000,
        backoff: RetryPolicy | None = None,
        stop_timeout_seconds: float = 5.0,
        log_delivery: DeliveryLog | None = None,
    ) -> None:
        names = [channel.name for channel in channels]
        if len(set(names)) != len(names):
            raise ValueError(f"channel names must differ: {names}")
        backoff = backoff or RetryPolicy()
        self._lanes = [_Lane(channel, queue_max, backoff, log_delivery) for channel in channels]
        self._stop_timeout = stop_timeout_seconds
        self._workers: list[asyncio.Task[None]] = []

    @classmethod
    def from_settings(
        cls,
        alerts: AlertsSettings,
        kafka: KafkaSettings,
        topic: str,
        *,
        backoff_base: float = 1.0,
        backoff_cap: float | None = None,
        log_delivery: DeliveryLog | None = None,
    ) -> AlertDispatcher:
        """The Kafka topic (``topic`` on the broker of ``kafka``) always; Alertmanager and the
        webhook when their URL is set in ``alerts``."""
        channels: list[Channel] = [
            KafkaTopicChannel(
                kafka,
                topic,
                timeout_seconds=alerts.delivery_timeout_seconds,
            )
        ]
        if alerts.alertmanager_url:
            channels.append(
                AlertmanagerChannel(
                    alerts.alertmanager_url,
                    language=alerts.language,
                    resend_seconds=alerts.alertmanager_resend_seconds,
                    timeout_seconds=alerts.delivery_timeout_seconds,
                )
            )
        if alerts.webhook_url:
            secret = alerts.webhook_secret
            channels.append(
                WebhookChannel(
                    alerts.webhook_url,
                    secret=secret.get_secret_value() if secret else None,
                    timeout_seconds=alerts.delivery_timeout_seconds,
                )
            )
        cap = alerts.delivery_retry_cap_seconds if backoff_cap is None else backoff_cap
        backoff = RetryPolicy(backoff_base, cap, alerts.delivery_retry_max_seconds)
        return cls(
            channels,
            queue_max=alerts.delivery_queue_max,
            backoff=backoff,
            log_delivery=log_delivery,
        )

    @property
    def channels(self) -> list[Channel]:
        return [lane.channel for lane in self._lanes]

    def queue_sizes(self) -> dict[str, int]:
        return {lane.channel.name: lane.queue.qsize() for lane in self._lanes}

    async def start(self) -> None:
        started: list[Channel] = []
        try:
            for lane in self._lanes:
                await lane.channel.start()
                started.append(lane.channel)
        except BaseException:
            for channel in reversed(started):
                await channel.stop()
            raise
        self._workers = [
            asyncio.create_task(lane.run(), name=f"alert-delivery-{lane.channel.name}")
            for lane in self._lanes
        ]

    async def stop(self) -> None:
        """Give the queues ``stop_timeout_seconds`` to empty, then stop; what is left is
        logged (it stays in the history, and the next leader sends it: no channel took it)."""
        if self._workers and not await self._drained_within(self._stop_timeout):
            for lane in self._lanes:
                if left := lane.queue.qsize():
                    log.warning("%s: %d notice(s) not delivered at stop", lane.channel.name, left)
        for worker in self._workers:
            worker.cancel()
        for worker in self._workers:
            with contextlib.suppress(asyncio.CancelledError):
                await worker
        self._workers = []
        for lane in self._lanes:
            await lane.channel.stop()

    async def __aenter__(self) -> AlertDispatcher:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    def submit(self, notices: Sequence[Notice]) -> None:
        """Queue ``notices`` on every channel, in order; returns at once."""
        for notice in notices:
            for lane in self._lanes:
                lane.offer(notice)

    def submit_to(self, channel: str, notices: Sequence[Notice]) -> None:
        """Queue ``notices`` on one channel only: those it never took (the delivery log)."""
        for lane in self._lanes:
            if lane.channel.name == channel:
                for notice in notices:
                    lane.offer(notice)

    def resume(self, notices: Iterable[Notice]) -> None:
        """The alerts open now: after a restart or on becoming the alerting leader, their last
        notices (``open_notices``); ``[]`` on losing leadership. Only channels that keep state
        about open alerts (Alertmanager's re-posts) take them; nothing is sent to the others."""
        kept = list(notices)
        for lane in self._lanes:
            if isinstance(lane.channel, Resumable):
                lane.channel.resume(kept)

    def hand_over(self) -> None:
        """This worker no longer leads alerting: forget the open alerts (no more re-posts to
        Alertmanager), drop every queued notice, and stop retrying the ones being tried after
        their current attempt. The new leader sends each channel, from the history, every
        notice it never took; kept here too, they would be delivered twice, and an alert's
        fire could arrive after the new leader's resolve."""
        self.resume([])
        for lane in self._lanes:
            if left := lane.hand_over():
                log.info("%s: %d notice(s) left to the new leader", lane.channel.name, left)

    async def drain(self) -> None:
        """Wait until every queued notice is delivered or given up (bound it with
        ``asyncio.timeout``: a receiver that is down keeps a notice for retry_max_seconds)."""
        await asyncio.gather(*(lane.queue.join() for lane in self._lanes))

    async def _drained_within(self, seconds: float) -> bool:
        try:
            async with asyncio.timeout(seconds):
                await self.drain()
        except TimeoutError:
            return False
        return True
