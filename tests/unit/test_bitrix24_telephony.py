"""Golden tests for Bitrix24 telephony: voximplant.statistic rows and call-end events.

The samples under tests/samples/bitrix24 are from one Moscow portal (UTC+3) on 26 November
2026: nine voximplant.statistic.get rows (every CALL_TYPE, answered, missed, busy, declined, and
a call no operator took), the OnVoximplantCallEnd POST for the second row's call, and the
telephony.externalcall.finish parameters of a call placed through a third-party PBX.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

import pytest

from processors.parsers.bitrix24_telephony import (
    Bitrix24CallEndEventParser,
    Bitrix24VoximplantStatisticParser,
)
from salespulse.models import (
    ActivityEvent,
    ActivityKind,
    Actor,
    Direction,
    SourceFamily,
    derive_event_id,
)
from tests.unit.parsing_helpers import (
    SAMPLES_DIR,
    changed_record,
    compact,
    json_sample,
    record_error,
    source_of,
    utc,
)

SAMPLES = SAMPLES_DIR / "bitrix24"
STATISTIC = (SAMPLES / "voximplant-statistic.jsonl").read_bytes()
FORM = (SAMPLES / "onvoximplantcallend.form").read_bytes()
FINISH = (SAMPLES / "externalcall-finish.json").read_bytes().strip()
SOURCE = source_of(Bitrix24VoximplantStatisticParser, 1, 5)
TOKEN = "51856fefc120afa4b628cc82d3935cce"
MEMBER = "a223c6b3710f85df22e9377d6c4f7553"


def rows() -> list[bytes]:
    return Bitrix24VoximplantStatisticParser().split(STATISTIC)


def row(index: int, **changes: Any) -> bytes:
    """A statistic row with fields replaced; ``...`` removes one."""
    return changed_record(rows()[index], **changes)


def statistic(record: bytes, **options: Any) -> list[ActivityEvent]:
    return calls(Bitrix24VoximplantStatisticParser(**options).parse(record, SOURCE))


def event(record: bytes, **options: Any) -> list[ActivityEvent]:
    return calls(Bitrix24CallEndEventParser(**options).parse(record, SOURCE))


def calls(events: list[ActivityEvent]) -> list[ActivityEvent]:
    """The call events of a parse, once checked that each call comes with its user's presence
    on it going down at its end (``test_a_call_ends_its_presence`` shows one in full)."""
    if not events:
        return events  # a NoActivity stays one
    found = [e for e in events if e.kind is ActivityKind.CALL]
    downs = [e for e in events if e.kind is ActivityKind.CHANNEL]
    ends = [c.occurred_at + timedelta(seconds=c.duration_seconds or 0) for c in found]
    assert [(e.action, e.external_ref, e.call_id, e.actor, e.occurred_at) for e in downs] == [
        ("down", c.call_id, c.call_id, c.actor, end) for c, end in zip(found, ends, strict=True)
    ]
    return found


def form(**data: str) -> bytes:
    """An OnVoximplantCallEnd body as Bitrix24 builds it (http_build_query)."""
    fields = {"event": "ONVOXIMPLANTCALLEND", "event_handler_id": "12"}
    fields |= {f"data[{key}]": value for key, value in data.items()}
    fields |= {"ts": "1795673866", "auth[domain]": "example.bitrix24.ru"}
    fields |= {"auth[member_id]": MEMBER, "auth[application_token]": TOKEN}
    return urlencode(fields).encode()


CALL = {
    "CALL_ID": "5F3A0C8E2B714D96.1795673702.2219043017",
    "CALL_TYPE": "2",
    "PHONE_NUMBER": "79161234567",
    "PORTAL_USER_ID": "17",
    "CALL_DURATION": "151",
    "CALL_START_DATE": "2026-11-26T09:15:02+03:00",
    "CALL_FAILED_CODE": "200",
    "CRM_ENTITY_TYPE": "CONTACT",
    "CRM_ENTITY_ID": "845",
}


def test_class_attributes() -> None:
    for parser in (Bitrix24VoximplantStatisticParser, Bitrix24CallEndEventParser):
        assert parser.family is SourceFamily.CRM
    assert Bitrix24VoximplantStatisticParser.format_name == "bitrix24-voximplant-statistic"
    assert Bitrix24CallEndEventParser.format_name == "bitrix24-call-end-event"


# --- voximplant.statistic.get ---------------------------------------------------------------


def test_statistic_rows() -> None:
    summaries = []
    for record in rows():
        summaries.append(
            [
                (
                    e.actor.id,
                    e.direction,
                    e.answered,
                    e.duration_seconds,
                    e.talk_seconds,
                    e.counterpart,
                    e.external_ref,
                    e.occurred_at,
                )
                for e in statistic(record)
            ]
        )
    out, inc = Direction.OUTGOING, Direction.INCOMING
    assert summaries == [
        # CALL_TYPE 1, outgoing, answered.
        [("17", out, True, 95, 95, "79031234567", "LEAD:1288", utc("2026-11-26T05:30:00"))],
        # 2, incoming, answered.
        [("17", inc, True, 151, 151, "79161234567", "CONTACT:845", utc("2026-11-26T06:15:02"))],
        # 2, incoming, missed (304).
        [("23", inc, False, 0, 0, "79260001122", "CONTACT:846", utc("2026-11-26T06:45:00"))],
        # 3, incoming redirected to a mobile, answered.
        [("23", inc, True, 64, 64, "79057778899", "DEAL:5531", utc("2026-11-26T07:20:00"))],
        # 4, callback: the manager calls back.
        [("17", out, True, 40, 40, "79161234567", None, utc("2026-11-26T08:15:00"))],
        # 5, info call.
        [("31", out, True, 12, 12, "79998887766", None, utc("2026-11-26T09:15:00"))],
        # 1, busy (486).
        [("31", out, False, 0, 0, "74956660011", "COMPANY:902", utc("2026-11-26T09:40:00"))],
        # 1, declined (603) after 5 s: counted, not answered, no talk time.
        [("17", out, False, 5, 0, "79031234567", "LEAD:1288", utc("2026-11-26T10:00:00"))],
        # Missed with no operator at all: nobody's activity.
        [],
    ]


def test_statistic_event_in_detail() -> None:
    [call] = statistic(rows()[1])
    assert call.event_id == derive_event_id("bitrix24", CALL["CALL_ID"], "17")
    assert call.event_id == "0fef5cf1aa6fd63a48cd4735d7ad474c"
    assert call.kind is ActivityKind.CALL
    assert call.action == "leg"
    # A Bitrix24 user id is the CRM user id the directory maps to a manager.
    assert call.actor == Actor(SourceFamily.CRM, "17")
    assert call.call_id == CALL["CALL_ID"]
    assert call.ended_at is None
    assert call.source == SOURCE


@pytest.mark.parametrize("user", [None, "", "0", 0])
def test_no_operator_gives_no_event(user: object) -> None:
    assert statistic(row(1, PORTAL_USER_ID=user)) == []


def test_numbers_may_be_json_integers() -> None:
    record = row(1, PORTAL_USER_ID=17, CALL_TYPE=2, CALL_DURATION=151, CALL_FAILED_CODE=200)
    assert statistic(record) == statistic(rows()[1])


def test_answered_needs_code_200_and_a_duration() -> None:
    [call] = statistic(row(1, CALL_DURATION="0"))
    assert (call.answered, call.talk_seconds) == (False, 0)


def test_portal_format_date_needs_the_portal_zone() -> None:
    record = row(1, CALL_START_DATE="26.11.2026 09:15:02")
    [call] = statistic(record, portal_timezone="Europe/Moscow")
    assert call.occurred_at == utc("2026-11-26T06:15:02")
    assert record_error(statistic, record).reason == "bad_time"


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"CALL_ID": ...}, "invalid"),
        ({"CALL_ID": ""}, "invalid"),
        ({"CALL_ID": "x" * 129}, "invalid"),
        ({"CALL_TYPE": ...}, "invalid"),
        ({"CALL_TYPE": "6"}, "invalid"),
        ({"CALL_TYPE": "0"}, "invalid"),
        ({"CALL_TYPE": True}, "invalid"),
        ({"CALL_DURATION": "-5"}, "invalid"),
        ({"CALL_DURATION": 1.5}, "invalid"),
        ({"CALL_DURATION": "700000"}, "invalid"),
        ({"CALL_FAILED_CODE": ""}, "invalid"),
        ({"CALL_FAILED_CODE": "200 OK"}, "invalid"),
        ({"PORTAL_USER_ID": "admin"}, "invalid"),
        ({"PORTAL_USER_ID": ["17"]}, "invalid"),
        ({"PHONE_NUMBER": "7" * 300}, "invalid"),
        ({"CALL_START_DATE": ...}, "invalid"),
        ({"CALL_START_DATE": "2026-11-26T09:15:02"}, "bad_time"),
        ({"CALL_START_DATE": "2026-11-31T09:15:02+03:00"}, "bad_time"),
        ({"CALL_START_DATE": "yesterday"}, "bad_time"),
    ],
)
def test_statistic_dead_letters(changes: dict[str, Any], expected: str) -> None:
    assert record_error(statistic, row(1, **changes)).reason == expected


@pytest.mark.parametrize(
    ("record", "expected"),
    [(b"[]", "malformed"), (b"{", "malformed"), (b"\xfe{}", "decode_error"), (b"{}", "invalid")],
)
def test_statistic_structure_dead_letters(record: bytes, expected: str) -> None:
    assert record_error(statistic, record).reason == expected


def test_portal_date_out_of_range() -> None:
    record = row(1, CALL_START_DATE="31.02.2026 09:15:02")
    assert record_error(statistic, record, portal_timezone="Europe/Moscow").reason == "bad_time"


# --- OnVoximplantCallEnd and telephony.externalcall.finish --------------------------------


def test_form_event_is_the_same_event_as_the_statistic_row() -> None:
    [from_event] = event(FORM)
    [from_export] = statistic(rows()[1])
    # Same id: a call delivered both ways is stored once.
    assert from_event == from_export


def test_a_call_ends_its_presence() -> None:
    # The down that closes the up of OnVoximplantCallStart (bitrix24-call-start-event): the
    # same from the event and from the export, so a call delivered both ways ends once.
    from_event = Bitrix24CallEndEventParser().parse(FORM, SOURCE)
    from_export = Bitrix24VoximplantStatisticParser().parse(rows()[1], SOURCE)
    assert from_event == from_export
    call, down = from_event
    assert down == ActivityEvent.checked(
        event_id=derive_event_id("bitrix24", CALL["CALL_ID"], "17", "down"),
        kind=ActivityKind.CHANNEL,
        action="down",
        occurred_at=utc("2026-11-26T06:17:33"),  # 09:15:02 Moscow and 151 s
        actor=Actor(SourceFamily.CRM, "17"),
        source=SOURCE,
        external_ref=CALL["CALL_ID"],
        call_id=CALL["CALL_ID"],
    )
    assert down.event_id != call.event_id


def test_a_call_nobody_took_ends_no_presence() -> None:
    assert Bitrix24VoximplantStatisticParser().parse(row(1, PORTAL_USER_ID="0"), SOURCE) == []


def test_auth_values_never_reach_an_event() -> None:
    [call] = event(FORM)
    dumped = call.model_dump_json()
    for secret in (TOKEN, MEMBER, "example.bitrix24.ru", "oauth.bitrix.info"):
        assert secret not in dumped


@pytest.mark.parametrize(
    "data",
    [
        {**CALL, "CALL_TYPE": "9"},
        {**CALL, "CALL_START_DATE": "soon"},
        {key: value for key, value in CALL.items() if key != "CALL_ID"},
        {**CALL, "PORTAL_USER_ID": TOKEN},
    ],
)
def test_auth_values_never_reach_an_error_detail(data: dict[str, str]) -> None:
    error = record_error(event, form(**data))
    assert TOKEN not in error.detail
    assert MEMBER not in error.detail
    assert TOKEN not in str(error)


def test_form_helper_builds_the_sample_event() -> None:
    assert event(form(**CALL)) == event(FORM)


def test_event_in_portal_format() -> None:
    body = form(**{**CALL, "CALL_START_DATE": "26.11.2026 09:15:02"})
    [call] = event(body, portal_timezone="Europe/Moscow")
    assert call.occurred_at == utc("2026-11-26T06:15:02")
    assert record_error(event, body).reason == "bad_time"


def test_event_as_json_envelope() -> None:
    envelope = {"event": "OnVoximplantCallEnd", "data": CALL, "ts": "1795673866"}
    envelope["auth"] = {"application_token": TOKEN}
    assert event(json.dumps(envelope).encode()) == event(FORM)


def test_externalcall_finish_parameters() -> None:
    [call] = event(FINISH)
    assert call.event_id == derive_event_id(
        "bitrix24", "externalCall.9f8e7d6c5b4a39281706f5e4d3c2b1a0.1795693200", "23"
    )
    assert call.actor == Actor(SourceFamily.CRM, "23")
    assert (call.direction, call.answered, call.duration_seconds, call.talk_seconds) == (
        Direction.OUTGOING,
        True,
        64,
        64,
    )
    assert call.counterpart == "79031234567"
    assert call.external_ref == "LEAD:1288"
    assert call.occurred_at == utc("2026-11-26T11:40:00")


def test_statistic_names_win_over_finish_names() -> None:
    finish = json.loads(FINISH)
    finish["CALL_DURATION"] = 70
    [call] = event(json.dumps(finish).encode())
    assert call.duration_seconds == 70


def test_repeated_form_key_last_value_counts() -> None:
    body = form(**CALL) + b"&data%5BCALL_DURATION%5D=160"
    [call] = event(body)
    assert call.duration_seconds == 160


@pytest.mark.parametrize(
    ("record", "expected"),
    [
        (form(**CALL).replace(b"ONVOXIMPLANTCALLEND", b"ONVOXIMPLANTCALLSTART"), "invalid"),
        (form(**CALL).replace(b"event=ONVOXIMPLANTCALLEND&", b""), "invalid"),
        (json.dumps({"event": "ONCRMDEALADD", "data": CALL}).encode(), "invalid"),
        (b"event=ONVOXIMPLANTCALLEND", "invalid"),
        (b"event=ONVOXIMPLANTCALLEND&&ts=1", "malformed"),
        (b"just some text", "malformed"),
        (b"{not json", "malformed"),
        (b'{"a": [[[[', "malformed"),
        (b"[" * 5000 + b"]" * 5000, "malformed"),
        (b"\xffevent=x", "decode_error"),
        (form(**{**CALL, "PHONE_NUMBER": "x"}).replace(b"=x&", b"=%FF&"), "decode_error"),
        (form(**{**CALL, "CALL_FAILED_CODE": "486", "CALL_TYPE": "7"}), "invalid"),
    ],
)
def test_event_dead_letters(record: bytes, expected: str) -> None:
    assert record_error(event, record).reason == expected


def test_deeply_nested_json_object_is_malformed() -> None:
    record = b'{"a":' * 3000 + b"1" + b"}" * 3000
    assert record_error(event, record).reason == "malformed"


def test_too_large() -> None:
    assert record_error(event, FORM, max_record_bytes=256).reason == "too_large"
    assert record_error(statistic, rows()[0], max_record_bytes=256).reason == "too_large"


# --- the real telephony.externalcall.finish answer (tests/samples/real/bitrix24) -------------

# The documentation's answer, as published (anonymised): what `finish` saved for the call.
REAL_FINISH: dict[str, Any] = json_sample(
    "real/bitrix24/telephony.externalcall.finish.response.json"
)["result"]
# The same portal's voximplant.statistic.get answer; its second row is that same call.
REAL_STATISTIC: list[dict[str, Any]] = json_sample(
    "real/bitrix24/voximplant.statistic.get.response.json"
)["result"]
REAL_CALL_ID = "externalCall.716f1cb73def9700a23842adf9c4c568.1773130779"


def test_real_finish_result_is_read_by_both_parsers() -> None:
    # By hand, from the answer's fields:
    #   INCOMING "2" (not CALL_TYPE): 2 is "incoming" on the method's page   -> incoming
    #   CALL_FAILED_CODE "200", CALL_DURATION 95                             -> answered, 95/95 s
    #   PORTAL_USER_ID 1269 (a JSON integer)                                -> actor (crm, "1269")
    #   CALL_START_DATE {} (a PHP DateTime serialised empty): no start here, so the registration
    #   time CALL_ID ends with, 1773130779 = 2026-03-10T08:19:39Z           -> occurred_at
    #   PHONE_NUMBER "79990711765"; CRM_ENTITY_TYPE CONTACT, CRM_ENTITY_ID 797
    expected = ActivityEvent(
        event_id=derive_event_id("bitrix24", REAL_CALL_ID, "1269"),
        kind=ActivityKind.CALL,
        action="leg",
        occurred_at=utc("2026-03-10T08:19:39"),
        actor=Actor(SourceFamily.CRM, "1269"),
        source=SOURCE,
        direction=Direction.INCOMING,
        answered=True,
        duration_seconds=95,
        talk_seconds=95,
        counterpart="79990711765",
        external_ref="CONTACT:797",
        call_id=REAL_CALL_ID,
    )
    record = compact(REAL_FINISH)
    assert statistic(record) == [expected]
    assert event(record) == [expected]


def test_real_finish_result_and_statistic_row_are_one_stored_call() -> None:
    # Row 2 of the statistic answer is the call finish saved: same CALL_ID, user 1269,
    # CALL_TYPE "2", 95 s, started 2026-03-10T11:19:38+03:00 = 08:19:38Z. The registration time
    # in CALL_ID is a second later, on the same UTC day, and the event id is the same: events are
    # stored by (day of occurred_at, event_id), so the two copies are one row.
    [from_finish] = event(compact(REAL_FINISH))
    [from_export] = statistic(compact(REAL_STATISTIC[1]))
    assert from_export.occurred_at == utc("2026-03-10T08:19:38")
    assert from_finish.event_id == from_export.event_id
    assert from_finish.occurred_at.date() == from_export.occurred_at.date()
    ignored = {"occurred_at"}
    assert from_finish.model_dump(exclude=ignored) == from_export.model_dump(exclude=ignored)


@pytest.mark.parametrize("start", [{}, None, "", ...])
def test_no_start_date_falls_back_to_the_registration_time(start: object) -> None:
    [call] = event(changed_record(compact(REAL_FINISH), CALL_START_DATE=start))
    assert call.occurred_at == utc("2026-03-10T08:19:39")


@pytest.mark.parametrize(
    "call_id",
    [
        "5F3A0C8E2B714D96.1795673702.2219043017",  # a Voximplant call: no registration time
        "externalCall.716f1cb73def9700a23842adf9c4c568.",
        "externalCall.716f1cb73def9700a23842adf9c4c568.17731307790000",
    ],
)
def test_no_start_date_and_no_registration_time_is_invalid(call_id: str) -> None:
    record = changed_record(compact(REAL_FINISH), CALL_START_DATE={}, CALL_ID=call_id)
    assert record_error(event, record).reason == "invalid"
    assert record_error(statistic, record).reason == "invalid"


def test_a_start_date_object_with_fields_is_invalid() -> None:
    record = changed_record(compact(REAL_FINISH), CALL_START_DATE={"date": "2026-03-10"})
    assert record_error(statistic, record).reason == "invalid"


def test_call_type_wins_over_incoming() -> None:
    [call] = statistic(changed_record(compact(REAL_FINISH), CALL_TYPE="1"))
    assert call.direction is Direction.OUTGOING
    assert record_error(statistic, changed_record(compact(REAL_FINISH), INCOMING="7")).reason == (
        "invalid"
    )


def test_split_one_record_per_line() -> None:
    parser = Bitrix24CallEndEventParser()
    assert parser.split(FORM + b"\n\n" + FINISH + b"\n") == [FORM, FINISH]
    assert len(rows()) == 9
