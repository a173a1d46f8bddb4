"""``salespulse import``: a PBX's history, from files, counted once however often it is imported.

A generated week is written as the files its sources would write (Master.csv, JSON Lines of
chats and CRM events), imported twice through the real broker, and counted by a real worker:
every manager's numbers equal the generator's truth, and the second import changes nothing.
The records arrive byte for byte as the files hold them, marked as a backfill, so a week-old
CDR is counted, not dead-lettered as late.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ingest.generator import Traffic, write_files
from processors.parsers import build_parsers
from salespulse.history_import import ImportRefused, choose_format, file_payloads, import_files
from salespulse.models import BACKFILL_HEADER
from salespulse.settings import Settings
from salespulse.worker_process import stop_worker
from tests.conftest import LocalStack
from tests.integration.pipeline_harness import (
    assert_counted_once,
    everything_on,
    launch,
    week_settings,
)

SOURCE_FILES = ("Master.csv", "chat-sessions.jsonl", "crm-events.jsonl")


def quiet(_: str) -> None:
    pass


async def test_a_week_imported_twice_is_counted_once(
    stack: LocalStack, tmp_path: Path, week_traffic: tuple[Traffic, Path]
) -> None:
    traffic, settings = week_settings(stack, tmp_path, week_traffic)
    write_files(traffic, tmp_path / "files")
    files = [tmp_path / "files" / name for name in SOURCE_FILES]

    first = await import_files(files, settings, progress=None, log=quiet)
    expected = traffic.expected
    assert first.records == sum(len(records) for records in traffic.records.values())
    assert sum(first.dead_letters.values()) == expected.malformed_records
    assert first.formats == {"asterisk-cdr-csv": 1, "chat-session-json": 1, "crm-event-json": 1}

    # Raw stays raw: the file's lines, in order, each message a backfill.
    sent = await everything_on(settings, settings.topics.raw_pbx)
    assert all(message[BACKFILL_HEADER] == b"1" for message in sent)
    lines = b"\n".join(sorted(b"\n".join(message["value"] for message in sent).split(b"\n")))
    master = (tmp_path / "files" / "Master.csv").read_bytes().rstrip(b"\n")
    assert lines == b"\n".join(sorted(master.split(b"\n")))

    second = await import_files(files, settings, progress=None, log=quiet)
    assert (second.records, second.events) == (first.records, first.events)

    worker = launch(settings, tmp_path / "worker.log")
    try:
        await worker.wait_until_durable()
    finally:
        assert stop_worker(worker.process) in (0, -15)
    await assert_counted_once(settings, expected, sends=2)


def test_the_format_is_told_from_the_records(
    tmp_path: Path, week_traffic: tuple[Traffic, Path]
) -> None:
    traffic, _ = week_traffic
    write_files(traffic, tmp_path)
    parsers = build_parsers(Settings().parsing)
    chosen = {name: choose_format(tmp_path / name, parsers, None)[0] for name in SOURCE_FILES}
    assert chosen == {
        "Master.csv": "asterisk-cdr-csv",
        "chat-sessions.jsonl": "chat-session-json",
        "crm-events.jsonl": "crm-event-json",
    }
    _, guesses = choose_format(tmp_path / "Master.csv", parsers, None)
    assert guesses[0].readable > 0.9 * guesses[0].sampled


def test_a_file_no_format_reads_is_refused_by_name(tmp_path: Path) -> None:
    odd = tmp_path / "notes.txt"
    odd.write_text("dear diary\ntoday I called nobody\n")
    with pytest.raises(ImportRefused, match=r"notes.txt: no format reads .* --format"):
        choose_format(odd, build_parsers(Settings().parsing), None)


def test_a_large_file_is_read_in_bounded_messages(tmp_path: Path) -> None:
    """100,000 lines of 120 bytes: no message over 512 KiB or 10,000 lines, nothing lost."""
    line = (
        b'"","201","79140000001","from-internal","","SIP/201-1","SIP/trunk-2","Dial",' + b"x" * 40
    )
    path = tmp_path / "Master.csv"
    path.write_bytes((line + b"\n") * 100_000)
    parser = build_parsers(Settings().parsing)["asterisk-cdr-csv"]
    payloads = list(file_payloads(path, parser))
    assert max(len(payload) for payload, _ in payloads) <= 512 * 1024
    assert max(payload.count(b"\n") + 1 for payload, _ in payloads) <= 10_000
    assert sum(covered for _, covered in payloads) == path.stat().st_size
    assert sum(payload.count(b"\n") + 1 for payload, _ in payloads) == 100_000
