"""``salespulse sources check``: what salespulse will make of a source file, before sending it.

The first day with a real PBX goes wrong in a few known ways: the wrong column set, the wrong
``pbx_timezone`` (found later as thousands of ``future_time`` or ``late`` dead letters), trunks
and queue numbers taken for extensions, extensions missing from the directory. This check reads
a file with the worker's own parsers and batch processor, with no Kafka and no ClickHouse, and
says each of these in plain words.
"""

from __future__ import annotations

import csv
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from processors.parsers import build_parsers
from processors.pipeline import EVENT_COLUMNS, BatchProcessor, RawMessage
from processors.privacy import PhoneProtector
from salespulse.directory import Directory
from salespulse.history_import import (
    FormatGuess,
    ImportSummary,
    choose_format,
    describe_choice,
    file_payloads,
    is_line_framed,
)
from salespulse.models import BACKFILL_HEADER, FORMAT_HEADER
from salespulse.sections import ParsingSettings, WorkerSettings

# Dead-letter line numbers shown per reason; the rest are counted.
LINES_SHOWN = 10
_ROW = {name: index for index, name in enumerate(EVENT_COLUMNS)}
# An Asterisk uniqueid ("1700000000.123"): the Unix time its channel was created, in UTC
# whatever the PBX's zone, so that it tells the offset of the CDR's wall-clock start.
_UNIQUEID = re.compile(r"\d{9,10}\.\d+", re.ASCII)
_CDR_TIME = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}", re.ASCII)
_QUARTER_HOUR = 15 * 60
# Records further apart than this between channel creation and CDR start say nothing.
_ZONE_EVIDENCE_LIMIT = timedelta(hours=15)


@dataclass
class ZoneFinding:
    """The PBX's UTC offset as its CDRs show it, against the configured zone."""

    configured: str
    offsets: Counter[timedelta] = field(default_factory=Counter)  # observed offset → records
    agreeing: int = 0  # records whose observed offset is the configured zone's at their time

    @property
    def observed(self) -> timedelta:
        return self.offsets.most_common(1)[0][0]

    @property
    def agrees(self) -> bool:
        return self.agreeing * 10 >= self.offsets.total() * 9

    def add(self, lines: Iterable[bytes]) -> None:
        """Per Asterisk CSV line with a uniqueid, the offset of its wall-clock start from the
        uniqueid's UTC time, rounded to a quarter hour (a channel is created a moment before
        its CDR starts), against the configured zone's offset at that moment."""
        zone = ZoneInfo(self.configured)
        for line in lines:
            try:
                fields = next(csv.reader([line.decode("utf-8", "replace")]))
            except (csv.Error, StopIteration):
                continue
            uniqueid = next((f for f in fields if _UNIQUEID.fullmatch(f)), None)
            start = next((f for f in fields if _CDR_TIME.fullmatch(f)), None)
            if uniqueid is None or start is None:
                continue
            try:
                created = datetime.fromtimestamp(float(uniqueid), UTC)
                wall = datetime.fromisoformat(start)
            except (ValueError, OverflowError, OSError):
                continue
            gap = (wall - created.replace(tzinfo=None)).total_seconds()
            offset = timedelta(seconds=round(gap / _QUARTER_HOUR) * _QUARTER_HOUR)
            if abs(offset) > _ZONE_EVIDENCE_LIMIT:
                continue
            self.offsets[offset] += 1
            self.agreeing += created.astimezone(zone).utcoffset() == offset

    def describe(self) -> str:
        seen = self.offsets[self.observed]
        verdict = "agrees" if self.agrees else "DISAGREES"
        lines = [
            f"CDR start times run {_offset(self.observed)} from the uniqueid clock "
            f"({seen} of {self.offsets.total()} records)",
            f"SALESPULSE_PARSING__PBX_TIMEZONE={self.configured} gives the same offset for "
            f"{self.agreeing} of them: {verdict}",
        ]
        if not self.agrees:
            lines.append(
                "set SALESPULSE_PARSING__PBX_TIMEZONE to the PBX's own zone, one at "
                f"{_offset(self.observed)} (UTC if the PBX writes usegmtime=yes): with this one "
                "every CDR is shifted, onto the wrong hour or day, and many become future_time "
                "or late dead letters"
            )
        return "\n  ".join(lines)


