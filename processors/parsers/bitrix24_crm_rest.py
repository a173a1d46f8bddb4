"""Bitrix24 CRM entities fetched over REST, one JSON envelope per line.

Bitrix24's outgoing event webhooks carry only an entity id, so the bridge
(``ingest/bitrix24/enrich.py``) fetches the entity and writes an envelope:
``{"event": "ONCRMDEALUPDATE", "ts": 1732605302, "entity": "deal", "result": {...}}`` where
``result`` is the REST ``crm.<entity>.get`` result as the portal returned it. An entity's
*state* is reported, not its change, so every event id is built from what the state means
(deal 5531 was won), never from the delivery: the many update events Bitrix24 fires for one
save, and re-deliveries, collapse into one event.

A REST result without the envelope (a saved ``crm.deal.get`` answer, the rows of a
``crm.deal.list`` export) is the same state without the event: its entity is told by its fields
and it is read as its update event would have it read. The outgoing event itself
(``ONCRMDEALUPDATE`` with ``data[FIELDS][ID]``) names only the id: a copy of it is one
``ids_only`` dead letter that says so.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime
from typing import Any, ClassVar, Literal, TypeVar

from pydantic import Field, ValidationError

from processors.parsers._bitrix24 import (
    Bitrix24Framing,
    BxFlag,
    BxId,
    BxOptionalId,
    BxOptionalText,
    BxOptionalTime,
    FetchedSubject,
    ids_only,
)
from processors.parsers._common import (
    DEFAULT_MAX_RECORD_BYTES,
    JsonRecordParser,
    RecordModel,
    load_object,
    optional_deadline,
    optional_time,
    redact,
    summarize,
)
from processors.parsers.base import NoActivity, RecordError
from processors.parsers.crm_event_json import money
from salespulse.models import (
    ActivityEvent,
    ActivityKind,
    Actor,
    SourceFamily,
    SourceRef,
    derive_event_id,
)
from salespulse.sections import OFFICE_LOCATION_KEYWORDS, REMOTE_LOCATION_KEYWORDS

Entity = Literal["lead", "deal", "activity"]

# Event name → (entity, whether the event reports a creation).
EVENTS: dict[str, tuple[Entity, bool]] = {
    "ONCRMLEADADD": ("lead", True),
    "ONCRMLEADUPDATE": ("lead", False),
    "ONCRMDEALADD": ("deal", True),
    "ONCRMDEALUPDATE": ("deal", False),
    "ONCRMACTIVITYADD": ("activity", True),
    "ONCRMACTIVITYUPDATE": ("activity", False),
}

# What each event names by id, and the REST methods that export it whole.
FETCHED: dict[Entity, FetchedSubject] = {
    "lead": FetchedSubject("lead", "crm.lead.get or crm.lead.list"),
    "deal": FetchedSubject("deal", "crm.deal.get or crm.deal.list"),
    "activity": FetchedSubject("activity", "crm.activity.get or crm.activity.list"),
}
IDS_ONLY_EVENTS = {name: FETCHED[entity] for name, (entity, _) in EVENTS.items()}
# The fields that tell a bare REST result's entity, in the order they are tried.
_ENTITY_FIELDS: tuple[tuple[Entity, frozenset[str]], ...] = (
    ("activity", frozenset({"RESPONSIBLE_ID", "OWNER_TYPE_ID"})),
    ("deal", frozenset({"STAGE_ID", "ASSIGNED_BY_ID"})),
    ("lead", frozenset({"STATUS_ID", "ASSIGNED_BY_ID"})),
)

# Activity TYPE_ID (CCrmActivityType) and, for provider activities (TYPE_ID 6), PROVIDER_ID or
# PROVIDER_TYPE_ID, to what the activity is.
_ACTIVITY_TYPES = {"1": "meeting", "2": "call", "3": "task", "4": "email"}
_ACTIVITY_PROVIDERS = {
    "CRM_MEETING": "meeting",
    "MEETING": "meeting",
    "VOXIMPLANT_CALL": "call",
    "CALL": "call",
    "CRM_TODO": "task",
    "TODO": "task",
    "TASKS": "task",
    "TASKS_TASK": "task",
    "TASK": "task",
    "CRM_EMAIL": "email",
    "EMAIL": "email",
}
# CCrmOwnerType ids, for external_ref.
_OWNER_TYPES = {
    "1": "lead",
    "2": "deal",
    "3": "contact",
    "4": "company",
    "5": "invoice",
    "7": "quote",
    "31": "smart_invoice",
}


class Envelope(RecordModel):
    event: str = Field(min_length=1, max_length=64)
    ts: int = Field(ge=0)
    entity: Entity
    result: dict[str, Any]


class _Entity(RecordModel):
    """Bitrix24 field names are UPPER_SNAKE; the attributes are their lower-case aliases."""


_EntityT = TypeVar("_EntityT", bound=_Entity)


class Activity(_Entity):
    id: BxId = Field(alias="ID")
    type_id: BxOptionalId = Field(None, alias="TYPE_ID")
    provider_id: BxOptionalText = Field(None, alias="PROVIDER_ID")
    provider_type_id: BxOptionalText = Field(None, alias="PROVIDER_TYPE_ID")
    responsible_id: BxId = Field(alias="RESPONSIBLE_ID")
    completed: BxFlag = Field(alias="COMPLETED")
    created: BxOptionalTime = Field(None, alias="CREATED")
    last_updated: BxOptionalTime = Field(None, alias="LAST_UPDATED")
    start_time: BxOptionalTime = Field(None, alias="START_TIME")
    end_time: BxOptionalTime = Field(None, alias="END_TIME")
    deadline: BxOptionalTime = Field(None, alias="DEADLINE")
    location: BxOptionalText = Field(None, alias="LOCATION")
    owner_type_id: BxOptionalId = Field(None, alias="OWNER_TYPE_ID")
    owner_id: BxOptionalId = Field(None, alias="OWNER_ID")


class Lead(_Entity):
    id: BxId = Field(alias="ID")
    assigned_by_id: BxId = Field(alias="ASSIGNED_BY_ID")
    date_create: BxOptionalTime = Field(None, alias="DATE_CREATE")
    date_modify: BxOptionalTime = Field(None, alias="DATE_MODIFY")


class Deal(_Entity):
    id: BxId = Field(alias="ID")
    assigned_by_id: BxId = Field(alias="ASSIGNED_BY_ID")
    stage_id: BxOptionalText = Field(None, alias="STAGE_ID")
    stage_semantic_id: BxOptionalText = Field(None, alias="STAGE_SEMANTIC_ID")
    closed: BxFlag = Field(alias="CLOSED")
    opportunity: str | int | float | None = Field(None, alias="OPPORTUNITY")
    currency_id: BxOptionalText = Field(None, alias="CURRENCY_ID")
    moved_time: BxOptionalTime = Field(None, alias="MOVED_TIME")
    closedate: BxOptionalTime = Field(None, alias="CLOSEDATE")
    date_modify: BxOptionalTime = Field(None, alias="DATE_MODIFY")


class Bitrix24CrmRestParser(Bitrix24Framing, JsonRecordParser[Envelope]):
    format_name: ClassVar[str] = "bitrix24-crm-rest"
    family: ClassVar[SourceFamily] = SourceFamily.CRM
    model = Envelope

    def __init__(
        self,
        max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES,
        *,
        office_location_keywords: Iterable[str] = OFFICE_LOCATION_KEYWORDS,
        remote_location_keywords: Iterable[str] = REMOTE_LOCATION_KEYWORDS,
    ) -> None:
        super().__init__(max_record_bytes)
        self._office = _keywords(office_location_keywords)
        self._remote = _keywords(remote_location_keywords)

    def parse_record(self, record: bytes, source: SourceRef) -> list[ActivityEvent]:
        try:
            envelope = load_object(Envelope, record)
        except RecordError as error:
            bare = _bare_result(record) if error.reason == "invalid" else None
            if bare is None:
                raise ids_only(record, IDS_ONLY_EVENTS) or error from None
            envelope = bare
        return self.parse_object(envelope, source)

    def parse_object(self, envelope: Envelope, source: SourceRef) -> list[ActivityEvent]:
        known = EVENTS.get(envelope.event.upper())
        if known is None:
            raise RecordError("invalid", f"event {envelope.event[:64]!r} is not a CRM event")
        entity, created = known
        if entity != envelope.entity:
            raise RecordError("invalid", f"{envelope.event} does not report a {envelope.entity}")
        if entity == "activity":
            return self._activity(_entity(Activity, envelope.result), created, source)
        if entity == "lead":
            return _lead(_entity(Lead, envelope.result), created, source)
        return _deal(_entity(Deal, envelope.result), source)

    def meeting_location(self, location: str | None) -> str:
        """``remote`` if the place names a video service, ``office`` if it is empty or names
        the office, otherwise ``visit`` (the manager went to the client)."""
        if location is None or not location.strip():
            return "office"
        text = location.casefold()
        if any(keyword in text for keyword in self._remote):
            return "remote"
        if any(keyword in text for keyword in self._office):
            return "office"
        return "visit"

    def _activity(self, act: Activity, created: bool, source: SourceRef) -> list[ActivityEvent]:
        what = (
            _ACTIVITY_TYPES.get(act.type_id or "")
            or _ACTIVITY_PROVIDERS.get((act.provider_id or "").upper())
            or _ACTIVITY_PROVIDERS.get((act.provider_type_id or "").upper())
        )
        common = {
            "actor": Actor(SourceFamily.CRM, act.responsible_id),
            "source": source,
            "external_ref": _owner_ref(act.owner_type_id, act.owner_id),
        }
        if what == "meeting":
            if not act.completed:
                return NoActivity("a meeting not held yet (COMPLETED N)")
            return [
                _event(
                    ("activity", act.id, "held"),
                    ActivityKind.MEETING,
                    "held",
                    _required(act.start_time, "START_TIME"),
                    ended_at=optional_time(act.end_time, "END_TIME"),
                    location=self.meeting_location(act.location),
                    **common,
                )
            ]
        if what == "call":
            # A CRM copy of a call would double the one telephony reports.
            return NoActivity("a call logged in the CRM: calls are counted from telephony")
        if what != "task":
            return NoActivity(f"an activity of a kind not counted ({what or 'unknown type'})")
        wanted = [("created", act.created, "CREATED")] if created else []
        if act.completed:
            wanted.append(("completed", act.last_updated, "LAST_UPDATED"))
        if not wanted:
            return NoActivity("a task update that neither creates nor completes it")
        due_at = optional_deadline(act.deadline, "DEADLINE")
        # A task is identified by itself, not by its deal: two open tasks on one deal are two
        # tasks (an overdue-task alert is per task, and one's completion must not close both).
        task = {**common, "external_ref": f"activity:{act.id}"}
        return [
            _event(
                ("activity", act.id, action),
                ActivityKind.TASK,
                action,
                _required(at, field),
                due_at=due_at,
                **task,
            )
            for action, at, field in wanted
        ]


def _bare_result(record: bytes) -> Envelope | None:
    """A REST result without the envelope, wrapped as its update event would have it, or None
    for a record that is no lead, deal or activity."""
    try:
        result = json.loads(record)
    except (ValueError, RecursionError):
        return None
    if not isinstance(result, dict) or "event" in result:
        return None
    for entity, fields in _ENTITY_FIELDS:
        if fields <= result.keys():
            event = f"ONCRM{entity.upper()}UPDATE"
            return Envelope(event=event, ts=0, entity=entity, result=result)
    return None


def _lead(lead: Lead, created: bool, source: SourceRef) -> list[ActivityEvent]:
    common: dict[str, Any] = {
        "actor": Actor(SourceFamily.CRM, lead.assigned_by_id),
        "source": source,
        "external_ref": f"lead:{lead.id}",
    }
    if created:
        at = _required(lead.date_create, "DATE_CREATE")
        return [_event(("lead", lead.id, "created"), ActivityKind.LEAD, "created", at, **common)]
    at = _required(lead.date_modify, "DATE_MODIFY")
    # One event per distinct modification: DATE_MODIFY (as text) tells them apart.
    parts = ("lead", lead.id, "worked", lead.date_modify)
    return [_event(parts, ActivityKind.LEAD, "worked", at, **common)]


def _deal(deal: Deal, source: SourceRef) -> list[ActivityEvent]:
    stage = (deal.stage_id or "").upper()
    semantic = (deal.stage_semantic_id or "").upper()
    if not deal.closed:
        why = f"a deal still open (stage {redact(stage)}): only won or lost deals count"
        return NoActivity(why)
    if stage == "WON" or stage.endswith(":WON") or semantic == "S":
        action = "won"
    elif stage == "LOSE" or stage.endswith(":LOSE") or semantic == "F":
        action = "lost"
    else:
        return NoActivity(f"a closed deal neither won nor lost (stage {redact(stage)})")
    modified = optional_time(deal.date_modify, "DATE_MODIFY")
    at = optional_time(deal.moved_time, "MOVED_TIME")
    if at is None:
        # CLOSEDATE is a date (midnight); a planned date still in the future is not when the
        # deal closed.
        closedate = optional_time(deal.closedate, "CLOSEDATE")
        usable = closedate is not None and (modified is None or closedate <= modified)
        at = closedate if usable else modified
    if at is None:
        raise RecordError("invalid", "closed deal without MOVED_TIME, CLOSEDATE or DATE_MODIFY")

    # The amount is carried only for a win (the money made), and only with its currency.
    amount = currency = None
    opportunity = deal.opportunity
    if action == "won" and opportunity is not None and opportunity != "" and deal.currency_id:
        amount = money(opportunity)
        currency = deal.currency_id.upper()
    return [
        _event(
            ("deal", deal.id, action),
            ActivityKind.DEAL,
            action,
            at,
            actor=Actor(SourceFamily.CRM, deal.assigned_by_id),
            source=source,
            external_ref=f"deal:{deal.id}",
            amount=amount,
            currency=currency,
        )
    ]


def _entity(model: type[_EntityT], result: dict[str, Any]) -> _EntityT:
    try:
        return model.model_validate(result)
    except ValidationError as exc:
        raise RecordError("invalid", "result." + summarize(exc)) from None


def _required(value: str | None, field: str) -> datetime:
    at = optional_time(value, field)
    if at is None:
        raise RecordError("invalid", f"{field} is missing")
    return at


def _event(
    id_parts: tuple[str | None, ...],
    kind: ActivityKind,
    action: str,
    occurred_at: datetime,
    **fields: Any,
) -> ActivityEvent:
    try:
        return ActivityEvent.checked(
            event_id=derive_event_id(Bitrix24CrmRestParser.format_name, *id_parts),
            kind=kind,
            action=action,
            occurred_at=occurred_at,
            **fields,
        )
    except ValidationError as exc:
        raise RecordError("invalid", summarize(exc)) from None


def _owner_ref(owner_type_id: str | None, owner_id: str | None) -> str | None:
    if owner_type_id is None or owner_id is None:
        return None
    return f"{_OWNER_TYPES.get(owner_type_id, 'crm' + owner_type_id)}:{owner_id}"


def _keywords(keywords: Iterable[str]) -> tuple[str, ...]:
    folded = tuple(keyword.casefold() for keyword in keywords)
    if any(not keyword.strip() for keyword in folded):
        raise ValueError("location keywords must not be blank: they would match every place")
    return folded
