"""FreeSWITCH ``mod_json_cdr`` documents: one channel's CDR per record.

mod_json_cdr POSTs each CDR as one unformatted JSON document, but CDR files and pasted CDRs are
often pretty-printed, so records are framed by JSON document, not by line. Only the
``variables`` object is read; the rest of the document (``callflow``, ``app_log``,
``channel_data`` flags) is ignored.

Two encodings are undone here because they are FreeSWITCH's defaults rather than choices made
for salespulse:

* ``encode-values`` (default ``true``) percent-encodes every variable value, so a caller number
  ``+79161234567`` arrives as ``%2B79161234567``. Values are percent-decoded but ``+`` is left
  alone: FreeSWITCH encodes both a space and a plus, so a bare ``+`` in a value can only be a
  real plus written with ``encode-values=false``.
* ``encode`` (HTTP only) wraps the document as a form field: ``cdr=<url-encoded JSON>`` for
  ``true``, ``cdr=<base64>`` for ``base64``. That body is form-decoded, where ``+`` is a space.
"""

from __future__ import annotations

import base64
import binascii
import re
from datetime import UTC, datetime
from typing import ClassVar
from urllib.parse import unquote, unquote_plus

from pydantic import Field

from processors.parsers._common import (
    INTERNAL_EXTENSION_PATTERN,
    Extensions,
    RecordModel,
    RecordParser,
    decode,
    load_object,
    redact,
)
from processors.parsers.base import RecordError, split_json_documents
from processors.parsers.freeswitch_common import (
    Leg,
    check_counters,
    check_hangup_cause,
    leg_events,
    seconds,
)
from salespulse.models import ActivityEvent, SourceFamily, SourceRef

# A CDR with a long app_log and every channel variable is tens of kilobytes, and the form
# encoding of encode=true can triple that.
JSON_CDR_MAX_RECORD_BYTES = 262_144

_EPOCH = re.compile(r"\d{1,10}", re.ASCII)
_FORM_PREFIX = b"cdr="
_DIRECTIONS = frozenset({"inbound", "outbound"})


class _Variables(RecordModel):
    """The channel variables salespulse reads; FreeSWITCH writes every value as a string."""

    uuid: str = Field(min_length=1, max_length=128)
    call_uuid: str | None = Field(default=None, max_length=128)
    originating_leg_uuid: str | None = Field(default=None, max_length=128)
    direction: str | None = None
    caller_id_number: str = ""
    destination_number: str = ""
    sip_from_user: str | None = None
    user_name: str | None = None
    dialed_user: str | None = None
    start_epoch: str
    answer_epoch: str = "0"
    end_epoch: str
    duration: str
    billsec: str
    hangup_cause: str | None = None


class _ChannelData(RecordModel):
    direction: str | None = None


class _JsonCdr(RecordModel):
    variables: _Variables
    channel_data: _ChannelData | None = None


