"""Alert delivery to real receivers: the stack's Alertmanager 0.25, an HTTP server, the broker.

The session shares one Alertmanager (the local stack's, which workers in other tests may post
to as well), so every alert here has a key of its own and is looked up by it.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import urllib.parse
import urllib.request
import uuid
from datetime import datetime
from typing import Any

import pytest
from aiohttp import web
from aiokafka import AIOKafkaConsumer
from prometheus_client import REGISTRY
from pydantic import SecretStr

from salespulse.alert_model import Alert, Notice, Suppression
from salespulse.alert_settings import AlertsSettings
from salespulse.settings import Settings
from salespulse.stack_settings import free_ports
from salespulse.topics import ensure_topics
from sinks.alerts import (
    AlertDispatcher,
    AlertmanagerChannel,
    RetryPolicy,
    WebhookChannel,
    notice_payload,
    verify_signature,
)
from tests.alert_samples import fired, resolved, sample_alert
from tests.conftest import LocalStack

FAST = RetryPolicy(base=0.02, cap=0.1, max_seconds=20)
SECRET = "s3cret"
_runs = itertools.count(1)


def count(channel: str, outcome: str) -> float:
    value = REGISTRY.get_sample_value(
        "salespulse_alert_delivery_notices_total", {"channel": channel, "outcome": outcome}
    )
    return value or 0.0


def am_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


# No proxy for loopback, whatever http_proxy says.
_direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def own_alert() -> Alert:
    """A sample alert whose key no other test, run or worker posting to the stack uses."""
    return sample_alert(key=f"calls_out_dip:ivanova:{uuid.uuid4().hex}")


def alertmanager_alerts(stack: LocalStack, **filters: str) -> list[dict[str, Any]]:
    """``GET /api/v2/alerts`` of the stack's Alertmanager (``active='true'``, ``filter=...``)."""
    url = f"{stack.alertmanager_url}/api/v2/alerts?{urllib.parse.urlencode(filters)}"
    with _direct.open(url, timeout=5) as response:
        result: list[dict[str, Any]] = json.loads(response.read())
        return result


def active(stack: LocalStack, notice: Notice) -> list[dict[str, Any]]:
    return alertmanager_alerts(stack, active="true", filter=f'salespulse_key="{notice.alert.key}"')


