"""The Bitrix24 files of the real corpus, imported as a user would and counted by a real worker:
each manager's numbers per local day, and the dead letters, as derived by hand in
tests/samples/real/README.md ("Derived by hand, asserted end to end").

The seven files go into one store, one after another, through one worker; after each, every
metric of the derivation is compared for every directory manager and ``(unattributed)`` on each
day the files name, and summed over the whole span of the files' dates, so that an event on a
wrong day shows too. The telephony ``finish`` result goes first: alone, it must give its call;
the statistic export that follows holds the same call again, which must not count twice.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from salespulse.directory import load_directory
from salespulse.history_import import import_files
from salespulse.settings import Settings
from salespulse.summary import UNATTRIBUTED, query_summary
from salespulse.worker_process import stop_worker
from sinks.clickhouse.client import NativeClickHouse
from sinks.clickhouse.metric_sql import ACTIVITY_METRICS, CALL_METRICS
from tests.conftest import LocalStack
from tests.integration.pipeline_harness import (
    RunningWorker,
    everything_on,
    isolated_settings,
    launch,
)

REAL = Path(__file__).resolve().parents[1] / "samples" / "real" / "bitrix24"
# Bitrix24 user ids are CRM identities; the portal writes every time at +03:00. User 1, the
# portal's administrator, is left out: what is theirs is unattributed.
DIRECTORY = """\
departments: [{id: msk, timezone: Europe/Moscow}]
managers:
  - {id: petrova, department: msk, identities: [{family: crm, id: '1269'}]}
  - {id: sidorov, department: msk, identities: [{family: crm, id: '505'}]}
"""
WHO = ("petrova", "sidorov", UNATTRIBUTED)
CALLS = (
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
COMPARED = CALLS + tuple(name for name, _ in ACTIVITY_METRICS)
# The days the files name (local days of Moscow managers; the UTC day of unattributed events,
# the same dates here), and the span from the earliest date in any file to the latest.
DAYS = (date(2025, 8, 6), date(2026, 3, 10), date(2026, 3, 11))
SPAN = (date(2020, 9, 27), date(2026, 3, 11))
STATISTIC, CALL_END = "bitrix24-voximplant-statistic", "bitrix24-call-end-event"
CRM, OPENLINES = "bitrix24-crm-rest", "bitrix24-openlines-session"


@dataclass
class Step:
    """One file: what its import says, and what it adds to the numbers by hand."""

    file: str
    format: str
    records: int
    events: int
    adds: dict[tuple[date, str], dict[str, int]] = field(default_factory=dict)
    dead: str = ""  # the detail of its one dead letter, if it has one
    no_activity: str = ""  # why its one record is no activity, if it is


IDS_ONLY = (
    "{event} carries only the {subject}'s id: it is counted when it comes through the receiver "
    "(salespulse receive), which fetches the {subject}; from a file, import a REST export of the "
    "{subject} instead ({export})"
)
STEPS = [
    # 1269 took a customer's call: 200, 95 s; dated 2026-03-10 11:19:39 Moscow by its id.
    Step(
        "telephony.externalcall.finish.response.json",
        STATISTIC,
        records=1,
        events=2,  # the call, and its user's presence on it ending (counted in nothing)
        adds={
            (date(2026, 3, 10), "petrova"): {
                "calls_in": 1,
                "calls_in_answered": 1,
                "conversations": 1,
                "talk_seconds": 95,
            }
        },
    ),
    # Row 1: user 1 called out, cancelled (603-S), 0 s, 2025-08-06 11:08:40 UTC. Row 7 is the
    # call of the finish result again (same CALL_ID and user): it adds nothing.
    Step(
        "voximplant.statistic.get.response.json",
        STATISTIC,
        records=2,
        events=4,
        adds={(date(2025, 8, 6), UNATTRIBUTED): {"calls_out": 1}},
    ),
    # 1269 called out, cancelled (304), 0 s, 2026-03-11 17:28:46 Moscow: not a missed call.
    Step(
        "onvoximplantcallend.event.json",
        CALL_END,
        records=1,
        events=2,
        adds={(date(2026, 3, 11), "petrova"): {"calls_out": 1}},
    ),
    Step(
        "onsessionfinish.event.json",
        OPENLINES,
        records=1,
        events=0,
        dead=IDS_ONLY.format(
            event="ONSESSIONFINISH",
            subject="Open Lines session",
            export="imopenlines.v2.Session.list",
        ),
    ),
    Step(
        "oncrmdealupdate.event.json",
        CRM,
        records=1,
        events=0,
        dead=IDS_ONLY.format(
            event="ONCRMDEALUPDATE", subject="deal", export="crm.deal.get or crm.deal.list"
        ),
    ),
    Step(
        "crm.deal.get.response.json",
        CRM,
        records=1,
        events=0,
        no_activity="a deal still open (stage 'PREPARATION'): only won or lost deals count",
    ),
    Step(
        "crm.activity.get.response.json",
        CRM,
        records=1,
        events=0,
        no_activity="a call logged in the CRM: calls are counted from telephony",
    ),
]


def expected_after(steps: list[Step]) -> dict[tuple[date, str], Counter[str]]:
    """Every manager's numbers on every day named, after ``steps``: zeros included."""
    numbers = {(day, who): Counter({name: 0 for name in COMPARED}) for day in DAYS for who in WHO}
    for step in steps:
        for key, adds in step.adds.items():
            numbers[key].update(adds)
    return numbers