def _offset(value: timedelta) -> str:
    minutes = int(value.total_seconds()) // 60
    sign = "-" if minutes < 0 else "+"
    return f"UTC{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


@dataclass
class SourceReport:
    path: Path
    format: str
    guesses: list[FormatGuess]
    # Records, events, no activity and dead letters, counted as the import counts them.
    counted: ImportSummary = field(default_factory=ImportSummary)
    sides_by_directory: int = 0  # records naming no channel: the directory picked the side
    dead_lines: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))
    by_line: bool = True  # dead_lines are line numbers, else record numbers
    managers: Counter[str] = field(default_factory=Counter)
    extensions: Counter[str] = field(default_factory=Counter)  # not in the directory
    users: Counter[str] = field(default_factory=Counter)  # CRM and chat users, not in it either
    outside: Counter[str] = field(default_factory=Counter)  # numbers, trunks, queues
    days: dict[date, dict[str, Counter[str]]] = field(default_factory=dict)
    zone: ZoneFinding | None = None
    configured_zone: str = "UTC"

    @property
    def trouble(self) -> bool:
        """Whether the file would not be counted as it should: a wrong zone, or most of it
        dead-lettered."""
        wrong_zone = self.zone is not None and not self.zone.agrees
        return wrong_zone or 2 * self.counted.dead_letters.total() > self.counted.records


def check_file(
    path: Path,
    directory: Directory,
    parsing: ParsingSettings,
    *,
    worker: WorkerSettings | None = None,
    format_name: str | None = None,
    now: datetime | None = None,
) -> SourceReport:
    """Reads ``path`` as the worker would, record by record; nothing is sent or stored."""
    worker = worker or WorkerSettings()
    parsers = build_parsers(parsing, worker.max_record_bytes)
    name, guesses = choose_format(path, parsers, format_name)
    report = SourceReport(path, name, guesses, configured_zone=parsing.pbx_timezone)
    processor = BatchProcessor(
        parsers,
        lambda: directory,
        PhoneProtector(None),
        max_message_bytes=worker.max_message_bytes,
        max_records_per_message=worker.max_records_per_message,
        clock=lambda: now or datetime.now(UTC),
    )
    extensions = re.compile(parsing.internal_extension_pattern)
    headers = [(FORMAT_HEADER, name.encode()), (BACKFILL_HEADER, b"1")]
    first_line = 1
    by_line = report.by_line = is_line_framed(parsers[name], path)
    # The zone's evidence is gathered in the same pass: the file is read once.
    zone = ZoneFinding(parsing.pbx_timezone) if name == "asterisk-cdr-csv" else None
    for number, (payload, _) in enumerate(file_payloads(path, parsers[name])):
        if zone is not None:
            zone.add(payload.split(b"\n"))
        lines, first_line = _line_numbers(payload, first_line) if by_line else ([], first_line)
        result = processor.process([RawMessage(name, 0, number, headers, payload)])
        report.counted.count(result)
        report.sides_by_directory += result.sides_by_directory
        for letter in result.dead_letters:
            shown = report.dead_lines[letter.reason]
            if len(shown) < LINES_SHOWN:
                position = letter.source.position
                shown.append(lines[position] if position < len(lines) else position + 1)
        for row in result.rows:
            _classify(report, row, extensions)
    report.zone = zone if zone is not None and zone.offsets else None
    return report


def _line_numbers(payload: bytes, first_line: int) -> tuple[list[int], int]:
    """The file line of each record of a line-framed payload (blank lines are no record, as in
    ``split_lines``), and the line the next payload starts on."""
    numbers = []
    line = first_line
    for piece in payload.splitlines(keepends=True):
        if piece.strip():
            numbers.append(line)
        line += piece.endswith(b"\n")
    return numbers, line + 1  # the payload's last line ended in the newline cut from it


