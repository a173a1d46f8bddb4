"""FreeSWITCH ``mod_json_cdr`` documents: one channel's CDR per record.

mod_json_cdr POSTs each CDR as one unformatted JSON document, but CDR files and pasted CDRs are
often pretty-printed, so records are framed by JSON document, not by line.

The parties come from the channel's current caller profile (``callflow[0].caller_profile``):
a stock CDR has its ``caller_id_number`` and ``destination_number`` there, not among the
``variables``, which are read as a fallback. The profile's ``originator`` (the channel that placed
or was bridged to this one) and ``originatee`` (the channel this one was bridged to) tell which
leg answered and whom an a-leg reached; ``app_log`` and the other variables are ignored.

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
    cc_member_session_uuid: str | None = Field(default=None, max_length=128)
    direction: str | None = None
    # Not channel variables in a stock CDR (they live in the caller profile), but read when a
    # dialplan or an older CDR sets them.
    caller_id_number: str = ""
    destination_number: str = ""
    sip_from_user: str | None = None
    user_name: str | None = None
    dialed_user: str | None = None
    cc_side: str | None = None
    cc_agent: str | None = None
    start_epoch: str
    answer_epoch: str = "0"
    bridge_epoch: str = "0"
    end_epoch: str
    duration: str
    billsec: str
    hangup_cause: str | None = None


class _Profile(RecordModel):
    """A caller profile: the numbers of a channel as the switch routed it. Not percent-encoded."""

    caller_id_number: str | None = None
    destination_number: str | None = None
    chan_name: str | None = None
    uuid: str | None = Field(default=None, max_length=128)


class _Originator(RecordModel):
    originator_caller_profiles: tuple[_Profile, ...] = ()


class _Originatee(RecordModel):
    originatee_caller_profiles: tuple[_Profile, ...] = ()


class _CallerProfile(_Profile):
    # originator: the channel that placed or was bridged to this one (this one answered it);
    # originatee: the channel this one was bridged to (the one that answered it).
    originator: _Originator | None = None
    originatee: _Originatee | None = None


class _Callflow(RecordModel):
    caller_profile: _CallerProfile | None = None


class _ChannelData(RecordModel):
    direction: str | None = None


class _JsonCdr(RecordModel):
    variables: _Variables
    channel_data: _ChannelData | None = None
    # An array, newest profile first; FreeSWITCH before 1.6 wrote one "callflow" key per
    # profile, of which a JSON parser keeps the last.
    callflow: list[_Callflow] | _Callflow | None = None


_NO_PROFILE = _CallerProfile()


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
        an a-leg also speaks for the party it was bridged to (see ``freeswitch_common``)."""
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
        profile = _current_profile(cdr.callflow)
        originator = (
            _first(profile.originator.originator_caller_profiles) if profile.originator else None
        )
        direction = variables.direction
        if direction is None and cdr.channel_data is not None:
            direction = cdr.channel_data.direction
        if direction is None:
            # Some exports drop both copies; the call flow still tells: a channel the switch
            # placed for another (it has an originator) is outbound, any other inbound.
            direction = "outbound" if originator is not None else "inbound"
        if direction not in _DIRECTIONS:
            raise RecordError("invalid", "direction is neither inbound nor outbound")

        start = _epoch(variables.start_epoch, "start_epoch")
        end = _epoch(variables.end_epoch, "end_epoch")
        answer_epoch = _counter_epoch(variables.answer_epoch, "answer_epoch")
        bridge_epoch = _counter_epoch(variables.bridge_epoch, "bridge_epoch")
        duration = seconds(_value(variables.duration, "duration"), "duration")
        billsec = seconds(_value(variables.billsec, "billsec"), "billsec")
        check_counters(duration, billsec, start, end)
        if variables.hangup_cause is not None:
            check_hangup_cause(_value(variables.hangup_cause, "hangup_cause"))

        # A channel placed by the switch, or one bridged to another that was already up (a queue
        # agent, a pickup), is the one that answered: it speaks for the callee.
        answering = direction == "outbound" or originator is not None
        if originator is not None and not self._log_b_leg:
            # mod_json_cdr with log-b-leg=false writes no such leg; if one comes anyway, the
            # a-leg already spoke for it.
            return []
        caller_number = profile.caller_id_number or _value(
            variables.caller_id_number, "caller_id_number"
        )
        destination = profile.destination_number or _value(
            variables.destination_number, "destination_number"
        )
        uuid = _value(variables.uuid, "uuid")
        answered = int(answer_epoch) > 0
        bridged_at = int(bridge_epoch)
        leg = Leg(
            key=uuid,
            call_id=_call_id(variables, originator) or uuid,
            owner="callee" if answering else "caller",
            caller=self._caller(variables, caller_number, answering=answering),
            callee=self._callee(
                variables,
                profile,
                destination,
                answering=answering,
                outbound=direction == "outbound",
            ),
            caller_number=caller_number,
            destination=destination,
            start=start,
            end=end,
            duration=duration,
            billsec=billsec,
            answered=answered,
            # The party an a-leg was bridged to answered at the bridge, not at the a-leg's answer
            # (an IVR's); 60 s of IVR then 90 s bridged is 90 s of the agent's talk, not 150.
            peer_answered=answered and bridged_at > 0,
            peer_billsec=min(billsec, max(0, int(end.timestamp()) - bridged_at)),
        )
        return leg_events(self.format_name, leg, source, report_peer=not self._log_b_leg)

    def _caller(self, variables: _Variables, caller_number: str, *, answering: bool) -> str | None:
        if answering:
            # A channel the switch placed or bridged: its caller id is whoever the switch
            # presented (the originator's number after a bridge).
            return self._extensions.first(caller_number)
        # A channel that came *into* the switch: a registered phone (the manager calls out;
        # user_name is the directory user it authenticated as) or a gateway (a customer).
        return self._extensions.first(
            _optional(variables.user_name, "user_name"),
            _optional(variables.sip_from_user, "sip_from_user"),
            caller_number,
        )

    def _callee(
        self,
        variables: _Variables,
        profile: _CallerProfile,
        destination: str,
        *,
        answering: bool,
        outbound: bool,
    ) -> str | None:
        dialed_user = _optional(variables.dialed_user, "dialed_user")
        agent = _agent(variables)
        if answering and not outbound:
            # A phone that took up a call already in the switch: the phone is the callee.
            return self._extensions.first(
                _optional(variables.user_name, "user_name"),
                _optional(variables.sip_from_user, "sip_from_user"),
            )
        if answering:
            return self._extensions.first(dialed_user, agent, destination, _channel_user(profile))
        originatee = (
            _first(profile.originatee.originatee_caller_profiles) if profile.originatee else None
        )
        # An a-leg: the channel it was bridged to answered it; a queue's own number (cc_side
        # member: the caller waited in mod_callcenter) is not anybody's extension.
        queued = _optional(variables.cc_side, "cc_side") == "member"
        return self._extensions.first(
            originatee.destination_number if originatee else None,
            _channel_user(originatee),
            dialed_user,
            agent,
            None if queued else destination,
        )


