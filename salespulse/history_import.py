"""``salespulse import``: source files of the past onto the raw topics, as a deliberate backfill.

The first day with a real PBX starts with its history: a Master.csv of last month, a folder of
FreeSWITCH JSON CDRs, an export of Bitrix24 calls. The live lateness check would dead-letter all
of it as ``late``, so an import marks every message ``sp-backfill: 1``. Records are sent as the
file holds them (raw stays raw) and counted by the worker like any other; event ids come from
the records, so importing the same file again changes no number.

The import also runs each message through the worker's own ``BatchProcessor`` as it sends it,
so that it can say at the end what the worker will make of the file — records, events, dead
letters by reason — without waiting for the worker or reading ClickHouse.
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple, TextIO

from ingest.raw_producer import RawProducer, RawRecordOut
from ingest.tailer_state import frame
from processors.parsers import Parser, RecordError, build_parsers
from processors.parsers.base import IDS_ONLY, split_lines
from processors.pipeline import BatchProcessor, BatchResult, RawMessage
from processors.privacy import PhoneProtector
from salespulse.directory import Directory, load_directory, parse_directory
from salespulse.errors import ConfigurationError
from salespulse.models import BACKFILL_HEADER, FORMAT_HEADER, MAX_RECORDS_PER_MESSAGE, SourceRef
from salespulse.settings import Settings

# What one read of the file holds, and the most one message carries: the tailer's sizes, so
# that the worker sees imported messages shaped like live ones.
READ_BYTES = 1 << 20
MESSAGE_BYTES = 512 * 1024
LINES_PER_MESSAGE = MAX_RECORDS_PER_MESSAGE // 2
# How much of a file is looked at to tell its format, and how many of its records are parsed.
SAMPLE_BYTES = 256 * 1024
SAMPLE_RECORDS = 200
PROGRESS_SECONDS = 0.5


class ImportRefused(ConfigurationError):
    """A file that cannot be imported as asked: named, with what to do about it."""


class FormatGuess(NamedTuple):
    """How well one format reads a file's first records."""

    format: str
    readable: int  # records that parse: events, or no activity by the format's rules
    sampled: int
    refused: Counter[str]  # the others, by dead-letter reason
    events: tuple[dict[str, object], ...] = ()  # what the readable ones say, source left out

    @property
    def recognised(self) -> int:
        """Records refused as this format's own that cannot be counted from a file (an event
        that carries ids only): they still tell the format."""
        return self.refused[IDS_ONLY]

    def describe(self) -> str:
        reasons = ", ".join(f"{reason} {n}" for reason, n in self.refused.most_common())
        return f"{self.format}: {self.readable} of {self.sampled} records read" + (
            f" ({reasons})" if reasons else ""
        )

    def ties(self, other: FormatGuess) -> bool:
        return (self.readable, self.recognised) == (other.readable, other.recognised)

    def reads_alike(self, other: FormatGuess) -> bool:
        """Whether ``other`` makes the very same events of the records (a Bitrix24 call is
        read by two formats into one event): then either format counts the file alike."""
        return self.ties(other) and bool(self.events) and self.events == other.events


def _sample(path: Path) -> bytes:
    """The file's first bytes, cut at a line end unless the file is that short."""
    with path.open("rb") as file:
        head = file.read(SAMPLE_BYTES + 1)
    if len(head) <= SAMPLE_BYTES:
        return head
    end = head.rfind(b"\n", 0, SAMPLE_BYTES)
    return head[:end] if end > 0 else head[:SAMPLE_BYTES]


def guess_formats(sample: bytes, parsers: Mapping[str, Parser]) -> list[FormatGuess]:
    """Every format's reading of ``sample``, best first; among equals, in ``parsers``' order."""
    guesses = []
    for name, parser in parsers.items():
        records = parser.split(sample)[:SAMPLE_RECORDS]
        refused: Counter[str] = Counter()
        events: list[dict[str, object]] = []
        for index, record in enumerate(records):
            try:
                read = parser.parse(record, SourceRef(name, "file", 0, 0, index))
            except RecordError as exc:
                refused[exc.reason] += 1
                continue
            events += (event.model_dump(exclude={"source"}) for event in read)
        readable = len(records) - refused.total()
        guesses.append(FormatGuess(name, readable, len(records), refused, tuple(events)))
    order = {name: position for position, name in enumerate(parsers)}
    return sorted(
        guesses,
        key=lambda g: (-g.readable, -g.recognised, g.refused.total(), order[g.format]),
    )


