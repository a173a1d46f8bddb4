"""Bitrix24 payloads as people save them: a REST answer (pretty or not) stands for the rows of its
``result``, an event body over many lines is one record, an event that carries ids only is one
dead letter that says where it must come from, and a REST result without the envelope is read
as the entity's state. The real files are those of tests/samples/real/bitrix24."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from urllib.parse import urlencode

import pytest
from hypothesis import given
from hypothesis import strategies as st

from processors.parsers import build_parsers
from processors.parsers._bitrix24 import split_records
from processors.parsers.base import IDS_ONLY, NoActivity, Parser
from processors.pipeline import BatchProcessor, BatchResult, RawMessage
from processors.privacy import PhoneProtector
from salespulse.directory import parse_directory
from salespulse.history_import import (
    ImportRefused,
    ImportSummary,
    choose_format,
    describe_choice,
)
from salespulse.models import FORMAT_HEADER, SourceRef
from salespulse.sections import ParsingSettings
from tests.unit.fuzzing import FUZZ, check, mutated
from tests.unit.parsing_helpers import SAMPLES_DIR, compact, record_error

REAL = SAMPLES_DIR / "real" / "bitrix24"
PARSERS = build_parsers(ParsingSettings())
STATISTIC = PARSERS["bitrix24-voximplant-statistic"]
CALL_END = PARSERS["bitrix24-call-end-event"]
OPENLINES = PARSERS["bitrix24-openlines-session"]
CRM = PARSERS["bitrix24-crm-rest"]
SOURCE = SourceRef("bitrix24", "file", 0, 0)


def real(name: str) -> bytes:
    return (REAL / name).read_bytes()


def parse(parser: Parser, payload: bytes) -> list[list[object]]:
    return [parser.parse(record, SOURCE) for record in parser.split(payload)]


# --- framing --------------------------------------------------------------------------------


def test_a_saved_statistic_answer_is_its_two_rows_as_the_file_holds_them() -> None:
    saved = real("voximplant.statistic.get.response.json")
    rows = STATISTIC.split(saved)
    assert len(rows) == 2
    assert all(row in saved for row in rows)  # slices of the file, line breaks and all
    assert [json.loads(row)["ID"] for row in rows] == ["1", "7"]
    first, second = (
        event for events in parse(STATISTIC, saved) for event in events if event.kind == "call"
    )
    assert (first.actor.id, first.direction, first.answered) == ("1", "outgoing", False)
    assert (second.actor.id, second.direction, second.talk_seconds) == ("1269", "incoming", 95)


def test_the_answer_on_one_line_or_its_rows_as_lines_frame_alike() -> None:
    document = json.loads(real("voximplant.statistic.get.response.json"))
    one_line = compact(document)
    lines = b"\n".join(compact(row) for row in document["result"])
    assert [json.loads(r) for r in STATISTIC.split(one_line)] == document["result"]
    assert STATISTIC.split(lines) == lines.split(b"\n")


def test_a_result_object_is_one_row_and_keys_in_any_order_are_an_answer() -> None:
    document = json.loads(real("telephony.externalcall.finish.response.json"))
    for saved in (compact(document), json.dumps(document, sort_keys=True, indent=2).encode()):
        [record] = STATISTIC.split(saved)
        assert json.loads(record) == document["result"]


def test_a_list_wrapped_with_paging_is_its_rows() -> None:
    """imopenlines.v2.Session.list answers ``{"result": {"sessions": [...], "hasNextPage": …}}``."""
    saved = (SAMPLES_DIR / "bitrix24/rest/imopenlines.v2.Session.list/128.json").read_bytes()
    sessions = json.loads(saved)["result"]["sessions"]
    records = OPENLINES.split(saved)
    assert [json.loads(record) for record in records] == sessions
    served = [event for events in parse(OPENLINES, saved) for event in events]
    assert ("1101", "served") in {(event.actor.id, event.action) for event in served}


@pytest.mark.parametrize(
    ("payload", "records"),
    [
        (b'{"result": [], "total": 0}', []),  # a page without rows
        (b'{"result": true, "time": {}}', [b'{"result": true, "time": {}}']),  # no rows at all
        (b'{"result": [1, {"A": 2}]}', [b"1", b'{"A": 2}']),  # the parser judges each
        (b'{"result": [1,', [b'{"result": [1,']),  # cut short: one record, a dead letter
        (b'{"event": "X", "result": {"A": 1}}', [b'{"event": "X", "result": {"A": 1}}']),
        (b"event=X&data[CALL_ID]=1\n{", [b"event=X&data[CALL_ID]=1", b"{"]),  # forms: lines
    ],
)  # fmt: skip
def test_what_is_and_is_not_a_rest_answer(payload: bytes, records: list[bytes]) -> None:
    assert split_records(payload) == records


def test_a_pretty_event_body_is_one_record() -> None:
    saved = real("onvoximplantcallend.event.json")
    assert CALL_END.split(saved) == [saved.strip()]
    [[event, down]] = parse(CALL_END, saved)
    assert (down.kind, down.action, down.external_ref) == ("channel", "down", event.call_id)
    assert (event.actor.id, event.direction, event.answered) == ("1269", "outgoing", False)


@FUZZ
@given(data=st.data())
def test_framing_a_damaged_answer_never_raises_and_each_record_obeys_the_contract(
    data: st.DataObject,
) -> None:
    samples = [real(name) for name in sorted(path.name for path in REAL.glob("*.json"))]
    payload = data.draw(mutated(samples, max_cut=40))
    for parser in (STATISTIC, CALL_END, OPENLINES, CRM):
        for record in parser.split(payload):
            check(parser, record)


# --- events that carry ids only ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("parser", "name", "subject"),
    [
        (OPENLINES, "onsessionfinish.event.json", "Open Lines session"),
        (CRM, "oncrmdealupdate.event.json", "deal"),
    ],
)
def test_an_event_that_carries_ids_only_is_one_dead_letter_saying_where_to_get_it(
    parser: Parser, name: str, subject: str
) -> None:
    [record] = parser.split(real(name))
    error = record_error(parser.parse, record, SOURCE)
    assert error.reason == IDS_ONLY
    assert f"carries only the {subject}'s id" in error.detail
    assert "salespulse receive" in error.detail
    assert "REST export" in error.detail


def test_the_form_the_portal_posts_is_recognised_too() -> None:
    form = urlencode({"event": "ONCRMDEALUPDATE", "data[FIELDS][ID]": "759", "ts": "1736405807"})
    assert record_error(CRM.parse, form.encode(), SOURCE).reason == IDS_ONLY


@pytest.mark.parametrize(
    "record",
    [
        # An envelope with a field missing is an envelope gone wrong, not an event.
        compact({"event": "ONCRMDEALUPDATE", "ts": 1, "result": {"ID": "1"}}),
        compact({"event": "ONCRMCONTACTUPDATE", "data": {"FIELDS": {"ID": "1"}}}),
    ],
)
def test_other_records_keep_their_own_dead_letter(record: bytes) -> None:
    assert record_error(CRM.parse, record, SOURCE).reason == "invalid"


def test_only_the_format_of_the_event_claims_it() -> None:
    [record] = OPENLINES.split(real("onsessionfinish.event.json"))
    assert record_error(CRM.parse, record, SOURCE).reason == "invalid"


# --- REST results without the envelope --------------------------------------------------------


def test_a_bare_deal_or_activity_is_read_as_its_state_and_says_why_it_is_no_activity() -> None:
    [deal] = parse(CRM, real("crm.deal.get.response.json"))
    [activity] = parse(CRM, real("crm.activity.get.response.json"))
    assert deal == activity == []
    assert isinstance(deal, NoActivity)
    assert isinstance(activity, NoActivity)
    assert deal.why == "a deal still open (stage 'PREPARATION'): only won or lost deals count"
    assert activity.why == "a call logged in the CRM: calls are counted from telephony"


def test_a_bare_won_deal_is_the_event_its_update_gives() -> None:
    won = json.loads((SAMPLES_DIR / "bitrix24/rest/crm.deal.get/5531.json").read_bytes())["result"]
    envelope = {"event": "ONCRMDEALUPDATE", "ts": 1764160812, "entity": "deal", "result": won}
    assert CRM.parse(compact(won), SOURCE) == CRM.parse(compact(envelope), SOURCE)


def process(*names: str) -> BatchResult:
    """The real files, one message each, through the worker's batch processor."""
    processor = BatchProcessor(
        PARSERS,
        lambda: parse_directory("departments: []\nmanagers: []\n", suffix=".yaml"),
        PhoneProtector(None),
        max_message_bytes=1 << 20,
    )
    headers = [(FORMAT_HEADER, b"bitrix24-crm-rest")]
    return processor.process(
        [RawMessage("t", 0, n, headers, real(name)) for n, name in enumerate(names)]
    )


