"""Generic CRM activity events, one JSON object per line (JSON Lines).

The CRM already speaks in activities ("offer.sent", "payment.received"), so one record is one
event; the work here is checking that the type is one we count and that money is exact.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import ClassVar

from pydantic import Field, ValidationError

from processors.parsers._common import (
    JsonRecordParser,
    RecordModel,
    optional_deadline,
    optional_time,
    parse_rfc3339,
    redact,
    summarize,
)
from processors.parsers.base import RecordError
from salespulse.models import (
    KIND_ACTIONS,
    ActivityEvent,
    ActivityKind,
    Actor,
    SourceFamily,
    SourceRef,
    derive_event_id,
)

# Calls and chat sessions come from their own systems; a CRM echo of them would double-count.
# A PBX channel is the PBX's to tell.
_CRM_KINDS = tuple(
    kind
    for kind in ActivityKind
    if kind not in (ActivityKind.CALL, ActivityKind.CHAT_SESSION, ActivityKind.CHANNEL)
)
EVENT_TYPES: dict[str, tuple[ActivityKind, str]] = {
    f"{kind.value}.{action}": (kind, action)
    for kind in _CRM_KINDS
    for action in sorted(KIND_ACTIONS[kind])
}

_CENT = Decimal("0.01")
# Plain decimal notation only: Decimal() alone would also take "1e3", "NaN", " 1 " and "1_000".
_DECIMAL_TEXT = re.compile(r"-?\d{1,30}(?:\.\d{1,30})?", re.ASCII)


class CrmEvent(RecordModel):
    """The record as the CRM sends it. Times stay strings so that a bad or naive time is a
    ``bad_time`` dead letter rather than a generic validation error."""

    id: str = Field(min_length=1, max_length=128)
    type: str = Field(min_length=1, max_length=64)
    user_id: str = Field(min_length=1, max_length=128)
    occurred_at: str
    entity: str | None = None
    amount: str | int | float | None = None
    currency: str | None = None
    location: str | None = None
    due_at: str | None = None
    ended_at: str | None = None


class CrmEventJsonParser(JsonRecordParser[CrmEvent]):
    format_name: ClassVar[str] = "crm-event-json"
    family: ClassVar[SourceFamily] = SourceFamily.CRM
    model = CrmEvent

    def parse_object(self, crm: CrmEvent, source: SourceRef) -> list[ActivityEvent]:
        kind_action = EVENT_TYPES.get(crm.type)
        if kind_action is None:
            raise RecordError("invalid", f"unknown type {redact(crm.type)}")
        kind, action = kind_action

        occurred_at = parse_rfc3339(crm.occurred_at, "occurred_at")
        due_at = optional_deadline(crm.due_at, "due_at")
        ended_at = optional_time(crm.ended_at, "ended_at")
        amount = None if crm.amount is None else money(crm.amount)
        if amount is not None and crm.currency is None:
            raise RecordError("invalid", "amount without currency")

        try:
            event = ActivityEvent.checked(
                event_id=derive_event_id(self.format_name, crm.id),
                kind=kind,
                action=action,
                occurred_at=occurred_at,
                ended_at=ended_at,
                due_at=due_at,
                actor=Actor(SourceFamily.CRM, crm.user_id),
                source=source,
                amount=amount,
                # ISO 4217 codes are upper case; some CRMs send "rub".
                currency=None if crm.currency is None else crm.currency.upper(),
                location=crm.location,
                external_ref=crm.entity,
            )
        except ValidationError as exc:
            raise RecordError("invalid", summarize(exc)) from None
        return [event]


def money(value: str | int | float) -> Decimal:
    """An exact amount with at most two decimal places.

    A JSON float goes through its shortest repr, so 125000.5 stays 125000.5 while a value that
    only approximates cents (0.1 + 0.2) shows its extra digits and is rejected.
    """
    text = value if isinstance(value, str) else str(value)
    if _DECIMAL_TEXT.fullmatch(text) is None and isinstance(value, str):
        raise RecordError("invalid", "amount is not a plain decimal number")
    try:
        amount = Decimal(text)
        if not amount.is_finite():
            raise RecordError("invalid", "amount is not a finite number")
        cents = amount.quantize(_CENT)
    except InvalidOperation:
        raise RecordError("invalid", "amount is out of range") from None
    if cents != amount:
        raise RecordError("invalid", "amount has more than two decimal places")
    return cents