class Receiver:
    """A webhook receiver on a local port, answering with ``statuses`` in turn, then 200;
    with ``redirect_to``, every answer that is a redirect points there."""

    def __init__(
        self, statuses: list[int] | None = None, port: int | None = None, redirect_to: str = ""
    ) -> None:
        self.statuses = list(statuses or [])
        (self.port,) = [port] if port else free_ports(1)
        self.url = f"http://127.0.0.1:{self.port}/hooks/salespulse"
        self.redirect_to = redirect_to
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self._runner: web.AppRunner | None = None

    async def _handle(self, request: web.Request) -> web.Response:
        self.requests.append((dict(request.headers), await request.read()))
        status = self.statuses.pop(0) if self.statuses else 200
        headers = {"Location": self.redirect_to} if 300 <= status < 400 else {}
        return web.Response(status=status, headers=headers)

    async def start(self) -> None:
        app = web.Application()
        # Any path: an Alertmanager channel posts to <url>/api/v2/alerts.
        app.router.add_post("/{path:.*}", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


# -- Alertmanager ------------------------------------------------------------------------------


async def test_alertmanager_shows_a_fired_alert_keeps_it_and_ends_it_on_resolve(
    stack: LocalStack,
) -> None:
    alert = own_alert()
    fire = fired(alert)
    channel = AlertmanagerChannel(stack.alertmanager_url, language="ru", resend_seconds=0.5)
    async with AlertDispatcher([channel], backoff=FAST) as dispatcher:
        dispatcher.submit([fire])
        await asyncio.wait_for(dispatcher.drain(), 10)
        (shown,) = active(stack, fire)
        assert shown["labels"] == {
            "alertname": "calls_out_dip",
            "severity": "warning",
            "manager": "ivanova",
            "department": "msk",
            "metric": "calls_out",
            "salespulse_key": alert.key,
        }
        annotations = shown["annotations"]
        assert annotations["summary"] == alert.summary_ru
        assert annotations["summary_en"] == alert.summary_en
        assert annotations["summary_ru"] == alert.summary_ru
        assert annotations["dashboard"] == alert.dashboard_url
        assert annotations["recipients"] == "rop-msk@example.com, @rop_msk"
        assert "calls_out: 3 against 11.5 expected" in annotations["description"]
        assert am_time(shown["startsAt"]) == alert.fired_at
        assert shown["generatorURL"] == alert.dashboard_url
        assert shown["status"]["state"] == "active"
        first_end = am_time(shown["endsAt"])

        # Past the first endsAt (4 resends ahead, 2 s): re-posts kept it active, and later.
        await asyncio.sleep(2.5)
        (kept,) = active(stack, fire)
        assert am_time(kept["endsAt"]) > first_end
        assert am_time(kept["startsAt"]) == alert.fired_at

        dispatcher.submit([resolved(alert)])
        await asyncio.wait_for(dispatcher.drain(), 10)
        assert active(stack, fire) == []
        # And the resender does not bring it back.
        await asyncio.sleep(1.2)
        assert alertmanager_alerts(stack, filter=f'salespulse_key="{alert.key}"') == []


async def test_alertmanager_resolves_alerts_by_itself_when_we_stop(stack: LocalStack) -> None:
    fire = fired(own_alert())
    channel = AlertmanagerChannel(stack.alertmanager_url, resend_seconds=0.4)
    async with AlertDispatcher([channel], backoff=FAST) as dispatcher:
        dispatcher.submit([fire])
        await asyncio.wait_for(dispatcher.drain(), 10)
        assert len(active(stack, fire)) == 1
    # No resolve was sent: salespulse "died". Alertmanager ends it 4 resends (1.6 s) later.
    await asyncio.sleep(2.5)
    assert active(stack, fire) == []


# -- the webhook -------------------------------------------------------------------------------


async def test_webhook_retries_server_errors_with_one_idempotency_key() -> None:
    receiver = Receiver([500, 503])
    await receiver.start()
    notice = fired(sample_alert())
    delivered, retried = count("webhook", "delivered"), count("webhook", "retried")
    try:
        channel = WebhookChannel(receiver.url, secret=SECRET)
        async with AlertDispatcher([channel], backoff=FAST) as dispatcher:
            dispatcher.submit([notice])
            await asyncio.wait_for(dispatcher.drain(), 10)
    finally:
        await receiver.stop()
    assert len(receiver.requests) == 3
    for headers, body in receiver.requests:
        assert headers["Idempotency-Key"] == notice.notice_id
        assert headers["Content-Type"] == "application/json"
        timestamp = headers["X-Salespulse-Timestamp"]
        assert verify_signature(SECRET, timestamp, body, headers["X-Salespulse-Signature"])
        assert not verify_signature("wrong", timestamp, body, headers["X-Salespulse-Signature"])
        assert json.loads(body) == notice_payload(notice)
    assert count("webhook", "delivered") - delivered == 1
    assert count("webhook", "retried") - retried == 2


async def test_webhook_gives_up_on_a_client_error_without_retrying() -> None:
    receiver = Receiver([400])
    await receiver.start()
    refused, after = fired(sample_alert()), fired(sample_alert())
    given_up, retried = count("webhook", "given_up"), count("webhook", "retried")
    try:
        async with AlertDispatcher([WebhookChannel(receiver.url)], backoff=FAST) as dispatcher:
            dispatcher.submit([refused, after])
            await asyncio.wait_for(dispatcher.drain(), 10)
    finally:
        await receiver.stop()
    keys = [headers["Idempotency-Key"] for headers, _ in receiver.requests]
    assert keys == [refused.notice_id, after.notice_id]
    assert "X-Salespulse-Signature" not in receiver.requests[0][0]  # no secret, no signature
    assert count("webhook", "given_up") - given_up == 1
    assert count("webhook", "retried") == retried


async def test_webhook_reaches_a_receiver_that_comes_up_later() -> None:
    receiver = Receiver()
    notice = fired(sample_alert())
    retried = count("webhook", "retried")
    async with AlertDispatcher([WebhookChannel(receiver.url)], backoff=FAST) as dispatcher:
        dispatcher.submit([notice])
        await asyncio.sleep(0.3)  # connections refused meanwhile
        assert receiver.requests == []
        await receiver.start()
        try:
            await asyncio.wait_for(dispatcher.drain(), 10)
        finally:
            await receiver.stop()
    assert [json.loads(body)["notice_id"] for _, body in receiver.requests] == [notice.notice_id]
    assert count("webhook", "retried") - retried >= 2


# -- redirects ---------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
@pytest.mark.parametrize("channel_name", ["webhook", "alertmanager"])
async def test_a_redirect_is_a_failed_delivery_and_is_not_followed(
    status: int, channel_name: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A 307/308 would re-post the signed notice to wherever the answer points; it must reach
    neither that place nor count as delivered."""
    elsewhere = Receiver()
    redirector = Receiver([status] * 5, redirect_to=elsewhere.url)
    await elsewhere.start()
    await redirector.start()
    notice = fired(own_alert())
    delivered, given_up = count(channel_name, "delivered"), count(channel_name, "given_up")
    channel: WebhookChannel | AlertmanagerChannel = (
        WebhookChannel(redirector.url, secret=SECRET)
        if channel_name == "webhook"
        else AlertmanagerChannel(f"http://127.0.0.1:{redirector.port}")
    )
    try:
        async with AlertDispatcher([channel], backoff=FAST) as dispatcher:
            dispatcher.submit([notice])
            await asyncio.wait_for(dispatcher.drain(), 10)
    finally:
        await redirector.stop()
        await elsewhere.stop()
    assert len(redirector.requests) == 1  # asked once: retrying would not change the answer
    assert elsewhere.requests == []
    assert count(channel_name, "delivered") == delivered
    assert count(channel_name, "given_up") - given_up == 1
    assert any(
        record.levelname == "ERROR" and f"HTTP {status}, a redirect" in record.getMessage()
        for record in caplog.records
    )


# -- the Kafka topic, and what reaches people --------------------------------------------------


async def own_alerts_topic(stack: LocalStack, alerts: AlertsSettings | None = None) -> Settings:
    run = f"alerts{next(_runs)}"
    topics = stack.settings.topics.model_copy(update={"alerts": f"{run}.alerts"})
    settings = stack.settings.model_copy(
        update={"topics": topics, "alerts": alerts or AlertsSettings()}
    )
    assert topics.alerts in await ensure_topics(settings.kafka, topics)
    return settings


async def consume(settings: Settings, expected: int) -> list[tuple[bytes, bytes, dict[str, bytes]]]:
    consumer = AIOKafkaConsumer(
        settings.topics.alerts,
        **settings.kafka.aiokafka_options(),
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    seen: list[tuple[bytes, bytes, dict[str, bytes]]] = []
    try:
        for _ in range(60):
            for records in (await consumer.getmany(timeout_ms=500)).values():
                seen += [(r.key or b"", r.value or b"", dict(r.headers)) for r in records]
            if len(seen) >= expected:
                break
    finally:
        await consumer.stop()
    return seen


async def test_every_notice_lands_on_the_alerts_topic_keyed_by_alert(stack: LocalStack) -> None:
    settings = await own_alerts_topic(stack)
    alert = sample_alert()
    notices = [fired(alert), resolved(alert), fired(sample_alert(), Suppression.RATE_LIMITED)]
    async with AlertDispatcher.from_settings(
        settings.alerts, settings.kafka, settings.topics.alerts
    ) as dispatcher:
        assert [c.name for c in dispatcher.channels] == ["kafka"]
        dispatcher.submit(notices)
        await asyncio.wait_for(dispatcher.drain(), 30)
    seen = await consume(settings, len(notices))
    # One alert's notices share a key, so a partition: its fire is read before its resolve.
    by_id = {headers["sp-notice-id"].decode(): (key, value) for key, value, headers in seen}
    assert len(seen) == 3
    for notice in notices:
        key, value = by_id[notice.notice_id]
        assert key == notice.alert.key.encode()
        assert json.loads(value) == notice_payload(notice)
    same_alert = [json.loads(v)["state"] for k, v, _ in seen if k == alert.key.encode()]
    assert same_alert == ["firing", "resolved"]


async def test_suppressed_notices_reach_kafka_but_not_people(stack: LocalStack) -> None:
    receiver = Receiver()
    await receiver.start()
    # The session's settings, pointed at the stack, already name the stack's Alertmanager.
    alerts = stack.settings.alerts.model_copy(
        update={"webhook_url": receiver.url, "webhook_secret": SecretStr(SECRET)}
    )
    settings = await own_alerts_topic(stack, alerts)
    silenced, loud = fired(own_alert(), Suppression.SILENCED), fired(own_alert())
    try:
        async with AlertDispatcher.from_settings(
            settings.alerts, settings.kafka, settings.topics.alerts, backoff_base=0.02
        ) as dispatcher:
            assert [c.name for c in dispatcher.channels] == ["kafka", "alertmanager", "webhook"]
            dispatcher.submit([silenced, loud])
            await asyncio.wait_for(dispatcher.drain(), 30)
            assert active(stack, silenced) == []
            assert len(active(stack, loud)) == 1
            dispatcher.submit([resolved(loud.alert)])
            await asyncio.wait_for(dispatcher.drain(), 30)
    finally:
        await receiver.stop()
    states = [
        (json.loads(body)["notice_id"], json.loads(body)["state"]) for _, body in receiver.requests
    ]
    assert states == [(loud.notice_id, "firing"), (resolved(loud.alert).notice_id, "resolved")]
    on_topic = {json.loads(value)["notice_id"] for _, value, _ in await consume(settings, 3)}
    assert silenced.notice_id in on_topic
    assert loud.notice_id in on_topic
