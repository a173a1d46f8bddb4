"""The manager directory: who is behind a PBX extension, chat operator id or CRM user id.

Attribution is data, not code. Each identity has a validity period, so an extension reassigned at
noon belongs to its old owner for the morning's calls. The directory is loaded from YAML (the
documented shape, see ``docs/directory.md``) or CSV (one row per identity) and re-read when the
file changes, without a restart. Entries published on the directory topic
(``salespulse.directory_topic``) are laid over the file's.
"""

from __future__ import annotations

import csv
import io
import itertools
from bisect import bisect_right
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import NamedTuple, Protocol
from zoneinfo import ZoneInfo

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from salespulse.config_text import read_config_text
from salespulse.errors import ConfigurationError
from salespulse.models import Actor, SourceFamily, TimeZoneName
from salespulse.watched_file import WatchedFile
from salespulse.yaml_limits import safe_load, yaml_problem

MAX_DIRECTORY_BYTES = 32 * 1024 * 1024
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_FAR_FUTURE = datetime(2999, 1, 1, tzinfo=UTC)


class DirectoryError(ConfigurationError):
    """The directory file is unreadable or inconsistent; the message names the offending entry."""


class Attribution(NamedTuple):
    manager_id: str
    department_id: str


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DepartmentEntry(_Strict):
    id: str = Field(min_length=1, max_length=64)
    name: str = Field(default="", max_length=256)
    timezone: TimeZoneName


class IdentityEntry(_Strict):
    family: SourceFamily
    id: str = Field(min_length=1, max_length=128)
    valid_from: datetime | None = None
    valid_to: datetime | None = None

    @field_validator("valid_from", "valid_to")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("validity times need a time zone offset")
        return value


class ManagerEntry(_Strict):
    id: str = Field(min_length=1, max_length=64)
    name: str = Field(default="", max_length=256)
    department: str = Field(min_length=1, max_length=64)
    # What the manager does (e.g. "telesales", "key_account"); alert norms may be set per role.
    role: str = Field(default="", max_length=64)
    identities: list[IdentityEntry] = Field(default_factory=list)


class DirectoryFile(_Strict):
    departments: list[DepartmentEntry]
    managers: list[ManagerEntry]


@dataclass(frozen=True)
class _Span:
    starts: tuple[datetime, ...]
    ends: tuple[datetime, ...]
    owners: tuple[Attribution, ...]


