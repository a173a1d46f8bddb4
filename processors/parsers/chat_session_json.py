"""Generic omnichannel chat sessions, one JSON object per line (JSON Lines).

A session is what an operator handled (or failed to handle) end to end, so it becomes one event:
``served`` when the operator answered and closed it, ``missed`` otherwise.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, ValidationError

from processors.parsers._common import (
    JsonRecordParser,
    RecordModel,
    optional_time,
    parse_rfc3339,
    seconds_between,
    summarize,
)
from processors.parsers.base import RecordError
from salespulse.models import (
    ActivityEvent,
    ActivityKind,
    Actor,
    SourceFamily,
    SourceRef,
    derive_event_id,
)


class ChatSession(RecordModel):
    """The record as the chat platform sends it. Times stay strings: a bad or naive time is a
    ``bad_time`` dead letter, which pydantic's own datetime parsing cannot tell apart."""

    session_id: str = Field(min_length=1, max_length=128)
    operator_id: str = Field(min_length=1, max_length=128)
    channel: str = Field(min_length=1, max_length=64)
    started_at: str
    first_response_at: str | None = None
    closed_at: str
    status: Literal["closed", "missed"]
    client_id: str | None = Field(default=None, max_length=256)
    messages: int | None = Field(default=None, ge=0)


class ChatSessionJsonParser(JsonRecordParser[ChatSession]):
    format_name: ClassVar[str] = "chat-session-json"
    family: ClassVar[SourceFamily] = SourceFamily.CHAT
    model = ChatSession

    def parse_object(self, session: ChatSession, source: SourceRef) -> list[ActivityEvent]:
        started_at = parse_rfc3339(session.started_at, "started_at")
        closed_at = parse_rfc3339(session.closed_at, "closed_at")
        first_response_at = optional_time(session.first_response_at, "first_response_at")
        first_response_seconds = (
            None
            if first_response_at is None
            else seconds_between(started_at, first_response_at, "started_at", "first_response_at")
        )
        # A closed session nobody answered (the client gave up) is still a missed chat.
        served = session.status == "closed" and first_response_seconds is not None

        try:
            event = ActivityEvent.checked(
                event_id=derive_event_id(self.format_name, session.session_id),
                kind=ActivityKind.CHAT_SESSION,
                action="served" if served else "missed",
                occurred_at=started_at,
                ended_at=closed_at,
                actor=Actor(SourceFamily.CHAT, session.operator_id),
                source=source,
                first_response_seconds=first_response_seconds,
                channel=session.channel.lower(),
                counterpart=session.client_id,
            )
        except ValidationError as exc:
            raise RecordError("invalid", summarize(exc)) from None
        return [event]
