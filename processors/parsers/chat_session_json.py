"""Generic omnichannel chat sessions, one JSON object per line (JSON Lines).

A session is what an operator handled (or failed to handle) end to end, so it becomes one event:
``served`` when the operator answered and closed it, ``missed`` otherwise.
"""

from __future__ import annotations

from datetime import timedelta
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from processors.parsers._common import (
    DEFAULT_MAX_RECORD_BYTES,
    check_size,
    load_object,
    parse_rfc3339,
    summarize,
)
from processors.parsers.base import RecordError, split_lines
from salespulse.models import (
    ActivityEvent,
    ActivityKind,
    Actor,
    SourceFamily,
    SourceRef,
    derive_event_id,
)

_SECOND = timedelta(seconds=1)


class ChatSession(BaseModel):
    """The record as the chat platform sends it. Times stay strings: a bad or naive time is a
    ``bad_time`` dead letter, which pydantic's own datetime parsing cannot tell apart."""

    # Strict: a number where a string belongs is a producer bug, not something to coerce.
    model_config = ConfigDict(extra="ignore", strict=True, frozen=True)

    session_id: str = Field(min_length=1, max_length=128)
    operator_id: str = Field(min_length=1, max_length=128)
    channel: str = Field(min_length=1, max_length=64)
    started_at: str
    first_response_at: str | None = None
    closed_at: str
    status: Literal["closed", "missed"]
    client_id: str | None = Field(default=None, max_length=256)
    messages: int | None = Field(default=None, ge=0)


class ChatSessionJsonParser:
    format_name: ClassVar[str] = "chat-session-json"
    family: ClassVar[SourceFamily] = SourceFamily.CHAT

    def __init__(self, max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES) -> None:
        self._max_record_bytes = max_record_bytes

    def split(self, payload: bytes) -> list[bytes]:
        return split_lines(payload)

    def parse(self, record: bytes, source: SourceRef) -> list[ActivityEvent]:
        check_size(record, self._max_record_bytes)
        session = load_object(ChatSession, record)
        started_at = parse_rfc3339(session.started_at, "started_at")
        closed_at = parse_rfc3339(session.closed_at, "closed_at")

        first_response_seconds: int | None = None
        if session.first_response_at is not None:
            first_response_at = parse_rfc3339(session.first_response_at, "first_response_at")
            first_response_seconds = int((first_response_at - started_at) // _SECOND)
            if first_response_seconds < 0:
                raise RecordError("invalid", "first_response_at is before started_at")
        # A closed session nobody answered (the client gave up) is still a missed chat.
        served = session.status == "closed" and first_response_seconds is not None

        try:
            event = ActivityEvent(
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
