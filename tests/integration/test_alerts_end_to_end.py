"""Alerting as a user runs it: a worker process, the local broker, ClickHouse and Alertmanager.

A round-the-clock duty desk (so the test does not depend on the hour it runs at): an overdue
CRM task must reach the real Alertmanager and the alert history, its completion must resolve it,
a restarted worker must not fire it again, and a rule added to the file must take effect
without a restart.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import urllib.parse
import urllib.request
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import yaml

from ingest.crm_records import crm_event_record
from ingest.raw_producer import RawProducer, RawRecordOut
from queries.alert_history import recent_notices
from salespulse.alert_settings import AlertsSettings
from salespulse.directory_publish import publish_absence_from_file, publish_deletion
from salespulse.settings import Settings
from salespulse.worker_process import stop_worker
from sinks.clickhouse.alert_history import record_notices
from sinks.clickhouse.client import NativeClickHouse
from sinks.clickhouse.migrations import apply_migrations
from tests.alert_samples import fired, resolved, sample_alert
from tests.conftest import LocalStack
from tests.integration.pipeline_harness import eventually, isolated_settings, launch

DIRECTORY = {
    "departments": [{"id": "desk", "name": "Duty desk", "timezone": "Asia/Vladivostok"}],
    "managers": [
        {
            "id": "kim",
            "name": "Vera Kim",
            "department": "desk",
            "identities": [{"family": "crm", "id": "u-kim"}],
        }
    ],
}
CALENDAR = {
    "departments": {
        "desk": {"workdays": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
                 "hours": "00:00-24:00", "lunch": None}
    }
}  # fmt: skip
ZONE = ZoneInfo("Asia/Vladivostok")
OVERDUE = {"name": "late_task", "kind": "overdue_task", "grace": "0m", "severity": "critical"}
OFFERS = {"name": "offer_spree", "kind": "threshold", "metric": "offers", "window": "1h",
          "at_least": 2, "resolve_hold": "1h"}  # fmt: skip


def write_rules(path: Path, *rules: dict[str, Any]) -> None:
    path.write_text(yaml.safe_dump({"rules": list(rules)}))


def alerting_settings(stack: LocalStack, tmp_path: Path) -> Settings:
    settings = isolated_settings(stack, tmp_path)
    settings.directory_path.write_text(yaml.safe_dump(DIRECTORY))
    (tmp_path / "calendar.yaml").write_text(yaml.safe_dump(CALENDAR))
    write_rules(tmp_path / "alerts.yaml", OVERDUE)
    alerts = AlertsSettings(
        rules_path=tmp_path / "alerts.yaml",
        calendar_path=tmp_path / "calendar.yaml",
        alertmanager_url=stack.alertmanager_url,
        alertmanager_resend_seconds=2,
        dashboard_url="http://dashboards.example",
    )
    return settings.model_copy(update={"alerts": alerts})


async def send(settings: Settings, *records: RawRecordOut) -> None:
    async with RawProducer(settings.kafka, settings.topics) as producer:
        await producer.send_many(records)


def overdue_task(due: datetime) -> tuple[str, RawRecordOut]:
    """A task of Kim's with a deadline of ``due``, created an hour before it."""
    task = f"T-{time.time_ns()}"
    due = due.replace(microsecond=0)
    record = crm_event_record(
        f"{task}:c", "task.created", "u-kim", due - timedelta(hours=1),
        entity=task, due_at=due.isoformat(),
    )  # fmt: skip
    return task, record


def task_completed(task: str) -> RawRecordOut:
    """The completion of Kim's ``task``, now: its overdue alert resolves."""
    return crm_event_record(
        f"{task}:done", "task.completed", "u-kim", datetime.now(UTC), entity=task
    )


def active_alerts(url: str, alertname: str) -> list[dict[str, Any]]:
    query = urllib.parse.urlencode({"filter": f'alertname="{alertname}"', "active": "true"})
    with urllib.request.urlopen(f"{url}/api/v2/alerts?{query}", timeout=5) as response:
        found: list[dict[str, Any]] = json.loads(response.read())
    return found


def history(settings: Settings) -> list[tuple[str, str]]:
    client = NativeClickHouse(settings.clickhouse)
    try:
        since = datetime.now(UTC) - timedelta(hours=1)
        return sorted((n.alert.key, str(n.state)) for n in recent_notices(client, since, 1000))
    finally:
        client.close()


