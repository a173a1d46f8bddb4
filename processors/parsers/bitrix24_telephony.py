"""Bitrix24 telephony: calls as the portal reports them, one call per manager per record.

Two ways in, one event shape:

* ``bitrix24-voximplant-statistic``: rows of the REST method ``voximplant.statistic.get``, one
  JSON object per line (a periodic export), or the method's answer as saved.
* ``bitrix24-call-end-event``: what Bitrix24 POSTs to a handler subscribed to
  ``OnVoximplantCallEnd`` (a form body: ``event=ONVOXIMPLANTCALLEND&data[CALL_ID]=...``), or a
  JSON object with the ``telephony.externalcall.finish`` parameters.

Both also read the ``result`` that ``telephony.externalcall.finish`` returns, which is nearly a
statistic row: its direction is ``INCOMING`` (same values as ``CALL_TYPE``) and its
``CALL_START_DATE`` arrives as ``{}``. A call without a start date is dated by the registration
time at the end of its ``externalCall.<md5>.<unix time>`` id, which is when
``telephony.externalcall.register`` ran: the start itself unless the integration passed another.

Both derive the event ids from the call id and the user, not from the format, so a call delivered
by the event *and* by the export is stored once.

A call that ended also ends its user's presence on it: besides the ``call`` event, both give a
``channel`` event ``down`` (never counted), ``external_ref`` the ``CALL_ID``, at the call's end
(start plus ``CALL_DURATION``). It closes the ``up`` that ``bitrix24-call-start-event``
(``processors.parsers.bitrix24_call_start``) reads from ``OnVoximplantCallStart``, so a manager
on a call is not idle until Bitrix24 says the call ended (``queries.manager_state``).
Emitting it from the export too keeps the two ways in reading a call into the same events, and
lets a later export close a call whose end event was lost.

The manager is the Bitrix24 user, ``Actor(crm, PORTAL_USER_ID)``: a Bitrix24 user id is the
user's CRM id, which the directory already maps to a manager. The handler's ``auth[...]``
values (application token, portal domain) are never read into an event or an error detail.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Annotated, Any, ClassVar, NamedTuple
from urllib.parse import parse_qs
from zoneinfo import ZoneInfo

from pydantic import AliasChoices, BeforeValidator, Field, ValidationError

from processors.parsers._bitrix24 import Bitrix24Framing
from processors.parsers._common import (
    DEFAULT_MAX_RECORD_BYTES,
    RecordModel,
    RecordParser,
    decode,
    load_object,
    parse_rfc3339,
    redact,
    summarize,
)
from processors.parsers.base import NoActivity, RecordError
from salespulse.models import (
    ActivityEvent,
    ActivityKind,
    Actor,
    Direction,
    SourceFamily,
    SourceRef,
    derive_event_id,
)

# 1 outgoing, 2 incoming, 3 incoming redirected to a mobile or landline, 4 callback, 5 info call.
CALL_TYPES: dict[int, Direction] = {
    1: Direction.OUTGOING,
    2: Direction.INCOMING,
    3: Direction.INCOMING,
    4: Direction.OUTGOING,
    5: Direction.OUTGOING,
}
ANSWERED_CODE = "200"
# telephony.externalcall.finish (and .register) names for voximplant.statistic fields.
FINISH_ALIASES = {
    "USER_ID": "PORTAL_USER_ID",
    "DURATION": "CALL_DURATION",
    "STATUS_CODE": "CALL_FAILED_CODE",
    "TYPE": "CALL_TYPE",
    "FAILED_REASON": "CALL_FAILED_REASON",
}

_UNSIGNED = re.compile(r"\d{1,9}", re.ASCII)
_USER_ID = re.compile(r"\d{1,18}", re.ASCII)
# "200", "304", "603-S", "OTHER": the codes of Bitrix24's table, and room for new ones.
_FAILED_CODE = re.compile(r"[0-9A-Za-z-]{1,16}", re.ASCII)
# The portal's display format, local time: 26.11.2026 10:15:00
_PORTAL_DATE = re.compile(r"(\d{2})\.(\d{2})\.(\d{4}) (\d{2}):(\d{2}):(\d{2})", re.ASCII)
_DATA_KEY = re.compile(r"data\[([A-Za-z0-9_]{1,64})\]", re.ASCII)
# telephony.externalcall.register names a call externalCall.<32 hex>.<Unix seconds at register>.
_EXTERNAL_CALL_ID = re.compile(r"externalCall\.[0-9a-f]{32}\.([0-9]{9,10})", re.ASCII)
_MAX_FORM_FIELDS = 200


def _no_date(value: object) -> object:
    # PHP serialises the DateTime that finish returns as an empty object; "" and null are unset.
    return None if value in ({}, "") else value


class CallRecord(RecordModel):
    """A call in ``voximplant.statistic.get`` terms. REST results carry numbers as strings and
    JSON senders as numbers, so both are taken; booleans and floats are not."""

    CALL_ID: str = Field(min_length=1, max_length=128)
    PORTAL_USER_ID: str | int | None = None
    PHONE_NUMBER: str | int | None = None
    # finish's result names the statistic's CALL_TYPE by its table column, INCOMING.
    CALL_TYPE: str | int = Field(validation_alias=AliasChoices("CALL_TYPE", "INCOMING"))
    CALL_DURATION: str | int
    CALL_START_DATE: Annotated[str | None, BeforeValidator(_no_date)] = None
    CALL_FAILED_CODE: str | int
    CRM_ENTITY_TYPE: str | None = None
    CRM_ENTITY_ID: str | int | None = None


class _CallParser(Bitrix24Framing, RecordParser):
    """What both parsers share: ``CallRecord`` to event."""

    family: ClassVar[SourceFamily] = SourceFamily.CRM

    def __init__(
        self,
        portal_timezone: str | None = None,
        max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES,
    ) -> None:
        super().__init__(max_record_bytes)
        self._zone: tzinfo | None = None if portal_timezone is None else ZoneInfo(portal_timezone)

    def call_events(self, call: CallRecord, source: SourceRef) -> list[ActivityEvent]:
        call_type = _integer(call.CALL_TYPE, "CALL_TYPE")
        direction = CALL_TYPES.get(call_type)
        if direction is None:
            raise RecordError("invalid", f"CALL_TYPE {call_type} is not 1-5")
        duration = _integer(call.CALL_DURATION, "CALL_DURATION")
        code = str(call.CALL_FAILED_CODE)
        if _FAILED_CODE.fullmatch(code) is None:
            raise RecordError("invalid", f"CALL_FAILED_CODE: {redact(code)} is not a call code")
        user = _text(call.PORTAL_USER_ID)
        if user and _USER_ID.fullmatch(user) is None:
            raise RecordError("invalid", f"PORTAL_USER_ID: {redact(user)} is not a user id")
        occurred_at = (
            registration_time(call.CALL_ID)
            if call.CALL_START_DATE is None
            else self._start(call.CALL_START_DATE)
        )
        if user.strip("0") == "":
            # No operator took part (the call ended in the IVR or a queue): nobody's activity.
            return NoActivity("a call no operator took part in (no PORTAL_USER_ID)")

        answered = code == ANSWERED_CODE and duration > 0
        entity_id = _text(call.CRM_ENTITY_ID)
        external_ref = (
            f"{call.CRM_ENTITY_TYPE}:{entity_id}" if call.CRM_ENTITY_TYPE and entity_id else None
        )
        actor = Actor(SourceFamily.CRM, user)
        try:
            event = ActivityEvent.checked(
                event_id=derive_event_id("bitrix24", call.CALL_ID, user),
                kind=ActivityKind.CALL,
                action="leg",
                occurred_at=occurred_at,
                actor=actor,
                source=source,
                direction=direction,
                answered=answered,
                duration_seconds=duration,
                talk_seconds=duration if answered else 0,
                counterpart=_text(call.PHONE_NUMBER) or None,
                external_ref=external_ref,
                call_id=call.CALL_ID,
            )
            # The call is over: whoever was on it is no longer (see the module's docstring).
            down = channel_event(
                call.CALL_ID, user, "down", occurred_at + timedelta(seconds=duration), source
            )
        except ValidationError as exc:
            raise RecordError("invalid", summarize(exc)) from None
        except OverflowError:
            raise RecordError("bad_time", "CALL_DURATION: the call would end after 9999") from None
        return [event, down]

    def _start(self, value: str) -> datetime:
        """ISO 8601 with an offset (what REST returns), or the portal's local display format,
        which only ``portal_timezone`` makes unambiguous."""
        match = _PORTAL_DATE.fullmatch(value)
        if match is None:
            return parse_rfc3339(value, "CALL_START_DATE")
        if self._zone is None:
            raise RecordError("bad_time", "CALL_START_DATE: portal-format time needs a time zone")
        day, month, year, hour, minute, second = (int(part) for part in match.groups())
        try:
            local = datetime(year, month, day, hour, minute, second, tzinfo=self._zone)
            return local.astimezone(UTC)
        except (ValueError, OverflowError):
            raise RecordError(
                "bad_time", f"CALL_START_DATE: {redact(value)} is out of range"
            ) from None


class Bitrix24VoximplantStatisticParser(_CallParser):
    format_name: ClassVar[str] = "bitrix24-voximplant-statistic"

    def parse_record(self, record: bytes, source: SourceRef) -> list[ActivityEvent]:
        return self.call_events(load_object(CallRecord, record), source)


class Bitrix24CallEndEventParser(_CallParser):
    format_name: ClassVar[str] = "bitrix24-call-end-event"

    def parse_record(self, record: bytes, source: SourceRef) -> list[ActivityEvent]:
        fields = read_event(decode(record), "OnVoximplantCallEnd", flat=True).data
        for finish_name, name in FINISH_ALIASES.items():
            if name not in fields and finish_name in fields:
                fields[name] = fields[finish_name]
        try:
            call = CallRecord.model_validate(fields)
        except ValidationError as exc:
            raise RecordError("invalid", summarize(exc)) from None
        return self.call_events(call, source)


def registration_time(call_id: str) -> datetime:
    """When ``telephony.externalcall.register`` created the call, from the id it gave it.

    register takes the current time as the start unless told another, just before it names the
    call, so the start is this second or the one before; a record without a start is dated by it.
    Any other call id leaves the record without a time."""
    match = _EXTERNAL_CALL_ID.fullmatch(call_id)
    if match is None:
        raise RecordError("invalid", "CALL_START_DATE missing, and CALL_ID carries no time")
    return datetime.fromtimestamp(int(match.group(1)), UTC)


def channel_event(
    call_id: str, user: str, action: str, at: datetime, source: SourceRef
) -> ActivityEvent:
    """A Bitrix24 user's presence on a call going ``up`` or ``down``: one of each per call and
    user, whichever record says it, so copies and the export's rows are one row each.
    ValidationError for values an event cannot hold."""
    return ActivityEvent.checked(
        event_id=derive_event_id("bitrix24", call_id, user, action),
        kind=ActivityKind.CHANNEL,
        action=action,
        occurred_at=at,
        actor=Actor(SourceFamily.CRM, user),
        source=source,
        external_ref=call_id,
        call_id=call_id,
    )


class EventBody(NamedTuple):
    """What is read of an outbound event: its ``data[...]`` fields and its ``ts`` (None when
    absent). Everything else (``auth[...]``, ``event_handler_id``) is dropped as it is read, so
    credentials cannot reach an event."""

    data: dict[str, Any]
    ts: object


def read_event(text: str, event: str, *, flat: bool = False) -> EventBody:
    """The body Bitrix24 POSTs for ``event`` (``OnVoximplantCallEnd``), as a form or as the
    JSON envelope its documentation shows; another event's body is ``invalid``. ``flat``: a
    JSON object without ``data`` is itself the fields (``telephony.externalcall.finish``
    parameters)."""
    if text.lstrip()[:1] == "{":
        return _json_fields(text, event, flat)
    return _form_fields(text, event)


def _form_fields(text: str, event: str) -> EventBody:
    try:
        form = parse_qs(
            text,
            keep_blank_values=True,
            strict_parsing=True,
            errors="strict",
            max_num_fields=_MAX_FORM_FIELDS,
        )
    except UnicodeDecodeError:
        raise RecordError("decode_error", "form value: encoded bytes are not UTF-8") from None
    except ValueError:
        raise RecordError("malformed", "not an application/x-www-form-urlencoded body") from None
    _check_event(form.get("event", [None])[-1], event)
    # Of a repeated key the last value counts, as of a duplicated JSON key.
    data = {
        match.group(1): values[-1]
        for key, values in form.items()
        if (match := _DATA_KEY.fullmatch(key)) is not None
    }
    return EventBody(data, form.get("ts", [None])[-1])


def _json_fields(text: str, event: str, flat: bool) -> EventBody:
    try:
        document = json.loads(text)
    except (ValueError, RecursionError):
        raise RecordError("malformed", "not valid JSON") from None
    if not isinstance(document, dict):
        raise RecordError("malformed", "JSON is not an object")
    data = document.get("data")
    if isinstance(data, dict):
        _check_event(document.get("event"), event)
        return EventBody(dict(data), document.get("ts"))
    if not flat:
        raise RecordError("invalid", f"no data object: not an {event} body")
    return EventBody(document, None)


def _check_event(name: object, event: str) -> None:
    if not isinstance(name, str) or name.upper() != event.upper():
        shown = redact(name) if isinstance(name, str) else "missing"
        raise RecordError("invalid", f"event {shown} is not {event}")


def _text(value: str | int | None) -> str:
    return "" if value is None else str(value)


def _integer(value: str | int, field: str) -> int:
    text = str(value)
    if _UNSIGNED.fullmatch(text) is None:
        raise RecordError("invalid", f"{field}: {redact(text)} is not a non-negative integer")
    return int(text)
