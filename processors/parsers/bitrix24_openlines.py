"""Bitrix24 Open Lines sessions, one JSON object per line (or a saved REST answer listing them).

A record is one session object as the Open Lines REST API and its session export return it, with
keys either in Bitrix24's own UPPER_SNAKE spelling (``DATE_FIRST_ANSWER``) or in camelCase
(``dateFirstAnswer``), the spelling of ``imopenlines.v2.Session.list``, which also names the
status (``"closed"``) and leaves ``operatorId`` null for a session no operator took. A closed
session becomes one ``chat_session`` event, like the generic chat format; a session that is still
open yields nothing, because the export delivers it again once it is closed and only then is its
outcome known.

An Open Lines operator is a Bitrix24 user, so the actor is ``(crm, OPERATOR_ID)``: the same
identity the CRM parsers use, and one directory entry covers both.

The ``ONSESSIONFINISH`` event itself names its sessions by id only: the receiver turns it into
the sessions (``ingest/bitrix24/openlines.py``); a copy of the event is one ``ids_only`` dead
letter that says so.
"""

from __future__ import annotations

from typing import Annotated, ClassVar

from pydantic import AliasChoices, BeforeValidator, Field, ValidationError

from processors.parsers._bitrix24 import (
    Bitrix24Framing,
    BxFlag,
    BxId,
    BxInt,
    BxOptionalId,
    BxOptionalTime,
    FetchedSubject,
    ids_only,
    meaningful_id,
)
from processors.parsers._common import (
    JsonRecordParser,
    RecordModel,
    load_object,
    optional_time,
    parse_rfc3339,
    seconds_between,
    summarize,
)
from processors.parsers.base import NoActivity, RecordError
from salespulse.models import (
    ActivityEvent,
    ActivityKind,
    Actor,
    SourceFamily,
    SourceRef,
    derive_event_id,
)

# Session statuses (Bitrix\ImOpenLines\Session::STATUS_*). 60 and above are final.
STATUS_NEW = 0
STATUS_OPERATOR = 40
STATUS_CLOSE = 60
STATUS_SPAM = 65
STATUS_DUPLICATE = 69
# imopenlines.v2 names groups of those statuses. Only "over or not" and "spam" matter here, so
# each name stands for one status of its group.
_STATUS_NAMES = {
    "new": STATUS_NEW,
    "answered": STATUS_OPERATOR,
    "paused": STATUS_OPERATOR,
    "closed": STATUS_CLOSE,
    "spam": STATUS_SPAM,
}
# Spam is not a conversation with a client, and a duplicate's conversation is counted in the
# session it duplicates: neither is served nor missed.
_NOT_CONVERSATIONS = frozenset({STATUS_SPAM, STATUS_DUPLICATE})

# Events that name Open Lines sessions by id only (what the receiver fetches them for).
_SESSION = FetchedSubject("Open Lines session", "imopenlines.v2.Session.list")
SESSION_EVENTS = {
    name: _SESSION for name in ("ONSESSIONFINISH", "ONIMCONNECTORDIALOGFINISH", "ONSESSIONSTART")
}

# Connector ids (SOURCE) to channel names shared with the other chat formats. Several
# connectors serve one messenger (whatsappbyedna, whatsappbytwilio ...), hence prefixes.
_CHANNEL_EXACT = {"livechat": "webchat", "network": "bitrix24_network"}
_CHANNEL_PREFIXES = (
    ("whatsapp", "whatsapp"),
    ("telegram", "telegram"),
    ("vkgroup", "vk"),
    ("fbinstagram", "instagram"),
    ("instagram", "instagram"),
    ("facebook", "facebook"),
    ("viber", "viber"),
    ("avito", "avito"),
)


def _status_number(value: object) -> object:
    return _STATUS_NAMES.get(value, value) if isinstance(value, str) else value


