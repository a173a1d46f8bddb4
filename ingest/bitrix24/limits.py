"""A bounded TTL cache: with the shared token bucket, what keeps the bridge within the portal's
limits."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, NamedTuple, TypeVar

_K = TypeVar("_K", bound=Hashable)
_V = TypeVar("_V")


class _Entry(NamedTuple, Generic[_V]):
    expires: float
    fetched_at: float
    value: _V


class TtlCache(Generic[_K, _V]):
    """At most ``max_entries`` values, each for ``ttl`` seconds; least recently used go first.

    Each entry remembers the wall-clock time it was fetched, so a caller can refuse an entry
    older than the change it is asking about (see ``get``).
    """

    def __init__(
        self,
        ttl: float,
        max_entries: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._ttl = ttl
        self._max = max_entries
        self._clock = clock
        self._wall_clock = wall_clock
        self._entries: OrderedDict[_K, _Entry[_V]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: _K, *, fetched_after: float | None = None) -> _V | None:
        """The cached value, unless expired or fetched at or before ``fetched_after`` (Unix
        seconds): a value read before a change happened cannot describe it."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry.expires <= self._clock():
            del self._entries[key]
            return None
        if fetched_after is not None and entry.fetched_at <= fetched_after:
            return None
        self._entries.move_to_end(key)
        return entry.value

    def put(self, key: _K, value: _V) -> None:
        if self._ttl <= 0:
            return
        self._entries[key] = _Entry(self._clock() + self._ttl, self._wall_clock(), value)
        self._entries.move_to_end(key)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)
