"""The ``salespulse`` command as a user types it, against the test session's real stack."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest

from processors.parsers import AsteriskCdrCsvParser, build_parsers
from processors.pipeline import BatchProcessor, RawMessage
from processors.privacy import PhoneProtector
from salespulse.cli import main
from salespulse.directory import load_directory
from salespulse.models import SourceRef
from salespulse.sections import ParsingSettings
from salespulse.settings import Settings, to_environment
from sinks.clickhouse.client import NativeClickHouse
from sinks.clickhouse.sink import ClickHouseSink
from tests.conftest import LocalStack


@pytest.fixture
def cli_env(stack: LocalStack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    database = f"cli_{tmp_path.name.replace('-', '_')[-40:]}"
    settings = stack.settings.model_copy(
        update={"clickhouse": stack.settings.clickhouse.model_copy(update={"database": database})}
    )
    for name, value in to_environment(settings).items():
        monkeypatch.setenv(name, value)
    return settings


def test_schema_apply_reports_what_it_did_and_is_idempotent(
    cli_env: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["schema", "apply"]) == 0
    assert "applied now: 0001_events" in capsys.readouterr().out
    assert main(["schema", "apply"]) == 0
    assert "applied now: nothing" in capsys.readouterr().out


def test_generate_to_files_writes_every_source_and_a_loadable_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "generated"
    argv = ["generate", "--to", "files", "--out", str(out), "--managers", "6", "--days", "3"]
    assert main(argv) == 0
    assert "records and the directory" in capsys.readouterr().out
    directory = load_directory(out / "directory.yaml")
    assert len(directory.managers) == 6
    for name in ("Master.csv", "chat-sessions.jsonl", "crm-events.jsonl", "expected.json"):
        assert (out / name).stat().st_size > 0, name
    first_line = (out / "Master.csv").read_bytes().splitlines()[0]
    source = SourceRef("asterisk-cdr-csv", "file", 0, 0)
    assert AsteriskCdrCsvParser().parse(first_line, source)  # a real Asterisk cdr_csv line


def test_summary_lists_every_manager_even_with_no_activity(
    cli_env: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["schema", "apply"]) == 0
    capsys.readouterr()
    assert main(["summary", "--date", "2026-11-20"]) == 0
    out = capsys.readouterr().out
    assert "Anna Ivanova" in out  # the example directory's managers
    assert "Pavel Petrov" in out
    assert out.strip().splitlines()[-1].split()[:2] == ["TOTAL", "0"]


def test_user_errors_are_one_line_and_exit_2(
    cli_env: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    broken = tmp_path / "directory.yaml"
    broken.write_text("departments: [\n")
    monkeypatch.setenv("SALESPULSE_DIRECTORY_PATH", str(broken))
    assert main(["summary"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("salespulse summary: directory YAML does not parse: line 2")
    assert len(err.strip().splitlines()) == 1

    assert main(["summary", "--date", "last tuesday"]) == 2
    assert "--date must be" in capsys.readouterr().err


def test_unreachable_clickhouse_is_reported_not_raised(
    cli_env: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SALESPULSE_CLICKHOUSE__PORT", "1")
    assert main(["schema", "apply"]) == 2
    assert "ClickHouse unreachable" in capsys.readouterr().err
    # As a user sees it, in a process of its own: one line, no traceback from the driver.
    done = subprocess.run(
        [sys.executable, "-m", "salespulse", "summary"],
        env={**os.environ, **to_environment(Settings())},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        "salespulse summary: ClickHouse unreachable: Code: 210. Connection refused (127.0.0.1:1)"
    ]


def unknown_calls() -> list[tuple[object, ...]]:
    """Rows for two calls to an IVR number nobody holds and one to Ivanova's extension 101."""
    line = (
        '"","79160000000","{dst}","from-trunk","","SIP/provider-0000000{n}","{dstchannel}",'
        '"Playback","hello","2026-11-20 09:00:0{n}","2026-11-20 09:00:0{n}",'
        '"2026-11-20 09:00:1{n}",10,10,"ANSWERED","DOCUMENTATION"'
    )
    lines = [
        line.format(dst="74951234567", dstchannel="", n=1),
        line.format(dst="74951234567", dstchannel="", n=2),
        line.format(dst="101", dstchannel="SIP/101-00000009", n=3),
    ]
    processor = BatchProcessor(
        build_parsers(ParsingSettings()),
        lambda: load_directory(Settings().directory_path),
        PhoneProtector(None),
        max_message_bytes=1 << 20,
    )
    message = RawMessage("t", 0, 0, [("sp-format", b"asterisk-cdr-csv")], "\n".join(lines).encode())
    return processor.process([message]).rows


def test_directory_check_and_unknown_identities(
    cli_env: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["directory", "check"]) == 0
    assert "2 departments, 2 managers, 7 identities: OK" in capsys.readouterr().out

    assert main(["schema", "apply"]) == 0
    assert main(["directory", "unknown"]) == 0
    assert "every identity in ClickHouse is in the directory" in capsys.readouterr().out

    # Two calls to a DID nobody holds, one to a known extension.
    client = NativeClickHouse(cli_env.clickhouse)
    try:
        asyncio.run(ClickHouseSink(lambda: client).write_events(unknown_calls()))
    finally:
        client.close()
    assert main(["directory", "unknown"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    # A number as identity is listed as stored: masked (no hash key here), never in clear.
    assert lines[1].split()[:3] == ["pbx", "*********67", "2"]
    assert len(lines) == 2


def test_directory_publish_puts_a_checked_change_on_the_topic(
    cli_env: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    topic = f"directory-{tmp_path.name}"
    monkeypatch.setenv("SALESPULSE_TOPICS__DIRECTORY", topic)
    newcomer = tmp_path / "newcomer.yaml"
    newcomer.write_text(
        "id: smirnova\nname: Olga Smirnova\ndepartment: msk\n"
        "identities: [{family: pbx, id: '105'}]\n"
    )
    assert main(["directory", "publish", "--manager", str(newcomer)]) == 0
    assert capsys.readouterr().out.strip() == f"published manager:smirnova on {topic}"

    # Extension 101 is Ivanova's in the file: the same extension for a newcomer is refused.
    newcomer.write_text("id: smirnova\ndepartment: msk\nidentities: [{family: pbx, id: '101'}]\n")
    assert main(["directory", "publish", "--manager", str(newcomer)]) == 2
    assert "ivanova" in capsys.readouterr().err

    assert main(["directory", "publish"]) == 2
    assert "needs --manager" in capsys.readouterr().err


def test_stack_status_lists_seaweedfs_for_a_durable_broker_only(
    cli_env: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["stack", "status"]) == 0
    assert "seaweedfs" not in capsys.readouterr().out  # the session's broker keeps to memory

    assert main(["stack", "status", "--durable"]) == 0
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()}
    assert "stopped" in lines["seaweedfs"]
    assert "not answering" in lines["seaweedfs"]
    assert f"http://127.0.0.1:{cli_env.stack.seaweedfs_s3_port}" in lines["seaweedfs"]