def _classify(report: SourceReport, row: tuple[object, ...], extensions: re.Pattern[str]) -> None:
    manager = str(row[_ROW["manager_id"]])
    actor = str(row[_ROW["actor_id"]])
    family = str(row[_ROW["actor_family"]])
    if manager:
        report.managers[manager] += 1
        day = row[_ROW["local_date"]]
        assert isinstance(day, date)
        counts = report.days.setdefault(day, {}).setdefault(manager, Counter())
        _count(counts, row)
    elif family != "pbx":
        # A CRM or chat user id (a Bitrix24 user) names a person whatever it looks like.
        report.users[f"{family}:{actor}"] += 1
    elif extensions.search(actor):
        report.extensions[actor] += 1
    else:
        report.outside[actor] += 1


def _count(counts: Counter[str], row: tuple[object, ...]) -> None:
    kind = str(row[_ROW["kind"]])
    if kind != "call":
        counts[kind] += 1
        return
    direction = str(row[_ROW["direction"]])
    answered = bool(row[_ROW["answered"]])
    counts[f"{direction} legs"] += 1
    if answered:
        counts["answered legs"] += 1
        talk = row[_ROW["talk_seconds"]]
        counts["talk s"] += int(talk) if isinstance(talk, int) else 0
    elif direction == "incoming":
        counts["unanswered incoming legs"] += 1


def render(report: SourceReport, managers: Mapping[str, str] | None = None) -> str:
    """The report as text for a terminal."""
    out = [f"{report.path}", f"format: {report.format}"]
    if report.guesses:
        out.append(f"  chosen: {describe_choice(report.guesses)}")
    out += [f"  {guess.describe()}" for guess in report.guesses[1:3]]
    if report.zone is not None:
        out.append(f"PBX time zone:\n  {report.zone.describe()}")
    elif report.format == "asterisk-cdr-csv":
        out.append(
            "PBX time zone: these CDRs carry no uniqueid to check "
            f"SALESPULSE_PARSING__PBX_TIMEZONE={report.configured_zone} against; compare a "
            "call's start time in the file with when it was made"
        )
    counted = report.counted
    quiet = counted.no_activity.total()
    out.append(
        f"records: {counted.records}, events: {counted.events}, "
        + (f"no activity: {quiet}, " if quiet else "")
        + f"dead letters: {counted.dead_letters.total()}"
    )
    for why, count in counted.no_activity.most_common():
        out.append(f"  no activity: {count}: {why}")
    if report.sides_by_directory:
        out.append(
            f"  {report.sides_by_directory} record(s) name no channel and no extension: the "
            "caller's or the called number counts as a manager's only where the directory "
            'lists it as the PBX writes it (docs/formats.md, "No channel at all")'
        )
    where = "lines" if report.by_line else "records"
    for reason, count in counted.dead_letters.most_common():
        lines = ", ".join(map(str, report.dead_lines[reason]))
        more = " …" if count > len(report.dead_lines[reason]) else ""
        out.append(
            f"  {reason}: {count} ({where} {lines}{more}); first: {counted.first_details[reason]}"
        )
    out.append("identities:")
    out.append(_identities("directory managers", report.managers))
    out.append(_identities("likely extensions, not in the directory", report.extensions))
    out.append(_identities("CRM and chat users, not in the directory", report.users))
    out.append(_identities("outside numbers, trunks, queues (not extensions)", report.outside))
    if report.days:
        busiest = max(report.days, key=lambda day: len(report.days[day]))
        out.append(f"the busiest day, {busiest}, per manager (call legs before consolidation):")
        for manager, counts in sorted(report.days[busiest].items()):
            shown = ", ".join(f"{name} {n}" for name, n in sorted(counts.items()))
            out.append(f"  {manager}: {shown}")
    return "\n".join(out)


def _identities(title: str, seen: Counter[str]) -> str:
    if not seen:
        return f"  {title}: none"
    top = ", ".join(f"{identity} ({n})" for identity, n in seen.most_common(10))
    more = f" and {len(seen) - 10} more" if len(seen) > 10 else ""
    return f"  {title}: {len(seen)}: {top}{more}"
