"""The traffic generator: reproducible, realistic, and its expected totals are right.

The totals are checked against an independent count made here from the raw bytes, following the
documented parser semantics, so render and truth cannot drift apart unnoticed.
"""

from __future__ import annotations

import csv
import json
import re
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from ingest.generator import (
    CDR_FORMAT,
    CHAT_FORMAT,
    COUNTERS,
    CRM_FORMAT,
    Expected,
    Population,
    Traffic,
    directory_yaml,
    frame_messages,
    make_population,
    simulate,
    write_directory_yaml,
    write_files,
)
from ingest.generator.render import build_traffic
from ingest.generator.truth import CallTruth, ChatTruth, CrmTruth, Truth
from salespulse.models import SourceFamily

# Monday 2026-03-23 to Tuesday 2026-03-31: a full week with a weekend in which Berlin switches
# to summer time (Sunday 2026-03-29).
WEEK_START = datetime(2026, 3, 23, tzinfo=UTC)
WEEK_END = datetime(2026, 3, 31, tzinfo=UTC)
LONG_AGO = datetime(2026, 6, 1, tzinfo=UTC)
INTERNAL = re.compile(r"^\d{2,6}$")
CHANNEL = re.compile(r"^[A-Z]+/(.+)-[0-9a-f]{8}$")


@pytest.fixture(scope="module")
def population() -> Population:
    return make_population(24, 6, seed=3)


@pytest.fixture(scope="module")
def week(population: Population) -> Traffic:
    return simulate(population, WEEK_START, WEEK_END, seed=11, malformed_share=0.0, now=LONG_AGO)


@pytest.fixture(scope="module")
def noisy(population: Population) -> Traffic:
    return simulate(
        population,
        WEEK_START,
        WEEK_START + timedelta(days=3),
        seed=5,
        malformed_share=0.05,
        unknown_share=0.05,
        now=LONG_AGO,
    )


def _payloads(traffic: Traffic, family: SourceFamily) -> list[bytes]:
    return [record.data for record in traffic.records[family]]


# --- an independent count from the raw bytes -------------------------------------------------


def _resource(channel: str) -> str | None:
    match = CHANNEL.match(channel)
    return match.group(1) if match else None


def _parse_cdr(data: bytes) -> list[str] | None:
    try:
        rows = list(csv.reader([data.decode("utf-8")]))
        fields = rows[0]
        if len(fields) != 16:
            return None
        for column in (9, 11):
            datetime.strptime(fields[column], "%Y-%m-%d %H:%M:%S")
    except (UnicodeDecodeError, ValueError, csv.Error, IndexError):
        return None
    return fields


def _parse_json(data: bytes, time_field: str) -> dict[str, Any] | None:
    try:
        obj = json.loads(data.decode("utf-8"))
        if datetime.fromisoformat(obj[time_field]).tzinfo is None:
            return None
    except (UnicodeDecodeError, ValueError, KeyError, TypeError):
        return None
    return obj if isinstance(obj, dict) else None


_CRM_COUNTERS = {
    "lead.created": "leads",
    "lead.worked": "leads",
    "offer.sent": "offers",
    "meeting.held": "meetings",
    "meeting.presentation": "meetings",
    "deal.won": "deals_won",
    "payment.received": "payments",
    "task.created": "tasks_created",
    "task.completed": "tasks_completed",
}


