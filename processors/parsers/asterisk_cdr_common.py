"""What an Asterisk CDR means, whichever backend wrote it (``cdr_csv``, ``cdr_manager``).

Both backends format the same ``ast_cdr`` fields the same way (``%Y-%m-%d %T`` wall-clock times,
integer counters, ``ast_cdr_disp2str`` dispositions); only the framing differs. The format
parsers turn their framing into ``CdrFields``; ``CdrInterpreter`` turns those into events.

A CDR describes one call leg between the calling channel and the dialled channel. A manager's
phone may sit at either end (or both, for a call between colleagues), so one CDR yields one
event per manager involved, each from that manager's point of view.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, tzinfo
from functools import cached_property
from typing import NamedTuple

from pydantic import ValidationError

from processors.parsers._common import (
    DEFAULT_MAX_RECORD_BYTES,
    INTERNAL_EXTENSION_PATTERN,
    Extensions,
    PbxRecordParser,
    check_decoded,
    decode_leniently,
    redact,
    summarize,
)
from processors.parsers.base import RecordError
from salespulse.models import (
    ActivityEvent,
    ActivityKind,
    Actor,
    Direction,
    SourceFamily,
    SourceRef,
    derive_event_id,
)
from salespulse.sections import text_encoding

# Every value ast_cdr_disp2str() can produce except its "UNKNOWN" fallback.
DISPOSITIONS = frozenset({"ANSWERED", "NO ANSWER", "BUSY", "FAILED", "CONGESTION"})

# The first part of every Asterisk CDR event id, whichever backend delivered the CDR: the same
# CDR read from Master.csv and from an AMI Cdr event gets the same id and is stored once, so
# Master.csv can fill a gap in the AMI stream. It is the cdr_csv format name for history's sake.
ID_NAMESPACE = "asterisk-cdr-csv"

_CDR_TIME = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}", re.ASCII)
_OFFSET_CACHE_SIZE = 4096
# Contexts (and their prefixes: from-trunk-sip-provider, from-did-direct) that calls from
# outside enter the dialplan in, by Asterisk's sample configs and FreePBX. A CDR's dcontext is
# where Party A's channel ran, so one of these says Party A is a trunk, however it is named.
_TRUNK_CONTEXTS = ("from-trunk", "from-pstn", "from-external", "from-did")
# The fewest digits of a number outside the PBX (processors/privacy.py treats numbers alike).
_OUTSIDE_NUMBER_DIGITS = 7
# The seconds of a minute as CDR times write them ("00" to "59").
_SECONDS = {f"{second:02d}": timedelta(seconds=second) for second in range(60)}


class CdrFields(NamedTuple):
    """The CDR fields salespulse reads, as raw text. ``None`` means the backend does not carry
    the field at all (a column set without it); an empty string means the CDR left it empty."""

    src: str
    dst: str
    channel: str
    dstchannel: str
    start: str
    answer: str
    end: str
    duration: str
    billsec: str
    disposition: str
    uniqueid: str | None = None
    linkedid: str | None = None
    sequence: str | None = None
    dcontext: str | None = None


# Technologies whose channels name hardware rather than a peer the administrator named: a DAHDI
# (formerly Zaptel) channel or ISDN span, a router's telephone line (chan_telephony's TELCHAN,
# chan_brcm's BRCM), a sound card (chan_console and chan_oss's Console, chan_alsa's ALSA).
# Their numbers collide with short extensions (DAHDI channel 12, extension 12), so their
# endpoint keeps the technology: "DAHDI/12" is never read as extension 12 unless the extension
# pattern names it.
_HARDWARE = frozenset({"DAHDI", "Zap", "TELCHAN", "BRCM", "Console", "ALSA"})
# Of those, a router's phone lines carry nothing but its own phones, and name only a line index:
# the phone's extension is the number the CDR gives for its side (src or dst).
_PHONE_LINES = ("TELCHAN/", "BRCM/")
# The counter Asterisk appends to make a name unique: "%08x" (SIP, PJSIP, Local), "%d" (IAX2,
# DAHDI analog), "%x" (DAHDI ISDN), "%04lx" (Motif).
_COUNTER_DIGITS = "0123456789abcdefABCDEF"


def channel_endpoint(channel: str) -> str | None:
    """The device or peer behind a channel name, e.g. ``SIP/101-00000013`` → ``101``.

    ``TECH/<name>-<counter>`` (SIP, PJSIP, IAX2, Motif) names a peer: the endpoint is ``<name>``,
    which may itself contain dashes. Local, Skinny, MGCP and UNISTIM channels name
    ``<extension or line>@<context or device>``: the part before ``@``. Asterisk 1.0's IAX2 and
    chan_telephony count calls after a slash (``IAX2/peer/123``, ``TELCHAN/5/1``). Hardware
    channels (``_HARDWARE``) keep their technology: ``DAHDI/1-1`` → ``DAHDI/1``,
    ``DAHDI/i1/79161234567-1`` (ISDN span 1; the number is the far end's) → ``DAHDI/i1``. A name
    without a technology prefix is not a channel we can attribute.
    """
    # Asterisk 1.4 to 11 renamed a channel a masquerade replaced, e.g. after a transfer.
    if channel.endswith(">"):
        channel = channel.removesuffix("<ZOMBIE>").removesuffix("<MASQ>")
    technology, slash, resource = channel.partition("/")
    if not slash or not resource:
        return None
    if technology in _HARDWARE:
        port = _without_counter(resource.partition("/")[0])
        return f"{technology}/{port}" if port else None
    if "@" in resource:
        return resource.partition("@")[0] or None
    return _without_counter(resource) or None


def _without_counter(resource: str) -> str:
    """A channel's resource without the counter that makes its name unique, if it has one."""
    head, dash, tail = resource.rpartition("-")
    if dash and tail and not tail.strip(_COUNTER_DIGITS):  # strip: faster than a regex here
        return head
    head, slash, tail = resource.rpartition("/")
    if slash and tail.isascii() and tail.isdigit():
        return head
    return resource


def _is_local(channel: str) -> bool:
    return channel[:6].lower() == "local/"


def is_cdr_time(value: str) -> bool:
    """Whether ``value`` has the shape of a CDR time (``%Y-%m-%d %T``), valid or not."""
    return _CDR_TIME.fullmatch(value) is not None


def cdr_event_key(cdr: CdrFields) -> tuple[str, ...]:
    """The fields that identify a CDR at its source; the event id adds the side.

    uniqueid names Party A's channel, and since Asterisk 12 one channel has several CDRs (one
    per dial attempt, one per bridge after a transfer), which only ``sequence`` tells apart.
    Without a sequence the destination channel and start time must do it, as they do for the
    default column set, whose key is unchanged so that stored ids stay valid.

    A destination channel tells CDRs apart only when it names a channel (``tech/resource``):
    channel names are unique on the PBX. An empty one (a CDR of a channel that dialled nobody,
    ForkCDR copies) or a placeholder (``NOT_AVAILABLE`` in pseudonymised files) is shared by
    every such CDR of the channel, so these keys add what the CDR recorded of its outcome.
    Those fields are fixed once the CDR is written, so a CDR read twice, or from AMI and from
    Master.csv, keeps one id.
    """
    if cdr.uniqueid:
        if cdr.sequence:
            return (ID_NAMESPACE, cdr.uniqueid, cdr.sequence)
        key: tuple[str, ...] = (ID_NAMESPACE, cdr.uniqueid, cdr.dstchannel, cdr.start)
    else:
        key = (ID_NAMESPACE, cdr.channel, cdr.dstchannel, cdr.start)
    if "/" in cdr.dstchannel:
        return key
    return (*key, cdr.answer, cdr.end, cdr.duration, cdr.billsec, cdr.disposition)


class CdrInterpreter:
    """CDR fields to canonical call events: times in the PBX's zone, attribution by extension."""

    def __init__(self, zone: tzinfo, extensions: Extensions) -> None:
        """``zone`` is the PBX's, as ``PbxRecordParser`` resolves it: the built-in UTC (the fast
        path below) for usegmtime=yes."""
        self._zone = zone
        self._offsets: dict[str, timedelta] = {}
        # UTC start of each recently seen wall-clock minute ("YYYY-MM-DD HH:MM") that converted.
        self._minutes: dict[str, datetime] = {}
        self._extensions = extensions

    def events(self, cdr: CdrFields, source: SourceRef) -> list[ActivityEvent]:
        start = self._time(cdr.start, "start")
        end = self._time(cdr.end, "end")
        if cdr.answer:
            # Not used for the event, but a garbled answer time means a garbled record.
            self._check_wall_clock(cdr.answer, "answer")
        if end < start:
            end = self._second_pass(cdr.end, start)
        duration = _seconds(cdr.duration, "duration")
        billsec = _seconds(cdr.billsec, "billsec")
        if billsec > duration:
            raise RecordError("invalid", "billsec exceeds duration")
        if cdr.disposition not in DISPOSITIONS:
            raise RecordError("invalid", f"unknown disposition {redact(cdr.disposition)}")
        sequence = cdr.sequence
        if sequence and not (len(sequence) <= 10 and sequence.isascii() and sequence.isdigit()):
            raise RecordError("invalid", f"sequence: {redact(sequence)} is not an integer")

        # A trunk named like an extension (SIP/210000-…, after a city number) must not make a
        # customer's call internal: the CDR's own context and dialled number say which side is
        # outside (docs/formats.md, "Who the call belongs to").
        caller = None if _from_outside(cdr.dcontext) else self._extension(cdr.channel, cdr.src)
        callee = self._extension(cdr.dstchannel, cdr.dst)
        if caller is not None and caller == callee and _is_local(cdr.channel):
            # The second half of a Local channel named after the extension it dials (a queue
            # or ring group member, a follow-me step) is dialplan plumbing, not a party: the
            # caller is whoever src names (a customer's number, or a colleague's extension).
            caller = self._extensions.first(cdr.src)
            if caller == callee:
                caller = None
        if caller and callee and _outside_number(cdr.dst):
            callee = None  # a manager dialled a phone number: the channel it reached is a trunk
        src = cdr.src or None
        dst = cdr.dst or None

        # (actor id, side, direction, counterpart) per event.
        legs: tuple[tuple[str, str, Direction, str | None], ...]
        if caller and callee:
            legs = (
                (caller, "caller", Direction.INTERNAL, callee),
                (callee, "callee", Direction.INTERNAL, caller),
            )
        elif caller:
            legs = ((caller, "caller", Direction.OUTGOING, dst),)
        elif callee:
            legs = ((callee, "callee", Direction.INCOMING, src),)
        elif dst:
            # A DID or queue number: attribution later reports it as unattributed.
            legs = ((dst, "callee", Direction.INCOMING, src),)
            if src and src != dst and not _names_a_channel(cdr) and not _from_outside(cdr.dcontext):
                # No channel to tell an extension by (pseudonymised, or written without them):
                # src may be a manager's too, which only the directory knows. The caller's
                # event follows as a candidate, and the pipeline keeps the side(s) it holds.
                legs += ((src, "caller", Direction.OUTGOING, dst),)
        else:
            raise RecordError("invalid", "no internal endpoint and no dst to attribute to")

        # A CDR that dialled nobody and has no manager on it was answered by the dialplan (an
        # IVR, voicemail), not by a person: answered, it would tell consolidation that someone
        # took the call, and the manager whose phone rang in between would not have missed it.
        answered = cdr.disposition == "ANSWERED" and bool(cdr.dstchannel or caller)
        # billsec runs from the CDR's answer time, which a Local channel (or a channel the
        # dialplan answered) sets although the phone dialled never answered: such a leg is
        # NO ANSWER with billsec > 0. Talk time is a conversation's, so none without an answer.
        talk = billsec if answered else 0
        # Keyed on raw text (never the converted time): re-configuring the zone keeps ids stable.
        key = cdr_event_key(cdr)
        # Without a linkedid, Party A's uniqueid still ties the CDRs of one channel: the members
        # of a ring-all group, a dial and the bridge that replaced it after a Local channel
        # was optimised away. Each would otherwise be a call of its own.
        call_id = cdr.linkedid or cdr.uniqueid or None
        try:
            return [
                ActivityEvent.checked(
                    event_id=derive_event_id(*key, side),
                    kind=ActivityKind.CALL,
                    action="leg",
                    occurred_at=start,
                    ended_at=end,
                    actor=Actor(SourceFamily.PBX, actor_id),
                    source=source,
                    direction=direction,
                    answered=answered,
                    duration_seconds=duration,
                    talk_seconds=talk,
                    counterpart=counterpart,
                    call_id=call_id,
                )
                for actor_id, side, direction, counterpart in legs
            ]
        except ValidationError as exc:
            raise RecordError("invalid", summarize(exc)) from None

    def _extension(self, channel: str, number: str) -> str | None:
        """The channel's endpoint if it is a manager's extension, else None; for a router's phone
        line, ``number`` (the CDR's number of the channel's side) if it is one."""
        if channel.startswith(_PHONE_LINES):
            return self._extensions.first(number)
        return self._extensions.first(channel_endpoint(channel))

    def _wall_clock(self, value: str, field: str) -> datetime:
        if _CDR_TIME.fullmatch(value) is None:
            raise RecordError("bad_time", f"{field}: {redact(value)} is not YYYY-MM-DD HH:MM:SS")
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            raise RecordError("bad_time", f"{field}: {redact(value)} is out of range") from None

    def _time(self, value: str, field: str) -> datetime:
        """A CDR time (wall clock in the PBX's zone) as a UTC datetime."""
        # Most CDRs fall in a minute an earlier one already converted: its UTC start plus the
        # seconds, for the same value the full path below gives.
        if len(value) == 19 and value[16] == ":":
            minute = self._minutes.get(value[:16])
            if minute is not None:
                seconds = _SECONDS.get(value[17:])
                if seconds is not None:
                    return minute + seconds
        return self._convert(value, field)

    def _check_wall_clock(self, value: str, field: str) -> None:
        """``_wall_clock`` for a time whose value is not needed, only its validity."""
        if (
            len(value) == 19
            and value[16] == ":"
            and value[17:] in _SECONDS
            and value[:16] in self._minutes
        ):
            return  # a valid minute and valid seconds: a valid time
        self._wall_clock(value, field)

    def _convert(self, value: str, field: str) -> datetime:
        local = self._wall_clock(value, field)
        if self._zone is UTC:
            converted = local.replace(tzinfo=UTC)
        else:
            # zoneinfo's lookup is a visible share of a record's cost, and the offset only
            # changes at a DST or zone transition, which tzdata places on whole local minutes
            # since 1972.
            key = value[:16]
            cached = self._offsets.get(key)
            if cached is None:
                # fold=0 (the default): the earlier of two repeated times in a fold, and the
                # pre-transition offset for a time skipped by a gap.
                cached = local.replace(tzinfo=self._zone).utcoffset()
                if cached is None:  # pragma: no cover - ZoneInfo always knows the offset
                    raise RecordError("bad_time", f"{field}: zone gives no UTC offset")
                if len(self._offsets) >= _OFFSET_CACHE_SIZE:
                    self._offsets.clear()
                self._offsets[key] = cached
            try:
                converted = (local - cached).replace(tzinfo=UTC)
            except OverflowError:
                raise RecordError("bad_time", f"{field}: {redact(value)} is out of range") from None
        # A valid time has the shape "YYYY-MM-DD HH:MM:SS", so its minute is value[:16].
        try:
            minute = converted - _SECONDS[value[17:]]
        except OverflowError:  # pragma: no cover - only a zone offset with seconds, in year 1
            return converted
        if len(self._minutes) >= _OFFSET_CACHE_SIZE:
            self._minutes.clear()
        self._minutes[value[:16]] = minute
        return converted

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


class AsteriskCdrParser(PbxRecordParser):
    """A parser of one Asterisk CDR backend: it reads ``CdrFields`` out of a record and leaves
    their meaning to ``CdrInterpreter``.

    ``encoding`` is that of the PBX's text (``text_encoding`` names). Only the fields salespulse
    reads need be valid in it: Asterisk copies caller names into ``clid`` byte for byte from
    whatever set them, so one installation's Master.csv mixes encodings there.
    """

    def __init__(
        self,
        timezone: str = "UTC",
        internal_extension_pattern: str = INTERNAL_EXTENSION_PATTERN,
        max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES,
        encoding: str = "utf-8",
    ) -> None:
        super().__init__(timezone, internal_extension_pattern, max_record_bytes)
        self._encoding = text_encoding(encoding)

    @cached_property
    def _cdr(self) -> CdrInterpreter:
        return CdrInterpreter(self._zone, self._extensions)

    def _text(self, record: bytes) -> tuple[str, bool]:
        """The record's text, and whether it was all valid (see ``decode_leniently``)."""
        return decode_leniently(record, self._encoding)

    def _events(self, cdr: CdrFields, valid: bool, source: SourceRef) -> list[ActivityEvent]:
        """The CDR's events; ``valid`` False: first refuse it if a field read did not decode."""
        if not valid:
            check_decoded(cdr._fields, cdr, self._encoding)
        return self._cdr.events(cdr, source)


def _names_a_channel(cdr: CdrFields) -> bool:
    """Whether either channel of the CDR names an endpoint (``NOT_AVAILABLE``, a placeholder of
    pseudonymised files, and an empty channel name none)."""
    return channel_endpoint(cdr.channel) is not None or channel_endpoint(cdr.dstchannel) is not None


def _from_outside(dcontext: str | None) -> bool:
    """Whether Party A entered the dialplan in a context for calls from outside."""
    return dcontext is not None and dcontext.startswith(_TRUNK_CONTEXTS)


def _outside_number(dst: str) -> bool:
    """Whether ``dst`` is a phone number (7+ digits, optionally with ``+``), not an extension,
    a queue or ring group number, or a dialplan name such as ``s``."""
    digits = dst[1:] if dst.startswith("+") else dst
    return len(digits) >= _OUTSIDE_NUMBER_DIGITS and digits.isascii() and digits.isdigit()


def _seconds(value: str, field: str) -> int:
    # 1 to 9 ASCII digits: isdigit() alone would also take other scripts' digits.
    if not (len(value) <= 9 and value.isascii() and value.isdigit()):
        raise RecordError("invalid", f"{field}: {redact(value)} is not a non-negative integer")
    return int(value)
