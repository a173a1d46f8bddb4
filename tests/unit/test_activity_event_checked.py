"""``ActivityEvent.checked``: the same event as validation gives, or validation's own error."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from pydantic import ValidationError

from salespulse import models
from salespulse.models import (
    ActivityEvent,
    ActivityKind,
    Actor,
    Direction,
    SourceFamily,
    SourceRef,
    derive_event_id,
)

START = datetime(2026, 11, 26, 9, 15, 2, tzinfo=UTC)
SOURCE = SourceRef("asterisk-cdr-csv", "salespulse.raw.pbx", 0, 42, 3)

CALL: dict[str, Any] = {
    "event_id": "a" * 32,
    "kind": ActivityKind.CALL,
    "action": "leg",
    "occurred_at": START,
    "ended_at": START + timedelta(seconds=158),
    "actor": Actor(SourceFamily.PBX, "101"),
    "source": SOURCE,
    "direction": Direction.INCOMING,
    "answered": True,
    "duration_seconds": 158,
    "talk_seconds": 151,
    "counterpart": "79161234567",
    "call_id": "1764148502.18",
}
PAYMENT: dict[str, Any] = {
    "event_id": "b" * 32,
    "kind": ActivityKind.PAYMENT,
    "action": "received",
    "occurred_at": START,
    "actor": Actor(SourceFamily.CRM, "u-1"),
    "source": SOURCE,
    "amount": Decimal("125000.50"),
    "currency": "RUB",
    "external_ref": "deal:7",
}
CHAT: dict[str, Any] = {
    "event_id": "c" * 32,
    "kind": ActivityKind.CHAT_SESSION,
    "action": "served",
    "occurred_at": START,
    "ended_at": START + timedelta(minutes=9),
    "actor": Actor(SourceFamily.CHAT, "op-7"),
    "source": SOURCE,
    "first_response_seconds": 56,
    "channel": "telegram",
    "counterpart": "c-330764",
}
TASK: dict[str, Any] = {
    "event_id": "d" * 32,
    "kind": ActivityKind.TASK,
    "action": "created",
    "occurred_at": START,
    "actor": Actor(SourceFamily.CRM, "u-1"),
    "source": SOURCE,
    "due_at": START + timedelta(days=2),
    "location": "office",
}


def changed(fields: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """A copy of ``fields`` with some replaced; a value of ``...`` removes the field."""
    result = dict(fields)
    for name, value in changes.items():
        if value is ...:
            result.pop(name)
        else:
            result[name] = value
    return result


# What parsers produce: stored as given, without a validation pass.
PLAIN = [
    CALL,
    PAYMENT,
    CHAT,
    TASK,
    changed(CALL, duration_seconds=7 * 24 * 3600, talk_seconds=7 * 24 * 3600),
    changed(CALL, talk_seconds=0, answered=False, counterpart=None, call_id=None),
    changed(CALL, ended_at=START),
    changed(CALL, counterpart="x" * 256, call_id="y" * 128),
    changed(CHAT, first_response_seconds=30 * 24 * 3600, channel="z" * 64),
    changed(PAYMENT, amount=Decimal("0.00")),
    changed(PAYMENT, amount=Decimal(7)),
    changed(TASK, event_id="e" * 8),
    changed(TASK, event_id="e" * 64),
    changed(TASK, currency="EUR"),
]
# Values validation converts (or might): the result must be the converted one.
CONVERTED = [
    changed(PAYMENT, amount=Decimal("9999999999999999.99")),  # 18 digits: validation decides
    changed(
        CALL, occurred_at=datetime(2026, 11, 26, 12, 15, 2, tzinfo=timezone(timedelta(hours=3)))
    ),
    changed(CALL, ended_at=datetime(2026, 11, 26, 12, 17, 40, tzinfo=timezone(timedelta(hours=3)))),
    changed(TASK, due_at=datetime(2026, 11, 28, tzinfo=timezone(timedelta(hours=10)))),
    changed(CALL, actor=Actor("pbx", "101")),  # type: ignore[arg-type]
    changed(CALL, actor=("pbx", "101")),
    changed(CALL, direction="outgoing"),
    changed(CALL, source=("asterisk-cdr-csv", "salespulse.raw.pbx", 0, 42, 3)),
    changed(TASK, kind="task"),
    changed(PAYMENT, amount=Decimal("1.5000")),
    changed(PAYMENT, amount="10.50"),
    changed(CALL, duration_seconds=True, talk_seconds=False),
]
VALID = PLAIN + CONVERTED

INVALID = [
    changed(CALL, direction=...),
    changed(CALL, answered=None),
    changed(CALL, duration_seconds=7 * 24 * 3600 + 1),
    changed(CALL, duration_seconds=-1),
    changed(CALL, talk_seconds=159),
    changed(CALL, ended_at=START - timedelta(seconds=1)),
    changed(CALL, action="held"),
    changed(CALL, counterpart="x" * 257),
    changed(CALL, call_id="y" * 129),
    changed(CALL, occurred_at=datetime(2026, 11, 26, 9, 15, 2)),
    changed(CALL, event_id="short"),
    changed(CALL, event_id="e" * 65),
    changed(CALL, unknown_field=1),
    changed(CALL, source=...),
    changed(CHAT, ended_at=None),
    changed(CHAT, first_response_seconds=30 * 24 * 3600 + 1),
    changed(CHAT, channel="z" * 65),
    changed(PAYMENT, amount=None),
    changed(PAYMENT, currency="rub"),
    changed(PAYMENT, currency="RUB\n"),
    changed(PAYMENT, currency="RUBL"),
    changed(PAYMENT, amount=Decimal("-1")),
    changed(PAYMENT, amount=Decimal("0.001")),
    changed(PAYMENT, amount=Decimal("NaN")),
    changed(PAYMENT, amount=Decimal("12345678901234567.89")),
    changed(TASK, location="l" * 257),
    changed(TASK, external_ref="r" * 257),
    changed(TASK, due_at=datetime(2026, 11, 28)),
]


def state(event: ActivityEvent) -> tuple[object, ...]:
    """Everything that makes up a model instance, with the type of every field value."""
    values = event.__dict__
    return (
        list(values.items()),
        [type(value) for value in values.values()],
        [getattr(value, "tzinfo", None) for value in values.values()],
        event.model_fields_set,
        event.__pydantic_extra__,
        event.__pydantic_private__,
    )


@pytest.mark.parametrize("fields", VALID)
def test_a_valid_event_is_the_one_validation_builds(fields: dict[str, Any]) -> None:
    fast = ActivityEvent.checked(**fields)
    assert state(fast) == state(ActivityEvent(**fields))
    assert fast == ActivityEvent(**fields)
    assert hash(fast) == hash(ActivityEvent(**fields))
    assert ActivityEvent.model_validate(fast.model_dump()) == fast


@pytest.mark.parametrize("fields", INVALID)
def test_an_invalid_event_raises_validations_own_error(fields: dict[str, Any]) -> None:
    with pytest.raises(ValidationError) as expected:
        ActivityEvent(**fields)
    with pytest.raises(ValidationError) as raised:
        ActivityEvent.checked(**fields)
    assert raised.value.errors(include_context=False) == expected.value.errors(
        include_context=False
    )
    assert str(raised.value) == str(expected.value)


@pytest.mark.parametrize(
    ("fields", "plain"), [(f, True) for f in PLAIN] + [(f, False) for f in CONVERTED + INVALID]
)
def test_only_values_stored_as_given_skip_validation(fields: dict[str, Any], plain: bool) -> None:
    assert models._trusted({**models._UNSET_FIELDS, **fields}) is plain


def test_a_checked_event_is_frozen() -> None:
    event = ActivityEvent.checked(**CALL)
    with pytest.raises(ValidationError):
        event.action = "other"  # type: ignore[misc]


@pytest.mark.parametrize(
    "parts",
    [
        ("asterisk-cdr-csv", "SIP/101-1", "SIP/102-2", "2026-11-26 09:15:02", "caller"),
        ("crm-event-json", "e-1"),
        ("bitrix24", None, 7, "u"),
        ("x", "", None),
    ],
)
def test_event_ids_join_every_part_as_text(parts: tuple[str | int | None, ...]) -> None:
    import hashlib

    joined = "\x1f".join("" if part is None else str(part) for part in parts)
    assert derive_event_id(*parts) == hashlib.sha256(joined.encode()).hexdigest()[:32]
