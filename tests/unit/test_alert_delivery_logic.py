"""Alert delivery logic without receivers: the payload, signatures, Alertmanager's form of an
alert, and the dispatcher's queues, retries and ordering (against fake channels)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from prometheus_client import REGISTRY
from pydantic import SecretStr

from salespulse.alert_model import Alert, AlertState, Notice, Severity, Suppression
from salespulse.alert_settings import AlertsSettings
from salespulse.settings import Settings
from sinks.alerts import (
    AlertDeliveryError,
    AlertDispatcher,
    AlertmanagerChannel,
    KafkaTopicChannel,
    RetryPolicy,
    WebhookChannel,
    encode_payload,
    notice_payload,
    sign,
    verify_signature,
)
from sinks.alerts.alertmanager import alertmanager_alert
from sinks.alerts.channel import http_error
from tests.alert_samples import fired, resolved, sample_alert

FAST = RetryPolicy(base=0.001, cap=0.004, max_seconds=5)
FIRED_AT = datetime(2026, 11, 26, 10, 15, 0, tzinfo=UTC)


def count(channel: str, outcome: str) -> float:
    value = REGISTRY.get_sample_value(
        "salespulse_alert_delivery_notices_total", {"channel": channel, "outcome": outcome}
    )
    return value or 0.0


class FakeChannel:
    """Records what it is sent; raises the errors scripted for a notice id, in turn."""

    def __init__(self, name: str, *, for_people: bool = False) -> None:
        self.name = name
        self.for_people = for_people
        self.sent: list[Notice] = []
        self.attempts: list[str] = []
        self.failures: dict[str, list[Exception]] = {}
        self.always_failing = False
        self.running = False

    async def start(self) -> None:
        self.running = True

    async def stop(self) -> None:
        self.running = False

    async def send(self, notice: Notice) -> None:
        self.attempts.append(notice.notice_id)
        if self.always_failing:
            raise AlertDeliveryError("down", retriable=True)
        if errors := self.failures.get(notice.notice_id):
            raise errors.pop(0)
        self.sent.append(notice)


# -- the payload -------------------------------------------------------------------------------


def test_payload_carries_the_notice_and_the_whole_alert() -> None:
    alert = sample_alert(FIRED_AT, key="calls_out_dip:ivanova:2026-11-26")
    notice = resolved(alert, FIRED_AT + timedelta(minutes=40, microseconds=5))
    payload = notice_payload(notice)
    assert payload == {
        "schema": "salespulse.alert-notice/1",
        "notice_id": notice.notice_id,
        "state": "resolved",
        "at": "2026-11-26T10:55:00Z",
        "suppressed": "",
        "reason": "recovered",
        "alert": {
            "key": "calls_out_dip:ivanova:2026-11-26",
            "rule": "calls_out_dip",
            "kind": "baseline_dip",
            "severity": "warning",
            "manager_id": "ivanova",
            "manager_name": "Anna Ivanova",
            "department_id": "msk",
            "department_name": "Moscow sales",
            "metric": "calls_out",
            "actual": 3.0,
            "expected": 11.5,
            "since": "2026-11-26T09:45:00Z",
            "fired_at": "2026-11-26T10:15:00Z",
            "recipients": ["rop-msk@example.com", "@rop_msk"],
            "summary_en": alert.summary_en,
            "summary_ru": alert.summary_ru,
            "dashboard_url": "https://salespulse.example.com/managers/ivanova",
            "details": {"window": "13:00-14:00", "weeks": "4"},
        },
    }
    body = encode_payload(notice)
    assert json.loads(body) == payload
    assert "Анна".encode() in body  # readable, not \u-escaped


def test_payload_times_are_utc_whatever_zone_they_came_in() -> None:
    moscow = datetime(2026, 11, 26, 13, 15, tzinfo=UTC).astimezone(ZoneInfo("Europe/Moscow"))
    alert = dataclasses.replace(sample_alert(FIRED_AT), fired_at=moscow)
    naive = fired(dataclasses.replace(alert, since=datetime(2026, 11, 26, 12, 0)))
    payload = notice_payload(naive)
    assert payload["alert"]["fired_at"] == "2026-11-26T13:15:00Z"
    assert payload["alert"]["since"] == "2026-11-26T12:00:00Z"


# -- signatures --------------------------------------------------------------------------------


def test_a_signature_verifies_and_any_change_breaks_it() -> None:
    body = b'{"notice_id":"n1"}'
    header = sign("s3cret", 1_795_000_000, body)
    assert header.startswith("sha256=")
    assert len(header) == len("sha256=") + 64
    now = 1_795_000_010.0
    assert verify_signature("s3cret", "1795000000", body, header, 300, now=now)
    assert verify_signature(b"s3cret", 1_795_000_000, body, header, 300, now=now)
    assert not verify_signature("s3cret", "1795000000", body + b" ", header, 300, now=now)
    assert not verify_signature("other", "1795000000", body, header, 300, now=now)
    assert not verify_signature("s3cret", "1795000001", body, header, 300, now=now)
    assert not verify_signature("s3cret", "1795000000", body, header[:-1] + "0", now=now)
    assert not verify_signature("s3cret", "soon", body, header, 300, now=now)
    # A replay of a request recorded long ago, or one claiming to come from the future.
    assert not verify_signature("s3cret", "1795000000", body, header, 300, now=now + 300)
    assert not verify_signature("s3cret", "1795000000", body, header, 300, now=now - 320)


def test_http_answers_that_may_change_are_retriable() -> None:
    assert [http_error("x", s).retriable for s in (408, 425, 429, 500, 502, 503)] == [True] * 6
    assert [http_error("x", s).retriable for s in (400, 401, 403, 404, 410, 413)] == [False] * 6
    assert http_error("x", 429, "7").retry_after == 7.0
    assert http_error("x", 503, "Wed, 21 Oct 2026 07:28:00 GMT").retry_after is None


# -- Alertmanager's form -----------------------------------------------------------------------


def test_alertmanager_alert_has_stable_labels_and_the_texts() -> None:
    notice = fired(sample_alert(FIRED_AT, key="calls_out_dip:ivanova:2026-11-26"))
    ends = FIRED_AT + timedelta(minutes=4)
    body = alertmanager_alert(notice, ends, language="ru")
    assert body["labels"] == {
        "alertname": "calls_out_dip",
        "severity": "warning",
        "manager": "ivanova",
        "department": "msk",
        "metric": "calls_out",
        "salespulse_key": "calls_out_dip:ivanova:2026-11-26",
    }
    annotations = body["annotations"]
    assert annotations["summary"] == notice.alert.summary_ru
    assert annotations["summary_en"] == notice.alert.summary_en
    assert annotations["dashboard"] == notice.alert.dashboard_url
    assert annotations["description"].startswith("calls_out: 3 against 11.5 expected, since ")
    assert "window: 13:00-14:00" in annotations["description"]
    assert body["startsAt"] == "2026-11-26T10:15:00Z"
    assert body["endsAt"] == "2026-11-26T10:19:00Z"
    assert body["generatorURL"] == notice.alert.dashboard_url


@pytest.mark.parametrize(
    ("key", "english", "russian"),
    [
        ("idle/manager/ivanova", "managers", "менеджеров"),
        ("calls_dip/department/msk", "departments", "отделов"),
        ("overdue/task/T-1", "tasks", "задач"),
        ("calls_out_dip:ivanova:2026-11-26", "alerts", "оповещений"),  # a key of older releases
    ],
)
def test_the_annotations_a_group_message_names_its_alerts_by(
    key: str, english: str, russian: str
) -> None:
    # deploy/alertmanager/salespulse.tmpl: "3 managers of Moscow sales: idle".
    body = alertmanager_alert(fired(sample_alert(FIRED_AT, key=key)), FIRED_AT, language="en")
    annotations = body["annotations"]
    assert (annotations["subjects_en"], annotations["subjects_ru"]) == (english, russian)
    assert annotations["department_name"] == "Moscow sales"


def test_a_department_alert_has_no_manager_label_and_no_empty_url() -> None:
    alert = dataclasses.replace(sample_alert(FIRED_AT), manager_id="", dashboard_url="")
    body = alertmanager_alert(fired(alert), FIRED_AT, language="en")
    assert "manager" not in body["labels"]
    assert "generatorURL" not in body
    assert body["annotations"]["summary"] == alert.summary_en


# -- the dispatcher ----------------------------------------------------------------------------


def test_backoff_doubles_with_jitter_up_to_the_cap() -> None:
    backoff = RetryPolicy(base=1, cap=60, max_seconds=3600)
    for attempt, ceiling in [(1, 1), (2, 2), (3, 4), (6, 32), (7, 60), (50, 60)]:
        waits = [backoff.delay(attempt) for _ in range(200)]
        assert all(ceiling / 2 <= w <= ceiling for w in waits), (attempt, min(waits))
        assert max(waits) - min(waits) > 0
    assert backoff.delay(1, retry_after=30) == 30
    assert backoff.delay(1, retry_after=600) == 60


async def test_a_resolve_never_overtakes_its_fire() -> None:
    channel = FakeChannel("fake-order")
    alert = sample_alert()
    fire, resolve = fired(alert), resolved(alert)
    channel.failures[fire.notice_id] = [AlertDeliveryError("busy", retriable=True)] * 3
    async with AlertDispatcher([channel], backoff=FAST) as dispatcher:
        dispatcher.submit([fire, resolve])
        await asyncio.wait_for(dispatcher.drain(), 5)
    assert [n.state for n in channel.sent] == [AlertState.FIRING, AlertState.RESOLVED]
    assert channel.attempts == [fire.notice_id] * 4 + [resolve.notice_id]
    assert count("fake-order", "retried") == 3
    assert count("fake-order", "delivered") == 2
    assert not channel.running


async def test_a_refused_notice_is_given_up_at_once_and_the_next_one_goes() -> None:
    channel = FakeChannel("fake-refused")
    first, second = fired(sample_alert()), fired(sample_alert())
    channel.failures[first.notice_id] = [AlertDeliveryError("400", retriable=False)]
    channel.failures[second.notice_id] = [ValueError("a bug in a channel")]
    third = fired(sample_alert())
    async with AlertDispatcher([channel], backoff=FAST) as dispatcher:
        dispatcher.submit([first, second, third])
        await asyncio.wait_for(dispatcher.drain(), 5)
    assert channel.attempts == [first.notice_id, second.notice_id, third.notice_id]
    assert channel.sent == [third]
    assert count("fake-refused", "given_up") == 2
    assert count("fake-refused", "retried") == 0


async def test_retries_stop_after_the_retry_time(caplog: pytest.LogCaptureFixture) -> None:
    channel = FakeChannel("fake-down")
    channel.always_failing = True
    backoff = RetryPolicy(base=0.01, cap=0.02, max_seconds=0.15)
    notice = fired(sample_alert())
    async with AlertDispatcher([channel], backoff=backoff) as dispatcher:
        dispatcher.submit([notice])
        await asyncio.wait_for(dispatcher.drain(), 5)
    assert len(channel.attempts) >= 5  # tried through the retry time, not once
    assert count("fake-down", "given_up") == 1
    assert any("gave up notice" in r.message for r in caplog.records if r.levelno >= 40)


async def test_one_channel_down_does_not_hold_back_another() -> None:
    down, up = FakeChannel("fake-a-down"), FakeChannel("fake-b-up")
    down.always_failing = True
    notices = [fired(sample_alert()) for _ in range(5)]
    dispatcher = AlertDispatcher([down, up], backoff=FAST, stop_timeout_seconds=0.05)
    async with dispatcher:
        dispatcher.submit(notices)
        for _ in range(200):
            if len(up.sent) == 5:
                break
            await asyncio.sleep(0.01)
        assert up.sent == notices
        assert dispatcher.queue_sizes() == {"fake-a-down": 4, "fake-b-up": 0}
    assert {*down.attempts} == {notices[0].notice_id}  # stopped while still retrying the first


async def test_a_full_queue_drops_its_oldest_notice(caplog: pytest.LogCaptureFixture) -> None:
    channel = FakeChannel("fake-full")
    notices = [fired(sample_alert()) for _ in range(5)]
    dispatcher = AlertDispatcher([channel], queue_max=3, backoff=FAST)
    dispatcher.submit(notices)  # before start: queued, the bound already holds
    assert dispatcher.queue_sizes() == {"fake-full": 3}
    assert count("fake-full", "dropped") == 2
    assert (
        REGISTRY.get_sample_value(
            "salespulse_alert_delivery_queue_notices", {"channel": "fake-full"}
        )
        == 3
    )
    async with dispatcher:
        await asyncio.wait_for(dispatcher.drain(), 5)
    assert channel.sent == notices[2:]
    assert sum("queue full" in r.message for r in caplog.records) == 1  # not one per drop


async def test_suppressed_notices_skip_only_the_channels_for_people() -> None:
    people, record = FakeChannel("fake-people", for_people=True), FakeChannel("fake-record")
    silenced = fired(sample_alert(), Suppression.SILENCED)
    limited = fired(sample_alert(), Suppression.RATE_LIMITED)
    loud = fired(sample_alert())
    async with AlertDispatcher([people, record], backoff=FAST) as dispatcher:
        dispatcher.submit([silenced, limited, loud])
        await asyncio.wait_for(dispatcher.drain(), 5)
    assert people.sent == [loud]
    assert record.sent == [silenced, limited, loud]
    assert count("fake-people", "suppressed") == 2


async def test_stop_returns_in_time_with_notices_still_queued(
    caplog: pytest.LogCaptureFixture,
) -> None:
    channel = FakeChannel("fake-stuck")
    channel.always_failing = True
    dispatcher = AlertDispatcher([channel], backoff=FAST, stop_timeout_seconds=0.1)
    await dispatcher.start()
    dispatcher.submit([fired(sample_alert()) for _ in range(3)])
    await asyncio.wait_for(dispatcher.stop(), 2)
    assert "2 notice(s) not delivered at stop" in caplog.text
    assert not channel.running


def test_channel_names_must_differ() -> None:
    with pytest.raises(ValueError, match="must differ"):
        AlertDispatcher([FakeChannel("same"), FakeChannel("same")])


def _from_settings(settings: Settings) -> AlertDispatcher:
    return AlertDispatcher.from_settings(settings.alerts, settings.kafka, settings.topics.alerts)


def test_channels_come_from_the_settings() -> None:
    plain = _from_settings(Settings())
    assert [type(c) for c in plain.channels] == [KafkaTopicChannel]
    alerts = AlertsSettings(
        alertmanager_url="http://127.0.0.1:9093/",
        webhook_url="https://hooks.example.com/salespulse",
        webhook_secret=SecretStr("s3cret"),
        delivery_queue_max=50,
    )
    full = _from_settings(Settings(alerts=alerts))
    assert [c.name for c in full.channels] == ["kafka", "alertmanager", "webhook"]
    webhook = full.channels[2]
    assert isinstance(webhook, WebhookChannel)
    notice = fired(sample_alert())
    headers = webhook.headers(notice, b"{}")
    assert headers["X-Salespulse-Signature"] == sign(
        "s3cret", headers["X-Salespulse-Timestamp"], b"{}"
    )
    assert headers["Idempotency-Key"] == notice.notice_id


async def test_resume_reaches_only_channels_that_keep_state() -> None:
    alertmanager = AlertmanagerChannel("http://127.0.0.1:9", resend_seconds=60)
    other = FakeChannel("fake-resume")
    dispatcher = AlertDispatcher([alertmanager, other])
    loud, silenced = fired(sample_alert()), fired(sample_alert(), Suppression.SILENCED)
    dispatcher.resume([loud, silenced, resolved(sample_alert())])
    assert alertmanager.firing == [loud]  # re-posted at its next resend
    assert other.attempts == []
    # Another worker took over alerting: this one must stop re-posting what it knew.
    dispatcher.resume([])
    assert alertmanager.firing == []


async def test_a_worker_that_stops_leading_leaves_its_backlog_to_the_new_leader() -> None:
    """The receiver is down with three notices waiting: on handing over, none of them is tried
    again here (the new leader sends them from the history) and the channel stops re-posting
    open alerts; notices submitted after that (leading again) are delivered as usual."""
    alertmanager = AlertmanagerChannel("http://127.0.0.1:9", resend_seconds=60)
    channel = FakeChannel("fake-handover")
    channel.always_failing = True
    backlog = [fired(sample_alert()) for _ in range(3)]
    slow = RetryPolicy(base=0.05, cap=0.05, max_seconds=60)
    async with AlertDispatcher([channel], backoff=slow) as dispatcher:
        dispatcher.submit(backlog)
        for _ in range(500):
            if len(channel.attempts) >= 2:  # the first notice is being retried
                break
            await asyncio.sleep(0.01)
        dispatcher.hand_over()
        assert dispatcher.queue_sizes() == {"fake-handover": 0}
        tried = len(channel.attempts)
        channel.always_failing = False
        later = fired(sample_alert())
        dispatcher.submit([later])
        await asyncio.wait_for(dispatcher.drain(), 5)
    assert channel.attempts[:tried] == [backlog[0].notice_id] * tried
    assert channel.attempts[tried:] == [later.notice_id]  # at most the attempt under way, then
    assert channel.sent == [later]
    assert count("fake-handover", "handed_over") == 3
    alertmanager.resume([fired(sample_alert())])
    AlertDispatcher([alertmanager]).hand_over()
    assert alertmanager.firing == []


# -- docs/alert-delivery.md --------------------------------------------------------------------

DOC = Path(__file__).resolve().parents[2] / "docs" / "alert-delivery.md"


def doc_block(language: str) -> str:
    (block, *_) = re.findall(rf"```{language}\n(.*?)```", DOC.read_text(), flags=re.DOTALL)
    return str(block)


def test_the_documented_payload_is_what_a_notice_gives() -> None:
    documented = json.loads(doc_block("json"))
    fields = documented["alert"]
    alert = Alert(
        **{
            **fields,
            "severity": Severity(fields["severity"]),
            "since": datetime.fromisoformat(fields["since"]),
            "fired_at": datetime.fromisoformat(fields["fired_at"]),
            "recipients": tuple(fields["recipients"]),
        }
    )
    notice = Notice(
        alert, AlertState(documented["state"]), datetime.fromisoformat(documented["at"])
    )
    assert notice_payload(notice) == documented  # the notice id included


def test_the_documented_verification_accepts_our_signature() -> None:
    namespace: dict[str, Any] = {}
    exec(compile(doc_block("python"), str(DOC), "exec"), namespace)
    verify = namespace["verify_signature"]
    body = encode_payload(fired(sample_alert()))
    timestamp = str(int(time.time()))
    header = sign("s3cret", timestamp, body)
    assert verify("s3cret", timestamp, body, header)
    assert not verify("s3cret", timestamp, body.replace(b"3.0", b"30.0"), header)
    assert not verify("s3cret", str(int(timestamp) - 600), body, sign("s3cret", 0, body))
