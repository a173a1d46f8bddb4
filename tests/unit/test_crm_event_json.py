"""Golden tests for CRM event JSON records, with the expected events worked out by hand."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from processors.parsers import CrmEventJsonParser
from processors.parsers.crm_event_json import EVENT_TYPES
from salespulse.models import ActivityEvent, ActivityKind, Actor, SourceFamily, derive_event_id
from tests.unit.parsing_helpers import changed_record, record_error, source_of, utc

SOURCE = source_of(CrmEventJsonParser, 2, 1234)

# From docs/formats.md: 125 000 RUB received on deal 5531 at 15:40 Moscow time.
PAYMENT = (
    b'{"id":"evt-90817","type":"payment.received","user_id":"1101",'
    b'"occurred_at":"2026-11-26T15:40:00+03:00","entity":"deal:5531","amount":"125000.00",'
    b'"currency":"RUB"}'
)


def record(**changes: Any) -> bytes:
    """The payment example with fields replaced; a value of ``...`` removes the field."""
    return changed_record(PAYMENT, **changes)


def parse(raw: bytes) -> ActivityEvent:
    [event] = CrmEventJsonParser().parse(raw, SOURCE)
    return event


def reason(raw: bytes) -> str:
    return record_error(CrmEventJsonParser().parse, raw, SOURCE).reason


def test_class_attributes() -> None:
    assert CrmEventJsonParser.format_name == "crm-event-json"
    assert CrmEventJsonParser.family is SourceFamily.CRM


def test_payment_received() -> None:
    assert parse(PAYMENT) == ActivityEvent(
        event_id=derive_event_id("crm-event-json", "evt-90817"),
        kind=ActivityKind.PAYMENT,
        action="received",
        occurred_at=utc("2026-11-26 12:40:00"),
        actor=Actor(SourceFamily.CRM, "1101"),
        source=SOURCE,
        amount=Decimal("125000.00"),
        currency="RUB",
        external_ref="deal:5531",
    )


@pytest.mark.parametrize(
    ("amount", "expected"),
    [
        ("125000.00", Decimal("125000.00")),
        ("125000", Decimal("125000.00")),
        ("0.5", Decimal("0.50")),
        ("1.500", Decimal("1.50")),  # trailing zeros are still exact cents
        (125000, Decimal("125000.00")),
        (99.99, Decimal("99.99")),
        (1250.5, Decimal("1250.50")),
    ],
)
def test_amount_forms(amount: str | int | float, expected: Decimal) -> None:
    event = parse(record(amount=amount))
    assert event.amount == expected
    assert event.amount is not None
    assert event.amount.as_tuple().exponent == -2


def test_currency_is_uppercased() -> None:
    assert parse(record(currency="rub")).currency == "RUB"


def test_offer_sent_without_money() -> None:
    event = parse(
        b'{"id":"evt-1","type":"offer.sent","user_id":"1101",'
        b'"occurred_at":"2026-11-26T09:05:00Z","entity":"offer:77"}'
    )
    assert (event.kind, event.action) == (ActivityKind.OFFER, "sent")
    assert event.amount is None
    assert event.external_ref == "offer:77"
    assert event.occurred_at == utc("2026-11-26 09:05:00")


def test_task_with_due_time() -> None:
    event = parse(
        b'{"id":"t-5","type":"task.created","user_id":"1101",'
        b'"occurred_at":"2026-11-26T09:00:00+03:00","due_at":"2026-11-27T18:00:00+03:00"}'
    )
    assert (event.kind, event.action) == (ActivityKind.TASK, "created")
    assert event.due_at == utc("2026-11-27 15:00:00")


def test_visit_with_location_and_end() -> None:
    event = parse(
        b'{"id":"v-9","type":"visit.visit_start","user_id":"1102",'
        b'"occurred_at":"2026-11-26T11:00:00+03:00","ended_at":"2026-11-26T12:30:00+03:00",'
        b'"location":"visit","entity":"client:42"}'
    )
    assert (event.kind, event.action) == (ActivityKind.VISIT, "visit_start")
    assert event.location == "visit"
    assert event.ended_at == utc("2026-11-26 09:30:00")


def test_workday_start() -> None:
    event = parse(
        b'{"id":"w-1","type":"workday.start","user_id":"1101",'
        b'"occurred_at":"2026-11-26T08:58:12+03:00","location":"office"}'
    )
    assert (event.kind, event.action) == (ActivityKind.WORKDAY, "start")
    assert event.location == "office"


def test_event_types_are_exactly_the_crm_kinds() -> None:
    assert set(EVENT_TYPES) == {
        "lead.created",
        "lead.worked",
        "offer.sent",
        "offer.prepared",
        "meeting.held",
        "meeting.presentation",
        "deal.won",
        "deal.lost",
        "deal.contract_signed",
        "payment.received",
        "task.created",
        "task.completed",
        "workday.start",
        "workday.pause",
        "workday.resume",
        "workday.stop",
        "visit.visit_start",
        "visit.visit_end",
        "visit.trip_start",
        "visit.trip_end",
    }


@pytest.mark.parametrize("event_type", sorted(EVENT_TYPES))
def test_every_type_parses(event_type: str) -> None:
    event = parse(record(type=event_type))
    assert f"{event.kind.value}.{event.action}" == event_type


def test_same_event_twice_has_the_same_event_id() -> None:
    parser = CrmEventJsonParser()
    [first] = parser.parse(PAYMENT, SOURCE)
    [again] = parser.parse(PAYMENT, SOURCE._replace(partition=0, offset=5))
    assert first.event_id == again.event_id


def test_split_json_lines() -> None:
    assert CrmEventJsonParser().split(PAYMENT + b"\r\n" + PAYMENT) == [PAYMENT, PAYMENT]


# --- dead letters ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "event_type", ["payment.refunded", "call.leg", "chat_session.served", "payment", "PAYMENT."]
)
def test_unknown_type_is_invalid(event_type: str) -> None:
    assert reason(record(type=event_type)) == "invalid"


def test_payment_without_currency_is_invalid() -> None:
    assert reason(record(currency=...)) == "invalid"


def test_payment_without_amount_is_invalid() -> None:
    assert reason(record(amount=...)) == "invalid"


def test_amount_without_currency_is_invalid_for_any_type() -> None:
    assert reason(record(type="deal.won", currency=...)) == "invalid"


@pytest.mark.parametrize(
    "amount",
    [
        "10.005",
        "1e3",
        "NaN",
        "Infinity",
        " 10",
        "1_000",
        "",
        "-10.00",
        0.1 + 0.2,
        1e300,
        True,
        [10],
        "9" * 40,
    ],
)
def test_bad_amount_is_invalid(amount: Any) -> None:
    assert reason(record(amount=amount)) == "invalid"


@pytest.mark.parametrize("currency", ["RU", "RUBL", "R1B", ""])
def test_bad_currency_is_invalid(currency: str) -> None:
    assert reason(record(currency=currency)) == "invalid"


@pytest.mark.parametrize(
    "changes",
    [
        {"id": ...},
        {"id": ""},
        {"id": 90817},
        {"type": ...},
        {"user_id": ...},
        {"user_id": 1101},
        {"occurred_at": ...},
        {"entity": "d" * 300},
    ],
)
def test_schema_violations_are_invalid(changes: dict[str, Any]) -> None:
    assert reason(record(**changes)) == "invalid"


def test_ended_before_occurred_is_invalid() -> None:
    assert reason(record(type="visit.trip_start", ended_at="2026-11-26T15:39:59+03:00")) == (
        "invalid"
    )


def test_naive_time_is_bad_time() -> None:
    assert reason(record(occurred_at="2026-11-26T15:40:00")) == "bad_time"


@pytest.mark.parametrize("field", ["occurred_at", "due_at", "ended_at"])
def test_garbage_time_is_bad_time(field: str) -> None:
    assert reason(record(**{field: "next Tuesday"})) == "bad_time"


def test_invalid_json_is_malformed() -> None:
    assert reason(b'{"id":"evt-1",') == "malformed"


def test_array_is_malformed() -> None:
    assert reason(b"[" + PAYMENT + b"]") == "malformed"


def test_scalar_is_malformed() -> None:
    assert reason(b'"payment.received"') == "malformed"


def test_non_utf8_is_decode_error() -> None:
    raw = record(entity="DEAL").replace(b"DEAL", "сделка".encode("cp1251"))
    assert reason(raw) == "decode_error"


def test_too_large() -> None:
    error = record_error(CrmEventJsonParser(max_record_bytes=32).parse, PAYMENT, SOURCE)
    assert error.reason == "too_large"


def test_unknown_type_detail_masks_numbers() -> None:
    error = record_error(CrmEventJsonParser().parse, record(type="call.79161234567"), SOURCE)
    assert "79161234567" not in error.detail
