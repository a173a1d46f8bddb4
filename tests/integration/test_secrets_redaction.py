"""Every secret setting, configured with a recognisable value, never shows: not in logs at DEBUG,
not in error messages or validation errors, not on /metrics of a worker or of a bridge.

The errors are real ones: a wrong ClickHouse password against the stack's server, settings that
fail to load, a webhook that cannot be reached.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import aiohttp
import pytest
from pydantic import ValidationError

from ingest.generator import make_population, send_to_kafka, simulate, write_directory_yaml
from salespulse.secret_config import install_log_redaction, secret_paths, secret_values
from salespulse.settings import Settings, to_environment
from salespulse.stack_settings import free_ports
from salespulse.worker_process import stop_worker
from sinks.alerts.channel import AlertDeliveryError
from sinks.alerts.dispatch import AlertDispatcher
from tests.alert_samples import fired, sample_alert
from tests.conftest import LocalStack
from tests.integration.pipeline_harness import (
    WEEK_END,
    isolated_settings,
    launch,
)

(CLOSED_PORT,) = free_ports(1)  # nothing listens here: deliveries to it fail
# One recognisable value per secret setting; URLs carry theirs in the user part and the query.
SECRET_ENV = {
    "SALESPULSE_KAFKA__SASL_PASSWORD": "kafka-S3CRET-a1",
    "SALESPULSE_CLICKHOUSE__PASSWORD": "clickhouse-S3CRET-b2",
    "SALESPULSE_PARSING__PHONE_HASH_KEY": "phonekey-S3CRET-c3",
    "SALESPULSE_RECEIVER__SHARED_TOKEN": "receiver-S3CRET-d4",
    "SALESPULSE_RECEIVER__BASIC_USER": "fsuser",
    "SALESPULSE_RECEIVER__BASIC_PASSWORD": "basic-S3CRET-e5",
    "SALESPULSE_RECEIVER__BITRIX24_APPLICATION_TOKEN": "apptoken-S3CRET-f6",
    "SALESPULSE_AMI__USERNAME": "salespulse",
    "SALESPULSE_AMI__SECRET": "ami-S3CRET-g7",
    "SALESPULSE_CDR_TABLE__USER": "cdr-reader",
    "SALESPULSE_CDR_TABLE__PASSWORD": "cdrdb-S3CRET-p16",
    "SALESPULSE_BITRIX24__WEBHOOK_URL": "https://portal.example.com/rest/1/hookS3CRETh8/",
    "SALESPULSE_BITRIX24__APPLICATION_TOKEN": "b24token-S3CRET-i9",
    "SALESPULSE_ALERTS__WEBHOOK_SECRET": "signing-S3CRET-j10",
    "SALESPULSE_ALERTS__WEBHOOK_URL": (
        f"http://hook:hookpass-S3CRET-k11@127.0.0.1:{CLOSED_PORT}/notify?token=hooktok-S3CRET-l12"
    ),
    "SALESPULSE_ALERTS__ALERTMANAGER_URL": (
        f"http://am:ampass-S3CRET-m13@127.0.0.1:{CLOSED_PORT}/?access_token=amtok-S3CRET-n14"
    ),
    "SALESPULSE_REPORTS__SMTP_PASSWORD": "smtp-S3CRET-o15",
}
SECRET_VALUES = [
    value.split("@")[0].split(":")[-1] if "://" in value else value
    for name, value in SECRET_ENV.items()
    if not name.endswith("_USER") and not name.endswith("USERNAME")
] + ["hooktok-S3CRET-l12", "amtok-S3CRET-n14", "hookS3CRETh8"]


def leaked(text: str) -> list[str]:
    return [secret for secret in SECRET_VALUES if secret in text]


def test_every_secret_setting_has_a_recognisable_value_here() -> None:
    assert set(secret_paths(Settings)) <= set(SECRET_ENV)
    assert len(secret_paths(Settings)) == 14


def _command(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SALESPULSE_")}
    return subprocess.run(
        [sys.executable, "-m", "salespulse", "-v", *args],
        env=clean | env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _stack_env(stack: LocalStack) -> dict[str, str]:
    return {k: v for k, v in to_environment(stack.settings).items() if "PASSWORD" not in k}


def test_a_wrong_clickhouse_password_is_reported_without_any_secret(stack: LocalStack) -> None:
    done = _command(_stack_env(stack) | SECRET_ENV, "schema", "apply")

    assert done.returncode == 2
    assert "Authentication failed" in done.stderr or "password" in done.stderr.lower()
    assert leaked(done.stdout + done.stderr) == []


def test_settings_that_fail_to_load_quote_no_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    broken = SECRET_ENV | {
        "SALESPULSE_AMI__USERNAME": "",  # a section with its secret but an invalid user
        "SALESPULSE_CLICKHOUSE__PASWORD": "clickhouse-S3CRET-b2",  # a misspelt name
        "SALESPULSE_ALERTS__WEBHOOK_URL": "ftp://hook:hookpass-S3CRET-k11@x/?token=hooktok-S3CRET-l12",
    }
    done = _command(broken, "directory", "check")
    for name, value in broken.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError) as refused:
        Settings()

    assert done.returncode == 2
    for variable in ("AMI__USERNAME", "CLICKHOUSE__PASWORD", "ALERTS__WEBHOOK_URL"):
        assert f"SALESPULSE_{variable}" in done.stderr
        assert f"SALESPULSE_{variable}" in str(refused.value)
    texts = [done.stdout, done.stderr, str(refused.value), repr(refused.value)]
    assert leaked("\n".join(texts) + refused.value.json() + str(refused.value.errors())) == []


async def _logged(caplog: pytest.LogCaptureFixture, text: str, seconds: float = 10) -> bool:
    """Whether ``text`` is logged within ``seconds``, letting the event loop run meanwhile."""
    for _ in range(int(seconds / 0.05)):
        if text in caplog.text:
            return True
        await asyncio.sleep(0.05)
    return False


@pytest.fixture
def redacted_logging() -> Iterator[None]:
    """This process's log records redacted as ``salespulse`` redacts its own, for one test."""
    factory = logging.getLogRecordFactory()
    try:
        yield
    finally:
        logging.setLogRecordFactory(factory)


