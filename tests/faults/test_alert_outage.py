"""Alert delivery while the receivers are away (issue 8): Alertmanager stopped, a webhook failing
or gone, and the worker killed meanwhile. A real ``salespulse worker``, a real Alertmanager (the
test's own stack) and a real HTTP receiver; alerts come from overdue CRM tasks of a duty desk that
works round the clock, so each task fires at once and its completion resolves it.

What is checked is what a user would check: Alertmanager shows exactly the alerts still open, the
webhook's receiver has every notice the history holds, in order, no more often than
docs/alert-delivery.md allows, and the worker's own delivery log has nothing left undelivered.
Each test prints its numbers (``-s``) and records them as properties of the test report.
"""

from __future__ import annotations

import asyncio
import json
import signal
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from queries.alert_history import recent_notices, undelivered_notices
from salespulse.alert_model import Notice
from salespulse.settings import Settings
from salespulse.stack import stack_down, stack_up
from salespulse.stack_settings import free_ports
from salespulse.worker_process import stop_worker
from sinks.clickhouse.client import NativeClickHouse
from tests.conftest import LocalStack
from tests.faults.mode import scaled
from tests.integration.pipeline_harness import RunningWorker, eventually, launch
from tests.integration.test_alerts_end_to_end import (
    OVERDUE,
    active_alerts,
    alerting_settings,
    overdue_task,
    send,
    task_completed,
)

# Each test holds its outages for minutes in the long run.
pytestmark = pytest.mark.timeout(scaled(300, 1200))

# Alertmanager away for longer than a retry's wait grows to in the short run (32 s after five
# failures; the cap is 60 s), for minutes in the long one.
ALERTMANAGER_OUTAGE = scaled(35, 300)
# The webhook's receiver: answering 503 for a while, then not listening at all.
FAILING_SECONDS = scaled(8, 120)
DOWN_SECONDS = scaled(8, 120)
# How many alerts fire during an outage; every other one is resolved before it ends.
ALERTS_DURING = scaled(6, 30)
# A delivery attempt's timeout, and how long the "late" receiver takes to answer: past it.
TIMEOUT_SECONDS = 1.0
LATE_SECONDS = 1.5
# The longest wait between attempts: shorter than every outage here, so that each outage sees
# the backoff reach its cap and deliveries resume from there.
RETRY_CAP_SECONDS = 10.0
# Time to deliver what waited, once the receiver is back: a retry's wait (up to the cap) plus
# the sending, with room for a loaded machine.
RECOVERY_DEADLINE = 180.0


def outage_settings(stack: LocalStack, tmp_path: Path, webhook_url: str = "") -> Settings:
    """The duty desk's worker with the overdue-task rule, Alertmanager re-posts every 2 s, a
    1 s delivery timeout, retries at most 10 s apart, and a rate limit no test reaches (every
    notice is for people)."""
    settings = alerting_settings(stack, tmp_path)
    rules = {"rules": [OVERDUE], "notify": {"default": ["duty"], "per_recipient_per_hour": 10**6}}
    settings.alerts.rules_path.write_text(yaml.safe_dump(rules))
    alerts = settings.alerts.model_copy(
        update={
            "webhook_url": webhook_url,
            "delivery_timeout_seconds": TIMEOUT_SECONDS,
            "delivery_retry_cap_seconds": RETRY_CAP_SECONDS,
        }
    )
    return settings.model_copy(update={"alerts": alerts})


def key_of(task: str) -> str:
    return f"{OVERDUE['name']}/task/{task}"


