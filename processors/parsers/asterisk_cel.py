"""Asterisk Channel Event Logging (CEL) of one call, as the AMI bridge groups it.

``cel_manager`` raises one ``Event: CEL`` per channel event (CHAN_START, ANSWER, HANGUP,
CHAN_END, BRIDGE_ENTER, ... LINKEDID_END). One event says nothing about a call, so the bridge
keeps a call's events until its LINKEDID_END and writes them as one record: the AMI blocks
exactly as received, in arrival order (see docs/sources/asterisk.md).

A record becomes the call legs a CDR backend would describe: one per channel that was dialled
from the call's originating channel (the one whose UniqueID is the LinkedID), as ``CdrFields``
handed to the shared ``CdrInterpreter``, so directions, attribution and ``call_id`` are those of
``cdr_csv`` and ``cdr_manager``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import ClassVar, NamedTuple

from processors.parsers._common import (
    INTERNAL_EXTENSION_PATTERN,
    PbxRecordParser,
    check_decoded,
    decode_leniently,
    redact,
)
from processors.parsers.asterisk_ami_cdr import message_fields, split_blocks
from processors.parsers.asterisk_cdr_common import CdrFields, CdrInterpreter
from processors.parsers.base import RecordError
from salespulse.models import ActivityEvent, SourceRef
from salespulse.sections import text_encoding

# A call's events are a few hundred bytes each; half a megabyte is about a thousand of them and
# stays below Kafka's default 1 MB message limit.
CEL_MAX_RECORD_BYTES = 524_288

# cel.conf dateformat "%F %T" (and the fixed format of older cel_manager releases): wall clock.
_WALL_CLOCK = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}", re.ASCII)
# cel.conf without dateformat: Unix seconds with microseconds, "1795673702.123456".
_EPOCH = re.compile(r"(\d{1,11})(?:\.\d{1,9})?", re.ASCII)

# Fields every CEL event must carry, lower-cased AMI name → name for messages.
_REQUIRED = {
    name.lower(): name for name in ("EventName", "EventTime", "Channel", "UniqueID", "LinkedID")
}


# Every field read, lower-cased AMI name: the others (CallerIDname, AppData…) may hold any bytes.
_READ = ("event", *_REQUIRED, "calleridnum", "exten")


class _Time(NamedTuple):
    text: str  # as CdrFields wants it: wall clock in the zone of the interpreter that reads it
    epoch: bool


@dataclass
class _Channel:
    """What the events of one channel (one UniqueID) say about it."""

    uniqueid: str
    name: str
    first: int  # index of its first event in the record
    start: _Time | None = None
    answer: _Time | None = None
    hangup: _Time | None = None
    chan_end: _Time | None = None
    caller_number: str = ""
    # (event index, Exten) of each event with an extension: where the channel was in the dialplan.
    extens: list[tuple[int, str]] = field(default_factory=list)

    @property
    def end(self) -> _Time | None:
        return self.hangup or self.chan_end

    @property
    def local(self) -> bool:
        # Local channels join two halves of the dialplan (queues, ring groups, Originate): the
        # real phones they lead to are channels of the same call in their own right.
        return self.name.lower().startswith("local/")


class AsteriskCelCallParser(PbxRecordParser):
    format_name: ClassVar[str] = "asterisk-cel-call"

    def __init__(
        self,
        timezone: str = "UTC",
        internal_extension_pattern: str = INTERNAL_EXTENSION_PATTERN,
        max_record_bytes: int = CEL_MAX_RECORD_BYTES,
        encoding: str = "utf-8",
    ) -> None:
        """``encoding`` is that of the PBX's text (``text_encoding`` names); only the fields
        read need to decode: a caller name in another encoding must not cost the call."""
        super().__init__(timezone, internal_extension_pattern, max_record_bytes)
        self._encoding = text_encoding(encoding)

    @cached_property
    def _wall_clock_cdr(self) -> CdrInterpreter:
        return CdrInterpreter(self._zone, self._extensions)

    @cached_property
    def _epoch_cdr(self) -> CdrInterpreter:
        # Epoch times are turned into UTC wall clock, whatever the PBX's zone.
        return CdrInterpreter(UTC, self._extensions)

    def split(self, payload: bytes) -> list[bytes]:
        # The bridge writes one call per Kafka message; its blank lines separate events, not
        # records.
        return [payload] if payload.strip() else []

    def parse_record(self, record: bytes, source: SourceRef) -> list[ActivityEvent]:
        _, valid = decode_leniently(record, self._encoding)
        linkedid, channels = self._channels(record, checked=not valid)
        origin = channels.get(linkedid)
        if origin is None:
            raise RecordError("invalid", "no event of the originating channel (UniqueID=LinkedID)")
        if origin.local:
            raise RecordError("invalid", "the originating channel is a Local channel")
        if origin.start is None:
            raise RecordError("invalid", "no CHAN_START of the originating channel")
        # _channels saw to it that all events use one form of EventTime.
        cdr = self._epoch_cdr if origin.start.epoch else self._wall_clock_cdr

        callees = [c for c in channels.values() if c is not origin and not c.local]
        legs: list[tuple[_Channel, _Channel | None]] = [(origin, c) for c in callees]
        if not callees:
            # Nobody rang (an IVR or a failed dial): the originating channel on its own.
            legs = [(origin, None)]
        events: list[ActivityEvent] = []
        dropped: list[str] = []
        for caller, callee in legs:
            leg = callee or caller
            if leg.end is None:
                # A group flushed before the call ended (bridge limits or restart).
                dropped.append(f"{redact(leg.name)} has no HANGUP or CHAN_END")
                continue
            fields = self._cdr_fields(linkedid, caller, callee, leg.end)
            events += cdr.events(fields, source)
        if dropped and not events:
            raise RecordError("invalid", "no complete leg: " + "; ".join(dropped))
        return events

    def _channels(self, record: bytes, *, checked: bool) -> tuple[str, dict[str, _Channel]]:
        """The call's LinkedID and its channels by UniqueID, in order of first appearance.
        ``checked``: the record is not all valid text, so each event's fields read are checked."""
        linkedid: str | None = None
        epoch: bool | None = None
        channels: dict[str, _Channel] = {}
        index = 0
        for block in split_blocks(record):
            fields = message_fields(block.decode(self._encoding, "surrogateescape"))
            if checked:
                check_decoded(_READ, [fields.get(name) for name in _READ], self._encoding)
            event = fields.get("event")
            if event is None:
                raise RecordError("invalid", "no Event field: not an AMI event")
            if event.lower() != "cel":
                continue  # other AMI events carry nothing CEL needs
            missing = [name for key, name in _REQUIRED.items() if not fields.get(key)]
            if missing:
                raise RecordError("invalid", f"CEL event lacks {', '.join(missing)}")
            if linkedid is None:
                linkedid = fields["linkedid"]
            elif fields["linkedid"] != linkedid:
                raise RecordError("invalid", "events of more than one LinkedID")
            index += 1
            uniqueid = fields["uniqueid"]
            channel = channels.get(uniqueid)
            if channel is None:
                channel = channels[uniqueid] = _Channel(uniqueid, fields["channel"], index)
            time = self._time(fields["eventtime"])
            if epoch is None:
                epoch = time.epoch
            elif time.epoch != epoch:
                # Two interpreters would read one leg's times in different zones.
                raise RecordError("bad_time", "EventTime mixes Unix seconds and wall-clock times")
            name = fields["eventname"].upper()
            # The first of a repeated event counts: a channel starts, answers and hangs up once.
            if name == "CHAN_START":
                channel.start = channel.start or time
                # CHAN_START names the channel before any masquerade renames it.
                channel.name = fields["channel"]
            elif name == "ANSWER":
                channel.answer = channel.answer or time
            elif name == "HANGUP":
                channel.hangup = channel.hangup or time
            elif name == "CHAN_END":
                channel.chan_end = channel.chan_end or time
            if not channel.caller_number:
                channel.caller_number = fields.get("calleridnum", "")
            if exten := fields.get("exten"):
                channel.extens.append((index, exten))
        if linkedid is None:
            raise RecordError("invalid", "no CEL event")
        return linkedid, channels

    def _cdr_fields(
        self, linkedid: str, caller: _Channel, callee: _Channel | None, end: _Time
    ) -> CdrFields:
        """The CDR a CDR backend would write for this leg; times are the caller's start, the
        leg's answer and the leg's end, as ``cdr_csv`` gives them for a dial."""
        assert caller.start is not None
        answer = (callee or caller).answer
        if callee is None:
            # The number dialled in: where the channel entered the dialplan.
            dst = caller.extens[0][1] if caller.extens else ""
        else:
            # The dialplan extension that dialled this leg, as the CDR's dst.
            before = [exten for at, exten in caller.extens if at < callee.first]
            dst = before[-1] if before else ""
        start_utc = self._utc(caller.start)
        end_utc = self._utc(end, after=start_utc)
        duration = _whole_seconds(end_utc - start_utc)
        billsec = 0
        if answer is not None:
            billsec = _whole_seconds(end_utc - self._utc(answer))
            if billsec < 0:
                raise RecordError("invalid", "HANGUP is before ANSWER")
        return CdrFields(
            src=caller.caller_number,
            dst=dst,
            channel=caller.name,
            dstchannel=callee.name if callee else "",
            start=caller.start.text,
            answer=answer.text if answer else "",
            end=end.text,
            duration=str(max(duration, 0)),
            billsec=str(billsec),
            disposition="ANSWERED" if answer else "NO ANSWER",
            # Party A's uniqueid and no sequence: the key of the same CDR read without a
            # sequence, and independent of which other legs a (possibly partial) group holds.
            uniqueid=caller.uniqueid,
            linkedid=linkedid,
        )

    def _time(self, value: str) -> _Time:
        if _WALL_CLOCK.fullmatch(value):
            return _Time(value, epoch=False)
        match = _EPOCH.fullmatch(value)
        if match is None:
            raise RecordError(
                "bad_time", f"EventTime: {redact(value)} is neither Unix seconds nor wall clock"
            )
        try:
            moment = datetime.fromtimestamp(int(match.group(1)), UTC)
        except (OverflowError, OSError, ValueError):
            raise RecordError("bad_time", f"EventTime: {redact(value)} is out of range") from None
        # Whole seconds, as a CDR keeps them.
        return _Time(moment.strftime("%Y-%m-%d %H:%M:%S"), epoch=True)

    def _utc(self, time: _Time, after: datetime | None = None) -> datetime:
        """A time as UTC, for durations. A wall clock repeated by a DST fall-back is read as
        its earlier instance unless that lands before ``after``."""
        try:
            local = datetime.fromisoformat(time.text)
        except ValueError:
            raise RecordError(
                "bad_time", f"EventTime: {redact(time.text)} is out of range"
            ) from None
        zone = UTC if time.epoch else self._zone
        try:
            moment = local.replace(tzinfo=zone).astimezone(UTC)
            if after is not None and moment < after:
                moment = max(moment, local.replace(tzinfo=zone, fold=1).astimezone(UTC))
        except OverflowError:
            raise RecordError(
                "bad_time", f"EventTime: {redact(time.text)} is out of range"
            ) from None
        return moment


def _whole_seconds(delta: timedelta) -> int:
    return int(delta // timedelta(seconds=1))