def test_a_batch_counts_records_that_are_no_activity_by_why() -> None:
    result = process("crm.deal.get.response.json", "crm.activity.get.response.json")
    assert (result.rows, result.dead_letters) == ([], [])
    assert result.no_activity == Counter(
        {
            "a deal still open (stage 'PREPARATION'): only won or lost deals count": 1,
            "a call logged in the CRM: calls are counted from telephony": 1,
        }
    )


def test_the_import_summary_says_why_records_gave_no_events() -> None:
    summary = ImportSummary(files=3)
    summary.count(process("crm.deal.get.response.json", "oncrmdealupdate.event.json"))
    summary.count(process("crm.activity.get.response.json"))
    text = summary.describe()
    assert "3 records, 0 events; no activity by the format's rules: 1 a deal still open" in text
    assert "1 a call logged in the CRM: calls are counted from telephony" in text
    assert "dead letters: ids_only 1 (first: ONCRMDEALUPDATE carries only the deal's id" in text


# --- telling the format of a saved file -------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "chosen"),
    [
        ("voximplant.statistic.get.response.json", "bitrix24-voximplant-statistic"),
        ("telephony.externalcall.finish.response.json", "bitrix24-voximplant-statistic"),
        ("onvoximplantcallend.event.json", "bitrix24-call-end-event"),
        ("onsessionfinish.event.json", "bitrix24-openlines-session"),
        ("oncrmdealupdate.event.json", "bitrix24-crm-rest"),
        ("crm.deal.get.response.json", "bitrix24-crm-rest"),
        ("crm.activity.get.response.json", "bitrix24-crm-rest"),
    ],
)
def test_each_real_file_is_told_its_format(name: str, chosen: str) -> None:
    assert choose_format(REAL / name, PARSERS, None)[0] == chosen