def choose_format(
    path: Path, parsers: Mapping[str, Parser], requested: str | None
) -> tuple[str, list[FormatGuess]]:
    """The format to import ``path`` as, and the guesses that chose it. A requested format is
    taken as it is; otherwise the one that reads most of the file's first records wins (or, if
    none reads any, the one that recognises them as its own), and a format that neither reads
    nor recognises any, or a tie between formats that read the records differently, is an
    error asking for ``--format``."""
    if requested is not None:
        if requested not in parsers:
            known = ", ".join(sorted(parsers))
            raise ImportRefused(f"unknown format {requested!r}; known: {known}")
        return requested, []
    guesses = guess_formats(_sample(path), parsers)
    best = guesses[0]
    if best.readable == 0 and best.recognised == 0:
        tried = "; ".join(guess.describe() for guess in guesses[:3])
        raise ImportRefused(
            f"{path}: no format reads its first records ({tried}); name one with --format"
        )
    rival = next((g for g in guesses[1:] if best.ties(g) and not best.reads_alike(g)), None)
    if rival is not None:
        raise ImportRefused(
            f"{path}: {best.format} and {rival.format} read it equally well; name one with --format"
        )
    return best.format, guesses


def describe_choice(guesses: Sequence[FormatGuess]) -> str:
    """Why the first of ``guesses`` was chosen, in a line."""
    best = guesses[0]
    text = best.describe()
    alike = [guess.format for guess in guesses[1:] if best.reads_alike(guess)]
    if alike:
        text += f"; {', '.join(alike)} reads the same events from it, so either counts it alike"
    if best.readable == 0:
        text += (
            f"; no format reads its records, {best.format} recognises them as its own but "
            "cannot count them from a file"
        )
    return text


def is_line_framed(parser: Parser, path: Path) -> bool:
    """Whether the format frames this file line by line (CSV, JSON Lines), so that it can be
    streamed; otherwise the file is one document (a FreeSWITCH JSON CDR, a CEL call)."""
    sample = _sample(path)
    return parser.split(sample) == split_lines(sample)


def file_payloads(path: Path, parser: Parser) -> Iterator[tuple[bytes, int]]:
    """The file as message payloads, each with the bytes of the file it covers. Line-framed
    files are read a block at a time, so a file of any size takes bounded memory."""
    if not is_line_framed(parser, path):
        size = path.stat().st_size
        if size > MESSAGE_BYTES * 2:
            raise ImportRefused(
                f"{path}: a single {parser.format_name} document of {size} bytes is too large"
            )
        yield path.read_bytes(), size
        return
    with path.open("rb") as file:
        pending = b""
        while True:
            block = file.read(READ_BYTES)
            data = pending + block
            chunks = frame(
                data,
                lines_per_message=LINES_PER_MESSAGE,
                max_line_bytes=MESSAGE_BYTES,
                max_message_bytes=MESSAGE_BYTES,
                final=not block,
            )
            used = 0
            for chunk in chunks:
                used += chunk.size
                yield chunk.value, chunk.size
            pending = data[used:]
            if not block:
                return


