"""Who works where: departments across real time zones and the managers in them.

The same population is written as the worker's directory file, so every identity the simulated
sources emit (PBX extension, chat operator id, CRM user id) resolves to exactly one manager.
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from salespulse.models import SourceFamily

# Berlin is in the cycle on purpose: it is the one zone here with daylight saving time, so the
# local offset of a working day differs between winter and summer.
ZONES: tuple[tuple[str, str], ...] = (
    ("Europe/Kaliningrad", "Kaliningrad"),
    ("Europe/Moscow", "Moscow"),
    ("Asia/Yekaterinburg", "Yekaterinburg"),
    ("Asia/Novosibirsk", "Novosibirsk"),
    ("Asia/Vladivostok", "Vladivostok"),
    ("Europe/Berlin", "Berlin"),
)

_MALE = (
    "Alexey", "Andrey", "Dmitry", "Sergey", "Ivan", "Maxim", "Pavel", "Nikolay", "Oleg",
    "Roman", "Artem", "Mikhail", "Kirill", "Egor", "Vladimir", "Denis",
)  # fmt: skip
_FEMALE = (
    "Anna", "Maria", "Elena", "Olga", "Natalia", "Tatiana", "Irina", "Svetlana", "Ekaterina",
    "Daria", "Yulia", "Anastasia", "Ksenia", "Polina", "Victoria", "Alina",
)  # fmt: skip
# Masculine forms; the feminine one is derived, as Russian surnames agree with gender.
_SURNAMES = (
    "Ivanov", "Smirnov", "Kuznetsov", "Popov", "Vasiliev", "Petrov", "Sokolov", "Mikhailov",
    "Novikov", "Fedorov", "Morozov", "Volkov", "Alekseev", "Lebedev", "Semenov", "Egorov",
    "Pavlov", "Kozlov", "Stepanov", "Nikolaev", "Orlov", "Andreev", "Makarov", "Nikitin",
    "Zakharov", "Zaitsev", "Soloviev", "Borisov", "Yakovlev", "Grigoriev", "Romanov", "Belov",
)  # fmt: skip

_PLAIN_YAML = re.compile(r"^[A-Za-z][A-Za-z0-9 ._/-]*$")


@dataclass(frozen=True, slots=True)
class Department:
    id: str
    name: str
    timezone: str

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


@dataclass(frozen=True, slots=True)
class Manager:
    id: str
    name: str
    department: str
    extension: str
    chat_operator: str
    crm_user: str

    def identities(self) -> tuple[tuple[SourceFamily, str], ...]:
        return (
            (SourceFamily.PBX, self.extension),
            (SourceFamily.CHAT, self.chat_operator),
            (SourceFamily.CRM, self.crm_user),
        )


@dataclass(frozen=True)
class Population:
    departments: tuple[Department, ...]
    managers: tuple[Manager, ...]
    _departments_by_id: dict[str, Department] = field(init=False, repr=False, compare=False)
    _members: dict[str, tuple[Manager, ...]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_id = {department.id: department for department in self.departments}
        members: dict[str, list[Manager]] = {department.id: [] for department in self.departments}
        for manager in self.managers:
            members[manager.department].append(manager)
        object.__setattr__(self, "_departments_by_id", by_id)
        object.__setattr__(self, "_members", {k: tuple(v) for k, v in members.items()})

    def department(self, department_id: str) -> Department:
        return self._departments_by_id[department_id]

    def department_of(self, manager: Manager) -> Department:
        return self._departments_by_id[manager.department]

    def members(self, department_id: str) -> tuple[Manager, ...]:
        return self._members[department_id]


def _surname(masculine: str, female: bool) -> str:
    return masculine + "a" if female else masculine


def make_population(managers: int, departments: int, seed: int) -> Population:
    """``managers`` people split into ``departments`` contiguous blocks of near-equal size."""
    if managers < 0 or departments < 1:
        raise ValueError("need managers >= 0 and departments >= 1")
    rng = random.Random(f"population:{seed}")
    deps: list[Department] = []
    for index in range(departments):
        zone, city = ZONES[index % len(ZONES)]
        cycle = index // len(ZONES)
        name = f"{city} sales" if cycle == 0 else f"{city} sales {cycle + 1}"
        deps.append(Department(id=f"dep-{index + 1:02d}", name=name, timezone=zone))
    people: list[Manager] = []
    for index in range(managers):
        female = rng.random() < 0.5
        first = rng.choice(_FEMALE if female else _MALE)
        last = _surname(rng.choice(_SURNAMES), female)
        number = 1001 + index
        people.append(
            Manager(
                id=f"m-{index + 1:04d}",
                name=f"{first} {last}",
                department=deps[index * departments // managers].id,
                extension=str(number),
                chat_operator=f"op-{number}",
                crm_user=f"u-{number}",
            )
        )
    return Population(departments=tuple(deps), managers=tuple(people))


def _scalar(value: str) -> str:
    # A JSON string is a valid YAML double-quoted scalar; plain style is kept where it is safe
    # so the file reads like a hand-written one.
    return value if _PLAIN_YAML.match(value) else json.dumps(value)


def directory_yaml(pop: Population) -> str:
    """The directory file the worker loads, in its exact documented layout."""
    lines = ["departments:"]
    for dep in pop.departments:
        lines += [
            f"  - id: {_scalar(dep.id)}",
            f"    name: {_scalar(dep.name)}",
            f"    timezone: {_scalar(dep.timezone)}",
        ]
    lines.append("managers:" if pop.managers else "managers: []")
    for man in pop.managers:
        lines += [
            f"  - id: {_scalar(man.id)}",
            f"    name: {_scalar(man.name)}",
            f"    department: {_scalar(man.department)}",
            "    identities:",
        ]
        lines += [
            f"      - {{family: {family.value}, id: {json.dumps(ident)}}}"
            for family, ident in man.identities()
        ]
    return "\n".join(lines) + "\n"


def write_directory_yaml(pop: Population, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(directory_yaml(pop), encoding="utf-8")


def utc_offset_seconds(zone: ZoneInfo, day: date) -> int:
    """The zone's UTC offset around midday of ``day``, in seconds.

    Working hours never straddle a DST switch (those happen at night), so one fixed offset per
    local day is exact for every simulated event and much cheaper than zoneinfo per event.
    """
    offset = datetime(day.year, day.month, day.day, 12, tzinfo=zone).utcoffset()
    return int(offset.total_seconds()) if offset is not None else 0
