"""Working time as alert evaluation asks for it: many times a second, for every manager.

The calendar computes a local day's working intervals from its rules; evaluation asks about the
same few days of every manager on every tick, so the intervals are memoised per manager and
local day. A new calendar (a reload) means a new ``Workdays``.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from salespulse.calendar import Calendar

Interval = tuple[datetime, datetime]
_MAX_CACHED = 200_000  # manager-days; a tick touches a handful per manager


@lru_cache(maxsize=65_536)
def local_midnight(day: date, zone: ZoneInfo) -> datetime:
    """The UTC instant a local day begins."""
    return datetime.combine(day, time(), tzinfo=zone).astimezone(UTC)


class Workdays:
    def __init__(self, calendar: Calendar) -> None:
        self.calendar = calendar
        self._cache: dict[tuple[str, str, str, date], list[Interval]] = {}
        self._before: dict[tuple[str, str, str, datetime, datetime], float] = {}
        self._today_seconds: dict[tuple[str, str, str, datetime], float] = {}
        self._today_end: datetime | None = None
        self._spans_kept: dict[tuple[str, str, str, datetime], list[Interval]] = {}
        self._spans_end: datetime | None = None

    def intervals(
        self, manager_id: str, department_id: str, zone: ZoneInfo, day: date
    ) -> list[Interval]:
        key = (manager_id, department_id, zone.key, day)
        found = self._cache.get(key)
        if found is None:
            if len(self._cache) >= _MAX_CACHED:
                self._cache.clear()
            found = self._cache[key] = self.calendar.working_intervals(
                manager_id, department_id, zone, day
            )
        return found

    def _spans(
        self, manager_id: str, department_id: str, zone: ZoneInfo, start: datetime, end: datetime
    ) -> list[Interval]:
        """Working intervals overlapping [start, end), clipped to it, in order (kept while
        ``end`` stays the same: a dip asks for the same window three times). Not to be
        changed by the caller."""
        if end != self._spans_end:
            self._spans_kept.clear()
            self._spans_end = end
        key = (manager_id, department_id, zone.key, start)
        found = self._spans_kept.get(key)
        if found is None:
            found = self._spans_kept[key] = self._clip(manager_id, department_id, zone, start, end)
        return found

    def _clip(
        self, manager_id: str, department_id: str, zone: ZoneInfo, start: datetime, end: datetime
    ) -> list[Interval]:
        day = start.astimezone(zone).date() - timedelta(days=1)
        last = end.astimezone(zone).date()
        spans = []
        while day <= last:
            for low, high in self.intervals(manager_id, department_id, zone, day):
                low, high = max(low, start), min(high, end)
                if low < high:
                    spans.append((low, high))
            day += timedelta(days=1)
        return spans

    def seconds(
        self, manager_id: str, department_id: str, zone: ZoneInfo, start: datetime, end: datetime
    ) -> float:
        """Working seconds in [start, end).

        Evaluation asks for the working time from the start of a day or a week until now, and
        for the whole of them, every second: the part before ``end``'s local day is the same
        on every tick, so it is computed once (working intervals start and end on whole
        seconds, so the sum is the same either way)."""
        if end <= start:
            return 0.0
        midnight = local_midnight(end.astimezone(zone).date(), zone)
        if start == midnight:
            return self._today(manager_id, department_id, zone, midnight, end)
        if start > midnight:
            return self._seconds(manager_id, department_id, zone, start, end)
        key = (manager_id, department_id, zone.key, start, midnight)
        before = self._before.get(key)
        if before is None:
            if len(self._before) >= _MAX_CACHED:
                self._before.clear()
            before = self._before[key] = self._seconds(*key[:2], zone, start, midnight)
        if midnight == end:
            return before
        return before + self._today(manager_id, department_id, zone, midnight, end)

    def _today(
        self, manager_id: str, department_id: str, zone: ZoneInfo, midnight: datetime, end: datetime
    ) -> float:
        """Working seconds from a local midnight to ``end``, kept while ``end`` stays the same
        (a day's and a week's pace both ask for today's part)."""
        if end != self._today_end:
            self._today_seconds.clear()
            self._today_end = end
        key = (manager_id, department_id, zone.key, midnight)
        found = self._today_seconds.get(key)
        if found is None:
            found = self._today_seconds[key] = self._seconds(*key[:2], zone, midnight, end)
        return found

    def _seconds(
        self, manager_id: str, department_id: str, zone: ZoneInfo, start: datetime, end: datetime
    ) -> float:
        if end <= start:
            return 0.0
        spans = self._spans(manager_id, department_id, zone, start, end)
        return sum((high - low).total_seconds() for low, high in spans)

    def is_working(self, manager_id: str, department_id: str, zone: ZoneInfo, at: datetime) -> bool:
        day = at.astimezone(zone).date()
        return any(
            low <= at < high
            for offset in (-1, 0)
            for low, high in self.intervals(
                manager_id, department_id, zone, day + timedelta(days=offset)
            )
        )

    def day_over(self, manager_id: str, department_id: str, zone: ZoneInfo, at: datetime) -> bool:
        """No working time is left in the manager's local day of ``at``."""
        day = at.astimezone(zone).date()
        return all(high <= at for _, high in self.intervals(manager_id, department_id, zone, day))

    def first_start(
        self, manager_id: str, department_id: str, zone: ZoneInfo, day: date
    ) -> datetime | None:
        spans = self.intervals(manager_id, department_id, zone, day)
        return spans[0][0] if spans else None

    def next_working(
        self, manager_id: str, department_id: str, zone: ZoneInfo, at: datetime, days: int = 14
    ) -> datetime | None:
        """The first working instant at or after ``at``, looking ``days`` local days ahead."""
        day = at.astimezone(zone).date() - timedelta(days=1)
        for offset in range(days + 2):
            for low, high in self.intervals(
                manager_id, department_id, zone, day + timedelta(days=offset)
            ):
                if high > at:
                    return max(low, at)
        return None

    def window_start(
        self,
        manager_id: str,
        department_id: str,
        zone: ZoneInfo,
        end: datetime,
        working: timedelta,
        not_before: datetime,
    ) -> datetime:
        """The latest instant s >= not_before with ``working`` of working time in [s, end);
        ``not_before`` when there is less."""
        left = working.total_seconds()
        for low, high in reversed(self._spans(manager_id, department_id, zone, not_before, end)):
            length = (high - low).total_seconds()
            if length >= left:
                return high - timedelta(seconds=left)
            left -= length
        return not_before

    def hour_pieces(
        self, manager_id: str, department_id: str, zone: ZoneInfo, start: datetime, end: datetime
    ) -> list[tuple[date, int, float]]:
        """The working time in [start, end) split at local hours: (local date, local hour,
        seconds) in order, for summing per-hour baseline rates."""
        pieces: list[tuple[date, int, float]] = []
        for low, high in self._spans(manager_id, department_id, zone, start, end):
            cursor = low
            while cursor < high:
                local = cursor.astimezone(zone)
                # To the next local hour, added in UTC so that a DST change cannot bend it.
                to_hour = timedelta(
                    minutes=60 - local.minute,
                    seconds=-local.second,
                    microseconds=-local.microsecond,
                )
                step_end = min(high, cursor + to_hour)
                pieces.append((local.date(), local.hour, (step_end - cursor).total_seconds()))
                cursor = step_end
        return pieces