def reference_count(traffic: Traffic) -> Expected:
    owner: dict[tuple[str, str], str] = {}
    for man in traffic.population.managers:
        for family, ident in man.identities():
            owner[(family.value, ident)] = man.id
    result = Expected(per_manager={man.id: Counter() for man in traffic.population.managers})

    def call(manager: str | None, direction: str, fields: list[str]) -> None:
        if manager is None:
            result.unattributed_events += 1
            return
        counter = result.per_manager[manager]
        counter[direction] += 1
        if fields[14] == "ANSWERED" and direction == "calls_internal":
            counter["calls_answered"] += 1
            counter["internal_talk_seconds"] += int(fields[13])
        elif fields[14] == "ANSWERED":
            counter["calls_answered"] += 1
            counter[f"{direction}_answered"] += 1
            counter["talk_seconds"] += int(fields[13])
            counter["conversations"] += int(fields[13]) >= 30
        elif direction == "calls_incoming":
            counter["calls_missed"] += 1

    for data in _payloads(traffic, SourceFamily.PBX):
        fields = _parse_cdr(data)
        if fields is None:
            result.malformed_records += 1
            continue
        result.valid_records += 1
        caller, callee = _resource(fields[5]), _resource(fields[6])
        caller_in = caller is not None and INTERNAL.match(caller) is not None
        callee_in = callee is not None and INTERNAL.match(callee) is not None
        if caller_in and callee_in:
            call(owner.get(("pbx", caller or "")), "calls_internal", fields)
            call(owner.get(("pbx", callee or "")), "calls_internal", fields)
        elif caller_in:
            call(owner.get(("pbx", caller or "")), "calls_outgoing", fields)
        elif callee_in:
            call(owner.get(("pbx", callee or "")), "calls_incoming", fields)
        else:
            call(owner.get(("pbx", fields[2])), "calls_incoming", fields)
        result.canonical_events += 2 if caller_in and callee_in else 1
    for data in _payloads(traffic, SourceFamily.CHAT):
        obj = _parse_json(data, "started_at")
        if obj is None:
            result.malformed_records += 1
            continue
        result.valid_records += 1
        result.canonical_events += 1
        manager = owner.get(("chat", obj["operator_id"]))
        if manager is None:
            result.unattributed_events += 1
            continue
        served = obj["status"] == "closed" and "first_response_at" in obj
        result.per_manager[manager]["chats_served" if served else "chats_missed"] += 1
    for data in _payloads(traffic, SourceFamily.CRM):
        obj = _parse_json(data, "occurred_at")
        if obj is None:
            result.malformed_records += 1
            continue
        result.valid_records += 1
        result.canonical_events += 1
        manager = owner.get(("crm", obj["user_id"]))
        if manager is None:
            result.unattributed_events += 1
        elif obj["type"] in _CRM_COUNTERS:
            result.per_manager[manager][_CRM_COUNTERS[obj["type"]]] += 1
    return result


def _summary(expected: Expected) -> dict[str, Any]:
    data = expected.to_dict()
    data.pop("malformed_by_format")
    return data


# --- population and directory ----------------------------------------------------------------


def test_population_identities_are_unique_and_zones_cycle(population: Population) -> None:
    assert [dep.id for dep in population.departments][:2] == ["dep-01", "dep-02"]
    zones = [dep.timezone for dep in population.departments]
    assert zones[0] == "Europe/Kaliningrad"
    assert "Europe/Berlin" in zones
    extensions = [man.extension for man in population.managers]
    assert len(set(extensions)) == len(extensions)
    assert all(re.fullmatch(r"\d{3,4}", ext) for ext in extensions)
    first = population.managers[0]
    assert (first.id, first.extension, first.chat_operator, first.crm_user) == (
        "m-0001",
        "1001",
        "op-1001",
        "u-1001",
    )
    assert all(len(population.members(dep.id)) == 4 for dep in population.departments)
    assert make_population(24, 6, seed=3) == population


def test_directory_yaml_round_trip(population: Population, tmp_path: Path) -> None:
    path = tmp_path / "directory.yaml"
    write_directory_yaml(population, path)
    loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert loaded["departments"][0] == {
        "id": "dep-01",
        "name": "Kaliningrad sales",
        "timezone": "Europe/Kaliningrad",
    }
    manager = loaded["managers"][0]
    assert manager["id"] == "m-0001"
    assert manager["department"] == "dep-01"
    assert manager["identities"] == [
        {"family": "pbx", "id": "1001"},
        {"family": "chat", "id": "op-1001"},
        {"family": "crm", "id": "u-1001"},
    ]
    assert len(loaded["managers"]) == len(population.managers)
    assert '      - {family: pbx, id: "1001"}\n' in directory_yaml(population)


# --- reproducibility and realism -------------------------------------------------------------


def test_same_seed_gives_identical_bytes_and_another_seed_does_not(
    population: Population, week: Traffic
) -> None:
    again = simulate(population, WEEK_START, WEEK_END, seed=11, malformed_share=0.0, now=LONG_AGO)
    assert again.records == week.records
    assert again.expected.to_json() == week.expected.to_json()
    other = simulate(population, WEEK_START, WEEK_END, seed=12, malformed_share=0.0, now=LONG_AGO)
    assert _payloads(other, SourceFamily.PBX) != _payloads(week, SourceFamily.PBX)
    assert _payloads(other, SourceFamily.CRM) != _payloads(week, SourceFamily.CRM)


