"""The hot path: a batch of raw Kafka messages becomes ClickHouse rows and dead letters.

Pure and synchronous on purpose: no I/O here, so it is unit-testable with plain values, and the
worker wraps it with the Kafka and ClickHouse plumbing. It works on whole batches because the
per-event overhead of a stream framework, not Kafka or ClickHouse, is the first limit on
throughput.

Order of work for each message: look up the format header → frame the payload into records →
parse each record → refuse implausible times → turn a call between a manager and an
extension-shaped identity nobody holds into the manager's call with an outside party, and keep
the side(s) of a record with no channel that the directory holds → attribute the actor through
the directory valid at the event time → protect phone numbers (also an actor's: attribution has
already used it) → flatten into a row.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from decimal import Decimal
from typing import Any, NamedTuple

from processors.parsers.base import NoActivity, Parser, RecordError
from processors.privacy import PhoneProtector, normalise_number
from salespulse.column_limits import EARLIEST_EVENT, is_no_deadline
from salespulse.directory import Attribution, Directory
from salespulse.models import (
    BACKFILL_HEADER,
    FORMAT_HEADER,
    MAX_RECORDS_PER_MESSAGE,
    ActivityEvent,
    ActivityKind,
    Actor,
    Direction,
    SourceFamily,
    SourceRef,
)

# A PBX or CRM whose clock runs a little fast is normal; an event hours in the future means a
# wrong time zone setting, and storing it would put activity on the wrong day.
MAX_FUTURE_SKEW = timedelta(minutes=15)
_ZERO = Decimal(0)

Headers = Mapping[str, bytes] | Sequence[tuple[str, bytes]]


class RawMessage(NamedTuple):
    """One Kafka message as consumed: coordinates, headers and the bytes the source emitted.

    ``received_at`` is the message's Kafka timestamp: when the bridge wrote it, stored with the
    message, so lateness judged against it is the same on every replay.
    """

    topic: str
    partition: int
    offset: int
    headers: Headers
    value: bytes | None
    received_at: datetime | None = None


class DeadLetter(NamedTuple):
    """A record that produced no event: why, where it came from, and its original bytes."""

    reason: str
    detail: str
    source: SourceRef
    original: bytes


# How each time column of ``events`` is kept within what it can hold
# (``salespulse.column_limits``); a test holds this list to the table's own columns.
TIME_COLUMNS_KEPT_IN_RANGE: dict[str, str] = {
    "occurred_at": "from EARLIEST_EVENT to now + MAX_FUTURE_SKEW, else a dead letter",
    "local_date": "the day of local_time",
    "local_time": "occurred_at shifted by at most LOCAL_TIME_MARGIN",
    "ended_at": "not before occurred_at, not after now + MAX_FUTURE_SKEW, else a dead letter",
    "due_at": "a deadline beyond the DateTime range means no deadline (None)",
    "processed_at": "the worker's clock",
}

EVENT_COLUMNS: tuple[str, ...] = (
    "event_id",
    "kind",
    "action",
    "occurred_at",
    "local_date",
    "local_time",
    "ended_at",
    "actor_family",
    "actor_id",
    "manager_id",
    "department_id",
    "direction",
    "answered",
    "excluded",
    "duration_seconds",
    "talk_seconds",
    "first_response_seconds",
    "amount",
    "currency",
    "location",
    "channel",
    "due_at",
    "counterpart",
    "external_ref",
    "call_id",
    "source_format",
    "source_topic",
    "source_partition",
    "source_offset",
    "source_index",
    "processed_at",
)


@dataclass
class BatchResult:
    rows: list[tuple[Any, ...]] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    records: Counter[tuple[str, str]] = field(default_factory=Counter)  # (topic, format)
    kinds: Counter[str] = field(default_factory=Counter)
    unattributed: Counter[str] = field(default_factory=Counter)
    no_activity: Counter[str] = field(default_factory=Counter)  # records by why (``NoActivity``)
    refused_messages: int = 0  # messages dead-lettered whole, before framing into records
    # Records naming no channel whose manager side, if any, the directory chose.
    sides_by_directory: int = 0

    def refuse_message(self, reason: str, detail: str, message: RawMessage, fmt: str) -> None:
        """One dead letter for a whole message: its payload could not be framed into records."""
        source = SourceRef(fmt, message.topic, message.partition, message.offset, 0)
        self.dead_letters.append(DeadLetter(reason, detail, source, message.value or b""))
        self.refused_messages += 1

    def mostly_dead(self) -> bool:
        """Whether more than half of what the batch read became dead letters."""
        read = sum(self.records.values()) + self.refused_messages
        return read > 0 and 2 * len(self.dead_letters) > read


def header_value(headers: Headers, name: str) -> bytes | None:
    items = headers.items() if isinstance(headers, Mapping) else headers
    for key, value in items:
        if key == name:
            return value
    return None


def _is_backfill(headers: Headers) -> bool:
    """Only an explicit yes: "0" or "false" must not switch the lateness check off."""
    value = header_value(headers, BACKFILL_HEADER)
    return value is not None and value.strip().lower() in (b"1", b"true", b"yes")


def _late(events: Sequence[ActivityEvent], received_at: datetime, grace: timedelta) -> str | None:
    """Why the record is too late to count, or None.

    A record can exist only once its activity ended (a CDR at hangup, a chat session at close),
    so lateness is measured from the end when there is one. A channel going up or down counts
    nothing, so it is never too late: a channel announced again after a reconnect came up
    long before it arrives.
    """
    for event in events:
        if event.kind is ActivityKind.CHANNEL:
            continue
        finished = event.ended_at or event.occurred_at
        if received_at - finished > grace:
            hours = (received_at - finished).total_seconds() / 3600
            return f"arrived {hours:.1f} h after the activity; grace is {grace}"
    return None


def _wrong_time(
    events: Sequence[ActivityEvent], latest_allowed: datetime
) -> tuple[str, str] | None:
    """Why a record's times cannot be counted (a dead letter's reason and detail), or None.

    A start or an end in the future means a wrong clock or zone at the source; a start before
    ``EARLIEST_EVENT`` (a date of 1900, a zero timestamp) cannot be stored at all: the time
    columns hold 1970 to 2106 (``salespulse.column_limits``), and an insert with one such value
    fails for the whole batch."""
    for event in events:
        occurred_at = event.occurred_at
        ended_at = event.ended_at
        if occurred_at > latest_allowed:
            return "future_time", f"event time {occurred_at.isoformat()} is in the future"
        if ended_at is not None and ended_at > latest_allowed:
            return "future_time", f"end time {ended_at.isoformat()} is in the future"
        if occurred_at < EARLIEST_EVENT:
            return (
                "bad_time",
                f"event time {occurred_at.isoformat()} is before {EARLIEST_EVENT.isoformat()}, "
                "the earliest that can be stored",
            )
    return None


class _Format(NamedTuple):
    name: str
    parser: Parser | None
    grace: timedelta | None


_KNOWN_FORMATS = 256


class BatchProcessor:
    def __init__(
        self,
        parsers: Mapping[str, Parser],
        directory: Callable[[], Directory],
        phones: PhoneProtector,
        *,
        max_message_bytes: int,
        max_records_per_message: int = MAX_RECORDS_PER_MESSAGE,
        grace: Mapping[SourceFamily, timedelta] | None = None,
        excluded_numbers: Iterable[str] = (),
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._parsers = parsers
        self._directory = directory
        self._phones = phones
        self._max_message_bytes = max_message_bytes
        self._max_records = max_records_per_message
        self._grace = dict(grace or {})
        self._excluded = frozenset(normalise_number(n) for n in excluded_numbers)
        self._clock = clock
        # Per raw format header value: what _format makes of it.
        self._formats: dict[bytes | None, _Format] = {}

    def process(self, messages: Sequence[RawMessage]) -> BatchResult:
        result = BatchResult()
        # One directory snapshot per batch: consistent attribution.
        batch = _Batch(self._directory(), self._clock(), result)
        for message in messages:
            self._process_message(message, batch)
        return result

    def _process_message(self, message: RawMessage, batch: _Batch) -> None:
        result = batch.result
        headers = message.headers
        raw_format = header_value(headers, FORMAT_HEADER)
        known = self._formats.get(raw_format)
        if known is None:
            known = self._format(raw_format)
        format_name, parser, grace = known
        topic, partition, offset = message.topic, message.partition, message.offset
        payload = message.value or b""
        if parser is None:
            reason = "unknown_format" if raw_format else "missing_format_header"
            detail = (
                f"no parser for format {format_name!r}" if raw_format else "no sp-format header"
            )
            result.refuse_message(reason, detail, message, format_name)
            return
        if len(payload) > self._max_message_bytes:
            detail = f"{len(payload)} bytes, limit {self._max_message_bytes}"
            result.refuse_message("too_large", detail, message, format_name)
            return
        received_at = message.received_at
        if grace is not None and (received_at is None or _is_backfill(headers)):
            grace = None
        records = parser.split(payload)
        if len(records) > self._max_records:
            # One dead letter for the message: a record each would stall the partition.
            detail = f"{len(records)} records, limit {self._max_records}"
            result.refuse_message("too_many_records", detail, message, format_name)
            return
        if not records:
            # Nothing but blank separators: no bridge of ours sends that, so it is kept and
            # counted rather than passing through without a trace.
            detail = f"{len(payload)} bytes, no record in them"
            result.refuse_message("empty", detail, message, format_name)
            return
        result.records[(topic, format_name)] += len(records)
        parse = parser.parse
        latest_allowed = batch.latest_allowed
        dead_letters = result.dead_letters
        append_row = result.rows.append
        row = self._row
        for index, record in enumerate(records):
            record_source = SourceRef(format_name, topic, partition, offset, index)
            try:
                events = parse(record, record_source)
            except RecordError as exc:
                dead_letters.append(DeadLetter(exc.reason, exc.detail, record_source, record))
                continue
            if not events:
                if isinstance(events, NoActivity):
                    result.no_activity[events.why] += 1
                continue
            wrong_time = _wrong_time(events, latest_allowed)
            if wrong_time is not None:
                reason, detail = wrong_time
                dead_letters.append(DeadLetter(reason, detail, record_source, record))
                continue
            if grace is not None and received_at is not None:
                late = _late(events, received_at, grace)
                if late is not None:
                    dead_letters.append(DeadLetter("late", late, record_source, record))
                    continue
            if len(events) == 2:
                result.sides_by_directory += _numbers_pair(events)
                events = settle_sides(events, batch.resolve)
            for event in events:
                append_row(row(event, batch))

    def record_at(self, message: RawMessage, index: int) -> bytes:
        """The bytes of record ``index`` of ``message``, framed as ``process`` framed them:
        what a dead letter for one of its events carries."""
        raw_format = header_value(message.headers, FORMAT_HEADER)
        parser = (self._formats.get(raw_format) or self._format(raw_format)).parser
        payload = message.value or b""
        records = parser.split(payload) if parser is not None else []
        return records[index] if index < len(records) else payload

    def _format(self, raw_format: bytes | None) -> _Format:
        """The format a header names, its parser (None: unknown) and its family's grace."""
        format_name = raw_format.decode("utf-8", "replace")[:64] if raw_format else ""
        parser = self._parsers.get(format_name)
        grace = None if parser is None else self._grace.get(parser.family)
        known = _Format(format_name, parser, grace)
        if len(self._formats) >= _KNOWN_FORMATS:  # garbage headers must not grow it forever
            self._formats.clear()
        self._formats[raw_format] = known
        return known

    def _is_excluded(self, event: ActivityEvent) -> bool:
        """A call to or from a configured service number (voicemail, IVR, a test line): kept,
        but never counted."""
        if not self._excluded or event.kind is not ActivityKind.CALL:
            return False
        parties = (event.counterpart or "", event.actor.id)
        return any(normalise_number(party) in self._excluded for party in parties)

    def _row(self, event: ActivityEvent, batch: _Batch) -> tuple[Any, ...]:
        occurred_at = event.occurred_at
        actor = event.actor
        owner = batch.resolve(actor, occurred_at)
        if owner is None:
            manager_id = department_id = ""
            # Already UTC: the wall clock of an unattributed event is its UTC time.
            local_time = occurred_at
            batch.result.unattributed[actor.family._value_] += 1
        else:
            manager_id, department_id = owner
            # The manager's wall-clock time, stored as if it were UTC: every window (15
            # minutes, hour, day, week, month) is then a plain toStartOf... over it, whatever
            # the zone.
            zone = batch.zones.get(department_id)
            if zone is None:
                zone = batch.zone(department_id)
            local = occurred_at.astimezone(zone)
            offset = local.utcoffset()
            if offset is None or local.fold:  # the second pass through a fall-back hour
                local_time = local.replace(tzinfo=UTC)
            else:
                # The same value as local.replace(tzinfo=UTC), without replace()'s cost.
                local_time = occurred_at + offset
        kind = event.kind._value_
        batch.result.kinds[kind] += 1
        direction = event.direction
        source = event.source
        return (
            event.event_id,
            kind,
            event.action,
            occurred_at,
            local_time.date(),
            local_time,
            event.ended_at,
            actor.family._value_,
            # Looked up as the source wrote it (above), stored protected: a number as actor (a
            # call nobody's extension took, a manager's mobile) gets the counterpart's token.
            self._phones.protect(actor.id),
            manager_id,
            department_id,
            "" if direction is None else direction._value_,
            1 if event.answered else 0,
            # A channel going up or down is never counted: it only tells who is on a call now.
            1 if kind == "channel" or (self._excluded and self._is_excluded(event)) else 0,
            event.duration_seconds or 0,
            event.talk_seconds or 0,
            event.first_response_seconds,
            event.amount if event.amount is not None else _ZERO,
            event.currency or "",
            # Free text a manager typed ("client's home, +7 916 123-45-67"): may hold a number.
            self._phones.protect(event.location) or "",
            event.channel or "",
            _deadline(event.due_at),
            self._phones.protect(event.counterpart) or "",
            event.external_ref or "",
            event.call_id or "",
            source.format,
            source.topic,
            source.partition,
            source.offset,
            source.position,
            batch.processed_at,
        )


