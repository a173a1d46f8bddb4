"""The bridges as an operator starts them: ``salespulse tail`` and ``salespulse receive`` as
processes configured by environment variables, stopped by SIGTERM."""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
from aiokafka import AIOKafkaConsumer
from pydantic import SecretStr

from ingest.ami_settings import AmiSettings
from salespulse.sections import KafkaSettings, TopicSettings
from salespulse.settings import Settings, to_environment
from salespulse.stack_settings import free_ports
from salespulse.topics import ensure_topics
from tests.conftest import LocalStack

_runs = itertools.count(1)
CDR = (
    '"","79161234567","101","from-trunk","""Client"" <79161234567>","SIP/provider-0000001{n}",'
    '"SIP/101-0000002{n}","Dial","SIP/101,30","2026-11-26 09:15:0{n}","2026-11-26 09:15:09",'
    '"2026-11-26 09:17:40",158,151,"ANSWERED","DOCUMENTATION"\n'
)


def own_topics(settings: Settings) -> Settings:
    run = f"bridge{next(_runs)}_{int(time.time())}"
    topics = TopicSettings(
        raw_pbx=f"{run}.pbx", raw_chat=f"{run}.chat", raw_crm=f"{run}.crm", dead_letter=f"{run}.dl"
    )
    return settings.model_copy(update={"topics": topics})


def start(command: str, settings: Settings, log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "salespulse", command],
            env={**os.environ, **to_environment(settings)},
            stdout=out,
            stderr=subprocess.STDOUT,
        )


async def read_topic(settings: Settings, topic: str, lines: int) -> list[tuple[bytes, bytes]]:
    """(value, sp-format) of the topic's messages, once they hold ``lines`` lines in all."""
    consumer = AIOKafkaConsumer(
        topic, **settings.kafka.aiokafka_options(), auto_offset_reset="earliest"
    )
    await consumer.start()
    seen: list[tuple[bytes, bytes]] = []
    try:
        deadline = time.monotonic() + 30
        while sum(v.count(b"\n") + 1 for v, _ in seen) < lines and time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=300)).values():
                seen += [(r.value or b"", dict(r.headers)["sp-format"]) for r in records]
    finally:
        await consumer.stop()
    return seen


def stop(process: subprocess.Popen[bytes], log: Path) -> None:
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 0, log.read_text()


async def test_tail_ships_appended_lines_and_stops_cleanly_on_sigterm(
    stack: LocalStack, tmp_path: Path
) -> None:
    master = tmp_path / "Master.csv"
    master.write_text(CDR.format(n=1))
    settings = own_topics(stack.settings)
    tailer = settings.tailer.model_copy(
        update={"path": master, "state_dir": tmp_path / "state", "poll_interval_seconds": 0.1}
    )
    settings = settings.model_copy(update={"tailer": tailer})
    await ensure_topics(settings.kafka, settings.topics)
    log = tmp_path / "tail.log"
    process = start("tail", settings, log)
    with master.open("a") as out:
        out.write(CDR.format(n=2))
    seen = await read_topic(settings, settings.topics.raw_pbx, 2)
    stop(process, log)
    assert b"\n".join(value for value, _ in seen) + b"\n" == master.read_bytes()
    assert {fmt for _, fmt in seen} == {b"asterisk-cdr-csv"}
    assert list((tmp_path / "state").iterdir()), "no saved position"


async def test_receive_accepts_an_authorised_post_only(stack: LocalStack, tmp_path: Path) -> None:
    settings = own_topics(stack.settings)
    (port,) = free_ports(1)
    receiver = settings.receiver.model_copy(
        update={"port": port, "shared_token": SecretStr("s3cret-token")}
    )
    settings = settings.model_copy(update={"receiver": receiver})
    await ensure_topics(settings.kafka, settings.topics)
    log = tmp_path / "receive.log"
    process = start("receive", settings, log)
    url = f"http://127.0.0.1:{port}"
    body = b'{"variables": {"uuid": "u-1"}}'
    async with aiohttp.ClientSession() as http:
        for _ in range(100):  # until it listens
            try:
                async with http.get(f"{url}/healthz") as response:
                    if response.status == 200:
                        break
            except aiohttp.ClientConnectionError:
                await asyncio.sleep(0.1)
        target = f"{url}/ingest/freeswitch/json-cdr"
        async with http.post(target, data=body) as response:
            assert response.status == 401
        headers = {"Authorization": "Bearer s3cret-token"}
        async with http.post(target, data=body, headers=headers) as response:
            assert response.status == 200
    seen = await read_topic(settings, settings.topics.raw_pbx, 1)
    stop(process, log)
    assert seen == [(body, b"freeswitch-json-cdr")]
    assert "s3cret-token" not in log.read_text()


def test_ami_without_credentials_is_a_clear_one_line_error(stack: LocalStack) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "salespulse", "ami"],
        env={**os.environ, **to_environment(stack.settings)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "salespulse ami: set SALESPULSE_AMI__USERNAME and SALESPULSE_AMI__SECRET "
        "(and __HOST, __PORT)"
    )


def test_ami_started_before_the_broker_waits_for_it(tmp_path: Path) -> None:
    # Asterisk hosts and brokers boot in either order: no traceback, no exit, a retry logged.
    (nobody,) = free_ports(1)
    settings = Settings(
        kafka=KafkaSettings(bootstrap_servers=f"127.0.0.1:{nobody}"),
        ami=AmiSettings(username="bridge", secret=SecretStr("ami-secret")),
    )
    log = tmp_path / "ami.log"
    process = start("ami", settings, log)
    try:
        # A second attempt fails too, and still nothing exits: both counted in the log, not
        # guessed from how long two attempts take.
        deadline = time.monotonic() + 60
        while log.read_text().count("cannot reach Kafka, retrying") < 2:
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        assert process.poll() is None, log.read_text()
    finally:
        stop(process, log)
    assert "Traceback" not in log.read_text()