def _local_times(traffic: Traffic) -> list[datetime]:
    zone_of_extension = {
        man.extension: traffic.population.department_of(man).zone
        for man in traffic.population.managers
    }
    times = []
    for data in _payloads(traffic, SourceFamily.PBX):
        fields = next(csv.reader([data.decode()]))
        extension = _resource(fields[6]) or _resource(fields[5])
        if extension in zone_of_extension:
            start = datetime.strptime(fields[9], "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
            times.append(start.astimezone(zone_of_extension[extension]))
    for data in _payloads(traffic, SourceFamily.CHAT):
        times.append(datetime.fromisoformat(json.loads(data)["started_at"]))
    for data in _payloads(traffic, SourceFamily.CRM):
        times.append(datetime.fromisoformat(json.loads(data)["occurred_at"]))
    return times


def test_no_activity_at_lunch_or_on_weekends(week: Traffic) -> None:
    times = _local_times(week)
    assert len(times) > 5000
    assert all(moment.weekday() < 5 for moment in times)
    assert not [moment for moment in times if moment.hour == 13]
    assert all(8 <= moment.hour < 20 for moment in times)
    in_hours = [moment for moment in times if 9 <= moment.hour < 18]
    assert len(in_hours) > 0.95 * len(times)


def test_json_offsets_follow_the_department_zone_across_dst(week: Traffic) -> None:
    zone_of_operator = {
        man.chat_operator: week.population.department_of(man).zone
        for man in week.population.managers
    }
    berlin_offsets = set()
    for data in _payloads(week, SourceFamily.CHAT):
        obj = json.loads(data)
        zone = zone_of_operator.get(obj["operator_id"])
        if zone is None:
            continue
        started = datetime.fromisoformat(obj["started_at"])
        assert started.utcoffset() == started.astimezone(zone).utcoffset()
        if str(zone) == "Europe/Berlin":
            berlin_offsets.add(started.utcoffset())
    assert berlin_offsets == {timedelta(hours=1), timedelta(hours=2)}


def test_nothing_from_the_future(population: Population) -> None:
    now = datetime(2026, 3, 25, 11, 30, tzinfo=UTC)
    traffic = simulate(population, WEEK_START, WEEK_END, seed=2, malformed_share=0.0, now=now)
    ends = []
    for data in _payloads(traffic, SourceFamily.PBX):
        fields = next(csv.reader([data.decode()]))
        ends.append(datetime.strptime(fields[11], "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC))
    for data in _payloads(traffic, SourceFamily.CHAT):
        ends.append(datetime.fromisoformat(json.loads(data)["closed_at"]))
    for data in _payloads(traffic, SourceFamily.CRM):
        ends.append(datetime.fromisoformat(json.loads(data)["occurred_at"]))
    assert ends
    assert max(ends) < now
    assert max(ends) > now - timedelta(hours=1)

    wall_clock = datetime.now(UTC)
    wall = simulate(
        population, wall_clock - timedelta(days=3), wall_clock + timedelta(days=2), seed=2
    )
    stamps = [record.ready for records in wall.records.values() for record in records]
    assert all(stamp < time.time() for stamp in stamps)


def test_call_shapes_are_realistic(week: Traffic) -> None:
    outgoing = answered_out = 0
    billsecs = []
    for data in _payloads(week, SourceFamily.PBX):
        fields = next(csv.reader([data.decode()]))
        assert int(fields[12]) >= int(fields[13])
        assert (fields[10] == "") == (fields[14] != "ANSWERED")
        if fields[14] != "ANSWERED":
            assert fields[13] == "0"
        else:
            billsecs.append(int(fields[13]))
        if fields[3] == "from-internal" and fields[6].startswith("SIP/provider-"):
            outgoing += 1
            answered_out += fields[14] == "ANSWERED"
    assert 0.25 < 1 - answered_out / outgoing < 0.35
    assert sum(b < 30 for b in billsecs) > 0.2 * len(billsecs)
    assert any(b > 600 for b in billsecs)
    calls = [week.expected.manager(man.id) for man in week.population.managers]
    per_manager = [c["calls_outgoing"] for c in calls]
    assert max(per_manager) > 1.5 * min(per_manager)


def test_malformed_share_is_close_to_requested_and_really_malformed(noisy: Traffic) -> None:
    expected = noisy.expected
    total = expected.malformed_records + expected.valid_records
    assert total > 3000
    assert abs(expected.malformed_records / total - 0.05) < 0.015
    assert set(expected.malformed_by_format) == {CDR_FORMAT, CHAT_FORMAT, CRM_FORMAT}
    assert reference_count(noisy).malformed_records == expected.malformed_records


@pytest.mark.parametrize("traffic_name", ["week", "noisy"])
def test_expected_matches_an_independent_count(
    traffic_name: str, request: pytest.FixtureRequest
) -> None:
    traffic: Traffic = request.getfixturevalue(traffic_name)
    assert _summary(reference_count(traffic)) == _summary(traffic.expected)
    assert traffic.expected.unattributed_events > 0


def test_expected_is_internally_consistent(week: Traffic) -> None:
    for man in week.population.managers:
        c = week.expected.manager(man.id)
        calls = c["calls_incoming"] + c["calls_outgoing"] + c["calls_internal"]
        assert c["calls_answered"] <= calls
        assert c["conversations"] <= c["calls_answered"]
        assert c["calls_missed"] <= c["calls_incoming"]
        assert c["talk_seconds"] >= 30 * c["conversations"]
        assert c["tasks_completed"] <= c["tasks_created"]
    assert week.expected.totals()["calls_internal"] % 2 == 0
    assert Expected.from_json(week.expected.to_json()) == week.expected


# --- a hand-made scenario --------------------------------------------------------------------


def _call(kind: str, start: int, **fields: Any) -> CallTruth:
    base: dict[str, Any] = {
        "src": "79161234567",
        "dst": "",
        "clid": '"Client" <79161234567>',
        "caller": None,
        "callee": None,
        "trunk": None,
        "lastapp": "Dial",
        "lastdata": "",
        "ring": 7,
        "billsec": 0,
        "disposition": "ANSWERED",
    }
    return CallTruth(kind=kind, start=start, **{**base, **fields})  # type: ignore[arg-type]


def test_hand_made_scenario() -> None:
    pop = make_population(3, 1, seed=1)
    a, b, c = pop.managers
    t0 = int(datetime(2026, 11, 26, 9, 15, 2, tzinfo=UTC).timestamp())
    calls = [
        _call(
            "incoming", t0, dst="1001", callee=a, trunk="t1", billsec=151, lastdata="SIP/1001,30"
        ),
        _call("incoming", t0 + 158, dst="1002", callee=b, trunk="t1", billsec=20),
        _call("internal", t0 + 300, src="1001", dst="1003", caller=a, callee=c, billsec=100),
        _call(
            "incoming", t0 + 400, dst="601", callee=b, billsec=25, lastdata="SIP/1001&SIP/1002,30"
        ),
        _call("incoming", t0 + 500, dst="1003", callee=c, disposition="NO ANSWER"),
        _call("outgoing", t0 + 600, src="1001", dst="79160000000", caller=a, disposition="BUSY"),
        _call("outgoing", t0 + 700, src="1001", dst="79160000001", caller=a, billsec=700),
        _call("unrouted", t0 + 800, dst="74951234567", lastapp="Hangup", disposition="NO ANSWER"),
    ]
    offset = 2 * 3600

    def chat(operator: str, manager: str | None, served: bool) -> ChatTruth:
        first = t0 + 30 if served else None
        status = "closed" if served else "missed"
        return ChatTruth(
            "s-1", operator, manager, "vk", offset, t0, first, t0 + 600, status, "c-1", 3
        )

    def crm(kind: str, manager: str, user: str) -> CrmTruth:
        return CrmTruth(f"e-{kind}", kind, user, manager, offset, t0 + 900)

    truth = Truth(
        calls=calls,
        chats=[chat("op-1001", a.id, True), chat("op-1002", b.id, False), chat("op-x", None, True)],
        crm=[
            crm("lead.created", a.id, "u-1001"),
            crm("lead.worked", a.id, "u-1001"),
            crm("task.created", a.id, "u-1001"),
            crm("task.completed", a.id, "u-1001"),
            crm("workday.start", a.id, "u-1001"),
            CrmTruth("e-pay", "payment.received", "u-1003", c.id, offset, t0, None, "10.50", "RUB"),
        ],
    )
    traffic = build_traffic(pop, truth, seed=0, malformed_share=0.0, pbx_id="pbx-1")
    got = traffic.expected
    assert {k: v for k, v in got.manager(a.id).items() if v} == {
        "calls_incoming": 1,
        "calls_outgoing": 2,
        "calls_internal": 1,
        "calls_answered": 3,
        "calls_incoming_answered": 1,
        "calls_outgoing_answered": 1,  # the 700 s call; the busy one reached nobody
        "conversations": 2,  # with customers; the internal call to c is counted apart
        "talk_seconds": 151 + 700,
        "internal_talk_seconds": 100,
        "chats_served": 1,
        "leads": 2,
        "tasks_created": 1,
        "tasks_completed": 1,
    }
    assert {k: v for k, v in got.manager(b.id).items() if v} == {
        "calls_incoming": 2,
        "calls_answered": 2,
        "calls_incoming_answered": 2,
        "talk_seconds": 45,
        "chats_missed": 1,
    }
    assert {k: v for k, v in got.manager(c.id).items() if v} == {
        "calls_incoming": 1,
        "calls_internal": 1,
        "calls_answered": 1,
        "calls_missed": 1,
        "internal_talk_seconds": 100,
        "payments": 1,
    }
    assert (got.unattributed_events, got.valid_records, got.canonical_events) == (2, 17, 18)
    assert got.malformed_records == 0
    assert _summary(reference_count(traffic)) == _summary(got)

    lines = [line.decode() for line in _payloads(traffic, SourceFamily.PBX)]
    assert lines[0] == (
        '"","79161234567","1001","from-trunk","""Client"" <79161234567>",'
        '"SIP/provider-00000001","SIP/1001-00000002","Dial","SIP/1001,30",'
        '"2026-11-26 09:15:02","2026-11-26 09:15:09","2026-11-26 09:17:40",158,151,'
        '"ANSWERED","DOCUMENTATION"'
    )
    second = next(csv.reader([lines[1]]))
    assert second[5] == "SIP/provider-00000001"
    assert second[6] == "SIP/1002-00000003"
    internal = next(csv.reader([lines[2]]))
    assert (_resource(internal[5]), _resource(internal[6])) == ("1001", "1003")
    unrouted = next(csv.reader([lines[-1]]))
    assert (unrouted[2], unrouted[6], unrouted[10], unrouted[13]) == ("74951234567", "", "", "0")
    payment = json.loads(_payloads(traffic, SourceFamily.CRM)[-1])
    assert payment == {
        "id": "e-pay",
        "type": "payment.received",
        "user_id": "u-1003",
        "occurred_at": "2026-11-26T11:15:02+02:00",
        "amount": "10.50",
        "currency": "RUB",
    }


# --- framing and output ----------------------------------------------------------------------


def test_framing_chunks_cdrs_and_keeps_each_key_in_order(week: Traffic) -> None:
    messages = frame_messages(week.all_records())
    cdr = [m for m in messages if m.family is SourceFamily.PBX]
    assert all(m.records <= 50 for m in cdr)
    assert sum(m.records for m in cdr) == len(week.records[SourceFamily.PBX])
    assert b"\n".join(m.value for m in cdr) == b"\n".join(_payloads(week, SourceFamily.PBX))
    chats = [m for m in messages if m.family is SourceFamily.CHAT]
    assert all(m.records == 1 and m.value.count(b"\n") == 0 for m in chats)
    assert [m.at for m in messages] == sorted(m.at for m in messages)

    lines = frame_messages(week.all_records(), json_lines_per_message=3)
    crm = [m for m in lines if m.family is SourceFamily.CRM]
    assert max(m.records for m in crm) == 3
    by_key: dict[bytes, list[str]] = {}
    for message in crm:
        for line in message.value.split(b"\n"):
            by_key.setdefault(message.key, []).append(json.loads(line)["occurred_at"])
    for stamps in by_key.values():
        parsed = [datetime.fromisoformat(stamp) for stamp in stamps]
        assert parsed == sorted(parsed)


def test_write_files(week: Traffic, tmp_path: Path) -> None:
    paths = write_files(week, tmp_path / "out")
    assert sorted(p.name for p in paths) == sorted(
        ["Master.csv", "chat-sessions.jsonl", "crm-events.jsonl", "expected.json", "directory.yaml"]
    )
    master = (tmp_path / "out" / "Master.csv").read_bytes()
    assert master.count(b"\n") == len(week.records[SourceFamily.PBX])
    expected = Expected.from_json((tmp_path / "out" / "expected.json").read_text())
    assert expected == week.expected
    assert set(json.loads((tmp_path / "out" / "expected.json").read_text())["totals"]) == set(
        COUNTERS
    )
