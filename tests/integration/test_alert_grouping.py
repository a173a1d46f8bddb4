"""Three managers of one department go idle: the on-call person gets one message, not three.

The alerts come from the alert engine on a controlled clock (the unit tests' world, three
managers silent from 09:00), go through salespulse's Alertmanager channel to a real
Alertmanager 0.25 started with the shipped ``deploy/alertmanager/alertmanager.yml`` and its
``salespulse.tmpl`` (only the mail relay and the wait before a group's first message changed),
which mails a real SMTP server (aiosmtpd).
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiosmtpd.controller import Controller

from salespulse.alert_model import AlertState
from salespulse.sections import StackSettings
from salespulse.stack_alertmanager import (
    alertmanager_answers,
    alertmanager_argv,
    alertmanager_config_path,
    find_alertmanager,
)
from salespulse.stack_settings import free_ports
from sinks.alerts import AlertDispatcher, AlertmanagerChannel, RetryPolicy
from tests.smtp_inbox import Inbox
from tests.unit.alert_world import TODAY, World, at

SHIPPED = Path(__file__).resolve().parents[2] / "deploy" / "alertmanager"
GROUP_WAIT_SECONDS = 2
THREE_IN_MOSCOW = """
departments:
  - {id: msk, name: Moscow sales, timezone: Europe/Moscow}
managers:
  - {id: ivanova, name: Anna Ivanova, department: msk, identities: []}
  - {id: petrov, name: Pavel Petrov, department: msk, role: telesales, identities: []}
  - {id: sidorova, name: Maria Sidorova, department: msk, identities: []}
"""


@pytest.fixture
def inbox() -> Iterator[tuple[Inbox, int]]:
    mailbox = Inbox()
    (port,) = free_ports(1)
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield mailbox, port
    finally:
        controller.stop()


@pytest.fixture
def alertmanager(inbox: tuple[Inbox, int], tmp_path: Path) -> Iterator[str]:
    """The shipped config, mailing the local SMTP server, run by a private Alertmanager."""
    _, smtp_port = inbox
    config: dict[str, Any] = yaml.safe_load((SHIPPED / "alertmanager.yml").read_text())
    config["global"]["smtp_smarthost"] = f"127.0.0.1:{smtp_port}"
    config["global"]["smtp_require_tls"] = False
    config["templates"] = [str(SHIPPED / "salespulse.tmpl")]
    config["route"]["group_wait"] = f"{GROUP_WAIT_SECONDS}s"
    (port,) = free_ports(1)
    settings = StackSettings(state_dir=tmp_path, alertmanager_port=port)
    path = alertmanager_config_path(settings)
    (path.parent / "data").mkdir(parents=True)
    path.write_text(yaml.safe_dump(config))
    log = (tmp_path / "alertmanager.log").open("wb")
    process = subprocess.Popen(
        alertmanager_argv(find_alertmanager(), settings),
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=tmp_path,
    )
    try:
        deadline = time.monotonic() + 30
        while not alertmanager_answers(settings):
            assert process.poll() is None, (tmp_path / "alertmanager.log").read_text()
            assert time.monotonic() < deadline, "Alertmanager did not start"
            time.sleep(0.2)
        yield settings.alertmanager_url
    finally:
        process.terminate()
        process.wait(10)
        log.close()


async def test_three_idle_managers_of_one_department_are_one_message(
    alertmanager: str, inbox: tuple[Inbox, int]
) -> None:
    mailbox, _ = inbox
    # Nobody calls from 09:00: 45 idle working minutes later each of the three is inactive.
    world = World(directory_text=THREE_IN_MOSCOW)
    notices = world.run(at(TODAY, "09:00"), at(TODAY, "10:00"))
    idle = [n for n in notices if n.alert.rule == "idle" and n.state is AlertState.FIRING]
    assert sorted(n.alert.manager_id for n in idle) == ["ivanova", "petrov", "sidorova"]

    # Live, as a worker sends them: Alertmanager flushes a new group at once when its first
    # alert started longer than the group's wait ago, so the world's past is moved to now.
    shift = datetime.now(UTC).replace(microsecond=0) - idle[0].at
    live = [
        replace(
            n,
            at=n.at + shift,
            alert=replace(n.alert, since=n.alert.since + shift, fired_at=n.alert.fired_at + shift),
        )
        for n in idle
    ]
    channel = AlertmanagerChannel(alertmanager, resend_seconds=60)
    async with AlertDispatcher([channel], backoff=RetryPolicy(base=0.05, cap=0.2)) as dispatcher:
        dispatcher.submit(live)
        await asyncio.wait_for(dispatcher.drain(), 10)
        await mailbox.first(30)
        # Longer than the group's wait again: a message per manager would have come by now.
        await asyncio.sleep(GROUP_WAIT_SECONDS + 2)

    assert len(mailbox.messages) == 1
    _, recipients, message = mailbox.messages[0]
    assert recipients == ["rop@example.com"]
    assert message["Subject"] == (
        "3 managers of Moscow sales: idle / Moscow sales: idle, менеджеров: 3"
    )
    body = message.get_body(("plain",))
    assert body is not None
    text = body.get_content()
    for notice in idle:
        assert notice.alert.summary_en in text
        assert notice.alert.summary_ru in text


def test_amtool_accepts_the_shipped_configuration_and_its_templates() -> None:
    tool = shutil.which("amtool")
    assert tool, "amtool is missing: install Debian's prometheus-alertmanager (./dev.sh does)"
    done = subprocess.run(
        [tool, "check-config", "alertmanager.yml"],
        cwd=SHIPPED,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 templates" in done.stdout
