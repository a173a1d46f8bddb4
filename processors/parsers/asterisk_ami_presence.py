"""Asterisk channels going up and down, as the AMI bridge saw them: calls in progress.

A CDR is written when a call ends, so a manager on a long call looks idle until it does. The AMI
bridge (``ingest.ami``, with presence on) also ships, for each channel event Asterisk raises live
(``Newchannel``, ``Newstate``, ``Hangup``) and for each channel listed by ``CoreShowChannels`` when
a session logs in, one JSON object per line, format ``asterisk-ami-presence``::

    {"event": "Newstate", "channel": "PJSIP/101-0000001a", "uniqueid": "1796000000.12",
     "linkedid": "1796000000.11", "channel_state": 6, "at": 1796000012.5, "duration": null}

``at`` is the event's time (Unix seconds): the AMI ``Timestamp`` field when manager.conf has
``timestampevents = yes``, else when the bridge read the event. ``duration`` (seconds) is
``CoreShowChannel``'s: how long the channel has existed, so it came up at ``at - duration``.

The fields stay as Asterisk gave them; which of them mean "busy" is decided here, so that a
change of mind replays over history. A channel is busy in the states where its person is on the
phone: off hook, dialling, ringing out (``Ring``: the caller's side) and ``Up`` (talking). A phone
ringing (``Ringing``) is not yet a person on a call. An event in a busy state is an ``up`` event
of kind ``channel``; a ``Hangup`` of a channel that was busy when it ended is a ``down`` event.
Only channels whose endpoint is an internal extension (``internal_extension_pattern``) are kept:
a trunk or a Local channel (one half of a queue's or a follow-me's dial) is nobody on the phone,
and the real device's channel of the same call tells when the manager is.

The ids: one ``up`` and one ``down`` per channel (``uniqueid``), whatever event said it, so the
``Newchannel`` and ``Newstate`` of one channel, or a channel announced again after a reconnect,
are one row.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import ClassVar

from pydantic import Field, ValidationError

from processors.parsers._common import (
    DEFAULT_MAX_RECORD_BYTES,
    INTERNAL_EXTENSION_PATTERN,
    Extensions,
    JsonRecordParser,
    RecordModel,
    summarize,
)
from processors.parsers.asterisk_cdr_common import channel_endpoint
from processors.parsers.base import NoActivity, RecordError
from salespulse.models import (
    MAX_TEXT,
    ActivityEvent,
    ActivityKind,
    Actor,
    SourceFamily,
    SourceRef,
    derive_event_id,
)

__all__ = ["BUSY_STATES", "PRESENCE_EVENTS", "AsteriskAmiPresenceParser", "ChannelEvent"]

# ChannelState numbers (Asterisk's ast_channel_state): 2 OffHook, 3 Dialing, 4 Ring, 6 Up.
BUSY_STATES = frozenset({2, 3, 4, 6})
# The AMI events the bridge ships (lower case, as the bridge compares them).
PRESENCE_EVENTS = frozenset({"newchannel", "newstate", "hangup", "coreshowchannel"})
_UP_EVENTS = frozenset({"newchannel", "newstate", "coreshowchannel"})
# A channel existing for longer than a week is no call.
_MAX_DURATION = 7 * 24 * 3600


class ChannelEvent(RecordModel):
    """One presence record as the bridge writes it."""

    event: str = Field(min_length=1, max_length=64)
    channel: str = Field(min_length=1, max_length=MAX_TEXT)
    uniqueid: str = Field(min_length=1, max_length=128)
    linkedid: str | None = Field(default=None, max_length=128)
    channel_state: int | None = None
    at: float = Field(gt=0)
    duration: float | None = Field(default=None, ge=0, le=_MAX_DURATION)


class AsteriskAmiPresenceParser(JsonRecordParser[ChannelEvent]):
    format_name: ClassVar[str] = "asterisk-ami-presence"
    family: ClassVar[SourceFamily] = SourceFamily.PBX
    model = ChannelEvent

    def __init__(
        self,
        internal_extension_pattern: str = INTERNAL_EXTENSION_PATTERN,
        max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES,
    ) -> None:
        super().__init__(max_record_bytes)
        self._extensions = Extensions(internal_extension_pattern)

    def parse_object(self, record: ChannelEvent, source: SourceRef) -> list[ActivityEvent]:
        name = record.event.lower()
        if name not in PRESENCE_EVENTS:
            return NoActivity("not a channel event")
        if record.channel_state not in BUSY_STATES:
            return NoActivity("channel not busy")
        if record.channel[:6].lower() == "local/":
            return NoActivity("local channel")
        extension = self._extensions.first(channel_endpoint(record.channel))
        if extension is None:
            return NoActivity("not an extension's channel")
        action = "up" if name in _UP_EVENTS else "down"
        try:
            at = datetime.fromtimestamp(record.at, UTC)
            if action == "up" and record.duration:
                at -= timedelta(seconds=record.duration)
        except (OverflowError, OSError, ValueError):
            raise RecordError("bad_time", f"at {record.at!r} is no time") from None
        try:
            event = ActivityEvent.checked(
                event_id=derive_event_id(self.format_name, record.uniqueid, action),
                kind=ActivityKind.CHANNEL,
                action=action,
                occurred_at=at,
                actor=Actor(SourceFamily.PBX, extension),
                source=source,
                external_ref=record.uniqueid,
                call_id=record.linkedid or record.uniqueid,
            )
        except ValidationError as exc:
            raise RecordError("invalid", summarize(exc)) from None
        return [event]
