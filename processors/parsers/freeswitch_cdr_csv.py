"""FreeSWITCH ``mod_cdr_csv`` lines written with the stock ``example`` template.

The template is 15 double-quoted channel variables::

    "${caller_id_name}","${caller_id_number}","${destination_number}","${context}",
    "${start_stamp}","${answer_stamp}","${end_stamp}","${duration}","${billsec}",
    "${hangup_cause}","${uuid}","${bleg_uuid}","${accountcode}","${read_codec}","${write_codec}"

mod_cdr_csv logs a-legs only by default (``legs=a``), so each line speaks for both parties, as an
Asterisk CDR does. The line carries no FreeSWITCH direction; who called whom follows from which
of caller_id_number and destination_number are managers' extensions.

With ``legs=ab`` the b-leg of a bridge has a line too. The line does not say which leg it is,
but ``${bleg_uuid}`` is the uuid of the channel's originatee (FreeSWITCH resolves ``bleg_*`` from
the originatee caller profile), so it is set exactly on a-legs that were bridged, and names the
b-leg's line. Such an a-leg then speaks for its caller only, under the b-leg's uuid: the b-leg's
line speaks for the party that answered, and for the caller under the same event id, so a call
between two managers is one event per manager, not two.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import ClassVar, Literal

from processors.parsers._common import (
    DEFAULT_MAX_RECORD_BYTES,
    INTERNAL_EXTENSION_PATTERN,
    PbxRecordParser,
    check_decoded,
    decode_leniently,
    redact,
)
from processors.parsers.base import RecordError
from processors.parsers.freeswitch_common import (
    Leg,
    check_counters,
    check_hangup_cause,
    leg_events,
    seconds,
)
from salespulse.models import ActivityEvent, SourceRef
from salespulse.sections import text_encoding

# The template's variables; those parse_record does not read are None (any bytes will do).
_TEMPLATE: tuple[str | None, ...] = (
    None,
    "caller_id_number",
    "destination_number",
    None,
    "start_stamp",
    "answer_stamp",
    "end_stamp",
    "duration",
    "billsec",
    "hangup_cause",
    "uuid",
    "bleg_uuid",
    None,
    None,
    None,
)
FIELD_COUNT = len(_TEMPLATE)
Legs = Literal["a", "ab"]
_SEPARATOR = '","'
_STAMP = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}", re.ASCII)


class FreeswitchCdrCsvParser(PbxRecordParser):
    """``timezone`` is the FreeSWITCH host's zone, in which mod_cdr_csv writes its stamps."""

    format_name: ClassVar[str] = "freeswitch-cdr-csv"

    def __init__(
        self,
        timezone: str = "UTC",
        internal_extension_pattern: str = INTERNAL_EXTENSION_PATTERN,
        max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES,
        legs: Legs = "a",
        encoding: str = "utf-8",
    ) -> None:
        """``legs`` must match mod_cdr_csv's ``legs`` (``a``, its default, or ``ab``);
        ``encoding`` is that of the values FreeSWITCH copied from the calls (``text_encoding``
        names): a caller name a trunk sent in another encoding is written as it came, and only
        the values read here need to decode."""
        super().__init__(timezone, internal_extension_pattern, max_record_bytes)
        self._both_legs = legs == "ab"
        self._encoding = text_encoding(encoding)

    def parse_record(self, record: bytes, source: SourceRef) -> list[ActivityEvent]:
        text, valid = decode_leniently(record, self._encoding)
        fields = _fields(text)
        if not valid:
            check_decoded(_TEMPLATE, fields, self._encoding)
        (_, caller_number, destination, _, start_raw, answer_raw, end_raw, duration_raw,
         billsec_raw, hangup_cause, uuid, bleg_uuid, _, _, _) = fields  # fmt: skip

        start = self._time(start_raw, "start_stamp")
        end = self._time(end_raw, "end_stamp")
        # Empty when the channel was never answered.
        answer = self._time(answer_raw, "answer_stamp") if answer_raw else None
        if end < start:
            end = self._refold(end_raw, end)
        duration = seconds(duration_raw, "duration")
        billsec = seconds(billsec_raw, "billsec")
        check_counters(duration, billsec, start, end)
        check_hangup_cause(hangup_cause)
        if not uuid:
            raise RecordError("invalid", "uuid is empty")

        answered = answer is not None and answer >= start
        # legs=ab: a bridged a-leg and its b-leg's line share the b-leg's uuid (see above).
        key = bleg_uuid if self._both_legs and bleg_uuid else uuid
        leg = Leg(
            key=key,
            # legs=a: every line is an a-leg, whose own uuid is the call's.
            call_id=key,
            owner="caller",
            caller=self._extensions.first(caller_number),
            callee=self._extensions.first(destination),
            caller_number=caller_number,
            destination=destination,
            start=start,
            end=end,
            duration=duration,
            billsec=billsec,
            answered=answered,
            # The line has no bridge time. legs=a: a bleg_uuid says the dialled party's channel
            # was bridged (it answered); without one the switch alone answered (IVR,
            # voicemail). legs=ab: a line without one is, when it names a callee, mostly that
            # callee's own b-leg, whose answer is the callee's.
            peer_answered=answered and (bool(bleg_uuid) or self._both_legs),
            peer_billsec=billsec,
        )
        if not self._both_legs:
            return leg_events(self.format_name, leg, source, report_peer=True, offer_caller=True)
        # legs=ab: a bridged a-leg's callee has a line of its own, so the a-leg speaks only for
        # its caller. Any other line is a b-leg or the only leg of its call, so it speaks for
        # both, but never for a number that is nobody's extension: that may be the trunk end of
        # a b-leg whose a-leg already counted the call.
        return leg_events(
            self.format_name, leg, source, report_peer=not bleg_uuid, unattributed=False
        )

    def _time(self, value: str, field: str, fold: int = 0) -> datetime:
        """A stamp (wall clock in the FreeSWITCH host's zone) as UTC.

        fold=0 reads a repeated or skipped local time with the offset in force before the
        transition, as the Asterisk parser does.
        """
        if _STAMP.fullmatch(value) is None:
            raise RecordError("bad_time", f"{field}: {redact(value)} is not YYYY-MM-DD HH:MM:SS")
        try:
            local = datetime.fromisoformat(value)
            return local.replace(tzinfo=self._zone, fold=fold).astimezone(UTC)
        except (ValueError, OverflowError):
            raise RecordError("bad_time", f"{field}: {redact(value)} is out of range") from None

    def _refold(self, end_raw: str, end: datetime) -> datetime:
        """The end of a call that spans the end of DST: its wall clock repeats an hour, so it is
        read again as the second occurrence; ``check_counters`` rejects it if still too early."""
        return end if self._zone is UTC else self._time(end_raw, "end_stamp", fold=1)


def _fields(text: str) -> list[str]:
    """The 15 values of a line.

    mod_cdr_csv expands the template without escaping quotes inside values, so the line is cut
    at the ``","`` separators rather than read as RFC 4180 CSV: a caller name with a stray ``"``
    still parses, one containing ``","`` gives the wrong field count.
    """
    if len(text) < 2 or text[0] != '"' or text[-1] != '"':
        raise RecordError("malformed", "line is not the double-quoted example template")
    fields = text[1:-1].split(_SEPARATOR)
    if len(fields) != FIELD_COUNT:
        raise RecordError("malformed", f"expected {FIELD_COUNT} fields, got {len(fields)}")
    return fields
