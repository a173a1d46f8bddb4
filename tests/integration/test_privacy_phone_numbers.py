"""No customer phone number in clear in anything salespulse derives: every text column of every
table (actor ids too), the dead-letter headers, the worker's debug log.

A week of generated traffic (the generator knows the customer numbers it made) plus the
project's sample records of the other telephony and chat formats, and records that put numbers
where they once stayed in clear (as the actor, written with unusual separators), run through a
real worker
process into real ClickHouse, once with a hash key and once without (masking). The raw topics
and the dead-letter values keep source bytes as received, on purpose (docs/security.md): the
scanner is shown to find the numbers there, so that finding none elsewhere means something.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer
from pydantic import SecretStr

from ingest.generator import make_population, simulate_truth, write_directory_yaml
from ingest.generator.output import send_to_kafka
from ingest.generator.render import build_traffic
from ingest.raw_producer import RawProducer, RawRecordOut
from processors.parsers import (
    AsteriskCdrCsvParser,
    Bitrix24CallEndEventParser,
    Bitrix24OpenLinesParser,
    Bitrix24VoximplantStatisticParser,
    ChatSessionJsonParser,
    CrmEventJsonParser,
    FreeswitchCdrCsvParser,
    FreeswitchJsonCdrParser,
    Parser,
)
from processors.privacy import NUMBER_SEPARATORS, PhoneProtector, normalise_number
from salespulse.settings import Settings
from salespulse.worker_process import stop_worker
from sinks.clickhouse.client import NativeClickHouse
from tests.conftest import LocalStack
from tests.integration.pipeline_harness import WEEK_END, isolated_settings, launch

SAMPLES = Path(__file__).parents[1] / "samples"
# Sample files of formats the generator does not write, with the parser that reads them.
SAMPLE_FILES = {
    "freeswitch/inbound-gateway-a-leg.cdr.json": FreeswitchJsonCdrParser,
    "freeswitch/inbound-gateway-b-leg.cdr.json": FreeswitchJsonCdrParser,
    "freeswitch/outbound-unanswered-a-leg.cdr.json": FreeswitchJsonCdrParser,
    "freeswitch/Master.csv": FreeswitchCdrCsvParser,
    "bitrix24/voximplant-statistic.jsonl": Bitrix24VoximplantStatisticParser,
    "bitrix24/onvoximplantcallend.form": Bitrix24CallEndEventParser,
    "bitrix24/openlines/served_whatsapp.json": Bitrix24OpenLinesParser,
    "bitrix24/openlines/missed_telegram_camel.json": Bitrix24OpenLinesParser,
}

# Numbers the generator never writes, each where one once stayed in clear: the actor of a named
# peer's call out (no extension by the default pattern, so the dialled number is the actor) and
# of a trunk-to-trunk forward, a chat operator known by a phone number, and numbers typed with
# non-breaking, thin or zero-width spaces, dashes, dots or slashes. As written, and as actors.
PEER_DIALLED, FORWARDED_FROM, FORWARDED_TO = "79161112233", "79162223344", "89163334455"
OPERATOR = "+7\u00a0916\u00a0444-55-66"
TYPED = (
    "7\u2009916\u2009555\u200966\u200977",
    "8 (916) 666.77.88",
    "7/916/777/88/99",
    "+7 916 888 \u2013 99 \u2013 00",
    "7\u200b916\u200b9990011",
)
EDGE_ACTORS = (PEER_DIALLED, FORWARDED_TO, OPERATOR)
_CDR = (
    '"","{src}","{dst}","from-internal","","{channel}","{dstchannel}","Dial","",'
    '"2026-11-20 10:00:00","2026-11-20 10:00:05","2026-11-20 10:01:05",65,60,"ANSWERED",""'
)
EDGE_RECORDS: tuple[tuple[type[Parser], str], ...] = (
    (
        AsteriskCdrCsvParser,
        _CDR.format(
            src="ivanova",
            dst=PEER_DIALLED,
            channel="SIP/ivanova-000000a1",
            dstchannel="SIP/provider-000000a2",
        ),
    ),
    (
        AsteriskCdrCsvParser,
        _CDR.format(
            src=FORWARDED_FROM,
            dst=FORWARDED_TO,
            channel="SIP/provider-000000b1",
            dstchannel="SIP/provider-000000b2",
        ),
    ),
    (
        ChatSessionJsonParser,
        json.dumps(
            {
                "session_id": "privacy-1",
                "operator_id": OPERATOR,
                "channel": "whatsapp",
                "started_at": "2026-11-20T10:00:00+03:00",
                "closed_at": "2026-11-20T10:05:00+03:00",
                "status": "missed",
                "client_id": TYPED[0],
            },
            ensure_ascii=False,
        ),
    ),
    (
        CrmEventJsonParser,
        json.dumps(
            {
                "id": "privacy-visit-1",
                "type": "visit.visit_start",
                "user_id": "1101",
                "occurred_at": "2026-11-20T11:00:00+03:00",
                "location": f"client home, {TYPED[1]} or {TYPED[2]}; {TYPED[3]}, {TYPED[4]}",
            },
            ensure_ascii=False,
        ),
    ),
)
EDGE_NUMBERS = (PEER_DIALLED, FORWARDED_FROM, FORWARDED_TO, OPERATOR, *TYPED)
# A Russian number as the samples write it: +7 916 123-45-67, 8 903 …, 7 495 …
_SAMPLE_NUMBER = re.compile(r"(?<![\d])\+?[78][\s(-]*\d{3}[\s)-]*\d{3}[\s-]*\d{2}[\s-]*\d{2}(?!\d)")
# Digits with any separator numbers are written with: "+7 (916) 123-45-67", "8 916 123.45.67".
_DIGIT_RUN = re.compile(rf"\d(?:[\s{re.escape(NUMBER_SEPARATORS)}]{{0,3}}\d)+")
_NOT_DIGITS = re.compile(r"\D")
TEXT_TYPES = re.compile(r"^(Nullable\(|LowCardinality\()*(String|FixedString\(\d+\))\)*$")
ARRAY_TYPE = re.compile(r"^Array\((Nullable\(|LowCardinality\()*String\)*\)$")


class NumberFinder:
    """Finds customer numbers in text, written in any of the usual ways: as given, normalised
    (digits only) or inside a longer text (``SIP/provider/79161234567``)."""

    def __init__(self, numbers: Iterable[str]) -> None:
        self.numbers = {normalise_number(n) for n in numbers}
        self.raw_forms = set(numbers)

    def find(self, text: str) -> set[str]:
        """The numbers (normalised) that ``text`` holds."""
        found = {normalise_number(raw) for raw in self.raw_forms if raw in text}
        for written in _DIGIT_RUN.findall(text):
            run = _NOT_DIGITS.sub("", written)
            for size in {len(n) for n in self.numbers}:
                found |= {run[i : i + size] for i in range(len(run) - size + 1)} & self.numbers
        return found

    def numbers_in(self, messages: Iterable[bytes]) -> set[str]:
        return set().union(*(self.find(m.decode("utf-8", "replace")) for m in messages))


@dataclass
class Scan:
    tables: set[str] = field(default_factory=set)
    # The distinct values of each (table, column) scanned.
    columns: dict[tuple[str, str], set[str]] = field(default_factory=dict)
    leaks: list[str] = field(default_factory=list)

    @property
    def values(self) -> int:
        return sum(len(values) for values in self.columns.values())


def customer_numbers(truth_calls: Iterable[tuple[str, str]]) -> set[str]:
    """The generator's numbers, every number in the samples and the edge records' numbers. The
    company's own line (the actor of calls nobody took) is one of them: as a number, it is
    protected like any other."""
    generated = {n for pair in truth_calls for n in pair if len(n) >= 10}
    sampled = {
        match.group()
        for name in SAMPLE_FILES
        for match in _SAMPLE_NUMBER.finditer((SAMPLES / name).read_text())
    }
    return generated | sampled | set(EDGE_NUMBERS)


def _text_columns(ch: NativeClickHouse, database: str) -> Iterator[tuple[str, str, str]]:
    rows = ch.execute(
        "SELECT table, name, type FROM system.columns WHERE database = %(database)s",
        {"database": database},
    )
    for table, name, column_type in rows:
        if TEXT_TYPES.match(column_type):
            yield table, name, "toString"
        elif ARRAY_TYPE.match(column_type):
            yield table, name, "arrayJoin"
        else:
            # A new kind of text column (a Map, a Tuple) must be read here, not skipped.
            assert "String" not in column_type, f"{table}.{name} {column_type}: teach the scan"


def scan_clickhouse(settings: Settings, finder: NumberFinder) -> tuple[Scan, list[str]]:
    """Every distinct value of every text column; also the calls' counterparts, to check that
    numbers arrived protected rather than not at all."""
    scan = Scan()
    database = settings.clickhouse.database
    ch = NativeClickHouse(settings.clickhouse)
    try:
        for table, column, reader in _text_columns(ch, database):
            # Names read from system.columns, quoted: no value of ours is in this SQL.
            assert "`" not in table + column
            values = ch.execute(f"SELECT DISTINCT {reader}(`{column}`) FROM {database}.`{table}`")
            scan.tables.add(table)
            scan.columns[table, column] = {str(value) for (value,) in values}
            for value in scan.columns[table, column]:
                for number in finder.find(value):
                    scan.leaks.append(f"{table}.{column}: {value!r} holds {number}")
        counterparts = [
            str(v)
            for (v,) in ch.execute(
                f"SELECT DISTINCT counterpart FROM {database}.events WHERE kind = 'call'"
            )
        ]
    finally:
        ch.close()
    return scan, counterparts


async def read_topic(settings: Settings, topic: str) -> list[tuple[bytes, list[tuple[str, bytes]]]]:
    consumer = AIOKafkaConsumer(
        topic,
        **settings.kafka.aiokafka_options(),
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    messages: list[tuple[bytes, list[tuple[str, bytes]]]] = []
    try:
        quiet_since = time.monotonic()
        while time.monotonic() - quiet_since < 2:
            batches = await consumer.getmany(timeout_ms=500)
            for records in batches.values():
                quiet_since = time.monotonic()
                messages += [(r.value or b"", list(r.headers)) for r in records]
    finally:
        await consumer.stop()
    return messages


def sample_records() -> list[tuple[type[Parser], bytes]]:
    """The sample files and the edge records, each with the parser of its format."""
    samples = [(parser, (SAMPLES / name).read_bytes()) for name, parser in SAMPLE_FILES.items()]
    return samples + [(parser, record.encode()) for parser, record in EDGE_RECORDS]


async def send_samples(settings: Settings) -> int:
    records = [
        RawRecordOut(parser.family, parser.format_name, b"samples", value, True)
        for parser, value in sample_records()
    ]
    async with RawProducer(settings.kafka, settings.topics) as producer:
        return await producer.send_many(records)


@pytest.mark.parametrize("protection", ["hash", "mask"])
async def test_no_customer_number_is_stored_in_clear(
    protection: str, stack: LocalStack, tmp_path: Path
) -> None:
    population = make_population(managers=6, departments=2, seed=11)
    truth = simulate_truth(population, WEEK_END - timedelta(days=3), WEEK_END, seed=11)
    traffic = build_traffic(population, truth, seed=11, malformed_share=0.02, pbx_id="pbx-1")
    finder = NumberFinder(customer_numbers((call.src, call.dst) for call in truth.calls))
    settings = isolated_settings(stack, tmp_path)
    write_directory_yaml(population, settings.directory_path)
    key = SecretStr("phone-key-for-the-privacy-test") if protection == "hash" else None
    phones = PhoneProtector(key.get_secret_value().encode() if key else None)
    settings = settings.model_copy(
        update={
            "parsing": settings.parsing.model_copy(update={"phone_hash_key": key}),
            "log_level": "DEBUG",
        }
    )
    log_path = tmp_path / "worker.log"
    worker = launch(settings, log_path)
    try:
        await send_to_kafka(traffic, settings.kafka, settings.topics)
        await send_samples(settings)
        await worker.wait_until_durable()
    finally:
        assert stop_worker(worker.process) in (0, -15), log_path.read_text()[-3000:]

    scan, counterparts = scan_clickhouse(settings, finder)
    dead = await read_topic(settings, settings.topics.dead_letter)
    raw = [v for t in settings.topics.raw_topics() for v, _ in await read_topic(settings, t)]
    header_leaks = [
        f"{name}: {value!r}"
        for _, headers in dead
        for name, value in headers
        if finder.find(value.decode("utf-8", "replace"))
    ]
    log_leaks = sorted(finder.find(log_path.read_text(errors="replace")))
    print(
        f"\n{protection}: {len(finder.numbers)} customer numbers; {len(scan.tables)} tables, "
        f"{len(scan.columns)} text columns, {scan.values} distinct values scanned; "
        f"{len(dead)} dead letters; leaks: {len(scan.leaks)} stored, {len(header_leaks)} in "
        f"dead-letter headers, {len(log_leaks)} in the log"
    )

    assert scan.leaks == []
    assert header_leaks == []
    assert log_leaks == []
    # The scanner sees numbers where they are meant to be: raw, in the source bytes (all but
    # those a corrupted record lost).
    sent = [r.data for r in traffic.all_records()] + [value for _, value in sample_records()]
    assert len(finder.numbers_in(raw)) > 0.99 * len(finder.numbers)
    assert finder.numbers_in(raw) == finder.numbers_in(sent)
    assert finder.numbers_in(value for value, _ in dead)
    assert {"events", "ingest_batches", "alerts", "activity_daily"} <= scan.tables
    read = scan.columns.keys()
    assert {("events", "actor_id"), ("events", "counterpart"), ("events", "location")} <= read
    # Numbers as actors arrived, protected as the same number is as a counterpart.
    assert {phones.protect(actor) for actor in EDGE_ACTORS} <= scan.columns["events", "actor_id"]
    # Those long enough to be a number: not an extension, nor the named peer "ivanova".
    protected = [c for c in counterparts if len(c) >= 7 and c != "ivanova"]
    pattern = r"h:[0-9a-f]{20}" if protection == "hash" else r"\*{5,}\d\d"
    assert protected
    assert [c for c in protected if not re.fullmatch(pattern, c)] == []
