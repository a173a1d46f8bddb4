"""What the alert engine judges with: a manager's activity so far today, and their hourly history.

Pure data, filled by ``queries.todays_activity``; nothing here talks to ClickHouse, so the
engine and its tests run on hand-made values. Times are UTC-aware datetimes. Unattributed
activity (no manager) is never in here: an alert is about a person.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from itertools import accumulate
from typing import NamedTuple

MinuteCounts = tuple[tuple[datetime, int], ...]
# A call or chat stored this long after it ended was loaded after the fact (an import, a
# backfill, a bridge catching up), not reported as it happened.
LOADED_AFTER = timedelta(minutes=10)
# A PBX channel up for longer than this is no call in progress: its Hangup was lost (the bridge
# was disconnected when it came). Longer calls than this are rare enough to look idle.
CHANNEL_UP_MAX = timedelta(hours=4)


def minute_counts(moments: Iterable[datetime]) -> MinuteCounts:
    """Instants counted per minute they fall in: a series for ``ActivitySnapshot.minutes``, as
    the reader of today's activity makes of events (for snapshots built by hand)."""
    per_minute = Counter(moment.replace(second=0, microsecond=0) for moment in moments)
    return tuple(sorted(per_minute.items()))


class HourRow(NamedTuple):
    """One manager's activity in one local hour (``hour`` 0-23 of ``local_date``, wall clock).

    ``counts`` holds only the metrics that are not zero; a metric left out was zero. An hour
    without any activity has no row at all.
    """

    manager_id: str
    department_id: str
    local_date: date
    hour: int
    counts: Mapping[str, int]


@dataclass(frozen=True, slots=True)
class OpenTask:
    """A task with a deadline and no completion yet.

    ``manager_id``/``department_id`` are those of the task's latest event (a reassigned task
    belongs to its new owner); ``due_at`` is the latest deadline any of its events carried;
    ``created_at`` the time of its first event; ``known_at`` when the first of its events was
    stored (None: not known), which tells a task loaded long after its deadline from one that
    went overdue while salespulse was watching.
    """

    task_id: str
    manager_id: str
    department_id: str
    due_at: datetime
    created_at: datetime
    known_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class _Series:
    """One manager's metric: minute starts (Unix seconds) and running totals, for O(log n)
    sums over any window."""

    starts: tuple[float, ...]
    totals: tuple[int, ...]  # totals[i] = sum of the first i minutes' values

    @classmethod
    def of(cls, minutes: MinuteCounts) -> _Series:
        starts = tuple(minute.timestamp() for minute, _ in minutes)
        return cls(starts, tuple(accumulate((value for _, value in minutes), initial=0)))

    def between(self, low: float, high: float) -> int:
        return (
            self.totals[bisect_left(self.starts, high)] - self.totals[bisect_left(self.starts, low)]
        )


@dataclass(frozen=True)
class ActivitySnapshot:
    """Today's activity per manager, read in one go at ``taken_at``.

    * ``minutes``: manager → metric → ``(minute start, count)`` in time order, only minutes
      with a non-zero count. Minute starts are UTC instants of the manager's local minutes.
      They cover the local days around today in every time zone (see the query).
    * ``last_active``: manager → when their latest call or chat session ended (or one of their
      PBX channels went up or down, as the AMI bridge saw it).
    * ``busy``: manager → since when they have had a PBX channel up without its Hangup: a call
      in progress. Channels up for longer than ``CHANNEL_UP_MAX`` are left out when read; the
      reader of the snapshot applies the same cap to its own clock (``busy_since``).
    * ``open_tasks``: tasks with a deadline and no completion, created in the last 45 days.
    * ``loading``: manager → (local date, when stored) of their latest call or chat stored
      long after it ended (``LOADED_AFTER``): their day is being loaded after the fact.
    * ``days``: manager → local date → metric → the day's total, from the daily rollup, for
      the last 8 local days (earlier days of the week, for weekly norms). Today's row may lag
      behind the minutes; count today from ``minutes``.
    """

    taken_at: datetime
    minutes: dict[str, dict[str, MinuteCounts]] = field(default_factory=dict)
    last_active: dict[str, datetime] = field(default_factory=dict)
    open_tasks: tuple[OpenTask, ...] = ()
    days: dict[str, dict[date, dict[str, int]]] = field(default_factory=dict)
    loading: dict[str, tuple[date, datetime]] = field(default_factory=dict)
    busy: dict[str, datetime] = field(default_factory=dict)
    _series: dict[tuple[str, str], _Series] = field(
        init=False, repr=False, compare=False, default_factory=dict
    )

    @classmethod
    def empty(cls, taken_at: datetime) -> ActivitySnapshot:
        return cls(taken_at)

    def count(self, manager_id: str, metric: str, start: datetime, end: datetime) -> int:
        """The sum of the minutes of ``metric`` with ``start <= minute start < end``."""
        if end <= start:
            return 0
        # Each series is indexed when first asked about, then summed by bisection: the engine
        # asks thousands of times per second, but only about the metrics its rules name.
        series = self._series.get((manager_id, metric))
        if series is None:
            minutes = self.minutes.get(manager_id, {}).get(metric)
            if not minutes:
                return 0
            series = self._series[(manager_id, metric)] = _Series.of(minutes)
        return series.between(start.timestamp(), end.timestamp())

    def carry_series_from(self, previous: ActivitySnapshot) -> None:
        """Take over ``previous``'s indexes of the series this snapshot shares with it (the
        very same object): a manager whose minutes did not change is not indexed again."""
        for key, series in previous._series.items():
            manager_id, metric = key
            mine = self.minutes.get(manager_id, {}).get(metric)
            if mine is not None and mine is previous.minutes.get(manager_id, {}).get(metric):
                self._series.setdefault(key, series)

    def busy_since(self, manager_id: str, now: datetime) -> datetime | None:
        """When the manager's call in progress began, if they are on one at ``now`` (a snapshot
        may be judged for a while after it was read: the cap counts from ``now``)."""
        since = self.busy.get(manager_id)
        if since is None or now - since > CHANNEL_UP_MAX:
            return None
        return since

    def day_total(self, manager_id: str, metric: str, local_day: date) -> int:
        """The metric's total of one local day from the daily rollup; 0 when there is none."""
        return self.days.get(manager_id, {}).get(local_day, {}).get(metric, 0)