def test_two_formats_that_read_a_file_into_the_same_events_are_no_ambiguity() -> None:
    _, guesses = choose_format(REAL / "voximplant.statistic.get.response.json", PARSERS, None)
    assert describe_choice(guesses) == (
        "bitrix24-voximplant-statistic: 2 of 2 records read; bitrix24-call-end-event reads the "
        "same events from it, so either counts it alike"
    )


def test_a_file_of_ids_only_events_is_recognised_not_read() -> None:
    _, guesses = choose_format(REAL / "onsessionfinish.event.json", PARSERS, None)
    assert describe_choice(guesses) == (
        "bitrix24-openlines-session: 0 of 1 records read (ids_only 1); no format reads its "
        "records, bitrix24-openlines-session recognises them as its own but cannot count them "
        "from a file"
    )


def test_two_formats_that_read_a_file_differently_still_ask_for_one(tmp_path: Path) -> None:
    # The call-end format also reads finish's parameter names (TYPE), the statistic format
    # only CALL_TYPE or INCOMING: a row with TYPE alone is call-end's; with both, each format
    # reads another direction.
    row = json.loads(real("voximplant.statistic.get.response.json"))["result"][1]
    row["TYPE"] = row.pop("CALL_TYPE")
    path = tmp_path / "rows.jsonl"
    path.write_bytes(compact(row) + b"\n")
    assert choose_format(path, PARSERS, None)[0] == "bitrix24-call-end-event"
    row["INCOMING"] = "1"
    path.write_bytes(compact(row) + b"\n")
    with pytest.raises(ImportRefused, match="read it equally well"):
        choose_format(path, PARSERS, None)