@dataclass
class ImportSummary:
    """What an import sent, and what the worker will make of it."""

    files: int = 0
    bytes: int = 0
    messages: int = 0
    records: int = 0
    events: int = 0
    dead_letters: Counter[str] = field(default_factory=Counter)
    formats: Counter[str] = field(default_factory=Counter)
    # Records that are no activity by their format's rules, by why; and each dead-letter
    # reason's first detail, so that the summary says why records gave no events.
    no_activity: Counter[str] = field(default_factory=Counter)
    first_details: dict[str, str] = field(default_factory=dict)

    def add(self, outcome: ImportSummary) -> None:
        for name in ("files", "bytes", "messages", "records", "events"):
            setattr(self, name, getattr(self, name) + getattr(outcome, name))
        self.dead_letters.update(outcome.dead_letters)
        self.formats.update(outcome.formats)
        self.no_activity.update(outcome.no_activity)
        for reason, detail in outcome.first_details.items():
            self.first_details.setdefault(reason, detail)

    def count(self, result: BatchResult) -> None:
        """Adds what the worker will make of one message."""
        self.records += result.records.total() + result.refused_messages
        self.events += len(result.rows)
        self.no_activity.update(result.no_activity)
        for letter in result.dead_letters:
            self.dead_letters[letter.reason] += 1
            self.first_details.setdefault(letter.reason, letter.detail)

    def describe(self) -> str:
        formats = ", ".join(f"{name} {n}" for name, n in sorted(self.formats.items()))
        letters = (
            ", ".join(
                f"{reason} {n} (first: {self.first_details[reason]})"
                for reason, n in self.dead_letters.most_common()
            )
            or "none"
        )
        quiet = ", ".join(f"{n} {why}" for why, n in self.no_activity.most_common())
        return (
            f"{self.files} file(s) ({formats}), {self.bytes:,} bytes: {self.messages:,} "
            f"messages, {self.records:,} records, {self.events:,} events; "
            + (f"no activity by the format's rules: {quiet}; " if quiet else "")
            + f"dead letters: {letters}"
        )


class _Progress:
    """A line on a terminal that says how far the import is, redrawn at most twice a second."""

    def __init__(self, stream: TextIO | None) -> None:
        self._stream = stream if stream is not None and stream.isatty() else None
        self._next = 0.0

    def show(self, path: Path, done: int, total: int, records: int) -> None:
        now = time.monotonic()
        if self._stream is None or now < self._next:
            return
        self._next = now + PROGRESS_SECONDS
        share = 100 * done / total if total else 100
        self._stream.write(f"\r{path.name}: {share:5.1f} %  {records:,} records")
        self._stream.flush()

    def end(self) -> None:
        if self._stream is not None:
            self._stream.write("\n")


def _directory(settings: Settings) -> Directory:
    path = settings.directory_path
    if path is not None and path.exists():
        return load_directory(path)
    return parse_directory("departments: []\nmanagers: []\n", suffix=".yaml")


async def import_files(
    paths: Sequence[Path],
    settings: Settings,
    *,
    format_name: str | None = None,
    progress: TextIO | None = sys.stderr,
    log: Callable[[str], object] = print,
) -> ImportSummary:
    """Sends every file to its raw topic as a backfill; returns once Kafka acknowledged all."""
    parsers = build_parsers(settings.parsing, settings.worker.max_record_bytes)
    directory = _directory(settings)
    processor = BatchProcessor(
        parsers,
        lambda: directory,
        PhoneProtector(None),  # the summary counts; nothing it makes is stored
        max_message_bytes=settings.worker.max_message_bytes,
        max_records_per_message=settings.worker.max_records_per_message,
    )
    chosen = [(path, *choose_format(path, parsers, format_name)) for path in paths]
    total = ImportSummary()
    shown = _Progress(progress)
    async with RawProducer(settings.kafka, settings.topics) as producer:
        for path, name, guesses in chosen:
            if guesses:
                log(f"{path}: {name} ({describe_choice(guesses)})")
            total.add(await _import_file(path, parsers[name], producer, processor, shown, total))
    shown.end()
    return total


async def _import_file(
    path: Path,
    parser: Parser,
    producer: RawProducer,
    processor: BatchProcessor,
    shown: _Progress,
    running: ImportSummary,
) -> ImportSummary:
    name = parser.format_name
    summary = ImportSummary(files=1, formats=Counter({name: 1}))
    headers = [(FORMAT_HEADER, name.encode()), (BACKFILL_HEADER, b"1")]

    def outgoing() -> Iterator[RawRecordOut]:
        size = path.stat().st_size
        for number, (payload, covered) in enumerate(file_payloads(path, parser)):
            result = processor.process([RawMessage(name, 0, number, headers, payload)])
            summary.bytes += covered
            summary.messages += 1
            summary.count(result)
            shown.show(path, summary.bytes, size, running.records + summary.records)
            # Keyed by file and position, so that a large file spreads over the partitions.
            key = f"{path.name}:{number}".encode()
            yield RawRecordOut(parser.family, name, key, payload, backfill=True)

    await producer.send_many(outgoing())
    return summary
