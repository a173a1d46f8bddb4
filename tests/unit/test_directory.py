"""The manager directory: attribution at the event time, validation, reload without restart."""

from __future__ import annotations

import json
import os
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from salespulse.calendar import Absence, AbsenceKind
from salespulse.directory import (
    Attribution,
    Directory,
    DirectoryError,
    DirectoryFile,
    DirectoryWatcher,
    load_directory,
    parse_directory,
    parse_directory_file,
)
from salespulse.directory_messages import MAX_ENTRY_BYTES, encode_value
from salespulse.directory_publish import read_absence_file
from salespulse.directory_topic import absences_of, entry_key, merge, parse_message
from salespulse.models import Actor, SourceFamily

YAML = """
departments:
  - {id: msk, name: Moscow sales, timezone: Europe/Moscow}
  - {id: vvo, name: Vladivostok sales, timezone: Asia/Vladivostok}
managers:
  - id: ivanova
    name: Anna Ivanova
    department: msk
    identities:
      - {family: pbx, id: "101", valid_to: "2026-11-26T09:00:00Z"}
      - {family: crm, id: "u-1"}
  - id: petrov
    name: Pavel Petrov
    department: vvo
    identities:
      - {family: pbx, id: "101", valid_from: "2026-11-26T09:00:00Z"}
      - {family: chat, id: "op-7"}
"""

PBX_101 = Actor(SourceFamily.PBX, "101")


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def test_extension_reassigned_at_noon_moscow_belongs_to_old_owner_before() -> None:
    directory = parse_directory(YAML, suffix=".yaml")
    # 09:00 UTC is 12:00 in Moscow: the hand-over moment.
    assert directory.resolve(PBX_101, at("2026-11-26 08:59:59")) == Attribution("ivanova", "msk")
    assert directory.resolve(PBX_101, at("2026-11-26 09:00:00")) == Attribution("petrov", "vvo")


def test_identity_families_are_separate_namespaces() -> None:
    directory = parse_directory(YAML, suffix=".yaml")
    assert directory.resolve(Actor(SourceFamily.CRM, "101"), at("2026-11-26 08:00")) is None
    assert directory.resolve(Actor(SourceFamily.CRM, "u-1"), at("2026-11-26 08:00")) == (
        Attribution("ivanova", "msk")
    )


def test_unknown_identity_is_unattributed() -> None:
    directory = parse_directory(YAML, suffix=".yaml")
    assert directory.resolve(Actor(SourceFamily.PBX, "999"), at("2026-11-26 08:00")) is None


def test_overlapping_holders_are_rejected_with_both_names() -> None:
    text = YAML.replace('valid_from: "2026-11-26T09:00:00Z"', 'valid_from: "2026-11-26T08:00:00Z"')
    with pytest.raises(DirectoryError, match=r"ivanova.*petrov"):
        parse_directory(text, suffix=".yaml")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("departments: []\nmanagers: [{id: a, department: nowhere}]", "unknown department"),
        ("departments: [{id: d, timezone: Mars/Olympus}]\nmanagers: []", "unknown time zone"),
        # A folder of the tz database, as a file cut short after "Europe" reads.
        ("departments: [{id: d, timezone: Europe}]\nmanagers: []", "unknown time zone"),
        # A date YAML recognises that Python cannot hold (what a fuzzer found): a parse error.
        ("0000-00-00", "'0000-00-00' is not a valid date or time"),
        ("- just a list", "must be a mapping"),
        ("departments: [\n", "does not parse"),
        (
            "departments: [{id: d, timezone: UTC}]\n"
            "managers: [{id: a, department: d, identities: [{family: fax, id: '1'}]}]",
            "invalid",
        ),
    ],
)
def test_bad_directory_files_name_the_problem(text: str, message: str) -> None:
    with pytest.raises(DirectoryError, match=message):
        parse_directory(text, suffix=".yaml")


def test_csv_directory_matches_yaml(tmp_path: Path) -> None:
    path = tmp_path / "directory.csv"
    path.write_text(
        "manager_id,manager_name,department_id,department_name,timezone,family,identity,"
        "valid_from,valid_to\n"
        "ivanova,Anna Ivanova,msk,Moscow sales,Europe/Moscow,pbx,101,,2026-11-26T09:00:00Z\n"
        "ivanova,Anna Ivanova,msk,Moscow sales,Europe/Moscow,crm,u-1,,\n"
        "petrov,Pavel Petrov,vvo,Vladivostok sales,Asia/Vladivostok,pbx,101,"
        "2026-11-26T09:00:00Z,\n"
    )
    directory = load_directory(path)
    assert directory.resolve(PBX_101, at("2026-11-26 08:00")) == Attribution("ivanova", "msk")
    assert directory.resolve(PBX_101, at("2026-11-26 10:00")) == Attribution("petrov", "vvo")
    assert str(directory.timezone_of("vvo")) == "Asia/Vladivostok"


