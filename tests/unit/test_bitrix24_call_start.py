"""OnVoximplantCallStart: a Bitrix24 user answering a call goes ``up`` on it until its end.

The form sample (tests/samples/bitrix24/onvoximplantcallstart.form) is the start of the call
whose OnVoximplantCallEnd is onvoximplantcallend.form: user 17 answered at 09:15:05 Moscow
(``ts``), three seconds after the call began ringing.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

import pytest
from hypothesis import given

from processors.parsers import build_parsers
from processors.parsers.base import NoActivity
from processors.parsers.bitrix24_call_start import Bitrix24CallStartEventParser
from processors.parsers.bitrix24_telephony import Bitrix24CallEndEventParser
from salespulse.models import ActivityEvent, ActivityKind, Actor, SourceFamily, derive_event_id
from salespulse.sections import ParsingSettings
from tests.unit.fuzzing import FUZZ, check, json_values
from tests.unit.parsing_helpers import SAMPLES_DIR, record_error, source_of, utc

SAMPLES = SAMPLES_DIR / "bitrix24"
FORM = (SAMPLES / "onvoximplantcallstart.form").read_bytes()
END_FORM = (SAMPLES / "onvoximplantcallend.form").read_bytes()
SOURCE = source_of(Bitrix24CallStartEventParser, 0, 7)
CALL_ID = "5F3A0C8E2B714D96.1795673702.2219043017"
TOKEN = "51856fefc120afa4b628cc82d3935cce"
MEMBER = "a223c6b3710f85df22e9377d6c4f7553"


def parse(record: bytes, **options: Any) -> list[ActivityEvent]:
    return Bitrix24CallStartEventParser(**options).parse(record, SOURCE)


def form(ts: str | None = "1795673705", **data: str) -> bytes:
    """An OnVoximplantCallStart body as Bitrix24 builds it (http_build_query)."""
    fields = {"event": "ONVOXIMPLANTCALLSTART", "event_handler_id": "13"}
    fields |= {f"data[{key}]": value for key, value in data.items()}
    if ts is not None:
        fields["ts"] = ts
    fields |= {"auth[member_id]": MEMBER, "auth[application_token]": TOKEN}
    return urlencode(fields).encode()


def envelope(**changes: Any) -> bytes:
    """The JSON body Bitrix24's documentation shows; a change of ``...`` removes the member."""
    document: dict[str, Any] = {
        "event": "ONVOXIMPLANTCALLSTART",
        "event_handler_id": "13",
        "data": {"CALL_ID": CALL_ID, "USER_ID": "17"},
        "ts": "1795673705",
        "auth": {"member_id": MEMBER, "application_token": TOKEN},
    }
    for name, value in changes.items():
        if value is ...:
            document.pop(name)
        else:
            document[name] = value
    return json.dumps(document).encode()


def test_registered_with_the_worker() -> None:
    parser = build_parsers(ParsingSettings())["bitrix24-call-start-event"]
    assert isinstance(parser, Bitrix24CallStartEventParser)
    assert parser.family is SourceFamily.CRM


def test_the_form_is_the_user_going_up_on_the_call() -> None:
    [up] = parse(FORM)
    assert up == ActivityEvent.checked(
        event_id=derive_event_id("bitrix24", CALL_ID, "17", "up"),
        kind=ActivityKind.CHANNEL,
        action="up",
        occurred_at=utc("2026-11-26T06:15:05"),  # ts: 09:15:05 Moscow
        actor=Actor(SourceFamily.CRM, "17"),
        source=SOURCE,
        external_ref=CALL_ID,
        call_id=CALL_ID,
    )


def test_the_json_envelope_numbers_and_strings_read_alike() -> None:
    [from_form] = parse(FORM)
    assert parse(envelope()) == [from_form]
    numbers = envelope(data={"CALL_ID": CALL_ID, "USER_ID": 17}, ts=1795673705)
    assert parse(numbers) == [from_form]
    assert parse(envelope(event="OnVoximplantCallStart")) == [from_form]


def test_the_end_of_the_call_is_its_down() -> None:
    # The end event's down closes this up: same call (external_ref), other event.
    [up] = parse(FORM)
    _, down = Bitrix24CallEndEventParser().parse(END_FORM, SOURCE)
    assert (down.kind, down.action, down.external_ref, down.actor) == (
        up.kind,
        "down",
        up.external_ref,
        up.actor,
    )
    assert down.event_id != up.event_id
    assert down.occurred_at > up.occurred_at


def test_auth_values_never_reach_an_event_or_an_error() -> None:
    [up] = parse(FORM)
    assert TOKEN not in repr(up)
    assert MEMBER not in repr(up)
    for body in (form(CALL_ID=CALL_ID), form(CALL_ID=CALL_ID, USER_ID="x"), envelope(ts=...)):
        detail = record_error(parse, body).detail
        assert TOKEN not in detail
        assert MEMBER not in detail