class OpenLinesSession(RecordModel):
    """The fields read from a session. Times stay strings so that a bad or naive time is a
    ``bad_time`` dead letter rather than a generic validation error."""

    id: BxId = Field(validation_alias=AliasChoices("ID", "id"))
    config_id: BxOptionalId = Field(None, validation_alias=AliasChoices("CONFIG_ID", "configId"))
    source: str = Field(
        min_length=1, max_length=64, validation_alias=AliasChoices("SOURCE", "source")
    )
    # Required, but null (v2's "no operator") is allowed and read as 0.
    operator_id: BxOptionalId = Field(validation_alias=AliasChoices("OPERATOR_ID", "operatorId"))
    user_id: BxOptionalId = Field(None, validation_alias=AliasChoices("USER_ID", "userId"))
    chat_id: BxOptionalId = Field(None, validation_alias=AliasChoices("CHAT_ID", "chatId"))
    date_create: str = Field(
        max_length=64, validation_alias=AliasChoices("DATE_CREATE", "dateCreate")
    )
    date_close: BxOptionalTime = Field(
        None, validation_alias=AliasChoices("DATE_CLOSE", "dateClose")
    )
    date_first_answer: BxOptionalTime = Field(
        None, validation_alias=AliasChoices("DATE_FIRST_ANSWER", "dateFirstAnswer")
    )
    status: Annotated[BxInt | None, BeforeValidator(_status_number)] = Field(
        None, validation_alias=AliasChoices("STATUS", "status")
    )
    closed: BxFlag | None = Field(None, validation_alias=AliasChoices("CLOSED", "closed"))
    message_count: BxInt | None = Field(
        None, validation_alias=AliasChoices("MESSAGE_COUNT", "messageCount")
    )
    transfers: BxInt | None = Field(
        None, validation_alias=AliasChoices("TRANSFER_COUNT", "queueTransfers", "transferCount")
    )


class Bitrix24OpenLinesParser(Bitrix24Framing, JsonRecordParser[OpenLinesSession]):
    format_name: ClassVar[str] = "bitrix24-openlines-session"
    family: ClassVar[SourceFamily] = SourceFamily.CHAT
    model = OpenLinesSession

    def parse_record(self, record: bytes, source: SourceRef) -> list[ActivityEvent]:
        try:
            session = load_object(OpenLinesSession, record)
        except RecordError as error:
            raise ids_only(record, SESSION_EVENTS) or error from None
        return self.parse_object(session, source)

    def parse_object(self, session: OpenLinesSession, source: SourceRef) -> list[ActivityEvent]:
        if session.closed is None and session.status is None:
            raise RecordError("invalid", "neither CLOSED nor STATUS: cannot tell if it is over")

        created = parse_rfc3339(session.date_create, "DATE_CREATE")
        closed_at = optional_time(session.date_close, "DATE_CLOSE")
        first_answer = optional_time(session.date_first_answer, "DATE_FIRST_ANSWER")

        closed = session.closed is True or (
            session.status is not None and session.status >= STATUS_CLOSE
        )
        if not closed:
            return NoActivity("a session still open: it counts once it is closed")
        if session.status in _NOT_CONVERSATIONS:
            return NoActivity("a spam or duplicate session")
        if closed_at is None:
            raise RecordError("invalid", "closed session without DATE_CLOSE")

        channel = channel_of(session.source)
        if not channel:
            raise RecordError("invalid", "SOURCE is blank")

        chat_id = meaningful_id(session.chat_id)
        first_response_seconds = (
            None
            if first_answer is None
            else seconds_between(created, first_answer, "DATE_CREATE", "DATE_FIRST_ANSWER")
        )

        try:
            event = ActivityEvent.checked(
                event_id=derive_event_id(self.format_name, session.id),
                kind=ActivityKind.CHAT_SESSION,
                action="served" if first_response_seconds is not None else "missed",
                occurred_at=created,
                ended_at=closed_at,
                actor=Actor(SourceFamily.CRM, session.operator_id or "0"),
                source=source,
                first_response_seconds=first_response_seconds,
                channel=channel,
                counterpart=meaningful_id(session.user_id),
                external_ref=None if chat_id is None else f"chat:{chat_id}",
            )
        except ValidationError as exc:
            raise RecordError("invalid", summarize(exc)) from None
        return [event]


def channel_of(connector: str) -> str:
    """The channel name of an Open Lines connector id: known messengers by their common name,
    anything else lower-cased as is."""
    name = connector.strip().lower()
    if name in _CHANNEL_EXACT:
        return _CHANNEL_EXACT[name]
    for prefix, channel in _CHANNEL_PREFIXES:
        if name.startswith(prefix):
            return channel
    return name