def test_watcher_reloads_changes_and_keeps_last_good_directory(tmp_path: Path) -> None:
    path = tmp_path / "directory.yaml"
    path.write_text(YAML)
    watcher = DirectoryWatcher(path)
    assert not watcher.refresh()

    path.write_text(YAML.replace("op-7", "op-8"))
    os.utime(path, ns=(1, 1))  # a distinct stamp even on coarse-mtime file systems
    assert watcher.refresh()
    assert watcher.current.resolve(Actor(SourceFamily.CHAT, "op-8"), at("2026-11-26 10:00"))

    path.write_text("departments: [\n")
    os.utime(path, ns=(2, 2))
    assert not watcher.refresh()
    assert watcher.last_error is not None
    assert "does not parse" in watcher.last_error
    # The broken file did not wipe attribution.
    assert watcher.current.resolve(Actor(SourceFamily.CHAT, "op-8"), at("2026-11-26 10:00"))


# The directory topic's overlay: merge() and the watcher's use of it.

CHAT_OP_7 = Actor(SourceFamily.CHAT, "op-7")


def base() -> DirectoryFile:
    return parse_directory_file(YAML, suffix=".yaml")


def manager(**fields: object) -> bytes:
    return json.dumps(fields).encode()


def test_topic_entry_overrides_the_file_entry_with_the_same_id() -> None:
    value = manager(id="petrov", department="msk", identities=[{"family": "chat", "id": "op-9"}])
    directory = Directory.from_model(merge(base(), {"manager:petrov": value}))
    assert directory.managers["petrov"].department == "msk"
    assert directory.resolve(CHAT_OP_7, at("2026-11-26 10:00")) is None
    assert directory.resolve(Actor(SourceFamily.CHAT, "op-9"), at("2026-11-26 10:00")) == (
        Attribution("petrov", "msk")
    )
    # The file's other entries are untouched.
    assert directory.resolve(PBX_101, at("2026-11-26 08:00")) == Attribution("ivanova", "msk")


@pytest.mark.parametrize("tombstone", [None, b""])
def test_tombstone_removes_the_file_entry(tombstone: bytes | None) -> None:
    directory = Directory.from_model(merge(base(), {"manager:petrov": tombstone}))
    assert "petrov" not in directory.managers
    assert directory.resolve(PBX_101, at("2026-11-26 10:00")) is None
    assert directory.resolve(PBX_101, at("2026-11-26 08:00")) == Attribution("ivanova", "msk")


def test_tombstone_of_an_entry_nobody_has_changes_nothing() -> None:
    assert merge(base(), {"manager:nobody": None, "department:nowhere": None}) == base()


def test_new_manager_and_department_from_the_topic() -> None:
    overlay = {
        "department:ekb": json.dumps({"id": "ekb", "timezone": "Asia/Yekaterinburg"}).encode(),
        "manager:sidorova": manager(
            id="sidorova",
            department="ekb",
            identities=[{"family": "pbx", "id": "205", "valid_from": "2026-11-26T00:00:00Z"}],
        ),
    }
    directory = Directory.from_model(merge(base(), overlay))
    pbx_205 = Actor(SourceFamily.PBX, "205")
    assert directory.resolve(pbx_205, at("2026-11-26 10:00")) == Attribution("sidorova", "ekb")
    assert directory.resolve(pbx_205, at("2026-11-25 10:00")) is None
    assert str(directory.timezone_of("ekb")) == "Asia/Yekaterinburg"
    assert set(directory.managers) == {"ivanova", "petrov", "sidorova"}


def test_topic_entry_creating_overlapping_holders_is_rejected_like_the_file() -> None:
    # Sidorova takes extension 101 while Ivanova still holds it.
    value = manager(id="sidorova", department="msk", identities=[{"family": "pbx", "id": "101"}])
    with pytest.raises(DirectoryError, match=r"'101'.*held by.*sidorova"):
        Directory.from_model(merge(base(), {"manager:sidorova": value}))


def test_manager_of_a_deleted_department_is_rejected() -> None:
    with pytest.raises(DirectoryError, match="unknown department 'vvo'"):
        Directory.from_model(merge(base(), {"department:vvo": b""}))


