"""The demo's alerting part: a round-the-clock duty desk, an overdue task, and the alert read
back from the local Alertmanager.

Generated sales teams work office hours in their own time zones, so whether any of them is at
work when someone runs the demo depends on the hour and the weekday. The duty desk works around
the clock, every day: an overdue task of its manager fires whatever the time, and the demo shows
the alert arriving in Alertmanager exactly as on-call people would receive it.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.parse
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from ingest.crm_records import crm_event_record
from ingest.raw_producer import RawProducer, RawRecordOut
from salespulse.locations import packaged
from salespulse.settings import Settings

DUTY_DEPARTMENT = {"id": "duty", "name": "Duty desk", "timezone": "Europe/Moscow"}
DUTY_MANAGER = {
    "id": "duty-1",
    "name": "Olga Dezhurnaya",
    "department": "duty",
    "identities": [
        {"family": "pbx", "id": "900"},
        {"family": "chat", "id": "op-900"},
        {"family": "crm", "id": "u-900"},
    ],
}
TASK_RULE = "task_overdue"


def add_duty_desk(directory_path: Path) -> None:
    """Add the duty desk and its manager to a generated directory file."""
    data = yaml.safe_load(directory_path.read_text(encoding="utf-8"))
    data["departments"].append(DUTY_DEPARTMENT)
    data["managers"].append(DUTY_MANAGER)
    directory_path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")


def write_alert_files(demo_dir: Path) -> tuple[Path, Path]:
    """The example calendar and rules, with the duty desk working 24/7 and overdue tasks
    judged for it alone (the generated history holds hundreds of never-closed tasks)."""
    examples = packaged("salespulse", "examples")
    calendar_example = examples.joinpath("calendar.example.yaml").read_text(encoding="utf-8")
    calendar = yaml.safe_load(calendar_example)
    every_day = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
    calendar["departments"] = {
        "duty": {"workdays": every_day, "hours": "00:00-24:00", "lunch": None}
    }
    calendar_path = demo_dir / "calendar.yaml"
    calendar_path.write_text(yaml.safe_dump(calendar, sort_keys=False), encoding="utf-8")
    rules = yaml.safe_load(examples.joinpath("alerts.example.yaml").read_text(encoding="utf-8"))
    for rule in rules["rules"]:
        if rule["kind"] == "overdue_task":
            rule["departments"] = ["duty"]
            rule["grace"] = "0m"
    rules_path = demo_dir / "alerts.yaml"
    rules_path.write_text(yaml.safe_dump(rules, sort_keys=False), encoding="utf-8")
    return calendar_path, rules_path


def overdue_task_record(now: datetime) -> tuple[str, RawRecordOut]:
    """A CRM task of the duty manager created 20 minutes ago, due 5 minutes ago."""
    task_id = f"demo-task-{now:%H%M%S}"
    due = (now - timedelta(minutes=5)).isoformat()
    record = crm_event_record(
        f"{task_id}:created",
        "task.created",
        "u-900",
        now - timedelta(minutes=20),
        entity=task_id,
        due_at=due,
    )
    return task_id, record


async def send_overdue_task(settings: Settings) -> str:
    task_id, record = overdue_task_record(datetime.now(UTC).replace(microsecond=0))
    async with RawProducer(settings.kafka, settings.topics) as producer:
        await producer.send(record)
    return task_id


def alertmanager_alerts(url: str, alertname: str = "") -> list[dict[str, Any]]:
    """The active alerts in Alertmanager, of one alert name or all."""
    wanted = {"filter": f'alertname="{alertname}"'} if alertname else {}
    query = urllib.parse.urlencode({**wanted, "active": "true"})
    with urllib.request.urlopen(f"{url}/api/v2/alerts?{query}", timeout=5) as response:  # noqa: S310 - our own http URL
        alerts: list[dict[str, Any]] = json.loads(response.read())
    return alerts


def wait_for_alert(url: str, task_id: str, timeout_seconds: float) -> dict[str, Any] | None:
    """The Alertmanager alert about ``task_id``, once it arrived; None after the timeout."""
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        for alert in alertmanager_alerts(url, TASK_RULE):
            if task_id in alert.get("annotations", {}).get("summary_en", ""):
                return alert
        time.sleep(0.5)
    return None


def show_alert_in_alertmanager(settings: Settings, timeout_seconds: float = 60.0) -> bool:
    """Send the overdue task, wait for its alert in Alertmanager and print it."""
    url = settings.alerts.alertmanager_url
    sent = time.monotonic()
    task_id = asyncio.run(send_overdue_task(settings))
    print(f"\nsent an overdue CRM task ({task_id}) of the duty desk; waiting for its alert ...")
    alert = wait_for_alert(url, task_id, timeout_seconds)
    if alert is None:
        print(f"no alert in Alertmanager within {timeout_seconds:.0f} s", flush=True)
        return False
    labels, annotations = alert["labels"], alert["annotations"]
    print(f"Alertmanager {url} has it after {time.monotonic() - sent:.1f} s:")
    print(f"  {labels['alertname']} [{labels['severity']}] since {alert['startsAt']}")
    print(f"  {annotations['summary_en']}")
    print(f"  {annotations['summary_ru']}")
    others = [a for a in alertmanager_alerts(url) if a["labels"]["alertname"] != TASK_RULE]
    if others:
        print(f"({len(others)} more alerts about the generated teams are active there too)")
    print(f"see them all at {url}/#/alerts or with: salespulse alerts list")
    return True
