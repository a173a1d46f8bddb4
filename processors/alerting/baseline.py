"""A manager's baseline: how much they usually do in an hour of a weekday, per working second.

Pure computation over the hourly history (``queries.history``), the working
calendar and the directory. The rules, so that a person can check a number by hand:

For a manager, a metric, a weekday W and a local hour H (H:00 to H+1:00 on the wall clock of
the manager's department, the same clock the history's hours are on):

1. The candidate days are the last ``weeks`` days that fall on weekday W strictly before the
   manager's local today. Today never feeds its own baseline.
2. A candidate day is a *period* when the calendar gives the manager working time inside
   [H:00, H+1:00) that day (holidays, moved working days, lunch and absences all respected) and
   the day is not before the manager's first local date with any activity in the history
   (before it they did not work here yet, so their silence says nothing).
3. A period's rate is the metric's count in the whole hour that day divided by the working
   seconds in that hour: 6 calls in an hour with 30 minutes of lunch is 6 / 1800 per second.
   An hour without any activity (no history row) is a period with rate 0.
4. The baseline is the median of the periods' rates. With fewer than ``min_periods`` periods
   there is none (``None``), and the engine falls back to the role's norm.

A holiday or a vacation day is therefore not a zero: it is not a period at all. The manager's
current department (schedule and time zone) is used for every past day.

``expected_between`` turns rates back into a count: the working time inside a window, split at
local hour boundaries, each part times its hour's rate. Worked example in docs/baselines.md.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from salespulse.activity import HourRow
from salespulse.activity_metrics import ACTIVITY_METRIC_NAMES
from salespulse.calendar import Calendar
from salespulse.directory import Directory

# Every metric of the hourly rollup.
HOURLY_METRICS: tuple[str, ...] = ACTIVITY_METRIC_NAMES
_SLOTS = 7 * 24  # weekday * 24 + hour


class Baselines:
    """Baseline rates per manager, metric, weekday (0 = Monday) and local hour."""

    def __init__(
        self,
        metrics: Iterable[str],
        periods: dict[str, list[int]],
        rates: dict[str, dict[str, list[float]]],
        *,
        weeks: int,
        min_periods: int,
        dispersions: dict[str, dict[str, float]] | None = None,
    ) -> None:
        self.metrics = frozenset(metrics)
        self.weeks = weeks
        self.min_periods = min_periods
        self._periods = periods
        self._rates = rates
        self._dispersions = dispersions or {}
        self._typical: dict[str, float] = {}
        by_metric: dict[str, list[float]] = {}
        for per_metric in self._dispersions.values():
            for metric, value in per_metric.items():
                by_metric.setdefault(metric, []).append(value)
        for metric, values in by_metric.items():
            values.sort()
            self._typical[metric] = values[len(values) // 2]

    def dispersion(self, manager_id: str, metric: str) -> float:
        """How much more the manager's hourly counts of ``metric`` vary than Poisson counts
        would (variance ÷ mean, at least 1; see ``_Dispersion``). Without enough history of
        their own, the median of the managers who have it; 1 (Poisson) without any."""
        own = self._dispersions.get(manager_id, {}).get(metric)
        return own if own is not None else self.typical_dispersion(metric)

    def typical_dispersion(self, metric: str) -> float:
        """The median dispersion of ``metric`` over the managers with enough history, or 1."""
        return self._typical.get(metric, 1.0)

    def periods(self, manager_id: str, weekday: int, hour: int) -> int:
        """How many past days fed the baseline of this weekday and hour (0 to ``weeks``)."""
        slots = self._periods.get(manager_id)
        return 0 if slots is None else slots[_slot(weekday, hour)]

    def rate(self, manager_id: str, metric: str, weekday: int, hour: int) -> float | None:
        """The median count per working second, or None with fewer than ``min_periods``."""
        if metric not in self.metrics:
            # A typo in a rule must not read as "no activity expected".
            raise KeyError(f"no baselines were built for metric {metric!r}")
        if self.periods(manager_id, weekday, hour) < self.min_periods:
            return None
        slots = self._rates.get(manager_id, {}).get(metric)
        return 0.0 if slots is None else slots[_slot(weekday, hour)]


def _slot(weekday: int, hour: int) -> int:
    if not (0 <= weekday <= 6 and 0 <= hour <= 23):
        raise ValueError(f"weekday 0-6 and hour 0-23 expected, got {weekday}, {hour}")
    return weekday * 24 + hour


def local_today(directory: Directory, now: datetime) -> dict[str, date]:
    """Every manager's local date at ``now``, for ``build_baselines``."""
    return {
        manager_id: now.astimezone(directory.timezone_of(manager.department)).date()
        for manager_id, manager in directory.managers.items()
    }