def test_entry_round_trips_through_its_topic_form() -> None:
    entry = base().managers[0]
    kind, entry_id, parsed = parse_message(
        entry_key(entry), entry.model_dump_json(exclude_none=True).encode()
    )
    assert (kind, entry_id, parsed) == ("manager", "ivanova", entry)


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("ivanova", b"{}", "not manager:<id>"),
        ("team:x", b"{}", "not manager:<id>"),
        ("manager:", b"{}", "not manager:<id>"),
        ("manager:x", b"{not json", "not a valid manager entry: value: Invalid JSON"),
        ("manager:x", b'{"id": "x"}', "department: Field required"),
        ("manager:x", b'{"id": "x", "department": "d", "boss": 1}', "boss: Extra inputs"),
        ("manager:x", b'{"id": "y", "department": "d"}', "the value's id is 'y'"),
        ("department:d", b'{"id": "d", "timezone": "Mars/Olympus"}', "unknown time zone"),
    ],
)
def test_bad_topic_messages_name_the_problem(key: str, value: bytes, message: str) -> None:
    with pytest.raises(DirectoryError, match=message):
        parse_message(key, value)


# Absences on the directory topic: key absence:<id>, value one absence of the calendar file.


def absence(manager: str, start: str, end: str, kind: str) -> bytes:
    return json.dumps({"manager": manager, "from": start, "to": end, "kind": kind}).encode()


VACATION = absence("ivanova", "2026-12-01", "2026-12-14", "vacation")
TRIP = absence("petrov", "2026-11-26T14:00:00+10:00", "2026-11-26T18:00:00+10:00", "business_trip")


def test_absence_of_whole_days_from_the_topic() -> None:
    kind, absence_id, parsed = parse_message("absence:hr-4711", VACATION)
    assert (kind, absence_id) == ("absence", "hr-4711")
    assert isinstance(parsed, Absence)
    assert parsed.whole_days
    assert (parsed.manager, parsed.from_, parsed.to, parsed.kind) == (
        "ivanova",
        date(2026, 12, 1),
        date(2026, 12, 14),
        AbsenceKind.VACATION,
    )


def test_absence_of_exact_times_is_kept_in_utc() -> None:
    _, absence_id, parsed = parse_message("absence:crm/trip/17", TRIP)
    assert absence_id == "crm/trip/17"
    assert isinstance(parsed, Absence)
    assert not parsed.whole_days
    assert (parsed.from_, parsed.to) == (
        datetime(2026, 11, 26, 4, tzinfo=UTC),
        datetime(2026, 11, 26, 8, tzinfo=UTC),
    )
    assert parsed.kind is AbsenceKind.BUSINESS_TRIP


@pytest.mark.parametrize("tombstone", [None, b""])
def test_absence_deletion(tombstone: bytes | None) -> None:
    assert parse_message("absence:hr-4711", tombstone) == ("absence", "hr-4711", None)


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        (
            "absence:hr-1",
            absence("ivanova", "2026-12-01T09:00:00", "2026-12-01T18:00:00", "sick_leave"),
            r"^absence:hr-1: not a valid absence: from: '2026-12-01T09:00:00' needs a UTC offset",
        ),
        (
            "absence:hr-1",
            absence("ivanova", "2026-12-14", "2026-12-01", "vacation"),
            r"^absence:hr-1: not a valid absence: value: absence of 'ivanova' from 2026-12-14 to "
            r"2026-12-01: 'to' is before 'from'$",
        ),
        (
            "absence:hr-1",
            absence("ivanova", "2026-12-01", "2026-12-14", "holiday"),
            r"^absence:hr-1: not a valid absence: kind: Input should be 'vacation', 'sick_leave'",
        ),
        (
            "absence:hr-1",
            absence("ivanova", "2026-12-01", "2026-12-01T18:00:00Z", "other"),
            "two dates or two times",
        ),
        ("absence:hr-1", b'{"manager": "ivanova", "kind": "other"}', "from: Field required"),
        ("absence:hr-1", b"[1, 2]", "value: Input should be an object"),
        ("absence:", VACATION, "an absence id is 1-128 letters"),
        ("absence:hr 1", VACATION, "an absence id is 1-128 letters"),
        ("absence:" + "x" * 129, VACATION, "an absence id is 1-128 letters"),
        ("absence:hr-1", b" " * (MAX_ENTRY_BYTES + 1), "^absence:hr-1: value of .* is over"),
    ],
)
def test_bad_absences_name_the_key_and_the_problem(key: str, value: bytes, message: str) -> None:
    with pytest.raises(DirectoryError, match=message):
        parse_message(key, value)


