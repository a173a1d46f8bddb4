"""The canonical activity event: what every source format is parsed into.

One flat model for every activity kind, because every kind lands in one ClickHouse row shape and
dashboards aggregate across kinds. Which optional fields a kind must carry is enforced by
``_KIND_REQUIREMENTS`` below, so a call without a direction or a payment without an amount is a
validation error (and so a dead letter), never a silently wrong number.

Times are UTC-aware datetimes. The local day and working hours are derived later from the
manager's department time zone; a source's own time zone is the parser's business.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, NamedTuple
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

# Kafka headers of raw messages. FORMAT names the source format of the bytes; BACKFILL marks
# history loaded on purpose (a backfill, a replay of dead letters), which is never judged late.
FORMAT_HEADER = "sp-format"
BACKFILL_HEADER = "sp-backfill"


class ActivityKind(StrEnum):
    CALL = "call"
    CHAT_SESSION = "chat_session"
    MEETING = "meeting"
    OFFER = "offer"
    LEAD = "lead"
    DEAL = "deal"
    PAYMENT = "payment"
    TASK = "task"
    WORKDAY = "workday"
    VISIT = "visit"


class SourceFamily(StrEnum):
    """Which raw topic a record arrived on; also the namespace of actor identities."""

    PBX = "pbx"
    CHAT = "chat"
    CRM = "crm"


class Direction(StrEnum):
    INCOMING = "incoming"
    OUTGOING = "outgoing"
    INTERNAL = "internal"


class SourceRef(NamedTuple):
    """Where a record came from: enough to find the original bytes again.

    ``position`` is the record's index inside one Kafka message, because a message may carry
    several records (a chunk of CDR lines as the PBX wrote them).
    """

    format: str
    topic: str
    partition: int
    offset: int
    position: int = 0


class Actor(NamedTuple):
    """The identity a source names, before attribution: ``(family, id)``.

    ``family`` selects the identity namespace: a PBX extension "101" and a CRM user "101" are
    different people.
    """

    family: SourceFamily
    id: str


# Per kind: fields that must not be None.
_KIND_REQUIREMENTS: dict[ActivityKind, tuple[str, ...]] = {
    ActivityKind.CALL: ("direction", "answered", "duration_seconds", "talk_seconds"),
    ActivityKind.CHAT_SESSION: ("ended_at",),
    ActivityKind.MEETING: (),
    ActivityKind.OFFER: (),
    ActivityKind.LEAD: (),
    ActivityKind.DEAL: (),
    ActivityKind.PAYMENT: ("amount", "currency"),
    ActivityKind.TASK: (),
    ActivityKind.WORKDAY: (),
    ActivityKind.VISIT: (),
}

# Per kind: the actions a source may report. A CRM event whose action is not listed is invalid.
KIND_ACTIONS: dict[ActivityKind, frozenset[str]] = {
    ActivityKind.CALL: frozenset({"leg"}),
    ActivityKind.CHAT_SESSION: frozenset({"served", "missed"}),
    ActivityKind.MEETING: frozenset({"held", "presentation"}),
    ActivityKind.OFFER: frozenset({"prepared", "sent"}),
    ActivityKind.LEAD: frozenset({"created", "worked"}),
    ActivityKind.DEAL: frozenset({"won", "lost", "contract_signed"}),
    ActivityKind.PAYMENT: frozenset({"received"}),
    ActivityKind.TASK: frozenset({"created", "completed"}),
    ActivityKind.WORKDAY: frozenset({"start", "pause", "resume", "stop"}),
    ActivityKind.VISIT: frozenset({"visit_start", "visit_end", "trip_start", "trip_end"}),
}

MAX_TEXT = 256


def _known_time_zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {value!r}") from exc
    return value


TimeZoneName = Annotated[str, AfterValidator(_known_time_zone)]
"""An IANA time zone name (``Europe/Moscow``), checked against the installed tz database."""


def _ensure_utc(value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("time must carry a time zone; naive times are ambiguous")
    return value.astimezone(UTC)


class ActivityEvent(BaseModel):
    """One thing a manager did, in canonical form.

    ``event_id`` is derived from the source record (never from Kafka coordinates), so the same
    record delivered twice by its source yields the same id and is stored once.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    event_id: str = Field(min_length=8, max_length=64)
    kind: ActivityKind
    action: str = Field(min_length=1, max_length=32)
    occurred_at: datetime
    actor: Actor
    source: SourceRef

    ended_at: datetime | None = None
    direction: Direction | None = None
    answered: bool | None = None
    duration_seconds: int | None = Field(default=None, ge=0, le=7 * 24 * 3600)
    talk_seconds: int | None = Field(default=None, ge=0, le=7 * 24 * 3600)
    first_response_seconds: int | None = Field(default=None, ge=0, le=30 * 24 * 3600)
    amount: Decimal | None = Field(default=None, ge=0, max_digits=18, decimal_places=2)
    currency: str | None = Field(default=None, pattern=r"^[A-Z]{3}$")
    location: str | None = Field(default=None, max_length=MAX_TEXT)
    channel: str | None = Field(default=None, max_length=64)
    due_at: datetime | None = None
    counterpart: str | None = Field(default=None, max_length=MAX_TEXT)
    external_ref: str | None = Field(default=None, max_length=MAX_TEXT)
    call_id: str | None = Field(
        default=None,
        max_length=128,
        description="the source's id of the whole call (Asterisk linkedid, FreeSWITCH call uuid, "
        "Bitrix24 CALL_ID): call legs sharing it are consolidated into one call per manager",
    )

    @field_validator("occurred_at", "ended_at", "due_at")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        return None if value is None else _ensure_utc(value)

    @model_validator(mode="after")
    def _kind_rules(self) -> ActivityEvent:
        missing = [name for name in _KIND_REQUIREMENTS[self.kind] if getattr(self, name) is None]
        if missing:
            raise ValueError(f"{self.kind.value} event lacks {', '.join(missing)}")
        if self.action not in KIND_ACTIONS[self.kind]:
            raise ValueError(f"{self.kind.value} event has unknown action {self.action!r}")
        if self.ended_at is not None and self.ended_at < self.occurred_at:
            raise ValueError("ended_at is before occurred_at")
        if (
            self.talk_seconds is not None
            and self.duration_seconds is not None
            and self.talk_seconds > self.duration_seconds
        ):
            raise ValueError("talk_seconds exceeds duration_seconds")
        return self


def derive_event_id(*parts: str | int | None) -> str:
    """A stable id from the fields that identify a record at its source.

    32 hex characters of SHA-256: collisions are not a practical concern at any event volume a
    sales team produces, and the id stays short enough for a ClickHouse sorting key.
    """
    joined = "\x1f".join("" if part is None else str(part) for part in parts)
    return hashlib.sha256(joined.encode("utf-8")).hexdigest()[:32]