def test_an_overdue_task_reaches_alertmanager_and_resolves_when_done(
    stack: LocalStack, tmp_path: Path
) -> None:
    settings = alerting_settings(stack, tmp_path)
    now = datetime.now(UTC).replace(microsecond=0)
    # Its record arrives 5 minutes after the deadline: late, but not so late as to be a task
    # from the past (those are summed up per department instead, docs/alerts.md).
    task, created = overdue_task(now - timedelta(minutes=5))
    worker = launch(settings, tmp_path / "worker.log")
    try:
        asyncio.run(send(settings, created))

        def ours() -> list[dict[str, Any]]:
            found = active_alerts(stack.alertmanager_url, "late_task")
            return [a for a in found if a["labels"]["salespulse_key"] == f"late_task/task/{task}"]

        (alert,) = eventually(ours)
        assert alert["labels"]["severity"] == "critical"
        assert alert["labels"]["manager"] == "kim"
        assert alert["labels"]["department"] == "desk"
        summary = alert["annotations"]["summary_en"]
        assert summary.startswith("Vera Kim (Duty desk): task ")
        assert task in summary
        # The deadline in the manager's own time (Vladivostok, UTC+10).
        due_local = (now - timedelta(minutes=5)).astimezone(ZONE)
        assert f"{due_local:%d.%m %H:%M}" in summary
        assert "просрочена" in alert["annotations"]["summary_ru"]
        assert alert["generatorURL"] == "http://dashboards.example/managers/kim"

        asyncio.run(send(settings, task_completed(task)))
        assert eventually(lambda: not ours()), "the alert stayed active after the completion"
        assert history(settings) == [
            (f"late_task/task/{task}", "firing"),
            (f"late_task/task/{task}", "resolved"),
        ]
    finally:
        stop_worker(worker.process)


def test_a_restart_does_not_fire_again_and_new_rules_apply_without_one(
    stack: LocalStack, tmp_path: Path
) -> None:
    settings = alerting_settings(stack, tmp_path)
    client = NativeClickHouse(settings.clickhouse)
    apply_migrations(client)
    client.close()
    now = datetime.now(UTC).replace(microsecond=0)
    offers = [
        crm_event_record(f"offer-{i}", "offer.sent", "u-kim", now - timedelta(minutes=i))
        for i in range(3)
    ]
    key = "offer_spree/manager/kim"
    worker = launch(settings, tmp_path / "worker.log")
    try:
        asyncio.run(send(settings, *offers))
        time.sleep(3)
        assert history(settings) == [], "offer_spree is not in the rules yet"
        write_rules(tmp_path / "alerts.yaml", OVERDUE, OFFERS)  # picked up at the next tick
        assert eventually(lambda: history(settings)) == [(key, "firing")]
    finally:
        stop_worker(worker.process)
    worker = launch(settings, tmp_path / "worker-2.log")
    try:
        # The condition still holds. The first worker's last post to Alertmanager expires 8 s
        # after it (4 x the 2 s resend), before the new worker leads the group: active again
        # means the new leader restored the open alert from the history and re-posts it...
        time.sleep(10)
        assert eventually(lambda: active_alerts(stack.alertmanager_url, "offer_spree"))
        time.sleep(3)
        # ... without firing it a second time.
        assert history(settings) == [(key, "firing")]
    finally:
        stop_worker(worker.process)


def test_an_absence_published_on_the_directory_topic_keeps_alerts_away(
    stack: LocalStack, tmp_path: Path
) -> None:
    settings = alerting_settings(stack, tmp_path)
    topic = settings.topics.directory
    today = datetime.now(ZONE).date()
    absence = tmp_path / "vacation.yaml"
    absence.write_text(yaml.safe_dump({"manager": "kim", "from": str(today), "to": str(today),
                                       "kind": "vacation"}))  # fmt: skip
    asyncio.run(
        publish_absence_from_file(
            settings.kafka, topic, absence, "hr-17", directory_path=settings.directory_path
        )
    )
    task, created = overdue_task(datetime.now(UTC) - timedelta(minutes=10))
    worker = launch(settings, tmp_path / "worker.log")
    try:
        asyncio.run(send(settings, created))
        asyncio.run(worker.wait_until_durable())
        time.sleep(5)  # several evaluations with the task overdue and Kim on vacation
        assert history(settings) == []
        asyncio.run(publish_deletion(settings.kafka, topic, "absence", "hr-17"))
        # Back from vacation (the HR system withdrew it): the overdue task is told at once.
        assert eventually(lambda: history(settings)) == [(f"late_task/task/{task}", "firing")]
    finally:
        stop_worker(worker.process)


class _Webhook(BaseHTTPRequestHandler):
    """A webhook receiver that keeps the notice ids it was sent, in order."""

    received: list[tuple[str, str]]

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.received.append((body["notice_id"], body["state"]))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:  # quiet test output
        pass


def test_notices_recorded_but_never_delivered_are_sent_by_the_next_leader(
    stack: LocalStack, tmp_path: Path
) -> None:
    """A leader that died between recording notices and delivering them: the next one sends
    them, once, with their own ids; the one after it sends nothing again."""
    received: list[tuple[str, str]] = []
    handler = type("Webhook", (_Webhook,), {"received": received})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    settings = alerting_settings(stack, tmp_path)
    alerts = settings.alerts.model_copy(
        update={"webhook_url": f"http://127.0.0.1:{server.server_port}/hook"}
    )
    settings = settings.model_copy(update={"alerts": alerts})
    client = NativeClickHouse(settings.clickhouse)
    apply_migrations(client)
    alert = sample_alert(datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=20))
    notices = [fired(alert), resolved(alert)]
    record_notices(client, notices)
    client.close()
    expected = [(n.notice_id, str(n.state)) for n in notices]
    try:
        for run in (1, 2):
            worker = launch(settings, tmp_path / f"worker-{run}.log")
            try:
                assert eventually(lambda: len(received) >= 2) is True
                time.sleep(3)  # anything sent twice would be here by now
                assert received == expected
            finally:
                stop_worker(worker.process)
    finally:
        server.shutdown()
        server.server_close()