def _current_profile(callflow: list[_Callflow] | _Callflow | None) -> _CallerProfile:
    """The channel's caller profile as it ended: after a transfer, the newest, which comes first."""
    if isinstance(callflow, list):
        callflow = callflow[0] if callflow else None
    if callflow is None or callflow.caller_profile is None:
        return _NO_PROFILE
    return callflow.caller_profile


def _first(profiles: tuple[_Profile, ...]) -> _Profile | None:
    return profiles[0] if profiles else None


def _channel_user(profile: _Profile | None) -> str | None:
    """The user part of a channel name, ``sofia/internal/1001@10.20.0.31:5060`` -> ``1001``: the
    phone the channel rang when nothing else names it."""
    if profile is None or not profile.chan_name:
        return None
    return profile.chan_name.rpartition("/")[2].partition("@")[0]


def _agent(variables: _Variables) -> str | None:
    """mod_callcenter's agent (``cc_agent``, set on the agent's leg and, once bridged, on the
    caller's), by the user part of its name: agents are usually named ``1001@default``."""
    agent = _optional(variables.cc_agent, "cc_agent")
    return agent.partition("@")[0] if agent else None


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


def _call_id(variables: _Variables, originator: _Profile | None) -> str | None:
    """The a-leg's uuid, which every leg of the call can name.

    ``originating_leg_uuid`` is set once on each leg the switch originates from another session
    and never changes, so it comes first. A leg bridged to a call already up (a mod_callcenter
    agent, originated on its own) names it in its originator profile, and an agent's leg also in
    ``cc_member_session_uuid``. ``call_uuid`` names the a-leg on the a-leg itself and, while
    bridged, on the b-leg; FreeSWITCH resets it to the b-leg's own uuid when the a-leg hangs up
    first. ``signal_bond`` is not used: it names the *other* leg on both legs.
    """
    if variables.originating_leg_uuid:
        return _value(variables.originating_leg_uuid, "originating_leg_uuid")
    if originator is not None and originator.uuid:
        return originator.uuid
    for name in ("cc_member_session_uuid", "call_uuid"):
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


def _counter_epoch(raw: str, field: str) -> str:
    """An epoch that is 0 while the channel has no such moment (answer, bridge)."""
    value = _value(raw, field)
    if _EPOCH.fullmatch(value) is None:
        raise RecordError("bad_time", f"{field}: {redact(value)} is not epoch")
    return value


def _epoch(raw: str, field: str) -> datetime:
    value = _value(raw, field)
    if _EPOCH.fullmatch(value) is None:
        raise RecordError("bad_time", f"{field}: {redact(value)} is not Unix seconds")
    if value.strip("0") == "":
        raise RecordError("bad_time", f"{field} is 0: the channel has no such time")
    return datetime.fromtimestamp(int(value), UTC)