Resolve = Callable[[Actor, datetime], Attribution | None]


def settle_sides(events: list[ActivityEvent], resolve: Resolve) -> list[ActivityEvent]:
    """The events of a record that speaks for both ends of a call, as the directory decides
    them: a pair of extensions of which it holds one (``_outside_party``), or the two numbers
    of a record that names no channel (``_numbers_by_directory``). Other pairs pass as they are."""
    if len(events) != 2:
        return events
    direction = events[0].direction
    if direction is Direction.INTERNAL:
        return _outside_party(events, resolve)
    if direction is Direction.INCOMING:
        return _numbers_by_directory(events, resolve)
    return events


def _numbers_by_directory(events: list[ActivityEvent], resolve: Resolve) -> list[ActivityEvent]:
    """A call whose record names no channel, kept from the side(s) the directory holds.

    With no channel to tell an extension by (an Asterisk CDR whose channels were pseudonymised
    or left empty, a FreeSWITCH ``mod_cdr_csv`` line), the parser gives the callee's incoming
    call, as for any call with no extension on it, then the caller's outgoing call as a
    candidate. Only the directory knows whose numbers they are: the caller's alone makes the
    caller's outgoing call, both make an internal call for each, else the callee's incoming
    call stands (unattributed when nobody holds it). The single event keeps the callee's id
    whichever side it speaks for, so replaying a file after adding its managers to the directory
    replaces the rows it stored before rather than adding to them.
    """
    if not _numbers_pair(events):
        return events
    callee, caller = events
    if resolve(caller.actor, caller.occurred_at) is None:
        return [callee]
    if resolve(callee.actor, callee.occurred_at) is None:
        return [caller.model_copy(update={"event_id": callee.event_id})]
    internal = {"direction": Direction.INTERNAL}
    return [caller.model_copy(update=internal), callee.model_copy(update=internal)]


