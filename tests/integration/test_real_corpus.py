"""Real files, imported as a user would, counted by a real worker: the numbers a person derives
by hand from the file (tests/samples/real/README.md says what each holds, and derives every
number asserted here in its "Expected numbers of the PBX files, by hand").

``cgrates-2018-internal-a-leg.pretty.cdr.json`` is a FreeSWITCH JSON CDR as CGRateS published it,
pretty-printed over 363 lines and without a ``direction``: extension 1001 calls its colleague
1002 on 11 January 2018, answered after 3 s, 71 s in all, ``billsec`` 68. By hand, with both in
the directory: 1001 has one internal call and 68 s of internal talk (no conversation: a
colleague is no customer); 1002 has nothing, since 1002's own leg (the b-leg) is not in the
file and a FreeSWITCH JSON CDR speaks only for its own channel (ADR 0004). Before issue 14
the file was 363 dead letters.

The other Asterisk and FreeSWITCH files are counted in four runs, one per PBX: each its own
directory, settings, topics, database and worker, the workers started together to keep the
suite fast. Every metric of every manager of the directory is compared on every day the files
touch, zeros included, and so is ``(unattributed)`` (on its UTC day) and the dead-letter topic.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from salespulse.directory import load_directory
from salespulse.history_import import import_files
from salespulse.settings import Settings
from salespulse.summary import UNATTRIBUTED, query_summary
from salespulse.worker_process import stop_worker
from sinks.clickhouse.client import NativeClickHouse
from tests.conftest import LocalStack
from tests.integration.pipeline_harness import RunningWorker, isolated_settings, launch

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


# --- the other PBX files: one run per PBX ----------------------------------------------------

# The order of the numbers in the tables below, as the README's tables name them:
# in, in✓, missed, out, out✓, int, talks, talk, int talk.
METRICS = (
    "calls_in",
    "calls_in_answered",
    "missed",
    "calls_out",
    "calls_out_answered",
    "calls_internal",
    "conversations",
    "talk_seconds",
    "internal_talk_seconds",
)
Numbers = tuple[int, int, int, int, int, int, int, int, int]
NOTHING: Numbers = (0, 0, 0, 0, 0, 0, 0, 0, 0)


@dataclass(frozen=True)
class Source:
    """One file as a user imports it, and what the import says the worker will make of it."""

    path: str
    records: int
    events: int
    dead_letters: dict[str, int] = field(default_factory=dict)
    format: str | None = None  # --format, for a file no format reads on its own


@dataclass(frozen=True)
class Pbx:
    """A PBX's files with the directory and settings its owner would write, and the numbers a
    person derives from the files: per local day, per manager (``UNATTRIBUTED``: per UTC day);
    a manager of the directory left out of a day has nothing that day."""

    name: str
    directory: str
    sources: tuple[Source, ...]
    expected: dict[date, dict[str, Numbers]]
    parsing: dict[str, str] = field(default_factory=dict)


A = "asterisk-cdr-csv/"
F = "freeswitch-json-cdr/"

# Per local day, per manager (UNATTRIBUTED: per UTC day), as the README derives them.
# fmt: off
OFFICE_DAYS: dict[date, dict[str, Numbers]] = {
    #                        in in✓ mis out out✓ int talks talk int-talk
    date(2017, 6, 20): {
        "max":              (0,  0,  0,  7,  6,  0,  1,   891,   0),
        "john":             (0,  0,  0,  1,  1,  0,  1,   206,   0),
        "erika":            (0,  0,  0,  1,  1,  0,  1,   737,   0),
        "jane":             (0,  0,  0,  3,  2,  0,  2,   519,   0),
        UNATTRIBUTED:       (14, 11, 3,  0,  0,  0,  8,  3956,   0),
    },
    date(2017, 6, 21): {
        UNATTRIBUTED:       (3,  1,  2,  0,  0,  0,  1,   361,   0),
    },
    date(2017, 6, 27): {
        "john":             (0,  0,  0,  8,  5,  0,  4,  1111,   0),
        "erika":            (0,  0,  0,  3,  3,  0,  2,   512,   0),
        "richard":          (0,  0,  0,  1,  1,  0,  1,   772,   0),
        "jane":             (0,  0,  0,  1,  1,  0,  1,    65,   0),
        "max":              (0,  0,  0,  4,  3,  2,  3,  1445, 186),
        "joe":              (0,  0,  0,  1,  1,  2,  1,    53, 186),
        UNATTRIBUTED:       (17, 11, 6,  0,  0,  0, 10,  3264,   0),
    },
}
TEST_SUITE_DAYS: dict[date, dict[str, Numbers]] = {
    #                        in in✓ mis out out✓ int talks talk int-talk
    date(2009, 1, 14): {
        "tester":           (0,  0,  0,  1,  1,  0,  0,     5,   0),
    },
    # 00:26 and 00:34 UTC on 2 April are 19:26 and 19:34 on 1 April in Chicago.
    date(2010, 4, 1): {
        "console":          (0,  0,  0,  2,  2,  0,  0,    14,   0),
    },
    date(2010, 4, 2): {},
}
# fmt: on

# fafeitsch's office (a German company's PBX of 2017, channels pseudonymised): the employees
# are the src numbers that carry a person's name in clid in their own contexts (production,
# support); hq is where outside calls arrive, at group numbers that ring two phones at once,
# so nobody holds those. The uniqueid clock says the CDR times are UTC (the default
# pbx_timezone); the office keeps Berlin's hours.
OFFICE = Pbx(
    "fafeitsch",
    """\