def test_a_start_with_user_zero_is_no_activity() -> None:
    events = parse(form(CALL_ID=CALL_ID, USER_ID="0"))
    assert events == []
    assert isinstance(events, NoActivity)


@pytest.mark.parametrize(
    ("record", "reason", "said"),
    [
        (form(USER_ID="17"), "invalid", "CALL_ID: Field required"),
        (form(CALL_ID=CALL_ID), "invalid", "USER_ID: Field required"),
        (form(CALL_ID="", USER_ID="17"), "invalid", "CALL_ID"),
        (form(CALL_ID="7" * 5000, USER_ID="17"), "invalid", "CALL_ID"),
        (form(CALL_ID=CALL_ID, USER_ID="admin"), "invalid", "USER_ID"),
        (form(CALL_ID=CALL_ID, USER_ID="-17"), "invalid", "USER_ID"),
        (form(CALL_ID=CALL_ID, USER_ID="1" * 40), "invalid", "USER_ID"),
        (envelope(data={"CALL_ID": 42, "USER_ID": "17"}), "invalid", "CALL_ID"),
        (envelope(data={"CALL_ID": [CALL_ID], "USER_ID": "17"}), "invalid", "CALL_ID"),
        (envelope(data={"CALL_ID": CALL_ID, "USER_ID": True}), "invalid", "USER_ID"),
        (envelope(data={"CALL_ID": CALL_ID, "USER_ID": 1.5}), "invalid", "USER_ID"),
        (envelope(data={"CALL_ID": CALL_ID, "USER_ID": {"id": 17}}), "invalid", "USER_ID"),
        (envelope(data=[CALL_ID, "17"]), "invalid", "no data object"),
        (envelope(data=...), "invalid", "no data object"),
        (form(ts=None, CALL_ID=CALL_ID, USER_ID="17"), "bad_time", "ts missing"),
        (envelope(ts=...), "bad_time", "ts missing"),
        (envelope(ts=None), "bad_time", "ts missing"),
        (form(ts="yesterday", CALL_ID=CALL_ID, USER_ID="17"), "bad_time", "not Unix seconds"),
        (form(ts="9" * 40, CALL_ID=CALL_ID, USER_ID="17"), "bad_time", "not Unix seconds"),
        (envelope(ts=1795673705.5), "bad_time", "float"),
        (envelope(ts=True), "bad_time", "bool"),
        (envelope(ts=[1795673705]), "bad_time", "list"),
        (envelope(ts=-1795673705), "bad_time", "not Unix seconds"),
        (FORM.replace(b"ONVOXIMPLANTCALLSTART", b"ONVOXIMPLANTCALLEND"), "invalid", "is not"),
        (FORM.replace(b"event=ONVOXIMPLANTCALLSTART&", b""), "invalid", "event missing"),
        (END_FORM, "invalid", "is not OnVoximplantCallStart"),
        (envelope(event=["ONVOXIMPLANTCALLSTART"]), "invalid", "event missing"),
        (b"event=ONVOXIMPLANTCALLSTART&&ts=1", "malformed", "form"),
        (b"just some text", "malformed", "form"),
        (b"{not json", "malformed", "JSON"),
        (b"[1, 2]", "malformed", "form"),  # only a body opening with { is read as JSON
        (b'{"a":' * 3000 + b"1" + b"}" * 3000, "malformed", "JSON"),
        (b"\xffevent=x", "decode_error", "UTF-8"),
        (FORM.replace(b"&ts=", b"&data%5BX%5D=%FF&ts="), "decode_error", "UTF-8"),
    ],
)
def test_dead_letters_say_what_is_wrong(record: bytes, reason: str, said: str) -> None:
    error = record_error(parse, record)
    assert (error.reason, said in error.detail) == (reason, True), error.detail


def test_a_huge_body_is_too_large_before_it_is_read() -> None:
    huge = form(CALL_ID=CALL_ID, USER_ID="17") + b"&pad=" + b"x" * 2_000_000
    assert record_error(parse, huge).reason == "too_large"
    assert record_error(parse, FORM, max_record_bytes=64).reason == "too_large"


def test_a_form_of_too_many_fields_is_malformed() -> None:
    many = FORM + b"".join(b"&f%d=1" % n for n in range(300))
    assert record_error(parse, many).reason == "malformed"


@FUZZ
@given(
    call_id=json_values([CALL_ID, "", "0"]),
    user_id=json_values(["17", "0", "017", "-1"]),
    ts=json_values(["1795673705", "0", "17956737050"]),
)
def test_data_of_any_shape_is_an_event_or_a_dead_letter(
    call_id: object, user_id: object, ts: object
) -> None:
    check(
        Bitrix24CallStartEventParser(),
        envelope(data={"CALL_ID": call_id, "USER_ID": user_id}, ts=ts),
    )
