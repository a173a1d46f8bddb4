"""The operator's files and the directory topic are outside input too: whatever their bytes,
each loads or fails with its own error type (DirectoryError, CalendarError, RulesError) in
bounded time, never with an exception nobody reports as a bad file."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import assume, given
from hypothesis import strategies as st
from pydantic import ValidationError
from pydantic_settings import SettingsError

from processors.alerting.rules import RulesError, load_rules, parse_rules
from salespulse.calendar import CalendarError, load_calendar
from salespulse.calendar_ics import holidays_from_ics
from salespulse.directory import DirectoryError, load_directory, parse_directory_file
from salespulse.directory_messages import encode_value, merge, parse_message
from salespulse.sections import REPO_ROOT
from salespulse.settings import Settings
from salespulse.yaml_limits import MAX_DEPTH
from tests.unit.fuzzing import fuzz_settings, json_values, mutated, reshaped, truncated

EXAMPLES = REPO_ROOT / "salespulse" / "examples"
SAMPLES = REPO_ROOT / "tests" / "samples" / "calendar"
# Bytes that change a YAML document's structure: anchors and aliases, flow brackets,
# indentation, tags, merge keys, document markers, quotes and non-UTF-8.
YAML_BYTES = st.sampled_from(
    [b"&a ", b"*a", b"[", b"]", b"{", b"}", b": ", b"- ", b"\n  ", b"\n", b"\t", b"!!str ",
     b"!!binary ", b"<<: *a", b"---\n", b"...\n", b'"', b"'", b"#", b"%", b"\\", b"\xff", b"\x00",
     b"~", b"null", b"2026-13-45", b"24:00", b"99:99-00:00", b"+25:00"]
)  # fmt: skip
DIRECTORY_CSV = (
    b"manager_id,manager_name,department_id,department_name,timezone,family,identity,"
    b"valid_from,valid_to,role\n"
    b"ivanova,Anna Ivanova,msk,Moscow sales,Europe/Moscow,pbx,101,,,senior\n"
    b'petrov,"Petrov, Pavel",vvo,Vladivostok sales,Asia/Vladivostok,pbx,102,'
    b"2026-11-01T00:00:00+03:00,2026-12-01T00:00:00+03:00,\n"
)


class ConfigFile:
    """One kind of file: how it is loaded and the error that reports a bad one."""

    def __init__(
        self, suffix: str, samples: list[bytes], load: Callable[[Path], object], error: type
    ) -> None:
        self.suffix = suffix
        self.samples = samples
        self.load = load
        self.error = error


FILES = {
    "directory-yaml": ConfigFile(
        ".yaml",
        [(EXAMPLES / "directory.example.yaml").read_bytes()],
        load_directory,
        DirectoryError,
    ),
    "directory-csv": ConfigFile(".csv", [DIRECTORY_CSV], load_directory, DirectoryError),
    "calendar": ConfigFile(
        ".yaml",
        [
            (EXAMPLES / "calendar.example.yaml").read_bytes(),
            (SAMPLES / "calendar.yaml").read_bytes(),
        ],
        load_calendar,
        CalendarError,
    ),
    "rules": ConfigFile(
        ".yaml", [(EXAMPLES / "alerts.example.yaml").read_bytes()], load_rules, RulesError
    ),
    "holidays-ics": ConfigFile(
        ".ics",
        [(SAMPLES / "production-2026.ics").read_bytes()],
        # The parser takes text: the bytes' decoding is not what is fuzzed here.
        lambda path: holidays_from_ics(path.read_bytes().decode("utf-8", "replace")),
        CalendarError,
    ),
}
# A file loads in milliseconds, yet a hundred examples of each shape already take seconds.
FILE_FUZZ = fuzz_settings(100)
# Loading one small file is milliseconds, and the alias bombs above took minutes. Two seconds
# were once exceeded by an ordinary file while five test runs shared two cores.
SECONDS_PER_FILE = 10.0


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Module-scoped: hypothesis reruns a test body many times within one function-scoped one.
    return tmp_path_factory.mktemp("config-fuzz")


def load_or_refuse(kind: str, data: bytes, scratch: Path) -> None:
    config = FILES[kind]
    path = scratch / f"{kind}{config.suffix}"
    path.write_bytes(data)
    started = time.monotonic()
    try:
        config.load(path)
    except config.error as exc:
        problem = str(exc)
    else:
        problem = "loaded"
    assert problem, "an error must say what is wrong"
    assert time.monotonic() - started < SECONDS_PER_FILE


@pytest.mark.parametrize("kind", sorted(FILES))
@FILE_FUZZ
@given(data=st.data())
def test_mutated_files(kind: str, scratch: Path, data: st.DataObject) -> None:
    sample = data.draw(mutated(FILES[kind].samples, YAML_BYTES, max_copy=40))
    load_or_refuse(kind, sample, scratch)


@pytest.mark.parametrize("kind", sorted(FILES))
@FILE_FUZZ
@given(data=st.data())
def test_truncated_files(kind: str, scratch: Path, data: st.DataObject) -> None:
    load_or_refuse(kind, data.draw(truncated(FILES[kind].samples)), scratch)


@pytest.mark.parametrize("kind", sorted(FILES))
@FILE_FUZZ
@given(text=st.text(max_size=300))
def test_arbitrary_text(kind: str, scratch: Path, text: str) -> None:
    load_or_refuse(kind, text.encode("utf-8", "surrogatepass"), scratch)


# Values of every type in the places the files have entries: lists where a mapping belongs,
# numbers for times, nulls for names.
VALUES = json_values(
    ["", "x", "Europe/Moscow", "Mars/Olympus", "pbx", "chat", "crm", "fax", "09:00-18:00",
     "18:00-09:00", "13:00-14:00", "mon", "funday", "2026-11-26", "2026-02-30",
     "2026-11-01T00:00:00+03:00", "2026-11-01T00:00:00", "15m", "-1h", "0m", "calls_out",
     "warning", "dip", "pace"]
)  # fmt: skip


@st.composite
def reshaped_document(draw: st.DrawFn, sample: bytes) -> bytes:
    """The sample with fields of its top level and of one entry of each list changed."""
    document: dict[str, Any] = yaml.safe_load(sample)
    document = draw(reshaped(document, list(document), VALUES))
    for name, value in list(document.items()):
        if isinstance(value, list) and value and isinstance(value[0], dict):
            entry = draw(reshaped(value[0], list(value[0]), VALUES))
            document[name] = [entry, *value[1:]]
    return yaml.safe_dump(document, allow_unicode=True).encode()


@pytest.mark.parametrize("kind", ["directory-yaml", "calendar", "rules"])
@FILE_FUZZ
@given(data=st.data())
def test_entries_of_any_shape(kind: str, scratch: Path, data: st.DataObject) -> None:
    sample = data.draw(st.sampled_from(FILES[kind].samples))
    load_or_refuse(kind, data.draw(reshaped_document(sample)), scratch)


def alias_bomb(levels: int, fan_out: int = 9) -> str:
    """Each level's list holds ``fan_out`` aliases of the level below: ``fan_out ** levels``
    values in well under a kilobyte ("billion laughs")."""
    lines = ['l0: &l0 ["lol"]']
    for level in range(1, levels + 1):
        lines.append(f"l{level}: &l{level} [{', '.join([f'*l{level - 1}'] * fan_out)}]")
    return "\n".join(lines) + "\n"


HOSTILE_YAML = {
    "alias bomb": alias_bomb(9),
    "alias bomb as entries": alias_bomb(9).replace("l9: &l9", "managers: &l9"),
    "recursive alias": "managers: &m [*m]\n",
    "deep flow nesting": "departments: " + "[" * 10_000 + "]" * 10_000 + "\n",
    "deep block nesting": "departments:\n"
    + "".join(" " * depth + "- \n" for depth in range(MAX_DEPTH * 2)),
}


@pytest.mark.parametrize("kind", ["directory-yaml", "calendar", "rules"])
@pytest.mark.parametrize("shape", sorted(HOSTILE_YAML))
def test_hostile_yaml_is_refused_quickly(kind: str, shape: str, scratch: Path) -> None:
    config = FILES[kind]
    path = scratch / f"hostile{config.suffix}"
    path.write_text(HOSTILE_YAML[shape])
    started = time.monotonic()
    with pytest.raises(config.error, match="YAML does not parse"):
        config.load(path)
    assert time.monotonic() - started < SECONDS_PER_FILE


def test_a_csv_field_over_the_csv_limit_is_a_directory_error(scratch: Path) -> None:
    path = scratch / "huge-field.csv"
    path.write_bytes(DIRECTORY_CSV + b"x,x,msk,M,Europe/Moscow,pbx," + b"9" * 200_000 + b",,,\n")
    with pytest.raises(DirectoryError, match="CSV does not parse: field larger"):
        load_directory(path)


def test_aliases_within_the_bound_still_load() -> None:
    # An anchor reused for a second manager's department is ordinary YAML and keeps working.
    text = (
        "departments: [{id: msk, name: Moscow, timezone: Europe/Moscow}]\n"
        "managers:\n"
        "  - {id: a, department: &dep msk}\n"
        "  - {id: b, department: *dep}\n"
    )
    managers = parse_directory_file(text, suffix=".yaml").managers
    assert [manager.department for manager in managers] == ["msk", "msk"]


# --- the directory topic ----------------------------------------------------------------------

BASE = parse_directory_file((EXAMPLES / "directory.example.yaml").read_text(), suffix=".yaml")
ENTRY_VALUES = [encode_value(entry) for entry in (*BASE.managers, *BASE.departments)]
KEYS = st.one_of(
    st.sampled_from(["manager:ivanova", "manager:petrov", "department:msk", "absence:hr-1"]),
    st.text(max_size=20),
    st.builds("{}:{}".format, st.sampled_from(["manager", "department", "absence"]), st.text()),
)


@st.composite
def topic_values(draw: st.DrawFn) -> bytes | None:
    choice = draw(st.integers(0, 3))
    if choice == 0:
        return draw(st.one_of(st.none(), st.just(b""), st.binary(max_size=64)))
    if choice == 1:
        return draw(mutated(ENTRY_VALUES))
    sample = json.loads(draw(st.sampled_from(ENTRY_VALUES)))
    fields = ["id", "name", "department", "timezone", "role", "identities", "from", "to", "kind"]
    return json.dumps(draw(reshaped(sample, fields, VALUES))).encode()


@FILE_FUZZ
@given(key=KEYS, value=topic_values())
def test_topic_messages(key: str, value: bytes | None) -> None:
    try:
        parse_message(key, value)
    except DirectoryError as exc:
        problem = str(exc)
    else:
        problem = "parsed"
    assert problem


@FILE_FUZZ
@given(overlay=st.dictionaries(KEYS, topic_values(), max_size=4))
def test_topic_overlay_on_the_file(overlay: dict[str, bytes | None]) -> None:
    try:
        merge(BASE, overlay)
    except DirectoryError as exc:
        problem = str(exc)
    else:
        problem = "merged"
    assert problem


# --- the configuration file -------------------------------------------------------------------

CONFIG_FILE = b"""\
kafka: {bootstrap_servers: "broker:9092", security_protocol: SASL_SSL}
clickhouse: {host: ch, port: 9000, database: salespulse}
topics: {partitions: 4, raw_pbx: salespulse.raw.pbx}
worker: {web_port: 6066, max_record_bytes: 65536}
receiver: {port: 8470, max_body_bytes: 1048576, rate_per_ip: 50}
alerts: {enabled: true, hold_seconds: 900}
"""


@FILE_FUZZ
@given(data=st.data())
def test_config_file_that_is_a_mapping(scratch: Path, data: st.DataObject) -> None:
    """Whatever its sections hold, a mapping loads or is a ValidationError (or a SettingsError
    for text that is not YAML)."""
    text = data.draw(mutated([CONFIG_FILE], YAML_BYTES, max_copy=40))
    try:
        shape = yaml.safe_load(text)
    except yaml.YAMLError:
        shape = {}
    assume(isinstance(shape, dict) and _shallow(shape))
    path = scratch / "salespulse.yaml"
    path.write_bytes(text)
    before = os.environ.get("SALESPULSE_CONFIG_FILE")
    os.environ["SALESPULSE_CONFIG_FILE"] = str(path)
    try:
        Settings()
    except (ValidationError, SettingsError) as exc:
        problem = str(exc)
    else:
        problem = "loaded"
    finally:
        if before is None:
            del os.environ["SALESPULSE_CONFIG_FILE"]
        else:
            os.environ["SALESPULSE_CONFIG_FILE"] = before
    assert problem


def _shallow(value: object, depth: int = 0) -> bool:
    """No deeper than the settings' own sections; deeper values hit the YAML bounds the file
    loader does not apply yet (reported, not tested here)."""
    if depth > 8:
        return False
    if isinstance(value, dict):
        return all(_shallow(item, depth + 1) for item in value.values())
    if isinstance(value, list):
        return all(_shallow(item, depth + 1) for item in value)
    return True


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        *((text, "YAML does not parse") for text in HOSTILE_YAML.values()),
        ("- 1\n", "must be a mapping of sections"),
        ("42\n", "must be a mapping of sections"),
        ("just words\n", "must be a mapping of sections"),
        ("kafka: {bootstrap_servers: [\n  password: hunter2-secret\n", "YAML does not parse"),
    ],
)
def test_a_config_file_that_is_no_mapping_is_a_clear_error(
    text: str, problem: str, scratch: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = scratch / "salespulse.yaml"
    path.write_text(text)
    monkeypatch.setenv("SALESPULSE_CONFIG_FILE", str(path))
    started = time.monotonic()
    with pytest.raises(SettingsError, match=problem) as refused:
        Settings()
    assert time.monotonic() - started < SECONDS_PER_FILE
    assert str(path) in str(refused.value)
    assert "hunter2" not in str(refused.value)  # no excerpt of a file that may hold secrets


def test_a_rule_whose_kind_is_a_list_is_a_rules_error() -> None:
    """Found by the fuzzing above: ``kind: []`` raised a bare TypeError (unhashable list)
    while the default hold time was looked up, instead of the file's own error."""
    text = "rules:\n- name: calls_dip\n  kind: []\n  metric: calls_out\n  window: 2h\n"
    with pytest.raises(RulesError, match="kind"):
        parse_rules(text)