departments:
  - {id: sales, timezone: Europe/Berlin}
  - {id: support, timezone: Europe/Berlin}
managers:
  - {id: max, department: sales, identities: [{family: pbx, id: '266-555-0124'}]}
  - {id: john, department: sales, identities: [{family: pbx, id: '460-555-0138'}]}
  - {id: erika, department: sales, identities: [{family: pbx, id: '203-555-0176'}]}
  - {id: jane, department: sales, identities: [{family: pbx, id: '616-555-0133'}]}
  - {id: richard, department: sales, identities: [{family: pbx, id: '544-555-0120'}]}
  - {id: joe, department: support, identities: [{family: pbx, id: '360-555-0162'}]}
""",
    (
        Source(A + "fafeitsch-mockdata-cdr.Master.csv", records=40, events=40),
        # Two CDRs are calls between Joe and Max: an event for each.
        Source(A + "fafeitsch-mockdata-smallcdr.Master.csv", records=45, events=47),
    ),
    OFFICE_DAYS,
)

# The Asterisk test suite's PBX: its only people are the SIP peer "test" (Test User) and the
# console (the PBX's own sound-card phone); extensions 1 and 100 run Hangup in the dialplan.
# Named endpoints count once the extension pattern names them (docs/formats.md). The suite is
# Digium's, in Huntsville: the department keeps Chicago's hours; the CDR times are UTC.
TEST_SUITE = Pbx(
    "asterisk-testsuite",
    """\
departments: [{id: lab, timezone: America/Chicago}]
managers:
  - {id: tester, department: lab, identities: [{family: pbx, id: test}]}
  - {id: console, department: lab, identities: [{family: pbx, id: Console/dsp}]}
""",
    (
        Source(A + "asterisk-testsuite-self_test.Master.csv", records=2, events=2),
        # Line 2 says billsec 7 of a 5 s call.
        Source(A + "asterisk-testsuite-cdrlib-good.Master.csv", 5, 4, {"invalid": 1}),
        # Cut inside its last field: no format reads its only line, so the user names one.
        Source(
            A + "asterisk-testsuite-cdrlib-buggy.Master.csv",
            records=1,
            events=0,
            dead_letters={"malformed": 1},
            format="asterisk-cdr-csv",
        ),
    ),
    TEST_SUITE_DAYS,
    {"internal_extension_pattern": r"^(\d{2,6}|test|Console/dsp)$"},
)

# A hosted PBX whose users are SIP accounts named by first name: its customer admits such
# names as extensions. start_stamp 11:50:54 is start_epoch 09:50:54 UTC: Berlin's summer time.
HOSTED = Pbx(
    "cgrates-2013",
    """\
departments: [{id: sales, timezone: Europe/Berlin}]
managers:
  - {id: usr, department: sales, identities: [{family: pbx, id: usr}]}
""",
    (Source(F + "cgrates-2013-fork-a-leg.cdr.json", records=1, events=1),),
    {date(2013, 8, 4): {"usr": (0, 0, 0, 1, 1, 0, 0, 4, 0)}},
    {"internal_extension_pattern": r"^(\d{2,6}|[a-z]+)$"},
)

# A business whose phones are SIP accounts on an ASTPP switch, numbered with 8 digits: its
# directory names the account; the line names no channel, so the directory decides that the
# caller is the manager (docs/formats.md, "No channel at all"). Nothing tells the zone: UTC.
ACCOUNT = Pbx(
    "astpp",
    """\