class Desk:
    """Kim's tasks: ``overdue()`` makes one that fires at once, ``complete()`` resolves it; the
    keys of the alerts that should be open or resolved by now."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.open: dict[str, str] = {}  # alert key -> task
        self.resolved: set[str] = set()

    def overdue(self) -> str:
        task, created = overdue_task(datetime.now(UTC) - timedelta(minutes=1))
        asyncio.run(send(self.settings, created))
        self.open[key_of(task)] = task
        return key_of(task)

    def complete(self, key: str) -> None:
        asyncio.run(send(self.settings, task_completed(self.open.pop(key))))
        self.resolved.add(key)

    def raise_and_resolve(self, seconds: float, count: int) -> tuple[int, int]:
        """Over ``seconds`` (or longer, if the worker is slow), ``count`` alerts fire and every
        other one resolves once it has fired; returns how many fired and resolved."""
        started = time.monotonic()
        fired, resolved = 0, 0
        for step in range(count):
            key = self.overdue()
            fired += 1
            if step % 2:
                # Completed before it fired, the task would never be overdue at an evaluation.
                self.wait_for(key, "firing")
                self.complete(key)
                resolved += 1
            time.sleep(max(0.0, started + seconds * (step + 1) / count - time.monotonic()))
        return fired, resolved

    def wait_for(self, key: str, state: str) -> None:
        def raised() -> bool:
            return any((n.alert.key, str(n.state)) == (key, state) for n in recorded(self.settings))

        assert eventually(raised, 60) is True, f"{key} not {state}"

    def expected(self) -> Counter[tuple[str, str]]:
        """(key, state) of every notice the engine must have raised by now."""
        keys = [*self.open, *self.resolved]
        return Counter([(key, "firing") for key in keys] + [(k, "resolved") for k in self.resolved])


def recorded(settings: Settings) -> list[Notice]:
    """The notices in the history (ClickHouse ``alerts``), oldest first."""
    client = NativeClickHouse(settings.clickhouse)
    try:
        since = datetime.now(UTC) - timedelta(hours=2)
        return sorted(recent_notices(client, since, 10_000), key=lambda n: (n.at, n.state))
    finally:
        client.close()


def wait_until_raised(settings: Settings, desk: Desk, seconds: float) -> None:
    """Wait until the history holds every notice ``desk`` expects, and no other."""

    def differences() -> dict[str, list[tuple[str, str]]]:
        seen = Counter((n.alert.key, str(n.state)) for n in recorded(settings))
        expected = desk.expected()
        return {
            "missing": sorted((expected - seen).elements()),
            "unexpected": sorted((seen - expected).elements()),
        }

    assert eventually(lambda: not any(differences().values()), seconds) is True, differences()


def undelivered(settings: Settings, channel: str) -> list[Notice]:
    """What the worker's delivery log says ``channel`` has not taken yet."""
    client = NativeClickHouse(settings.clickhouse)
    try:
        return undelivered_notices(client, channel, datetime.now(UTC) - timedelta(hours=2))
    finally:
        client.close()


def samples(url: str, name: str) -> dict[frozenset[tuple[str, str]], float]:
    """A counter's samples on a Prometheus ``/metrics`` page, by label set."""
    with urllib.request.urlopen(f"{url}/metrics", timeout=5) as response:
        text = response.read().decode()
    return {
        frozenset(sample.labels.items()): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    }


def delivery_outcomes(settings: Settings, channel: str) -> dict[str, float]:
    """``salespulse_alert_delivery_notices_total`` of ``channel`` on the worker's page."""
    found = samples(
        f"http://127.0.0.1:{settings.worker.web_port}", "salespulse_alert_delivery_notices_total"
    )
    return {
        dict(labels)["outcome"]: value
        for labels, value in found.items()
        if dict(labels)["channel"] == channel
    }


def report(record: Callable[[str, object], None], **numbers: object) -> None:
    for name, value in numbers.items():
        record(name, value)
    print(" ".join(f"{name}={value}" for name, value in numbers.items()))


# -- the webhook's receiver ----------------------------------------------------------------------


@dataclass(frozen=True)
class Receipt:
    notice_id: str
    key: str
    state: str
    answer: str  # "stored" (2xx), "refused" (503, not stored), "late" (stored, 2xx too late)

    @property
    def stored(self) -> bool:
        return self.answer != "refused"


class Receiver:
    """A webhook receiver on a port of its own that the test switches between ``up``,
    ``failing`` (503 to everything), ``down`` (not listening: connections refused) and ``late``
    (stores the notice, then answers after the sender has stopped waiting)."""

    def __init__(self) -> None:
        (self.port,) = free_ports(1)
        self.url = f"http://127.0.0.1:{self.port}/hook"
        self.mode = "down"
        self.receipts: list[Receipt] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    def set(self, mode: str) -> None:
        if mode == "down" and self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        elif mode != "down" and self._server is None:
            self._server = ThreadingHTTPServer(("127.0.0.1", self.port), self._handler())
            self._server.daemon_threads = True
            threading.Thread(target=self._server.serve_forever, daemon=True).start()
        self.mode = mode

    def stored(self) -> list[Receipt]:
        with self._lock:
            return [receipt for receipt in self.receipts if receipt.stored]

    def _take(self, body: dict[str, Any]) -> str:
        answer = {"up": "stored", "failing": "refused", "late": "late"}[self.mode]
        with self._lock:
            self.receipts.append(
                Receipt(body["notice_id"], body["alert"]["key"], body["state"], answer)
            )
        return answer

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                answer = receiver._take(
                    json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                )
                if answer == "late":
                    time.sleep(LATE_SECONDS)
                self.send_response(503 if answer == "refused" else 204)
                self.end_headers()

            def log_message(self, *args: object) -> None:  # quiet test output
                pass

        return Handler


