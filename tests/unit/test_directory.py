"""The manager directory: attribution at the event time, validation, reload without restart."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from salespulse.directory import (
    Attribution,
    DirectoryError,
    DirectoryWatcher,
    load_directory,
    parse_directory,
)
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