departments: [{id: sales, timezone: UTC}]
managers:
  - {id: seller, department: sales, identities: [{family: pbx, id: '89990634'}]}
""",
    (Source("freeswitch-cdr-csv/astpp-issue-144.Master.csv", records=1, events=1),),
    {date(2016, 11, 3): {"seller": (0, 0, 0, 1, 1, 0, 0, 8, 0)}},
)

PBXS = (OFFICE, TEST_SUITE, HOSTED, ACCOUNT)


@dataclass
class Counted:
    settings: Settings
    imported: dict[str, tuple[int, int, Counter[str]]]  # file → records, events, dead letters


@pytest.fixture(scope="module")
async def counted(
    stack: LocalStack, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Counted]:
    """Every PBX's files imported and counted by a worker of its own, the workers at once."""
    runs: dict[str, Counted] = {}
    workers: list[RunningWorker] = []
    try:
        for pbx in PBXS:
            tmp = tmp_path_factory.mktemp(pbx.name)
            (tmp / "directory.yaml").write_text(pbx.directory)
            settings = isolated_settings(stack, tmp)
            parsing = settings.parsing.model_copy(update=pbx.parsing)
            settings = settings.model_copy(
                update={"directory_path": tmp / "directory.yaml", "parsing": parsing}
            )
            imported = {}
            for source in pbx.sources:
                summary = await import_files(
                    [REAL / source.path],
                    settings,
                    format_name=source.format,
                    progress=None,
                    log=quiet,
                )
                imported[source.path] = (summary.records, summary.events, summary.dead_letters)
            runs[pbx.name] = Counted(settings, imported)
            workers.append(launch(settings, tmp / "worker.log"))
        await asyncio.gather(*(worker.wait_until_durable() for worker in workers))
    finally:
        stopped = [stop_worker(worker.process) for worker in workers]
    assert all(code in (0, -15) for code in stopped), stopped
    return runs


async def dead_letter_reasons(settings: Settings) -> Counter[str]:
    """Every dead letter on the run's topic, by reason: as many as the topic's end offsets say
    (the worker is durable, so all of them are written)."""
    consumer = AIOKafkaConsumer(**settings.kafka.aiokafka_options(), enable_auto_commit=False)
    await consumer.start()
    reasons: Counter[str] = Counter()
    try:
        topic = settings.topics.dead_letter
        partitions = [TopicPartition(topic, p) for p in range(settings.topics.partitions)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        left = sum((await consumer.end_offsets(partitions)).values())
        deadline = time.monotonic() + 30
        while left > 0 and time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                for record in records:
                    reasons[dict(record.headers)["sp-dlq-reason"].decode()] += 1
                    left -= 1
    finally:
        await consumer.stop()
    return reasons


@pytest.mark.parametrize("pbx", PBXS, ids=[pbx.name for pbx in PBXS])
async def test_real_pbx_files_count_as_derived_by_hand(
    pbx: Pbx, counted: dict[str, Counted]
) -> None:
    run = counted[pbx.name]
    # What `salespulse import` said of each file: records, events and dead letters by reason.
    assert run.imported == {
        source.path: (source.records, source.events, Counter(source.dead_letters))
        for source in pbx.sources
    }
    expected_letters = sum((Counter(source.dead_letters) for source in pbx.sources), Counter())
    assert await dead_letter_reasons(run.settings) == expected_letters

    directory = load_directory(run.settings.directory_path)
    client = NativeClickHouse(run.settings.clickhouse)
    try:
        for day, expected in pbx.expected.items():
            rows = query_summary(client, directory, last_day=day)
            seen = {row.manager_id: tuple(row.counts.get(m, 0) for m in METRICS) for row in rows}
            everyone = [*directory.managers, UNATTRIBUTED]
            wanted = {
                who: dict(zip(METRICS, expected.get(who, NOTHING), strict=True)) for who in everyone
            }
            got = {who: dict(zip(METRICS, seen.get(who, NOTHING), strict=True)) for who in everyone}
            assert got == wanted, day
    finally:
        client.close()
