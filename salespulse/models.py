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
from operator import itemgetter
from typing import Annotated, Any, NamedTuple, Required, TypedDict, Unpack
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
    # A PBX channel of a manager's going up (a call in progress) or down: not an activity of its
    # own (never counted), only what tells the alerts a manager is on a call right now.
    CHANNEL = "channel"


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
    ActivityKind.CHANNEL: (),
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
    ActivityKind.CHANNEL: frozenset({"up", "down"}),
}

MAX_TEXT = 256
# The default cap on records in one Kafka message (the worker's max_records_per_message);
# bridges that pack lines into messages stay well under it.
MAX_RECORDS_PER_MESSAGE = 20_000


def _known_time_zone(value: str) -> str:
    try:
        ZoneInfo(value)
    # OSError: a name that is a folder of the tz database ("Europe") is no zone either.
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:
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

    @classmethod
    def checked(cls, **values: Unpack[EventFields]) -> ActivityEvent:
        """``ActivityEvent(**values)``, at a fraction of the cost for what parsers produce.

        Values of exactly the types validation would produce and plainly within every
        constraint (the field limits and ``_kind_rules``) are stored as given, which is what
        validation would store. Anything else (a naive or non-UTC time, a coercible type, a
        value near or beyond a limit, an unknown field) goes through full validation, so an
        invalid event raises pydantic's own ``ValidationError`` with its usual message.
        """
        data: dict[str, Any] = {**_UNSET_FIELDS, **values}
        if not _trusted(data):
            return cls(**values)
        event = cls.__new__(cls)
        _object_setattr(event, "__dict__", data)
        _object_setattr(event, "__pydantic_fields_set__", set(values))
        _object_setattr(event, "__pydantic_extra__", None)
        _object_setattr(event, "__pydantic_private__", None)
        return event


class EventFields(TypedDict, total=False):
    """The keyword arguments of ``ActivityEvent.checked``: the model's fields."""

    event_id: Required[str]
    kind: Required[ActivityKind]
    action: Required[str]
    occurred_at: Required[datetime]
    actor: Required[Actor]
    source: Required[SourceRef]
    ended_at: datetime | None
    direction: Direction | None
    answered: bool | None
    duration_seconds: int | None
    talk_seconds: int | None
    first_response_seconds: int | None
    amount: Decimal | None
    currency: str | None
    location: str | None
    channel: str | None
    due_at: datetime | None
    counterpart: str | None
    external_ref: str | None
    call_id: str | None


_object_setattr = object.__setattr__
# Every optional field defaults to None; the required ones are always overwritten.
_UNSET_FIELDS: dict[str, Any] = dict.fromkeys(ActivityEvent.model_fields)
_FIELD_NAMES = frozenset(ActivityEvent.model_fields)
_FIELD_COUNT = len(_FIELD_NAMES)
# Every field's value in declaration order, in one call; _trusted unpacks them in this order.
_field_values = itemgetter(*ActivityEvent.model_fields)
assert tuple(ActivityEvent.model_fields) == (
    "event_id",
    "kind",
    "action",
    "occurred_at",
    "actor",
    "source",
    "ended_at",
    "direction",
    "answered",
    "duration_seconds",
    "talk_seconds",
    "first_response_seconds",
    "amount",
    "currency",
    "location",
    "channel",
    "due_at",
    "counterpart",
    "external_ref",
    "call_id",
)
_KIND_RULES = {kind.value: (KIND_ACTIONS[kind], _KIND_REQUIREMENTS[kind]) for kind in ActivityKind}
assert all(
    info.default is None for info in ActivityEvent.model_fields.values() if not info.is_required()
)
assert set(EventFields.__annotations__) == _FIELD_NAMES
# Every known action satisfies the action field's own length limits.
assert all(1 <= len(a) <= 32 for actions in KIND_ACTIONS.values() for a in actions)
_WEEK_SECONDS = 7 * 24 * 3600
_MONTH_SECONDS = 30 * 24 * 3600
_SOURCE_TYPES = (str, str, int, int, int)