class FreeswitchJsonCdrParser(RecordParser):
    format_name: ClassVar[str] = "freeswitch-json-cdr"
    family: ClassVar[SourceFamily] = SourceFamily.PBX

    def __init__(
        self,
        internal_extension_pattern: str = INTERNAL_EXTENSION_PATTERN,
        max_record_bytes: int = JSON_CDR_MAX_RECORD_BYTES,
        log_b_leg: bool = True,
    ) -> None:
        """``log_b_leg`` must match mod_json_cdr's ``log-b-leg``: when b-legs are not logged,
        an a-leg also speaks for the party it called (see ``freeswitch_common``)."""
        super().__init__(max_record_bytes)
        self._extensions = Extensions(internal_extension_pattern)
        self._log_b_leg = log_b_leg

    def split(self, payload: bytes) -> list[bytes]:
        # A CDR file on disk or a pasted one is pretty-printed: a document is a record whatever
        # its line breaks.
        return split_json_documents(payload)

    def parse_record(self, record: bytes, source: SourceRef) -> list[ActivityEvent]:
        cdr = load_object(_JsonCdr, _unwrap(record))
        variables = cdr.variables
        direction = variables.direction
        if direction is None and cdr.channel_data is not None:
            direction = cdr.channel_data.direction
        if direction not in _DIRECTIONS:
            raise RecordError("invalid", "direction is neither inbound nor outbound")

        start = _epoch(variables.start_epoch, "start_epoch")
        end = _epoch(variables.end_epoch, "end_epoch")
        answer_epoch = _value(variables.answer_epoch, "answer_epoch")
        if _EPOCH.fullmatch(answer_epoch) is None:
            raise RecordError("bad_time", f"answer_epoch: {redact(answer_epoch)} is not epoch")
        duration = seconds(_value(variables.duration, "duration"), "duration")
        billsec = seconds(_value(variables.billsec, "billsec"), "billsec")
        check_counters(duration, billsec, start, end)
        if variables.hangup_cause is not None:
            check_hangup_cause(_value(variables.hangup_cause, "hangup_cause"))

        caller_number = _value(variables.caller_id_number, "caller_id_number")
        destination = _value(variables.destination_number, "destination_number")
        callee = self._extensions.first(
            _optional(variables.dialed_user, "dialed_user"), destination
        )
        if direction == "inbound":
            # A channel that came *into* the switch: a registered phone (the manager calls out;
            # user_name is the directory user it authenticated as) or a gateway (a customer).
            caller = self._extensions.first(
                _optional(variables.user_name, "user_name"),
                _optional(variables.sip_from_user, "sip_from_user"),
                caller_number,
            )
        else:
            # A channel the switch placed: its caller id is whoever the switch presented.
            caller = self._extensions.first(caller_number)

        uuid = _value(variables.uuid, "uuid")
        leg = Leg(
            uuid=uuid,
            call_id=_call_id(variables) or uuid,
            owner="caller" if direction == "inbound" else "callee",
            caller=caller,
            callee=callee,
            caller_number=caller_number,
            destination=destination,
            start=start,
            end=end,
            duration=duration,
            billsec=billsec,
            answered=billsec > 0 or int(answer_epoch) > 0,
        )
        return leg_events(self.format_name, leg, source, report_peer=not self._log_b_leg)


def _unwrap(record: bytes) -> bytes:
    """The JSON document inside a record: the record itself, or the ``cdr`` field of the form
    body that mod_json_cdr POSTs with ``encode=true`` or ``encode=base64``."""
    if not record.startswith(_FORM_PREFIX):
        return record
    body = decode(record)[len(_FORM_PREFIX) :]
    if body[:1] == "{" or body[:3].upper() == "%7B":
        try:
            return unquote_plus(body, errors="strict").encode("utf-8")
        except UnicodeDecodeError:
            raise RecordError("decode_error", "cdr field: encoded bytes are not UTF-8") from None
    try:
        return base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError):
        raise RecordError("malformed", "cdr field is neither URL-encoded JSON nor base64") from None


def _call_id(variables: _Variables) -> str | None:
    """The a-leg's uuid, which every leg of the call can name.

    ``originating_leg_uuid`` is set once on each leg the switch originates from another session
    and never changes, so it comes first. ``call_uuid`` names the a-leg on the a-leg itself and,
    while bridged, on the b-leg; FreeSWITCH resets it to the b-leg's own uuid when the a-leg hangs
    up first. ``signal_bond`` is not used: it names the *other* leg on both legs.
    """
    for name in ("originating_leg_uuid", "call_uuid"):
        raw = getattr(variables, name)
        if raw:
            return _value(raw, name)
    return None


def _value(raw: str, field: str) -> str:
    """A variable's value with mod_json_cdr's percent-encoding (``encode-values``) undone."""
    if "%" not in raw:
        return raw
    try:
        return unquote(raw, errors="strict")
    except UnicodeDecodeError:
        raise RecordError("decode_error", f"{field}: encoded bytes are not UTF-8") from None


def _optional(raw: str | None, field: str) -> str | None:
    return None if raw is None else _value(raw, field)


def _epoch(raw: str, field: str) -> datetime:
    value = _value(raw, field)
    if _EPOCH.fullmatch(value) is None:
        raise RecordError("bad_time", f"{field}: {redact(value)} is not Unix seconds")
    if value.strip("0") == "":
        raise RecordError("bad_time", f"{field} is 0: the channel has no such time")
    return datetime.fromtimestamp(int(value), UTC)
