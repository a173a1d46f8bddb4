"""Asterisk ``cdr_csv`` Master.csv lines: one CDR per line, the default 16-column set.

A CDR describes one call leg between the calling channel and the dialled channel. A manager's
phone may sit at either end (or both, for a call between colleagues), so one line yields one
event per manager involved, each from that manager's point of view.
"""

from __future__ import annotations

import csv
import re
from datetime import UTC, datetime, timedelta, tzinfo
from typing import ClassVar
from zoneinfo import ZoneInfo

from pydantic import ValidationError

from processors.parsers._common import (
    DEFAULT_MAX_RECORD_BYTES,
    check_size,
    decode,
    redact,
    summarize,
)
from processors.parsers.base import RecordError, split_lines
from salespulse.models import (
    ActivityEvent,
    ActivityKind,
    Actor,
    Direction,
    SourceFamily,
    SourceRef,
    derive_event_id,
)

FIELD_COUNT = 16
# Every value ast_cdr_disp2str() can produce except its "UNKNOWN" fallback.
DISPOSITIONS = frozenset({"ANSWERED", "NO ANSWER", "BUSY", "FAILED", "CONGESTION"})

_CDR_TIME = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}", re.ASCII)
# A prebuilt dialect: passing keyword options builds a new one for every line. Strict, so that a
# stray quote is a malformed line rather than a silently merged field.
_CSV_DIALECT = csv.reader((), strict=True).dialect
_OFFSET_CACHE_SIZE = 4096
_UNSIGNED = re.compile(r"\d{1,9}", re.ASCII)


def channel_endpoint(channel: str) -> str | None:
    """The device or peer behind a channel name, e.g. ``SIP/101-00000013`` → ``101``.

    Local channels name a dialplan target instead (``Local/101@from-internal-0000001;1``), so
    their endpoint is the extension before ``@``. A name without a technology prefix is not a
    channel we can attribute.
    """
    _, slash, resource = channel.partition("/")
    if not slash or not resource:
        return None
    if "@" in resource:
        endpoint = resource.partition("@")[0]
    else:
        # Channel names end in "-<sequence>"; a peer name may itself contain dashes.
        head, dash, _ = resource.rpartition("-")
        endpoint = head if dash else resource
    return endpoint or None