async def test_a_failed_webhook_logs_no_secret_and_urls_show_redacted(
    stack: LocalStack,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    redacted_logging: None,
) -> None:
    for name, value in SECRET_ENV.items():
        monkeypatch.setenv(name, value)
    topics = stack.settings.topics.model_copy(update={"alerts": f"secrets{int(time.time())}"})
    settings = Settings().model_copy(update={"kafka": stack.settings.kafka, "topics": topics})
    install_log_redaction(secret_values(settings))
    caplog.set_level(logging.DEBUG)
    dispatcher = AlertDispatcher.from_settings(
        settings.alerts, settings.kafka, settings.topics.alerts, backoff_base=0.05, backoff_cap=0.1
    )
    errors: list[str] = []
    await dispatcher.start()
    try:
        dispatcher.submit([fired(sample_alert())])
        assert await _logged(caplog, "retrying")
        for channel in dispatcher.channels:
            if channel.name in ("webhook", "alertmanager"):
                try:
                    await channel.send(fired(sample_alert()))
                except AlertDeliveryError as exc:
                    errors.append(f"{exc} {exc!r}")
        logging.getLogger("salespulse.test").warning(
            "configured: %s %s", settings.alerts.webhook_url, settings.alerts.alertmanager_url
        )
    finally:
        await asyncio.wait_for(dispatcher.stop(), 10)

    assert len(errors) == 2
    assert leaked(caplog.text + "\n".join(errors)) == []
    assert f"http://***@127.0.0.1:{CLOSED_PORT}/notify?token=***" in caplog.text
    assert f"http://***@127.0.0.1:{CLOSED_PORT}/?access_token=***" in caplog.text


async def _get(url: str) -> str:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return await response.text()


async def test_metrics_and_logs_of_a_worker_show_no_secret(
    stack: LocalStack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The worker inherits the secrets from the environment (its own settings leave them unset);
    # the stack's ClickHouse user has no password, so that one is tried in the test above.
    for name, value in SECRET_ENV.items():
        if name != "SALESPULSE_CLICKHOUSE__PASSWORD":
            monkeypatch.setenv(name, value)
    settings = isolated_settings(stack, tmp_path).model_copy(update={"log_level": "DEBUG"})
    population = make_population(managers=2, departments=1, seed=3)
    write_directory_yaml(population, settings.directory_path)
    traffic = simulate(population, WEEK_END - timedelta(days=1), WEEK_END, seed=3)
    worker = launch(settings, tmp_path / "worker.log")
    base = f"http://127.0.0.1:{settings.worker.web_port}"
    try:
        await send_to_kafka(traffic, settings.kafka, settings.topics)
        await worker.wait_until_durable()
        pages = [await _get(f"{base}{path}") for path in ("/metrics", "/healthz", "/readyz", "/")]
    finally:
        assert stop_worker(worker.process) in (0, -15)

    assert "salespulse_events_stored_total" in pages[0]
    assert leaked("\n".join(pages)) == []
    log = (tmp_path / "worker.log").read_text()
    assert "DEBUG" in log
    assert leaked(log) == []


def _bridge_env(stack: LocalStack, port: int) -> dict[str, str]:
    return _stack_env(stack) | SECRET_ENV | {"SALESPULSE_RECEIVER__PORT": str(port)}


async def test_metrics_and_logs_of_a_bridge_show_no_secret(
    stack: LocalStack, tmp_path: Path
) -> None:
    receiver_port, metrics_port = free_ports(2)
    env = _bridge_env(stack, receiver_port)
    del env["SALESPULSE_CLICKHOUSE__PASSWORD"]  # the stack's has none; empty would be refused
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SALESPULSE_")}
    log_path = tmp_path / "receiver.log"
    with log_path.open("w") as log:
        # Popen returns at once; the test then only talks to it over HTTP.
        bridge = subprocess.Popen(  # noqa: ASYNC220
            [
                sys.executable,
                "-m",
                "salespulse",
                "-v",
                "receive",
                "--metrics-port",
                str(metrics_port),
            ],
            env=clean | env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{receiver_port}"
    try:
        statuses = []
        async with aiohttp.ClientSession() as session:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                try:
                    async with session.get(f"{base}/healthz") as response:
                        if response.status == 200:
                            break
                except aiohttp.ClientError:
                    await asyncio.sleep(0.2)
            for token in ("wrong-token", SECRET_ENV["SALESPULSE_RECEIVER__SHARED_TOKEN"]):
                async with session.post(
                    f"{base}/ingest/chat/chat-session-json",
                    data=b'{"session_id": "s-1"}\n',
                    headers={"Authorization": f"Bearer {token}"},
                ) as response:
                    statuses.append(response.status)
        metrics = await _get(f"http://127.0.0.1:{metrics_port}/metrics")
    finally:
        bridge.send_signal(signal.SIGTERM)
        bridge.wait(timeout=30)

    assert statuses[0] == 401
    assert statuses[1] in (200, 202)
    assert "salespulse_" in metrics
    assert leaked(metrics) == []
    assert leaked(log_path.read_text()) == []