def delivered_as_documented(receiver: Receiver, notices: list[Notice]) -> int:
    """Assert what docs/alert-delivery.md promises a webhook: every notice stored; each taken
    with a 2xx exactly once, any other copy being an attempt whose answer came too late; and an
    alert's fire, copies included, before its resolve. Returns the number of extra copies."""
    stored = receiver.stored()
    copies = Counter(receipt.notice_id for receipt in stored)
    assert set(copies) == {notice.notice_id for notice in notices}
    answered = Counter(r.notice_id for r in stored if r.answer == "stored")
    assert set(answered.values()) == {1}, "a notice was sent again after a 2xx"
    for key in {notice.alert.key for notice in notices}:
        states = [receipt.state for receipt in stored if receipt.key == key]
        assert states == sorted(states), f"{key}: {states}"  # "firing" < "resolved"
    return sum(copies.values()) - len(copies)


def back_up(receiver: Receiver, settings: Settings) -> tuple[list[Notice], float, int]:
    """Let the webhook's receiver take notices again and wait until it holds every notice in
    the history and none is left undelivered: (those notices, seconds it took, copies)."""
    receiver.set("up")
    back = time.monotonic()
    notices = recorded(settings)

    def caught_up() -> bool:
        taken = {receipt.notice_id for receipt in receiver.stored()}
        return taken >= {n.notice_id for n in notices} and not undelivered(settings, "webhook")

    assert eventually(caught_up, RECOVERY_DEADLINE) is True
    recovery = time.monotonic() - back
    time.sleep(3)  # a notice sent once too often would arrive by now
    return notices, recovery, delivered_as_documented(receiver, notices)


# -- the tests -----------------------------------------------------------------------------------


def test_alerts_fired_and_resolved_while_alertmanager_is_down_all_reach_it(
    own_stack: LocalStack, tmp_path: Path, record_property: Callable[[str, object], None]
) -> None:
    """Alertmanager stopped for longer than the delivery retries' growing waits while alerts
    fire and resolve; once it is back (with none of its alerts: it keeps them in memory),
    exactly the open ones are active there, and the worker gave up on nothing."""
    settings = outage_settings(own_stack, tmp_path)
    url = own_stack.alertmanager_url
    desk = Desk(settings)
    worker = launch(settings, tmp_path / "worker.log")
    try:
        kept, ended = desk.overdue(), desk.overdue()  # open across the outage / resolved in it

        def active() -> set[str]:
            return {a["labels"]["salespulse_key"] for a in active_alerts(url, OVERDUE["name"])}

        assert eventually(lambda: active() == {kept, ended}, 120) is True
        stack_down(own_stack.settings.stack, services=("alertmanager",))
        down = time.monotonic()
        desk.complete(ended)
        fired, resolved = desk.raise_and_resolve(ALERTMANAGER_OUTAGE - 5, ALERTS_DURING)
        wait_until_raised(settings, desk, 60)
        assert len(undelivered(settings, "alertmanager")) == fired + resolved + 1
        time.sleep(max(0.0, down + ALERTMANAGER_OUTAGE - time.monotonic()))
        stack_up(own_stack.settings.stack)
        outage = time.monotonic() - down
        back = time.monotonic()

        def caught_up() -> bool:
            return active() == set(desk.open) and not undelivered(settings, "alertmanager")

        assert eventually(caught_up, RECOVERY_DEADLINE) is True
        recovery = time.monotonic() - back
        # And so it stays: the open alerts re-posted, the resolved ones not brought back.
        time.sleep(3 * settings.alerts.alertmanager_resend_seconds)
        assert active() == set(desk.open)
        received = samples(url, "alertmanager_alerts_received_total")
        resolves_received = sum(v for k, v in received.items() if ("status", "resolved") in k)
        assert resolves_received >= resolved + 1  # the resolves reached it, not just nothing
        outcomes = delivery_outcomes(settings, "alertmanager")
        assert outcomes["given_up"] == outcomes["dropped"] == 0
        assert outcomes["retried"] > 0
        report(
            record_property,
            outage_s=round(outage),
            fired_during=fired,
            resolved_during=resolved + 1,
            delivered=int(outcomes["delivered"]),
            retried_attempts=int(outcomes["retried"]),
            caught_up_after_s=round(recovery, 1),
            active_after=len(desk.open),
        )
    finally:
        stop_worker(worker.process)