class AsteriskCdrCsvParser:
    format_name: ClassVar[str] = "asterisk-cdr-csv"
    family: ClassVar[SourceFamily] = SourceFamily.PBX

    def __init__(
        self,
        timezone: str = "UTC",
        internal_extension_pattern: str = r"^\d{2,6}$",
        max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES,
    ) -> None:
        # The built-in UTC skips zoneinfo's transition lookup for the common usegmtime=yes case.
        self._zone: tzinfo = UTC if timezone == "UTC" else ZoneInfo(timezone)
        self._offsets: dict[str, timedelta] = {}
        self._internal = re.compile(internal_extension_pattern)
        self._max_record_bytes = max_record_bytes

    def split(self, payload: bytes) -> list[bytes]:
        return split_lines(payload)

    def parse(self, record: bytes, source: SourceRef) -> list[ActivityEvent]:
        check_size(record, self._max_record_bytes)
        text = decode(record)
        try:
            rows = list(csv.reader((text,), _CSV_DIALECT))
        except csv.Error as exc:
            raise RecordError("malformed", f"CSV syntax: {exc}") from None
        fields = rows[0] if len(rows) == 1 else []
        if len(fields) != FIELD_COUNT:
            raise RecordError("malformed", f"expected {FIELD_COUNT} fields, got {len(fields)}")
        (_, src, dst, _, _, channel, dstchannel, _, _, start_raw, answer_raw, end_raw,
         duration_raw, billsec_raw, disposition, _) = fields  # fmt: skip

        start = self._time(start_raw, "start")
        end = self._time(end_raw, "end")
        if answer_raw:
            # Not used for the event, but a garbled answer time means a garbled line.
            self._wall_clock(answer_raw, "answer")
        if end < start:
            end = self._second_pass(end_raw, start)
        duration = _seconds(duration_raw, "duration")
        billsec = _seconds(billsec_raw, "billsec")
        if billsec > duration:
            raise RecordError("invalid", "billsec exceeds duration")
        if disposition not in DISPOSITIONS:
            raise RecordError("invalid", f"unknown disposition {redact(disposition)}")

        caller = self._extension(channel)
        callee = self._extension(dstchannel)

        # (actor id, side, direction, counterpart) per event.
        legs: list[tuple[str, str, Direction, str | None]]
        if caller and callee:
            legs = [
                (caller, "caller", Direction.INTERNAL, callee),
                (callee, "callee", Direction.INTERNAL, caller),
            ]
        elif caller:
            legs = [(caller, "caller", Direction.OUTGOING, dst or None)]
        elif callee:
            legs = [(callee, "callee", Direction.INCOMING, src or None)]
        elif dst:
            # A DID or queue number: attribution later reports it as unattributed.
            legs = [(dst, "callee", Direction.INCOMING, src or None)]
        else:
            raise RecordError("invalid", "no internal endpoint and no dst to attribute to")

        answered = disposition == "ANSWERED"
        try:
            return [
                ActivityEvent(
                    # Keyed on the raw start text: re-configuring the zone keeps ids stable.
                    event_id=derive_event_id(
                        self.format_name, channel, dstchannel, start_raw, side
                    ),
                    kind=ActivityKind.CALL,
                    action="leg",
                    occurred_at=start,
                    ended_at=end,
                    actor=Actor(SourceFamily.PBX, actor_id),
                    source=source,
                    direction=direction,
                    answered=answered,
                    duration_seconds=duration,
                    talk_seconds=billsec,
                    counterpart=counterpart,
                )
                for actor_id, side, direction, counterpart in legs
            ]
        except ValidationError as exc:
            raise RecordError("invalid", summarize(exc)) from None

    def _extension(self, channel: str) -> str | None:
        """The channel's endpoint if it is a manager's extension, else None."""
        endpoint = channel_endpoint(channel)
        if endpoint is None or self._internal.search(endpoint) is None:
            return None
        return endpoint

    def _wall_clock(self, value: str, field: str) -> datetime:
        if _CDR_TIME.fullmatch(value) is None:
            raise RecordError("bad_time", f"{field}: {redact(value)} is not YYYY-MM-DD HH:MM:SS")
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            raise RecordError("bad_time", f"{field}: {redact(value)} is out of range") from None

    def _time(self, value: str, field: str) -> datetime:
        """A CDR time (wall clock in the PBX's zone) as a UTC datetime."""
        local = self._wall_clock(value, field)
        if self._zone is UTC:
            return local.replace(tzinfo=UTC)
        # zoneinfo's lookup is a visible share of a line's cost, and the offset only changes at
        # a DST or zone transition, which tzdata places on whole minutes of local time since 1972.
        key = value[:16]
        offset = self._offsets.get(key)
        if offset is None:
            # fold=0 (the default): the earlier of two repeated times in a fold, and the
            # pre-transition offset for a time skipped by a gap.
            offset = local.replace(tzinfo=self._zone).utcoffset()
            if offset is None:  # pragma: no cover - ZoneInfo always knows the offset
                raise RecordError("bad_time", f"{field}: zone gives no UTC offset")
            if len(self._offsets) >= _OFFSET_CACHE_SIZE:
                self._offsets.clear()
            self._offsets[key] = offset
        try:
            return (local - offset).replace(tzinfo=UTC)
        except OverflowError:
            raise RecordError("bad_time", f"{field}: {redact(value)} is out of range") from None

    def _second_pass(self, end_raw: str, start: datetime) -> datetime:
        """The end of a call that spans a DST fall-back. Its end wall clock repeats an hour, so
        read with fold=0 it lands before the start; read with fold=1 it may not."""
        if self._zone is not UTC:
            local = datetime.fromisoformat(end_raw).replace(tzinfo=self._zone, fold=1)
            try:
                end = local.astimezone(UTC)
            except OverflowError:
                raise RecordError("invalid", "end is before start") from None
            if end >= start:
                return end
        raise RecordError("invalid", "end is before start")


def _seconds(value: str, field: str) -> int:
    if _UNSIGNED.fullmatch(value) is None:
        raise RecordError("invalid", f"{field}: {redact(value)} is not a non-negative integer")
    return int(value)
