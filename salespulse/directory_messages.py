"""The messages of the directory topic: their keys, their values, and what they add up to.

A key is ``manager:<id>``, ``department:<id>`` or ``absence:<id>``. The value of a manager or
department is the JSON of one directory entry, in the shape of the directory file's YAML; the
value of an absence is the JSON of one absence, in the shape of the calendar file's
(``salespulse.calendar_file.Absence``), under the id the HR system gave it. An empty value
deletes. Compaction keeps the last value per key, so the topic read from its beginning is the
current set of changes: ``merge`` lays its entries over the directory file, and ``absences_of``
lists its absences for the working calendar. ``salespulse.directory_topic`` reads the topic.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Literal, TypeVar

from pydantic import ValidationError

from salespulse.calendar_file import Absence
from salespulse.directory import DepartmentEntry, DirectoryError, DirectoryFile, ManagerEntry

# The kinds of directory entry, each a list in the directory file.
Kind = Literal["manager", "department"]
# Every kind of key on the topic; absences belong to the calendar, not to the directory file.
KeyKind = Literal["manager", "department", "absence"]
Entry = ManagerEntry | DepartmentEntry
# One entry is a few hundred bytes; this only stops a runaway value from being parsed.
MAX_ENTRY_BYTES = 1024 * 1024
# An HR or CRM record id, as it may appear in logs and on a command line: no spaces, no quotes.
ABSENCE_ID = re.compile(r"[A-Za-z0-9._~:/@+=-]{1,128}")


def entry_key(entry: Entry) -> str:
    """The topic key of an entry: ``manager:<id>`` or ``department:<id>``."""
    return f"{'manager' if isinstance(entry, ManagerEntry) else 'department'}:{entry.id}"


def absence_key(absence_id: str) -> str:
    """The topic key of an absence, ``absence:<id>``; DirectoryError for an id out of shape."""
    key = f"absence:{absence_id}"
    split_key(key)
    return key


def encode_value(value: Entry | Absence | None) -> bytes:
    """The message value of an entry or an absence; None, a deletion, is an empty value."""
    # Deletions are empty values, not Kafka's null tombstones: compaction drops a null
    # tombstone after delete.retention.ms (a day by default), and a worker reading the topic
    # afresh after that would see the file's entry again. An empty value is kept for good.
    if value is None:
        return b""
    return value.model_dump_json(by_alias=True, exclude_none=True).encode()


def split_key(key: str) -> tuple[KeyKind, str]:
    """The kind and id of a key; DirectoryError when it is none of the three."""
    kind, _, key_id = key.partition(":")
    if kind == "absence":
        if not ABSENCE_ID.fullmatch(key_id):
            raise DirectoryError(
                f"key {key!r}: an absence id is 1-128 letters, digits or ._~:/@+=- characters"
            )
        return "absence", key_id
    if kind not in ("manager", "department") or not key_id:
        raise DirectoryError(f"key {key!r} is not manager:<id>, department:<id> or absence:<id>")
    return ("manager" if kind == "manager" else "department"), key_id


def parse_message(key: str, value: bytes | None) -> tuple[KeyKind, str, Entry | Absence | None]:
    """Kind, id and content of a message (None: delete); DirectoryError names the problem."""
    kind, key_id = split_key(key)
    # A null value (Kafka's tombstone) and an empty one both delete; see encode_value for why
    # publishers send empty ones.
    if not value:
        return kind, key_id, None
    if len(value) > MAX_ENTRY_BYTES:
        raise DirectoryError(f"{key}: value of {len(value)} bytes is over {MAX_ENTRY_BYTES}")
    if kind == "absence":
        return kind, key_id, _validated(Absence, key, value, "absence")
    entry: Entry = (
        _validated(ManagerEntry, key, value, "manager entry")
        if kind == "manager"
        else _validated(DepartmentEntry, key, value, "department entry")
    )
    # Compaction keeps one value per key, so an entry filed under another id would never be
    # replaced or deleted by the messages for its own key.
    if entry.id != key_id:
        raise DirectoryError(f"{key}: the value's id is {entry.id!r}")
    return kind, key_id, entry


_M = TypeVar("_M", ManagerEntry, DepartmentEntry, Absence)


def _validated(model: type[_M], key: str, value: bytes, what: str) -> _M:
    try:
        return model.model_validate_json(value)
    except ValidationError as exc:
        raise DirectoryError(f"{key}: not a valid {what}: {problems_of(exc)}") from exc


def problems_of(exc: ValidationError) -> str:
    """pydantic's complaints on one line: ``where: what; where: what``."""
    return "; ".join(
        f"{'.'.join(map(str, error['loc'])) or 'value'}: "
        f"{error['msg'].removeprefix('Value error, ')}"
        for error in exc.errors()
    )


_E = TypeVar("_E", ManagerEntry, DepartmentEntry)


def _overlaid(base: list[_E], changes: Mapping[str, _E | None]) -> list[_E]:
    # Replaced in place rather than rebuilt from a dict: a duplicate id in the file stays a
    # duplicate, so the merged directory is rejected for it just as the file alone would be.
    merged = [changes.get(entry.id, entry) for entry in base]
    present = {entry.id for entry in base}
    merged += [entry for entry_id, entry in changes.items() if entry_id not in present]
    return [entry for entry in merged if entry is not None]


def _is_absence(key: str) -> bool:
    return key.startswith("absence:")


def merge(base: DirectoryFile, overlay: Mapping[str, bytes | None]) -> DirectoryFile:
    """The file's entries overlaid by the topic's: the topic wins per key, an empty value deletes.

    Absences are left out: they are not part of the directory, so none of them can make it
    inconsistent. Each entry's shape is checked here (DirectoryError); the consistency of the
    result (unknown departments, an identity held twice at once) is checked by
    ``Directory.from_model``, exactly as for the file.
    """
    managers: dict[str, ManagerEntry | None] = {}
    departments: dict[str, DepartmentEntry | None] = {}
    for key, value in overlay.items():
        if _is_absence(key):
            continue
        kind, entry_id, entry = parse_message(key, value)
        if kind == "department":
            departments[entry_id] = entry if isinstance(entry, DepartmentEntry) else None
        else:
            managers[entry_id] = entry if isinstance(entry, ManagerEntry) else None
    return DirectoryFile(
        departments=_overlaid(base.departments, departments),
        managers=_overlaid(base.managers, managers),
    )


def absences_of(entries: Mapping[str, bytes | None]) -> tuple[Absence, ...]:
    """The absences among the topic's entries, in the order of their keys; deleted ones left out.

    Meant for ``DirectoryTopic.entries``, which holds valid values only (invalid messages are
    skipped as they are read); an invalid value here raises DirectoryError, as in ``merge``.
    """
    absences = []
    for key in sorted(filter(_is_absence, entries)):
        _, _, absence = parse_message(key, entries[key])
        if isinstance(absence, Absence):
            absences.append(absence)
    return tuple(absences)