def test_a_webhook_late_failing_or_down_gets_every_notice_once_it_is_back(
    own_stack: LocalStack, tmp_path: Path, record_property: Callable[[str, object], None]
) -> None:
    """The receiver answers too late (it stored the notice, the worker timed out), then 503,
    then is not there at all, while alerts fire and resolve; when it is back it has every
    notice, in order, each taken once plus a copy per attempt it answered too late."""
    receiver = Receiver()
    receiver.set("late")
    settings = outage_settings(own_stack, tmp_path, receiver.url)
    desk = Desk(settings)
    worker = launch(settings, tmp_path / "worker.log")
    try:
        first = desk.overdue()
        # Stored twice at least: the first attempt and the retry after its timeout.
        assert eventually(lambda: len(receiver.stored()) >= 2, 120) is True
        receiver.set("failing")
        away = time.monotonic()
        fired, resolved = desk.raise_and_resolve(FAILING_SECONDS, ALERTS_DURING // 2)
        receiver.set("down")
        more = desk.raise_and_resolve(DOWN_SECONDS, ALERTS_DURING - ALERTS_DURING // 2)
        fired, resolved = fired + more[0], resolved + more[1]
        wait_until_raised(settings, desk, 60)
        outage = time.monotonic() - away
        notices, recovery, duplicates = back_up(receiver, settings)
        late = sum(1 for receipt in receiver.receipts if receipt.answer == "late")
        assert duplicates == late  # the first one's copies, each from an answer past the timeout
        assert {r.key for r in receiver.receipts if r.answer == "late"} == {first}
        refused = sum(1 for receipt in receiver.receipts if receipt.answer == "refused")
        assert refused > 0
        outcomes = delivery_outcomes(settings, "webhook")
        assert outcomes["given_up"] == outcomes["dropped"] == 0
        report(
            record_property,
            outage_s=round(outage),
            fired_during=fired,
            resolved_during=resolved,
            notices=len(notices),
            delivered=len(receiver.stored()),
            duplicates=duplicates,
            refused_attempts=refused,
            caught_up_after_s=round(recovery, 1),
        )
    finally:
        stop_worker(worker.process)
        receiver.set("down")


def test_notices_a_killed_worker_could_not_deliver_are_sent_after_its_restart(
    own_stack: LocalStack, tmp_path: Path, record_property: Callable[[str, object], None]
) -> None:
    """SIGKILL while the webhook's receiver is down: the restarted worker sends what the first
    one never delivered, from the history, including what changed while none ran; no notice is
    lost, and copies stay within what docs/alert-delivery.md allows for a crash."""
    receiver = Receiver()
    receiver.set("up")
    settings = outage_settings(own_stack, tmp_path, receiver.url)
    desk = Desk(settings)
    worker: RunningWorker = launch(settings, tmp_path / "worker-1.log")
    try:
        desk.overdue()
        assert eventually(lambda: len(receiver.stored()) == 1, 120) is True
        receiver.set("down")
        away = time.monotonic()
        fired, resolved = desk.raise_and_resolve(scaled(5, 60), ALERTS_DURING)
        wait_until_raised(settings, desk, 60)
        worker.process.send_signal(signal.SIGKILL)
        worker.process.wait()
        stranded = len(undelivered(settings, "webhook"))
        assert stranded == fired + resolved
        # Completed while no worker runs: the next one raises the resolve.
        open_keys = list(desk.open)
        desk.complete(open_keys[0])
        resolved += 1
        worker = launch(settings, tmp_path / "worker-2.log")
        wait_until_raised(settings, desk, 120)  # it leads the group now
        outage = time.monotonic() - away
        _, recovery, duplicates = back_up(receiver, settings)
        # At most the one notice in flight on the channel when the worker died.
        assert duplicates <= 1
        report(
            record_property,
            outage_s=round(outage),
            fired_during=fired,
            resolved_during=resolved,
            undelivered_at_kill=stranded,
            delivered=len(receiver.stored()),
            duplicates=duplicates,
            caught_up_after_s=round(recovery, 1),
        )
    finally:
        stop_worker(worker.process)
        receiver.set("down")