@dataclass
class Directory:
    """An immutable snapshot; ``resolve`` is the hot-path lookup."""

    departments: dict[str, DepartmentEntry]
    managers: dict[str, ManagerEntry]
    _index: dict[Actor, _Span] = field(default_factory=dict, repr=False)
    # The same spans by identity id: a str key hashes in C, an Actor's enum member in Python.
    _by_id: dict[str, tuple[tuple[SourceFamily, _Span], ...]] = field(
        init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        by_id: dict[str, tuple[tuple[SourceFamily, _Span], ...]] = {}
        for actor, span in self._index.items():
            by_id[actor.id] = (*by_id.get(actor.id, ()), (actor.family, span))
        self._by_id = by_id

    @classmethod
    def from_model(cls, data: DirectoryFile) -> Directory:
        departments = {d.id: d for d in data.departments}
        if len(departments) != len(data.departments):
            raise DirectoryError("duplicate department id")
        managers: dict[str, ManagerEntry] = {}
        periods: dict[Actor, list[tuple[datetime, datetime, Attribution]]] = {}
        for manager in data.managers:
            if manager.id in managers:
                raise DirectoryError(f"duplicate manager id {manager.id!r}")
            if manager.department not in departments:
                raise DirectoryError(
                    f"manager {manager.id!r} names unknown department {manager.department!r}"
                )
            managers[manager.id] = manager
            owner = Attribution(manager.id, manager.department)
            for ident in manager.identities:
                start = ident.valid_from or _EPOCH
                end = ident.valid_to or _FAR_FUTURE
                if end <= start:
                    raise DirectoryError(f"identity {ident.id!r} of {manager.id!r}: empty period")
                periods.setdefault(Actor(ident.family, ident.id), []).append((start, end, owner))
        index: dict[Actor, _Span] = {}
        for actor, spans in periods.items():
            spans.sort(key=lambda s: s[0])
            for (_, prev_end, prev), (start, _, owner) in itertools.pairwise(spans):
                if start < prev_end:
                    raise DirectoryError(
                        f"{actor.family.value} identity {actor.id!r} is held by "
                        f"{prev.manager_id!r} and {owner.manager_id!r} at the same time"
                    )
            index[actor] = _Span(
                tuple(s[0] for s in spans), tuple(s[1] for s in spans), tuple(s[2] for s in spans)
            )
        return cls(departments, managers, index)

    def resolve(self, actor: Actor, at: datetime) -> Attribution | None:
        """The manager holding ``actor`` at time ``at``, or None (unattributed)."""
        family, identity = actor
        for held_family, span in self._by_id.get(identity, ()):
            if held_family is family:
                position = bisect_right(span.starts, at) - 1
                if position < 0 or at >= span.ends[position]:
                    return None
                return span.owners[position]
        return None

    def timezone_of(self, department_id: str) -> ZoneInfo:
        return ZoneInfo(self.departments[department_id].timezone)


def parse_directory(text: str, *, suffix: str) -> Directory:
    """Parse directory text; ``suffix`` (".yaml", ".yml" or ".csv") selects the format."""
    return Directory.from_model(parse_directory_file(text, suffix=suffix))


def parse_directory_file(text: str, *, suffix: str) -> DirectoryFile:
    """The entries of directory text, checked for shape but not yet for consistency."""
    try:
        if suffix in (".yaml", ".yml"):
            raw = safe_load(text)  # bounded: no alias bombs, no deep nesting
            if not isinstance(raw, dict):
                raise DirectoryError("directory YAML must be a mapping with departments, managers")
            data = DirectoryFile.model_validate(raw)
        elif suffix == ".csv":
            data = _from_csv(text)
        else:
            raise DirectoryError(f"unsupported directory format {suffix!r} (use .yaml or .csv)")
    except yaml.YAMLError as exc:
        raise DirectoryError(f"directory YAML does not parse: {yaml_problem(exc)}") from exc
    except ValidationError as exc:
        raise DirectoryError(f"directory is invalid: {exc}") from exc
    except csv.Error as exc:  # e.g. a field over the csv module's 128 KiB limit
        raise DirectoryError(f"directory CSV does not parse: {exc}") from exc
    return data


_CSV_COLUMNS = (
    "manager_id",
    "manager_name",
    "department_id",
    "department_name",
    "timezone",
    "family",
    "identity",
    "valid_from",
    "valid_to",
)


def _from_csv(text: str) -> DirectoryFile:
    reader = csv.DictReader(io.StringIO(text))
    header = tuple(reader.fieldnames or ())
    if header not in (_CSV_COLUMNS, (*_CSV_COLUMNS, "role")):
        raise DirectoryError(
            f"directory CSV header must be: {','.join(_CSV_COLUMNS)} (and optionally ,role)"
        )
    departments: dict[str, dict[str, str]] = {}
    managers: dict[str, dict[str, object]] = {}
    for row in reader:
        departments.setdefault(
            row["department_id"],
            {
                "id": row["department_id"],
                "name": row["department_name"],
                "timezone": row["timezone"],
            },
        )
        manager = managers.setdefault(
            row["manager_id"],
            {
                "id": row["manager_id"],
                "name": row["manager_name"],
                "department": row["department_id"],
                "role": row.get("role") or "",
                "identities": [],
            },
        )
        if row["identity"]:
            identities = manager["identities"]
            assert isinstance(identities, list)
            identities.append(
                {
                    "family": row["family"],
                    "id": row["identity"],
                    "valid_from": row["valid_from"] or None,
                    "valid_to": row["valid_to"] or None,
                }
            )
    return DirectoryFile.model_validate(
        {"departments": list(departments.values()), "managers": list(managers.values())}
    )


def load_directory(path: Path) -> Directory:
    return Directory.from_model(load_directory_file(path))


def load_directory_file(path: Path) -> DirectoryFile:
    text = read_config_text(path, MAX_DIRECTORY_BYTES, "directory", DirectoryError)
    return parse_directory_file(text, suffix=path.suffix.lower())


class DirectoryOverlay(Protocol):
    """Entries laid over the file's; ``salespulse.directory_topic.DirectoryTopic`` is one.

    ``apply`` is used only once ``loaded`` (a half-read overlay could hold half of a change), and
    again whenever ``version`` changed.
    """

    @property
    def loaded(self) -> bool: ...
    @property
    def version(self) -> int: ...
    def apply(self, base: DirectoryFile) -> DirectoryFile: ...


class DirectoryWatcher:
    """Keeps the current directory: the file, overlaid by ``overlay`` once that is loaded.

    The file is re-read when its modification stamp changes, and the overlay re-applied when its
    version changes. The file must be consistent on its own (other commands read it alone), and
    so must the merged result. A change that fails either check keeps the previous directory in
    force: a typo in production must not turn every manager into "unattributed". The failure is
    reported through ``last_error``.
    """

    def __init__(self, path: Path, overlay: DirectoryOverlay | None = None) -> None:
        self.path = path
        self.overlay = overlay
        self._file = WatchedFile(path, _load_consistent, (DirectoryError,))
        self.current = Directory.from_model(self._file.current)
        # Even an overlay loaded already is applied by the first refresh, so that an inconsistent
        # one is reported like any later update instead of stopping the worker from starting.
        self._version: int | None = None
        self.last_error: str | None = None
        self.reloads = 0

    def refresh(self) -> bool:
        """Reload if the file or the overlay changed; True when a new directory took effect."""
        file_changed = self._file.refresh()
        if self._file.last_error:
            # An overlay change is applied to the last good file at the next refresh; applying
            # it now would clear this error before the caller reported it.
            self.last_error, self._file.last_error = self._file.last_error, None
            return False
        overlay = self.overlay if self.overlay is not None and self.overlay.loaded else None
        version = overlay.version if overlay is not None else None
        if not file_changed and version == self._version:
            return False
        self._version = version
        base = self._file.current
        try:
            self.current = Directory.from_model(
                overlay.apply(base) if overlay is not None else base
            )
        except DirectoryError as exc:
            self.last_error = f"directory with topic entries (version {version}) rejected: {exc}"
            return False
        self.last_error = None
        self.reloads += 1
        return True


def _load_consistent(path: Path) -> DirectoryFile:
    """The file, checked to be consistent on its own: other commands read it alone."""
    base = load_directory_file(path)
    Directory.from_model(base)
    return base
