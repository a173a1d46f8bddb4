"""Today's per-minute activity held between reads, so that a read transfers what changed.

The minutes of a day are settled soon after they pass: a record of an earlier minute arrives
late (a CDR is written at hangup, a chat when it closes) or is replayed, but rarely. So each
read asks ClickHouse for the groups (manager, department, local minute, the metrics' values) at
or after a *cut* a few minutes back, in full, and for the groups before the cut only one
fingerprint per manager: the XOR of the groups' hashes (``cityHash64`` of everything that
defines the group). The book keeps every group's hash, so it knows which fingerprint the groups
it holds before the cut make; where the server's differs (something before the cut changed),
that manager is read again in full. Exact up to a 64-bit hash collision, whatever changed: late
records, replays, a manager's activity attributed to someone else.

Pure bookkeeping: ``queries.todays_activity`` does the reading. Wall-clock minutes are
the local ``local_time`` minutes as stored (Unix seconds of the wall clock read as UTC); a cut
is given per department, on that department's wall clock, as the server compares them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import reduce
from operator import xor
from typing import NamedTuple


class Group(NamedTuple):
    """One manager's counts in one local minute, as attributed to ``department_id``."""

    department_id: str
    wall_minute: int
    digest: int  # the server's hash of the group
    values: tuple[int, ...]  # in the order of the source's metrics


@dataclass(slots=True)
class _Held:
    settled: list[Group] = field(default_factory=list)  # before the last cut, checked by print
    settled_print: int = 0
    tail: list[Group] = field(default_factory=list)  # from the last cut on, read in full


def _order(group: Group) -> tuple[int, str]:
    return group.wall_minute, group.department_id


def fingerprint(groups: Iterable[Group]) -> int:
    return reduce(xor, (group.digest for group in groups), 0)


@dataclass
class MinuteBook:
    """The held groups of one source (calls, or the other activity) of every manager."""

    _held: dict[str, _Held] = field(default_factory=dict)

    def managers(self) -> set[str]:
        return set(self._held)

    def groups(self, manager_id: str) -> list[Group]:
        held = self._held.get(manager_id)
        return [] if held is None else held.settled + held.tail

    def fill(self, manager_id: str, groups: Iterable[Group], cuts: Mapping[str, int]) -> None:
        """Every group of the manager, read in full: split at the cut."""
        held = _Held()
        for group in sorted(groups, key=_order):
            below = group.wall_minute < cuts.get(group.department_id, 0)
            (held.settled if below else held.tail).append(group)
        held.settled_print = fingerprint(held.settled)
        if held.settled or held.tail:
            self._held[manager_id] = held
        else:
            self._held.pop(manager_id, None)

    def advance(
        self,
        cuts: Mapping[str, int],
        recent: Mapping[str, list[Group]],
        settled_prints: Mapping[str, int],
    ) -> tuple[set[str], set[str]]:
        """Take a read at ``cuts`` (never earlier than the last): ``recent`` the groups at or
        after the cut, ``settled_prints`` the server's fingerprint of each manager's groups
        before it (missing: none). Returns the managers whose groups before the cut are not
        those held (they must be read again in full: ``fill``), and those whose groups
        changed otherwise."""
        stale, changed = set(), set()
        for manager_id in set(self._held) | set(recent) | set(settled_prints):
            held = self._held.get(manager_id) or _Held()
            passed: list[Group] = []
            kept: list[Group] = []
            for group in held.tail:
                below = group.wall_minute < cuts.get(group.department_id, 0)
                (passed if below else kept).append(group)
            expected = held.settled_print ^ fingerprint(passed)
            if expected != settled_prints.get(manager_id, 0):
                stale.add(manager_id)
                continue
            held.settled = held.settled + passed if passed else held.settled
            held.settled_print = expected
            held.tail = sorted(recent.get(manager_id, ()), key=_order)
            if held.tail != kept:
                changed.add(manager_id)
            if held.settled or held.tail:
                self._held[manager_id] = held
            else:
                self._held.pop(manager_id, None)
        return stale, changed
