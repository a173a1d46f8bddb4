"""Real files, imported as a user would, counted by a real worker: the numbers a person derives
by hand from the file (tests/samples/real/README.md says what each holds).

``cgrates-2018-internal-a-leg.pretty.cdr.json`` is a FreeSWITCH JSON CDR as CGRateS published it,
pretty-printed over 363 lines and without a ``direction``: extension 1001 calls its colleague
1002 on 11 January 2018, answered after 3 s, 71 s in all, ``billsec`` 68. By hand, with both in
the directory: 1001 has one internal call and 68 s of internal talk (no conversation: a
colleague is no customer); 1002 has nothing, since 1002's own leg (the b-leg) is not in the
file and a FreeSWITCH JSON CDR speaks only for its own channel (ADR 0004). Before issue 14
the file was 363 dead letters.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

from salespulse.directory import load_directory
from salespulse.history_import import import_files
from salespulse.summary import query_summary
from salespulse.worker_process import stop_worker
from sinks.clickhouse.client import NativeClickHouse
from tests.conftest import LocalStack
from tests.integration.pipeline_harness import isolated_settings, launch

REAL = Path(__file__).resolve().parents[1] / "samples" / "real"
DIRECTORY = """\
departments: [{id: support, timezone: UTC}]
managers:
  - {id: novak, department: support, identities: [{family: pbx, id: '1001'}]}
  - {id: horvat, department: support, identities: [{family: pbx, id: '1002'}]}
"""
COMPARED = (
    "calls_in",
    "calls_out",
    "calls_internal",
    "missed",
    "conversations",
    "talk_seconds",
    "internal_talk_seconds",
)


def quiet(_: str) -> None:
    pass


async def test_a_real_pretty_printed_freeswitch_cdr_counts_as_derived_by_hand(
    stack: LocalStack, tmp_path: Path
) -> None:
    directory = tmp_path / "directory.yaml"
    directory.write_text(DIRECTORY)
    settings = isolated_settings(stack, tmp_path).model_copy(update={"directory_path": directory})
    cdr = REAL / "freeswitch-json-cdr" / "cgrates-2018-internal-a-leg.pretty.cdr.json"
    summary = await import_files([cdr], settings, progress=None, log=quiet)
    assert (summary.records, summary.events, summary.dead_letters.total()) == (1, 1, 0)

    worker = launch(settings, tmp_path / "worker.log")
    try:
        await worker.wait_until_durable()
    finally:
        assert stop_worker(worker.process) in (0, -15)
    client = NativeClickHouse(settings.clickhouse)
    try:
        rows = query_summary(client, load_directory(directory), last_day=date(2018, 1, 11))
    finally:
        client.close()
    numbers = {row.manager_id: {name: row.counts.get(name, 0) for name in COMPARED} for row in rows}
    assert numbers["novak"] == {
        "calls_in": 0,
        "calls_out": 0,
        "calls_internal": 1,
        "missed": 0,
        "conversations": 0,  # with a colleague: internal talk, not a customer conversation
        "talk_seconds": 0,
        "internal_talk_seconds": 68,
    }
    assert not any(numbers.get("horvat", {}).values())
