"""Bitrix24 telephony: a user answering a call, so the call is in progress.

A call reaches salespulse when it ends (``OnVoximplantCallEnd``, the statistic export), so a
manager on a long call looks idle until it does. Bitrix24 also raises ``OnVoximplantCallStart``
when the conversation begins: the operator answers an incoming call, or the customer answers
an outgoing one. Its ``data`` holds ``CALL_ID`` (the call's id, the same as the end event's) and
``USER_ID`` (the Bitrix24 user who answered). Format ``bitrix24-call-start-event`` reads the
body a handler subscribed to it receives, as a form (``event=ONVOXIMPLANTCALLSTART&data[CALL_ID]=
...&data[USER_ID]=1269&ts=1773239326&auth[...]=...``) or as the JSON envelope Bitrix24's
documentation shows (``{"event": ..., "data": {...}, "ts": ...}``); the ``auth[...]`` values are
never read.

It becomes one ``channel`` event ``up`` (never counted) of ``Actor(crm, USER_ID)``,
``external_ref`` the ``CALL_ID``; the call's end, read by ``bitrix24_telephony``, is the
``down`` of the same ``CALL_ID`` (see that module). Presence is grouped by ``CALL_ID`` alone, so
the end closes the call for everyone who answered it (a transferred call has one end).

**When.** The event names no time of its own; the body's top-level ``ts`` is, in Bitrix24's
words, the date and time the event was sent from its event queue (Unix seconds), seconds after
the answer. Parsers see no receive time (the record's bytes and its coordinates only), and a
replay must read the same time again, so ``ts`` dates the ``up``, and a body without a usable
``ts`` is a ``bad_time`` dead letter rather than a guess. A ``ts`` late by a queue backlog only
shortens the time the manager counts as busy.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import ClassVar

from pydantic import Field, ValidationError

from processors.parsers._bitrix24 import Bitrix24Framing, BxId
from processors.parsers._common import (
    RecordModel,
    RecordParser,
    decode,
    redact,
    summarize,
)
from processors.parsers.base import NoActivity, RecordError
from processors.parsers.bitrix24_telephony import channel_event, read_event
from salespulse.models import ActivityEvent, SourceFamily, SourceRef

__all__ = ["Bitrix24CallStartEventParser", "CallStart"]

# Unix seconds of 2001-09-09 onwards, as the portal writes them (a string of digits).
_UNIX_SECONDS = re.compile(r"[0-9]{10}", re.ASCII)


class CallStart(RecordModel):
    """``data`` of ``OnVoximplantCallStart``: a form gives strings, JSON may give numbers."""

    CALL_ID: str = Field(min_length=1, max_length=128)
    USER_ID: BxId


class Bitrix24CallStartEventParser(Bitrix24Framing, RecordParser):
    format_name: ClassVar[str] = "bitrix24-call-start-event"
    family: ClassVar[SourceFamily] = SourceFamily.CRM

    def parse_record(self, record: bytes, source: SourceRef) -> list[ActivityEvent]:
        body = read_event(decode(record), "OnVoximplantCallStart")
        try:
            start = CallStart.model_validate(body.data)
        except ValidationError as exc:
            raise RecordError("invalid", summarize(exc)) from None
        at = _sent_at(body.ts)
        if start.USER_ID.strip("0") == "":
            return NoActivity("a call start with no user (USER_ID 0)")
        try:
            return [channel_event(start.CALL_ID, start.USER_ID, "up", at, source)]
        except ValidationError as exc:
            raise RecordError("invalid", summarize(exc)) from None


def _sent_at(ts: object) -> datetime:
    """``ts``: Unix seconds, as a string of digits (a form, the documented JSON) or a number."""
    if ts is None:
        raise RecordError("bad_time", "ts missing: the event carries no other time")
    if isinstance(ts, int) and not isinstance(ts, bool):
        text = str(ts)
    elif isinstance(ts, str):
        text = ts
    else:
        raise RecordError("bad_time", f"ts is a {type(ts).__name__}, not Unix seconds")
    if _UNIX_SECONDS.fullmatch(text) is None:
        raise RecordError("bad_time", f"ts {redact(text)} is not Unix seconds")
    return datetime.fromtimestamp(int(text), UTC)