@pytest.mark.parametrize("value", [VACATION, TRIP])
def test_absence_round_trips_through_its_topic_form(value: bytes) -> None:
    _, _, parsed = parse_message("absence:a", value)
    assert isinstance(parsed, Absence)
    assert parse_message("absence:a", encode_value(parsed)) == ("absence", "a", parsed)


def test_merge_leaves_absences_out_of_the_directory() -> None:
    # Not even an invalid one can make the directory inconsistent: workers skip it on reading.
    assert merge(base(), {"absence:hr-1": VACATION, "absence:hr-2": b"garbage"}) == base()


def test_absences_of_lists_the_current_absences_only() -> None:
    entries: dict[str, bytes | None] = {
        "manager:petrov": manager(id="petrov", department="vvo"),
        "absence:hr-2": TRIP,
        "absence:hr-1": VACATION,
        "absence:hr-0": b"",
        "absence:hr-9": None,
    }
    assert [(a.manager, a.kind.value) for a in absences_of(entries)] == [
        ("ivanova", "vacation"),
        ("petrov", "business_trip"),
    ]
    assert absences_of({}) == ()


def test_documented_absence_messages_and_file_parse(tmp_path: Path) -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "calendar.md").read_text("utf-8")
    section = doc.split("## Absences from Kafka", 1)[1]
    kcat = [line.split("|", 1) for line in section.splitlines() if line.startswith("absence:")]
    parsed = [parse_message(key, value.encode()) for key, value in kcat]
    assert [(kind, absence_id, content is None) for kind, absence_id, content in parsed] == [
        ("absence", "hr-4711", False),
        ("absence", "hr-4699", True),
    ]
    path = tmp_path / "vacation.yaml"
    path.write_text(section.split("```yaml\n", 1)[1].split("```", 1)[0])
    assert read_absence_file(path) == parsed[0][2]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        # YAML would read these as a naive time and as an error without a place; both are named.
        ("from: 2026-12-01T09:00:00\nto: 2026-12-01T18:00:00\n", "needs a UTC offset"),
        ("from: 2026-13-01\nto: 2026-12-14\n", "'2026-13-01' is neither a date"),
        ("from: 2026-12-01\nto: 2026-12-14\nkind: leave\n", "kind"),
    ],
)
def test_bad_absence_files_name_the_problem(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "absence.yaml"
    path.write_text("manager: ivanova\n" + text + ("" if "kind" in text else "kind: other\n"))
    with pytest.raises(DirectoryError, match=rf"absence\.yaml: not a valid absence: .*{message}"):
        read_absence_file(path)
    path.write_text("- just a list\n")
    with pytest.raises(DirectoryError, match="expected one absence, a mapping"):
        read_absence_file(path)


class FakeOverlay:
    """What DirectoryWatcher needs of DirectoryTopic, without a broker."""

    def __init__(self, loaded: bool = True) -> None:
        self.entries: dict[str, bytes | None] = {}
        self.version = 0
        self.loaded = loaded

    def apply(self, base: DirectoryFile) -> DirectoryFile:
        return merge(base, self.entries)

    def put(self, key: str, value: bytes | None) -> None:
        self.entries[key] = value
        self.version += 1


def test_watcher_applies_topic_changes_and_keeps_the_last_good_merge(tmp_path: Path) -> None:
    path = tmp_path / "directory.yaml"
    path.write_text(YAML)
    overlay = FakeOverlay()
    watcher = DirectoryWatcher(path, overlay)
    assert watcher.refresh()  # the overlay, empty or not, takes effect at the first refresh
    assert not watcher.refresh()

    overlay.put("manager:petrov", manager(id="petrov", department="msk"))
    assert watcher.refresh()
    assert watcher.current.resolve(CHAT_OP_7, at("2026-11-26 10:00")) is None

    overlay.put(
        "manager:sidorova",
        manager(id="sidorova", department="msk", identities=[{"family": "pbx", "id": "101"}]),
    )
    assert not watcher.refresh()
    assert watcher.last_error is not None
    assert "version 2" in watcher.last_error
    assert "sidorova" in watcher.last_error
    # The rejected update did not wipe attribution, nor undo the accepted one before it.
    assert watcher.current.resolve(PBX_101, at("2026-11-26 08:00")) == Attribution("ivanova", "msk")
    assert "sidorova" not in watcher.current.managers
    assert watcher.current.managers["petrov"].identities == []
    assert not watcher.refresh()  # reported once, not at every batch

    overlay.put("manager:sidorova", None)
    assert watcher.refresh()
    assert watcher.last_error is None
    assert watcher.reloads == 3


def test_watcher_ignores_an_overlay_until_it_is_loaded(tmp_path: Path) -> None:
    path = tmp_path / "directory.yaml"
    path.write_text(YAML)
    overlay = FakeOverlay(loaded=False)
    overlay.put("manager:petrov", None)
    watcher = DirectoryWatcher(path, overlay)
    assert not watcher.refresh()
    assert "petrov" in watcher.current.managers
    overlay.loaded = True
    assert watcher.refresh()
    assert "petrov" not in watcher.current.managers


def test_watcher_merges_a_changed_file_with_the_topic(tmp_path: Path) -> None:
    path = tmp_path / "directory.yaml"
    path.write_text(YAML)
    overlay = FakeOverlay()
    overlay.put("manager:petrov", None)
    watcher = DirectoryWatcher(path, overlay)
    assert watcher.refresh()

    path.write_text(YAML.replace("op-7", "op-8").replace('"u-1"', '"u-2"'))
    os.utime(path, ns=(1, 1))
    assert watcher.refresh()
    assert watcher.current.resolve(Actor(SourceFamily.CRM, "u-2"), at("2026-11-26 10:00"))
    assert "petrov" not in watcher.current.managers  # the topic still wins over the new file


def test_watcher_keeps_applying_topic_changes_while_the_file_is_broken(tmp_path: Path) -> None:
    path = tmp_path / "directory.yaml"
    path.write_text(YAML)
    overlay = FakeOverlay()
    watcher = DirectoryWatcher(path, overlay)
    assert watcher.refresh()

    path.write_text("departments: [\n")
    os.utime(path, ns=(1, 1))
    overlay.put("manager:petrov", None)
    assert not watcher.refresh()
    assert watcher.last_error is not None
    assert "does not parse" in watcher.last_error
    watcher.last_error = None  # as the worker does once it reported the error
    # The topic's change applies to the last good file.
    assert watcher.refresh()
    assert "petrov" not in watcher.current.managers
    assert "ivanova" in watcher.current.managers


def test_watcher_rejects_a_file_inconsistent_on_its_own_even_if_the_topic_mends_it(
    tmp_path: Path,
) -> None:
    path = tmp_path / "directory.yaml"
    path.write_text(YAML)
    overlay = FakeOverlay()
    overlay.put("manager:petrov", None)
    watcher = DirectoryWatcher(path, overlay)
    assert watcher.refresh()
    # Petrov takes 101 an hour early in the file; the topic deletes him, but other commands
    # read the file alone, so it must stand on its own.
    path.write_text(
        YAML.replace('valid_from: "2026-11-26T09:00:00Z"', 'valid_from: "2026-11-26T08:00:00Z"')
    )
    os.utime(path, ns=(1, 1))
    assert not watcher.refresh()
    assert watcher.last_error is not None
    assert "at the same time" in watcher.last_error


def test_the_same_id_in_two_families_names_two_people_each_in_its_own_period() -> None:
    directory = parse_directory(
        "departments: [{id: msk, timezone: Europe/Moscow}]\n"
        "managers:\n"
        "  - {id: a, department: msk, identities: [{family: pbx, id: '7',"
        " valid_to: '2026-11-26T12:00:00Z'}, {family: crm, id: '8'}]}\n"
        "  - {id: b, department: msk, identities: [{family: crm, id: '7'},"
        " {family: pbx, id: '7', valid_from: '2026-11-26T12:00:00Z',"
        " valid_to: '2026-11-27T00:00:00Z'}]}\n",
        suffix=".yaml",
    )
    pbx, crm = Actor(SourceFamily.PBX, "7"), Actor(SourceFamily.CRM, "7")
    assert directory.resolve(pbx, at("2026-11-26T11:59:59Z")) == Attribution("a", "msk")
    assert directory.resolve(pbx, at("2026-11-26T12:00:00Z")) == Attribution("b", "msk")
    assert directory.resolve(pbx, at("2026-11-27T00:00:00Z")) is None
    assert directory.resolve(crm, at("2026-11-26T11:59:59Z")) == Attribution("b", "msk")
    assert directory.resolve(Actor(SourceFamily.CHAT, "7"), at("2026-11-26T11:00:00Z")) is None
    assert directory.resolve(Actor(SourceFamily.CRM, "8"), at("1999-01-01T00:00:00Z")) == (
        Attribution("a", "msk")
    )
    assert directory.resolve(Actor(SourceFamily.PBX, "8"), at("2026-11-26T11:00:00Z")) is None