def build_baselines(
    history: Iterable[HourRow],
    calendar: Calendar,
    directory: Directory,
    today: Mapping[str, date] | Callable[[str], date],
    weeks: int = 8,
    min_periods: int = 4,
    metrics: Iterable[str] = HOURLY_METRICS,
) -> Baselines:
    """Baselines of every manager of ``directory`` (see the module's rules).

    ``today`` gives each manager's local date (``local_today``); a manager it does not know, or
    one without any history, gets no baseline.
    """
    wanted = frozenset(metrics)
    counts, first_day = _index(history, wanted)
    today_of: Callable[[str], date | None] = today.get if isinstance(today, Mapping) else today
    periods: dict[str, list[int]] = {}
    rates: dict[str, dict[str, list[float]]] = {}
    dispersions: dict[str, dict[str, float]] = {}
    for manager_id, manager in directory.managers.items():
        first, local_day = first_day.get(manager_id), today_of(manager_id)
        if first is None or local_day is None:
            continue
        tz = directory.timezone_of(manager.department)
        slots = [0] * _SLOTS
        positive: dict[tuple[str, int], list[float]] = {}  # (metric, slot) -> rates above 0
        spread = _Dispersion()
        for back in range(1, weeks * 7 + 1):
            day = local_day - timedelta(days=back)
            if day < first:
                break
            # One calendar call per manager-day; hours are cut from its intervals.
            intervals = calendar.working_intervals(manager_id, manager.department, tz, day)
            for hour, seconds in _split_by_hour(intervals, tz, day).items():
                slot = day.weekday() * 24 + hour
                slots[slot] += 1
                spread.period(slot, seconds)
                for metric, value in counts.get((manager_id, day, hour), {}).items():
                    spread.count(metric, slot, value, seconds)
                    found = positive.get((metric, slot))
                    if found is None:
                        positive[(metric, slot)] = [value / seconds]
                    else:
                        found.append(value / seconds)
        periods[manager_id] = slots
        medians: dict[str, list[float]] = {}
        for (metric, slot), values in positive.items():
            if slots[slot] >= min_periods:
                by_slot = medians.setdefault(metric, [0.0] * _SLOTS)
                by_slot[slot] = _median_with_zeros(values, slots[slot])
        rates[manager_id] = medians
        fitted = [slot for slot in range(_SLOTS) if slots[slot] >= min_periods]
        measured = spread.per_metric(fitted)
        if measured:
            dispersions[manager_id] = measured
    return Baselines(
        wanted, periods, rates, weeks=weeks, min_periods=min_periods, dispersions=dispersions
    )


# Dispersions are measured from at least this many events and this many periods beyond the
# slots fitted, and kept within these bounds: a few quiet weeks must not make a manager's
# every silence look ordinary.
_MIN_DISPERSION_EVENTS = 30
_MIN_DISPERSION_FREEDOM = 10
MAX_DISPERSION = 8.0


class _Dispersion:
    """Pearson's estimate of how overdispersed a manager's hourly counts are, per metric.

    Each past working hour (a period, as the baseline counts them) expected μ = the mean rate
    of its weekday-and-hour slot × its working seconds; φ = Σ (k - μ)² / Σ μ × n / (n - p), with
    n periods and p slots fitted: 1 for Poisson counts, more when calls come in bursts, meetings
    empty whole hours and some days are busier than others (docs/baselines.md, dispersion).
    The sums are kept per slot so that only the hours with events are visited per metric:
    Σ (k - μ)² = Σ k² - 2 Σ_s m_s Σ k·t + Σ_s m_s² Σ t², m_s = Σ k / Σ t over slot s."""

    def __init__(self) -> None:
        self.periods = [0] * _SLOTS
        self.seconds = [0.0] * _SLOTS
        self.seconds_squared = [0.0] * _SLOTS
        # metric -> slot -> [Σ k, Σ k², Σ k·t]
        self.sums: dict[str, dict[int, list[float]]] = {}

    def period(self, slot: int, seconds: float) -> None:
        self.periods[slot] += 1
        self.seconds[slot] += seconds
        self.seconds_squared[slot] += seconds * seconds

    def count(self, metric: str, slot: int, value: int, seconds: float) -> None:
        sums = self.sums.setdefault(metric, {}).setdefault(slot, [0.0, 0.0, 0.0])
        sums[0] += value
        sums[1] += value * value
        sums[2] += value * seconds

    def per_metric(self, slots: list[int]) -> dict[str, float]:
        """φ per metric over ``slots`` (those with a baseline), for the metrics with enough
        events and periods to say."""
        n = sum(self.periods[slot] for slot in slots)
        freedom = n - len(slots)
        if freedom < _MIN_DISPERSION_FREEDOM:
            return {}
        found = {}
        for metric, by_slot in self.sums.items():
            events, squares = 0.0, 0.0
            for slot in slots:
                sums = by_slot.get(slot)
                if sums is None or self.seconds[slot] <= 0:
                    continue
                k, k2, kt = sums
                mean_rate = k / self.seconds[slot]
                events += k
                squares += k2 - 2 * mean_rate * kt + mean_rate**2 * self.seconds_squared[slot]
            if events >= _MIN_DISPERSION_EVENTS:
                phi = squares / events * n / freedom
                found[metric] = min(MAX_DISPERSION, max(1.0, phi))
        return found