def _trusted(data: dict[str, Any]) -> bool:
    """Whether validation would accept ``data`` (every field, None where not given) unchanged:
    exact types, UTC times, every constraint of the fields and of ``_kind_rules`` met. False
    sends the values to validation, so this may be stricter than the model, never looser."""
    if len(data) != _FIELD_COUNT:
        return False  # a field the model does not have
    (
        event_id,
        kind,
        action,
        occurred_at,
        actor,
        source,
        ended_at,
        direction,
        answered,
        duration,
        talk,
        response,
        amount,
        currency,
        location,
        channel,
        due_at,
        counterpart,
        external_ref,
        call_id,
    ) = _field_values(data)
    if (
        type(event_id) is not str
        or not 8 <= len(event_id) <= 64
        or type(kind) is not ActivityKind
        or type(action) is not str
        or type(occurred_at) is not datetime
        or occurred_at.tzinfo is not UTC
        or type(actor) is not Actor
        or type(actor.family) is not SourceFamily
        or type(actor.id) is not str
        or type(source) is not SourceRef
        or tuple(map(type, source)) != _SOURCE_TYPES
    ):
        return False
    # Keyed by the kind's text: an enum member hashes in Python, a str in C.
    actions, required = _KIND_RULES[kind._value_]
    if action not in actions:
        return False
    for name in required:
        if data[name] is None:
            return False
    if ended_at is not None and (
        type(ended_at) is not datetime or ended_at.tzinfo is not UTC or ended_at < occurred_at
    ):
        return False
    if due_at is not None and (type(due_at) is not datetime or due_at.tzinfo is not UTC):
        return False
    if direction is not None and type(direction) is not Direction:
        return False
    if answered is not None and type(answered) is not bool:
        return False
    if duration is not None and (type(duration) is not int or not 0 <= duration <= _WEEK_SECONDS):
        return False
    if talk is not None and (
        type(talk) is not int
        or not 0 <= talk <= _WEEK_SECONDS
        or (duration is not None and talk > duration)
    ):
        return False
    if response is not None and (type(response) is not int or not 0 <= response <= _MONTH_SECONDS):
        return False
    if amount is not None and not _plain_amount(amount):
        return False
    if currency is not None and (
        type(currency) is not str
        or len(currency) != 3
        or not (currency.isascii() and currency.isalpha() and currency.isupper())
    ):
        return False
    return (
        (location is None or (type(location) is str and len(location) <= MAX_TEXT))
        and (channel is None or (type(channel) is str and len(channel) <= 64))
        and (counterpart is None or (type(counterpart) is str and len(counterpart) <= MAX_TEXT))
        and (external_ref is None or (type(external_ref) is str and len(external_ref) <= MAX_TEXT))
        and (call_id is None or (type(call_id) is str and len(call_id) <= 128))
    )


def _plain_amount(amount: object) -> bool:
    """A finite, non-negative Decimal of at most 16 + 2 digits: within ``max_digits=18`` and
    ``decimal_places=2`` however validation counts its trailing zeros."""
    if type(amount) is not Decimal or not amount.is_finite() or amount < 0:
        return False
    _sign, digits, exponent = amount.as_tuple()
    return isinstance(exponent, int) and -2 <= exponent <= 0 and len(digits) <= 16


def derive_event_id(*parts: str | int | None) -> str:
    """A stable id from the fields that identify a record at its source.

    32 hex characters of SHA-256: collisions are not a practical concern at any event volume a
    sales team produces, and the id stays short enough for a ClickHouse sorting key.
    """
    try:
        joined = "\x1f".join(parts)  # type: ignore[arg-type]  # the usual case: only text
    except TypeError:
        joined = "\x1f".join("" if part is None else str(part) for part in parts)
    return _sha256(joined.encode("utf-8")).hexdigest()[:32]


_sha256 = hashlib.sha256
