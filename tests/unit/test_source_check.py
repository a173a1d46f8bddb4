"""``salespulse sources check`` on files a person can read line by line.

The file below is Master.csv in the ``loguniqueid`` column set (17 fields, uniqueid last) of a
PBX in Moscow (UTC+3 all year): the uniqueid is the channel's creation in Unix time, the start
column the PBX's wall clock, so each line says the PBX runs three hours ahead of UTC.

| line | what | who |
|---|---|---|
| 1 | 201 calls a customer, answered, 60 s talk | 201 = Ivanova (directory) |
| 2 | blank | |
| 3 | a customer calls 202, not answered | 202 = Petrov (directory) |
| 4 | garbled: a start time of 2026-13-45 | dead letter `bad_time` |
| 5 | 777 calls a customer, answered, 30 s talk | 777: an extension not in the directory |
| 6 | a customer reaches the company line 4951112233 (no extension answered) | an outside number |
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from salespulse.cli import main
from salespulse.directory import parse_directory
from salespulse.sections import ParsingSettings
from salespulse.source_check import SourceReport, check_file, render

DIRECTORY_YAML = (
    "departments: [{id: msk, timezone: Europe/Moscow}]\n"
    "managers:\n"
    "  - {id: ivanova, department: msk, identities: [{family: pbx, id: '201'}]}\n"
    "  - {id: petrov, department: msk, identities: [{family: pbx, id: '202'}]}\n"
)
# 2026-11-26 07:00:00 UTC is 1795676400, 10:00 on the PBX's Moscow clock. Line 4 has no valid start,
# so four lines tell the zone.
LINES = [
    '"","201","79161234567","from-internal","","SIP/201-00000001","SIP/trunk-00000002","Dial",'
    '"","2026-11-26 10:00:00","2026-11-26 10:00:05","2026-11-26 10:01:05",65,60,"ANSWERED",'
    '"DOCUMENTATION","1795676400.1"',
    "",
    '"","79161234568","202","from-trunk","","SIP/trunk-00000003","SIP/202-00000004","Dial",'
    '"","2026-11-26 10:05:00","","2026-11-26 10:05:20",20,0,"NO ANSWER",'
    '"DOCUMENTATION","1795676700.3"',
    '"","201","79161234569","from-internal","","SIP/201-00000005","SIP/trunk-00000006","Dial",'
    '"","2026-13-45 10:10:00","","2026-11-26 10:10:20",20,0,"NO ANSWER",'
    '"DOCUMENTATION","1795677000.5"',
    '"","777","79161234570","from-internal","","SIP/777-00000007","SIP/trunk-00000008","Dial",'
    '"","2026-11-26 10:15:00","2026-11-26 10:15:02","2026-11-26 10:15:32",32,30,"ANSWERED",'
    '"DOCUMENTATION","1795677300.7"',
    '"","79161234571","4951112233","from-trunk","","SIP/trunk-00000009","","Hangup",'
    '"","2026-11-26 10:20:00","","2026-11-26 10:20:10",10,0,"NO ANSWER",'
    '"DOCUMENTATION","1795677600.9"',
]
NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


@pytest.fixture
def master(tmp_path: Path) -> Path:
    path = tmp_path / "Master.csv"
    path.write_text("\n".join(LINES) + "\n")
    return path


def check(path: Path, zone: str) -> str:
    parsing = ParsingSettings(pbx_timezone=zone, asterisk_cdr_columns="uniqueid")
    directory = parse_directory(DIRECTORY_YAML, suffix=".yaml")
    report = check_file(path, directory, parsing, now=NOW)
    assert report.trouble == (zone != "Europe/Moscow")
    return render(report)


def test_a_right_zone_agrees_and_each_identity_is_where_it_belongs(master: Path) -> None:
    text = check(master, "Europe/Moscow")
    assert "format: asterisk-cdr-csv" in text
    assert "CDR start times run UTC+03:00 from the uniqueid clock (4 of 4 records)" in text
    assert "gives the same offset for 4 of them: agrees" in text
    assert "records: 5, events: 4, dead letters: 1" in text
    assert "  bad_time: 1 (lines 4)" in text  # the blank line 2 is counted as a line
    assert "directory managers: 2: ivanova (1), petrov (1)" in text
    assert "likely extensions, not in the directory: 1: 777 (1)" in text
    assert "outside numbers, trunks, queues (not extensions): 1: ********33 (1)" in text
    assert "ivanova: answered legs 1, outgoing legs 1, talk s 60" in text
    assert "petrov: incoming legs 1, unanswered incoming legs 1" in text


def test_a_wrong_zone_is_caught_before_anything_is_sent(master: Path) -> None:
    text = check(master, "UTC")
    assert "gives the same offset for 0 of them: DISAGREES" in text
    assert "one at UTC+03:00" in text


def test_the_command_exits_1_on_a_wrong_zone(
    master: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    directory = tmp_path / "directory.yaml"
    directory.write_text(DIRECTORY_YAML)
    monkeypatch.setenv("SALESPULSE_PARSING__ASTERISK_CDR_COLUMNS", "uniqueid")
    monkeypatch.setenv("SALESPULSE_PARSING__PBX_TIMEZONE", "Asia/Vladivostok")
    assert main(["sources", "check", str(master), "--directory", str(directory)]) == 1
    assert "DISAGREES" in capsys.readouterr().out
    monkeypatch.setenv("SALESPULSE_PARSING__PBX_TIMEZONE", "Europe/Moscow")
    assert main(["sources", "check", str(master), "--directory", str(directory)]) == 0


# --- Bitrix24 files as saved from the REST documentation (tests/samples/real/bitrix24) --------

REAL_BITRIX24 = Path(__file__).resolve().parents[1] / "samples" / "real" / "bitrix24"
BITRIX24_DIRECTORY = (
    "departments: [{id: msk, timezone: Europe/Moscow}]\n"
    "managers:\n"
    "  - {id: petrova, department: msk, identities: [{family: crm, id: '1269'}]}\n"
)


def check_real(name: str) -> SourceReport:
    directory = parse_directory(BITRIX24_DIRECTORY, suffix=".yaml")
    return check_file(REAL_BITRIX24 / name, directory, ParsingSettings(), now=NOW)


def test_a_saved_rest_answer_names_its_rows_users_as_users_not_numbers() -> None:
    text = render(check_real("voximplant.statistic.get.response.json"))
    assert "format: bitrix24-voximplant-statistic" in text
    assert "bitrix24-call-end-event reads the same events from it" in text
    # Each call and its user's presence on it ending with it (a channel down).
    assert "records: 2, events: 4, dead letters: 0" in text
    assert "directory managers: 1: petrova (2)" in text
    # User 1 is a Bitrix24 user outside the directory, not an outside number.
    assert "CRM and chat users, not in the directory: 1: crm:1 (2)" in text
    assert "outside numbers, trunks, queues (not extensions): none" in text


def test_a_record_that_is_no_activity_says_why() -> None:
    report = check_real("crm.deal.get.response.json")
    assert not report.trouble
    text = render(report)
    assert "records: 1, events: 0, no activity: 1, dead letters: 0" in text
    assert "no activity: 1: a deal still open (stage 'PREPARATION')" in text


def test_an_event_that_carries_ids_only_is_trouble_and_says_where_to_get_it() -> None:
    report = check_real("oncrmdealupdate.event.json")
    assert report.trouble
    text = render(report)
    assert "records: 1, events: 0, dead letters: 1" in text
    assert "ids_only: 1 (records 1); first: ONCRMDEALUPDATE carries only the deal's id" in text


# --- Asterisk and FreeSWITCH files of the real corpus (tests/samples/real) -------------------

REAL = Path(__file__).resolve().parents[1] / "samples" / "real"
NOBODY = parse_directory("departments: []\nmanagers: []\n", suffix=".yaml")


def test_a_leg_with_no_managers_side_is_no_activity_that_names_the_pattern() -> None:
    # CGRateS's 2013 a-leg: SIP user "usr" calls out; "usr" is no extension by the default
    # pattern, so the leg is nobody's activity. Silence would look like a lost call.
    path = REAL / "freeswitch-json-cdr" / "cgrates-2013-fork-a-leg.cdr.json"
    text = render(check_file(path, NOBODY, ParsingSettings(), now=NOW))
    assert "records: 1, events: 0, no activity: 1, dead letters: 0" in text
    assert "no activity: 1: a call leg on which no side is a manager's extension" in text


def test_records_that_name_no_channel_are_said_to_be_the_directorys_to_decide() -> None:
    # fafeitsch's Master.csv: every channel pseudonymised to NOT_AVAILABLE, numbers of 10 digits.
    path = REAL / "asterisk-cdr-csv" / "fafeitsch-mockdata-cdr.Master.csv"
    text = render(check_file(path, NOBODY, ParsingSettings(), now=NOW))
    assert "40 record(s) name no channel and no extension" in text