def _numbers_pair(events: list[ActivityEvent]) -> bool:
    """Whether two events are a record's callee and caller candidate (see
    ``_numbers_by_directory``): an incoming and an outgoing call naming each other."""
    callee, caller = events
    return (
        callee.direction is Direction.INCOMING
        and caller.direction is Direction.OUTGOING
        and caller.counterpart == callee.actor.id
        and callee.counterpart == caller.actor.id
    )


def _outside_party(events: list[ActivityEvent], resolve: Resolve) -> list[ActivityEvent]:
    """A call between a manager and an identity the directory does not hold, as the manager's
    call with an outside party.

    A PBX record that speaks for both ends of a call between two extensions gives the caller's
    event, then the callee's, each naming the other as counterpart. An extension-shaped name
    nobody holds (a trunk named after a city number, a queue's number) next to a manager is
    not a second manager: it is the party outside, so the manager has an outgoing (caller) or
    incoming (callee) call, and the outside party no event. Two identities nobody holds stay
    as they are: the directory may simply lack both.
    """
    caller, callee = events
    if not (
        callee.direction is Direction.INTERNAL
        and caller.counterpart == callee.actor.id
        and callee.counterpart == caller.actor.id
    ):
        return events
    caller_held = resolve(caller.actor, caller.occurred_at) is not None
    if caller_held == (resolve(callee.actor, callee.occurred_at) is not None):
        return events
    if caller_held:
        return [caller.model_copy(update={"direction": Direction.OUTGOING})]
    return [callee.model_copy(update={"direction": Direction.INCOMING})]


def _deadline(due_at: datetime | None) -> datetime | None:
    """A task's deadline as stored: a "no deadline" sentinel (1900, 9999, a zero timestamp)
    is no deadline, not a task overdue for ever or a value no column can hold."""
    return None if due_at is None or is_no_deadline(due_at) else due_at


class _Batch:
    """What the messages of one batch share: the directory snapshot, the clock read once, the
    result being built, and the department time zones looked up so far."""

    __slots__ = ("directory", "latest_allowed", "processed_at", "resolve", "result", "zones")

    def __init__(self, directory: Directory, now: datetime, result: BatchResult) -> None:
        self.directory = directory
        self.resolve = directory.resolve
        self.processed_at = now.replace(microsecond=0)
        self.latest_allowed = now + MAX_FUTURE_SKEW
        self.result = result
        self.zones: dict[str, tzinfo] = {}

    def zone(self, department_id: str) -> tzinfo:
        """The department's time zone, looked up once per batch."""
        zone = self.zones[department_id] = self.directory.timezone_of(department_id)
        return zone