def _index(
    history: Iterable[HourRow], wanted: frozenset[str]
) -> tuple[dict[tuple[str, date, int], dict[str, int]], dict[str, date]]:
    """The history's positive counts by (manager, local date, hour), and each manager's first
    local date with any activity."""
    counts: dict[tuple[str, date, int], dict[str, int]] = {}
    first_day: dict[str, date] = {}
    for row in history:
        if not any(row.counts.values()):
            continue
        kept = {metric: value for metric, value in row.counts.items() if value and metric in wanted}
        if row.local_date < first_day.get(row.manager_id, date.max):
            first_day[row.manager_id] = row.local_date
        key = (row.manager_id, row.local_date, row.hour)
        merged = counts.get(key)
        if merged is None:
            counts[key] = kept
            continue
        for metric, value in kept.items():  # one hour in two departments: both count
            merged[metric] = merged.get(metric, 0) + value
    return counts, first_day


def _median_with_zeros(positive: list[float], total: int) -> float:
    """The median of ``total`` rates of which ``positive`` are the ones above zero: most hours
    of most metrics are zero, so the zeros are counted, not stored."""
    positive.sort()
    zeros = total - len(positive)

    def at(i: int) -> float:
        return 0.0 if i < zeros else positive[i - zeros]

    middle = total // 2
    return at(middle) if total % 2 else (at(middle - 1) + at(middle)) / 2


@lru_cache(maxsize=16384)
def _hour_bounds(tz: ZoneInfo, day: date) -> tuple[float, ...]:
    """Unix seconds of 00:00, 01:00 ... 24:00 on the local wall clock of ``day``.

    Wall-clock arithmetic, as the history's hours are wall-clock hours: on the day clocks go
    back, hour 2 lasts two hours (both 02:xx happened in it); on the day they go forward, the
    skipped hour lasts nothing.
    """
    midnight = datetime.combine(day, time(), tzinfo=tz)
    bounds = [(midnight + timedelta(hours=h)).timestamp() for h in range(25)]
    for h in range(1, 25):  # an hour skipped by a DST change must not run backwards
        bounds[h] = max(bounds[h], bounds[h - 1])
    return tuple(bounds)


def _split_by_hour(
    intervals: Iterable[tuple[datetime, datetime]],
    tz: ZoneInfo,
    day: date,
    low: float = float("-inf"),
    high: float = float("inf"),
) -> dict[int, float]:
    """Working seconds per local hour of ``day`` in the intervals, clipped to [low, high)."""
    bounds = _hour_bounds(tz, day)
    seconds: dict[int, float] = {}
    for start, end in intervals:
        s = max(start.timestamp(), low, bounds[0])
        e = min(end.timestamp(), high, bounds[24])
        hour = max(bisect_right(bounds, s) - 1, 0)
        while hour < 24 and bounds[hour] < e:
            part = min(e, bounds[hour + 1]) - max(s, bounds[hour])
            if part > 0:
                seconds[hour] = seconds.get(hour, 0.0) + part
            hour += 1
    return seconds


def _aware(moment: datetime) -> float:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("time must carry a time zone; naive times are ambiguous")
    return moment.timestamp()


def expected_between(
    baselines: Baselines,
    calendar: Calendar,
    manager_id: str,
    department_id: str,
    tz: ZoneInfo,
    metric: str,
    start: datetime,
    end: datetime,
) -> float | None:
    """The count the baseline expects in [start, end): each working part of the window, split
    at local hour boundaries, times its hour's rate. None when a working part has no baseline
    (the caller then judges by the norm); 0.0 when the window holds no working time."""
    low, high = _aware(start), _aware(end)
    expected = 0.0
    if high <= low:
        return expected
    day, last = start.astimezone(tz).date(), end.astimezone(tz).date()
    while day <= last:
        intervals = calendar.working_intervals(manager_id, department_id, tz, day)
        for hour, seconds in _split_by_hour(intervals, tz, day, low, high).items():
            rate = baselines.rate(manager_id, metric, day.weekday(), hour)
            if rate is None:
                return None
            expected += rate * seconds
        day += timedelta(days=1)
    return expected


def working_window_start(
    calendar: Calendar,
    manager_id: str,
    department_id: str,
    tz: ZoneInfo,
    end: datetime,
    working_minutes: float,
    not_before: datetime,
) -> datetime:
    """The latest instant s >= ``not_before`` with ``working_minutes`` of working time in
    [s, end), or ``not_before`` when there is less ("the last two working hours" from now)."""
    _aware(not_before), _aware(end)
    need = timedelta(minutes=working_minutes)
    if need <= timedelta(0):
        return max(end, not_before)
    day, first = end.astimezone(tz).date(), not_before.astimezone(tz).date()
    while day >= first:
        intervals = calendar.working_intervals(manager_id, department_id, tz, day)
        for start, stop in reversed(intervals):
            s, e = max(start, not_before), min(stop, end)
            if e <= s:
                continue
            if e - s >= need:
                return (e - need).astimezone(UTC)
            need -= e - s
        day -= timedelta(days=1)
    return not_before