def stored(settings: Settings, directory: Path) -> dict[tuple[date, str], Counter[str]]:
    """What ``salespulse summary`` reads for each day named, per manager and unattributed."""
    client = NativeClickHouse(settings.clickhouse)
    try:
        numbers = {}
        for day in DAYS:
            rows = query_summary(client, load_directory(directory), last_day=day)
            by_manager = {row.manager_id: row.counts for row in rows}
            for who in WHO:
                counts = by_manager.get(who, {})
                numbers[day, who] = Counter({name: counts.get(name, 0) for name in COMPARED})
        return numbers
    finally:
        client.close()


def stored_over_the_span(settings: Settings, directory: Path) -> dict[str, Counter[str]]:
    first, last = SPAN
    client = NativeClickHouse(settings.clickhouse)
    try:
        rows = query_summary(
            client, load_directory(directory), last_day=last, days=(last - first).days + 1
        )
    finally:
        client.close()
    by_manager = {row.manager_id: row.counts for row in rows}
    return {
        who: Counter({name: by_manager.get(who, {}).get(name, 0) for name in COMPARED})
        for who in WHO
    }


def over_the_span(numbers: dict[tuple[date, str], Counter[str]]) -> dict[str, Counter[str]]:
    totals = {who: Counter({name: 0 for name in COMPARED}) for who in WHO}
    for (_, who), counts in numbers.items():
        totals[who].update(counts)
    return totals


def quiet(_: str) -> None:
    pass


async def test_each_bitrix24_file_counts_as_derived_by_hand(
    stack: LocalStack, tmp_path: Path
) -> None:
    # The metrics compared must be ones the summary computes: a name it lacks would read as 0.
    assert set(CALLS) <= {name for name, _ in CALL_METRICS}

    settings = isolated_settings_with_directory(stack, tmp_path)
    directory = settings.directory_path
    assert directory is not None
    worker: RunningWorker | None = None
    try:
        for done, step in enumerate(STEPS, start=1):
            chosen: list[str] = []
            summary = await import_files(
                [REAL / step.file], settings, progress=None, log=chosen.append
            )
            assert summary.formats == {step.format: 1}, chosen
            assert (summary.records, summary.events) == (step.records, step.events), step.file
            assert summary.dead_letters == Counter({"ids_only": 1} if step.dead else {})
            assert summary.first_details == ({"ids_only": step.dead} if step.dead else {})
            assert summary.no_activity == Counter({step.no_activity: 1} if step.no_activity else {})

            if worker is None:  # started once the first file made the topics
                worker = launch(settings, tmp_path / "worker.log")
            await worker.wait_until_durable()
            expected = expected_after(STEPS[:done])
            assert stored(settings, directory) == expected, f"after {step.file}"
            assert stored_over_the_span(settings, directory) == over_the_span(expected)
    finally:
        if worker is not None:
            assert stop_worker(worker.process) in (0, -15)

    letters = await everything_on(settings, settings.topics.dead_letter)
    assert sorted(
        (
            letter["sp-format"].decode(),
            letter["sp-dlq-reason"].decode(),
            letter["sp-dlq-detail"].decode(),
            letter["value"],
        )
        for letter in letters
    ) == sorted(
        (step.format, "ids_only", step.dead, (REAL / step.file).read_bytes().strip())
        for step in STEPS
        if step.dead
    )


def isolated_settings_with_directory(stack: LocalStack, tmp_path: Path) -> Settings:
    settings = isolated_settings(stack, tmp_path)
    assert settings.directory_path is not None
    settings.directory_path.write_text(DIRECTORY)
    return settings
