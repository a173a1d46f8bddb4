"""Bitrix24 CRM REST envelopes: golden cases (tests/samples/bitrix24/crm_expected.json built on
the recorded REST answers in tests/samples/bitrix24/rest), mapping rules, dead letters."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from processors.parsers.bitrix24_crm_rest import Bitrix24CrmRestParser
from salespulse.models import ActivityEvent, ActivityKind, Actor, SourceFamily
from salespulse.models import derive_event_id as event_id
from tests.unit.parsing_helpers import changed, compact, json_sample, record_error, source_of

FORMAT = "bitrix24-crm-rest"
SOURCE = source_of(Bitrix24CrmRestParser, 2, 40)
PARSER = Bitrix24CrmRestParser()
CASES: list[dict[str, Any]] = json_sample("bitrix24/crm_expected.json")


def rest(path: str) -> dict[str, Any]:
    result: dict[str, Any] = json_sample(f"bitrix24/rest/{path}")["result"]
    return result


def envelope(event: str, result: dict[str, Any], **changes: Any) -> bytes:
    entity = {"LEAD": "lead", "DEAL": "deal", "ACTI": "activity"}[event[5:9]]
    fields = changed(result, **changes)
    return compact({"event": event, "ts": 1764160812, "entity": entity, "result": fields})


def parse(raw: bytes, parser: Bitrix24CrmRestParser = PARSER) -> list[ActivityEvent]:
    return parser.parse(raw, SOURCE)


def reason(raw: bytes) -> str:
    return record_error(PARSER.parse, raw, SOURCE).reason


WON = rest("crm.deal.get/5531.json")
LOST = rest("crm.deal.get/5532.json")
LEAD = rest("crm.lead.get/812.json")
MEETING = rest("crm.activity.get/20417.json")
TODO = rest("crm.activity.get/20418.json")
TASK_DONE = rest("crm.activity.get/20419.json")


@pytest.mark.parametrize("case", CASES, ids=lambda case: f"{case['event']}-{case['rest']}")
def test_golden_cases(case: dict[str, Any]) -> None:
    raw = compact({**{k: case[k] for k in ("event", "ts", "entity")}, "result": rest(case["rest"])})
    events = parse(raw)
    assert all(event.source == SOURCE for event in events)
    summaries = [e.model_dump(mode="json", exclude_none=True, exclude={"source"}) for e in events]
    assert summaries == case["events"]


# --- deals ----------------------------------------------------------------------------------


def test_won_deal_in_detail() -> None:
    [event] = parse(envelope("ONCRMDEALUPDATE", WON))
    assert event.event_id == event_id(FORMAT, "deal", "5531", "won")
    assert (event.kind, event.action) == (ActivityKind.DEAL, "won")
    assert event.actor == Actor(SourceFamily.CRM, "1101")
    assert event.occurred_at.isoformat() == "2026-11-26T12:40:12+00:00"  # MOVED_TIME
    assert (event.amount, event.currency) == (Decimal("125000.00"), "RUB")


def test_won_deal_redelivered_after_later_edits_counts_once() -> None:
    later = envelope("ONCRMDEALUPDATE", WON, DATE_MODIFY="2026-11-27T09:00:00+03:00")
    assert parse(later)[0].event_id == parse(envelope("ONCRMDEALADD", WON))[0].event_id


@pytest.mark.parametrize(
    ("stage", "semantic", "closed", "action"),
    [
        ("WON", "S", "Y", "won"),
        ("C3:WON", ..., "Y", "won"),
        ("C3:PAID", "S", "Y", "won"),
        ("LOSE", "F", "Y", "lost"),
        ("C3:LOSE", ..., "Y", "lost"),
        ("C3:APOLOGY", "F", "Y", "lost"),
        ("C1:WON", "S", "N", None),
        ("C1:NEGOTIATION", "P", "N", None),
        ("C1:PREPARATION", "P", "Y", None),
    ],
)
def test_deal_stages(stage: str, semantic: object, closed: str, action: str | None) -> None:
    raw = envelope(
        "ONCRMDEALUPDATE", WON, STAGE_ID=stage, STAGE_SEMANTIC_ID=semantic, CLOSED=closed
    )
    assert [event.action for event in parse(raw)] == ([action] if action else [])


def test_lost_deal_has_no_amount_and_falls_back_to_closedate() -> None:
    [event] = parse(envelope("ONCRMDEALUPDATE", LOST))
    assert event.amount is None
    assert event.currency is None
    assert event.occurred_at.isoformat() == "2026-11-25T21:00:00+00:00"


def test_future_closedate_falls_back_to_date_modify() -> None:
    raw = envelope("ONCRMDEALUPDATE", LOST, CLOSEDATE="2026-12-31T00:00:00+03:00")
    assert parse(raw)[0].occurred_at.isoformat() == "2026-11-26T09:05:00+00:00"


def test_deal_without_any_closing_time_is_invalid() -> None:
    raw = envelope("ONCRMDEALUPDATE", WON, MOVED_TIME=..., CLOSEDATE="", DATE_MODIFY=...)
    assert reason(raw) == "invalid"


def test_won_amount_needs_a_currency_and_exact_cents() -> None:
    assert parse(envelope("ONCRMDEALUPDATE", WON, CURRENCY_ID=""))[0].amount is None
    assert parse(envelope("ONCRMDEALUPDATE", WON, OPPORTUNITY=""))[0].amount is None
    assert parse(envelope("ONCRMDEALUPDATE", WON, OPPORTUNITY=99.5))[0].amount == Decimal("99.50")
    assert reason(envelope("ONCRMDEALUPDATE", WON, OPPORTUNITY="1.005")) == "invalid"
    assert reason(envelope("ONCRMDEALUPDATE", WON, OPPORTUNITY="-5")) == "invalid"
    assert reason(envelope("ONCRMDEALUPDATE", WON, CURRENCY_ID="RUBLE")) == "invalid"


# --- leads ----------------------------------------------------------------------------------


def test_lead_created_and_worked() -> None:
    [created] = parse(envelope("ONCRMLEADADD", LEAD))
    [worked] = parse(envelope("ONCRMLEADUPDATE", LEAD))
    assert (created.action, worked.action) == ("created", "worked")
    assert created.event_id == event_id(FORMAT, "lead", "812", "created")
    assert worked.event_id == event_id(FORMAT, "lead", "812", "worked", "2026-11-26T11:30:00+03:00")
    assert created.occurred_at.isoformat() == "2026-11-26T06:12:44+00:00"
    assert worked.occurred_at.isoformat() == "2026-11-26T08:30:00+00:00"


def test_each_distinct_lead_update_counts_once() -> None:
    again = parse(envelope("ONCRMLEADUPDATE", LEAD))[0].event_id
    later = envelope("ONCRMLEADUPDATE", LEAD, DATE_MODIFY="2026-11-26T11:45:00+03:00")
    assert again == parse(envelope("ONCRMLEADUPDATE", LEAD))[0].event_id
    assert again != parse(later)[0].event_id


# --- activities -----------------------------------------------------------------------------


def test_meeting_held_in_detail() -> None:
    [event] = parse(envelope("ONCRMACTIVITYUPDATE", MEETING))
    assert event.event_id == event_id(FORMAT, "activity", "20417", "held")
    assert (event.kind, event.action, event.location) == (ActivityKind.MEETING, "held", "visit")
    assert event.ended_at is not None
    assert event.ended_at.isoformat() == "2026-11-26T12:00:00+00:00"
    assert event.external_ref == "deal:5531"
    assert "Презентация" not in event.model_dump_json()  # SUBJECT is never stored


def test_planned_meeting_is_not_counted() -> None:
    assert parse(envelope("ONCRMACTIVITYADD", MEETING, COMPLETED="N")) == []


@pytest.mark.parametrize(
    ("place", "location"),
    [
        ("", "office"),
        ("   ", "office"),
        ("Переговорная №2", "office"),
        ("Наш офис, 3 этаж", "office"),
        ("Zoom", "remote"),
        ("https://telemost.yandex.ru/j/123", "remote"),
        ("Офис клиента, ул. Ленина, 12", "visit"),
    ],
)
def test_meeting_location_rule(place: str, location: str) -> None:
    [event] = parse(envelope("ONCRMACTIVITYUPDATE", MEETING, LOCATION=place))
    assert event.location == location


def test_office_keywords_are_configurable() -> None:
    parser = Bitrix24CrmRestParser(
        office_location_keywords=["Тверская, 7"], remote_location_keywords=[]
    )
    assert parser.meeting_location("Москва, Тверская, 7") == "office"
    assert parser.meeting_location("Zoom") == "visit"
    with pytest.raises(ValueError, match="blank"):
        Bitrix24CrmRestParser(office_location_keywords=[" "])


def test_task_created_then_completed() -> None:
    [created] = parse(envelope("ONCRMACTIVITYADD", TODO))
    assert parse(envelope("ONCRMACTIVITYUPDATE", TODO)) == []
    [completed] = parse(envelope("ONCRMACTIVITYUPDATE", TODO, COMPLETED="Y"))
    assert (created.action, completed.action) == ("created", "completed")
    assert created.due_at is not None
    assert created.due_at.isoformat() == "2026-11-27T15:00:00+00:00"
    assert completed.event_id == event_id(FORMAT, "activity", "20418", "completed")


def test_task_added_already_completed_gives_both() -> None:
    events = parse(envelope("ONCRMACTIVITYADD", TASK_DONE))
    assert [event.action for event in events] == ["created", "completed"]


@pytest.mark.parametrize(
    ("type_id", "provider", "provider_type", "kind"),
    [
        ("3", "TASKS", "TASK", "task"),
        ("6", "CRM_TODO", "TODO", "task"),
        ("6", "UNKNOWN_PROVIDER", "TODO", "task"),
        ("1", "CRM_MEETING", "MEETING", "meeting"),
        ("2", "VOXIMPLANT_CALL", "CALL", None),
        ("4", "CRM_EMAIL", "EMAIL", None),
        ("6", "IMOPENLINES_SESSION", "IMOPENLINES_SESSION", None),
        ("6", "CRM_SMS", "SMS", None),
    ],
)
def test_activity_types(type_id: str, provider: str, provider_type: str, kind: str | None) -> None:
    raw = envelope(
        "ONCRMACTIVITYADD",
        TASK_DONE,
        TYPE_ID=type_id,
        PROVIDER_ID=provider,
        PROVIDER_TYPE_ID=provider_type,
    )
    assert {event.kind.value for event in parse(raw)} == ({kind} if kind else set())


def test_integer_ids_are_accepted() -> None:
    [event] = parse(envelope("ONCRMACTIVITYUPDATE", MEETING, ID=20417, RESPONSIBLE_ID=1101))
    assert event.event_id == event_id(FORMAT, "activity", "20417", "held")


# --- dead letters ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        compact({"event": "ONCRMDEALUPDATE", "ts": 1, "entity": "deal"}),
        compact({"event": "ONCRMDEALUPDATE", "ts": "1", "entity": "deal", "result": WON}),
        compact({"event": "ONCRMDEALUPDATE", "ts": 1, "entity": "contact", "result": WON}),
        compact({"event": "ONCRMDEALUPDATE", "ts": 1, "entity": "lead", "result": LEAD}),
        compact({"event": "ONCRMCONTACTADD", "ts": 1, "entity": "deal", "result": WON}),
        compact({"event": "ONCRMDEALUPDATE", "ts": 1, "entity": "deal", "result": [WON]}),
        envelope("ONCRMDEALUPDATE", WON, ASSIGNED_BY_ID=...),
        envelope("ONCRMDEALUPDATE", WON, CLOSED=...),
        envelope("ONCRMDEALUPDATE", WON, ID="D-5531"),
        envelope("ONCRMLEADADD", LEAD, DATE_CREATE=""),
        envelope("ONCRMLEADUPDATE", LEAD, DATE_MODIFY=...),
        envelope("ONCRMACTIVITYUPDATE", MEETING, START_TIME=""),
        envelope("ONCRMACTIVITYUPDATE", MEETING, END_TIME="2026-11-26T13:00:00+03:00"),
        envelope("ONCRMACTIVITYUPDATE", MEETING, COMPLETED="yes"),
        envelope("ONCRMACTIVITYUPDATE", TASK_DONE, LAST_UPDATED=...),
    ],
)
def test_invalid(raw: bytes) -> None:
    assert reason(raw) == "invalid"


@pytest.mark.parametrize(
    "raw",
    [
        envelope("ONCRMDEALUPDATE", WON, MOVED_TIME="2026-11-26 15:40:12"),
        envelope("ONCRMLEADADD", LEAD, DATE_CREATE="26.11.2026"),
        envelope("ONCRMACTIVITYADD", TODO, DEADLINE="2026-11-27T18:00:00"),
    ],
)
def test_bad_time(raw: bytes) -> None:
    assert reason(raw) == "bad_time"


def test_structure_errors() -> None:
    raw = envelope("ONCRMDEALUPDATE", WON)
    assert reason(raw[:-1]) == "malformed"
    assert reason(b"[" + raw + b"]") == "malformed"
    assert reason(raw.replace("Ромашка".encode(), "Ромашка".encode("cp1251"))) == "decode_error"
    too_large = record_error(Bitrix24CrmRestParser(max_record_bytes=512).parse, raw, SOURCE)
    assert too_large.reason == "too_large"


def test_event_name_case_is_ignored() -> None:
    assert parse(envelope("ONCRMDEALUPDATE", WON)) == parse(
        envelope("ONCRMDEALUPDATE", WON).replace(b"ONCRMDEALUPDATE", b"onCrmDealUpdate")
    )
