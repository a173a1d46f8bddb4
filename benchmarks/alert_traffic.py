"""Sales managers' calls and chats as alert evaluation sees them, for benchmarks/alert_quality.py.

A manager has an activity level (calls an hour while at work: low 2-3, medium 6-8, high 15-20)
and a day of their own:

* calls never overlap for one manager: a call occupies them for its ring and talk (talk
  lognormal, median 50 s, a long tail capped at 45 minutes) plus a few seconds of wrap-up;
  the gaps between calls are gamma-distributed with shape 0.5 (bursts and lulls, not a steady
  Poisson stream); incoming calls reach a manager only while free (a queue routes them), so
  a manager away has no calls at all;
* 0-2 meetings of 30-90 minutes and 0-3 short breaks of 5-20 minutes a day without calls,
  lunch and the working hours from the calendar, a quieter afternoon and last hour, and a
  day's rate ±20 % around the usual;
* a third of the managers also serve chats (1-4 an hour, sessions of 3-20 minutes, which may
  overlap calls and one another);
* a *dip* scales the rates of calls and chats between two instants (0: silent).

A call or chat becomes visible when it ends (its record is written then) plus ``INGEST_DELAY``,
and counts in the minute it began, as the worker's reader of today's activity counts it.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from processors.alerting.workdays import Workdays
from salespulse.activity import HourRow

LEVELS: dict[str, tuple[float, float]] = {"low": (2, 3), "medium": (6, 8), "high": (15, 20)}
INGEST_DELAY = timedelta(seconds=5)
GAP_SHAPE = 0.5  # gamma shape of the gaps between calls: under 1 is burstier than Poisson
TALK_MEDIAN, TALK_SIGMA, TALK_CAP = 50.0, 1.0, 45 * 60.0
# What a call occupies on average besides its talk (ring, wrap-up), for the gaps' mean.
_TALK_MEAN = TALK_MEDIAN * math.exp(TALK_SIGMA**2 / 2)
CONVERSATION_SECONDS = 30  # the default conversation threshold
# The metrics this traffic has; a rule on any other is not measured.
METRICS = frozenset(
    {"calls_in", "calls_out", "calls_in_answered", "calls_out_answered", "conversations", "chats"}
)


@dataclass(frozen=True, slots=True)
class Profile:
    """One manager's usual traffic."""

    manager_id: str
    level: str
    calls_per_hour: float
    outgoing_share: float
    chats_per_hour: float  # 0: no chats

    @property
    def activities_per_hour(self) -> float:
        return self.calls_per_hour + self.chats_per_hour


@dataclass(frozen=True, slots=True)
class Dip:
    """Rates times ``factor`` from ``start`` until ``end``."""

    manager_id: str
    start: datetime
    end: datetime
    factor: float


@dataclass(frozen=True, slots=True)
class Activity:
    """A call or a chat session, and the metrics it counts in."""

    start: datetime
    end: datetime
    metrics: tuple[str, ...]

    @property
    def visible(self) -> datetime:
        return self.end + INGEST_DELAY


def profiles(managers: int, seed: int) -> list[Profile]:
    """``managers`` people, the levels in turn."""
    rng = random.Random(f"profiles:{seed}")
    names = list(LEVELS)
    found = []
    for index in range(managers):
        level = names[index % len(names)]
        low, high = LEVELS[level]
        # A third of each level serves chats too.
        chats = rng.uniform(1, 4) if (index // len(names)) % 3 == 1 else 0.0
        calls, outgoing = rng.uniform(low, high), rng.uniform(0.6, 0.9)
        found.append(Profile(f"m{index + 1:03d}", level, calls, outgoing, chats))
    return found


def _hour_factor(local_hour: int) -> float:
    """Slower first hour, busy late morning, quieter afternoon and last hour (mean ≈ 1)."""
    if local_hour < 10:
        return 0.9
    if local_hour < 13:
        return 1.15
    if local_hour < 17:
        return 0.95
    return 0.7


class _Day:
    """One manager's working day: when they are away, and their rate at an instant."""

    def __init__(
        self,
        profile: Profile,
        intervals: Sequence[tuple[datetime, datetime]],
        dips: Sequence[Dip],
        rng: random.Random,
        zone: ZoneInfo,
    ) -> None:
        self.profile, self.rng, self.zone = profile, rng, zone
        self.dips = dips
        self.factor = rng.uniform(0.8, 1.2)
        working = [span for span in intervals if span[1] > span[0]]
        arrive = timedelta(minutes=rng.uniform(0, 8))
        leave = timedelta(minutes=rng.uniform(0, 10))
        if working:
            working[0] = (working[0][0] + arrive, working[0][1])
            working[-1] = (working[-1][0], working[-1][1] - leave)
        away = [self._away(working, rng.uniform(30, 90)) for _ in range(min(2, _poisson(rng, 0.8)))]
        away += [self._away(working, rng.uniform(5, 20)) for _ in range(min(3, _poisson(rng, 1.5)))]
        self.free = _subtract(working, sorted(span for span in away if span is not None))

    def _away(
        self, working: Sequence[tuple[datetime, datetime]], minutes: float
    ) -> tuple[datetime, datetime] | None:
        fitting = [(a, b) for a, b in working if (b - a).total_seconds() > minutes * 60]
        if not fitting:
            return None
        a, b = self.rng.choice(fitting)
        room = (b - a).total_seconds() - minutes * 60
        start = a + timedelta(seconds=self.rng.uniform(0, room))
        return start, start + timedelta(minutes=minutes)

    def rate(self, moment: datetime, per_hour: float) -> float:
        """Events a second at ``moment`` for a usual ``per_hour``."""
        local_hour = moment.astimezone(self.zone).hour
        rate = per_hour * self.factor * _hour_factor(local_hour) / 3600
        for dip in self.dips:
            if dip.start <= moment < dip.end:
                rate *= dip.factor
        return rate

    def _next_change(self, moment: datetime) -> datetime:
        """The next instant the rate may change: an hour boundary or a dip's edge."""
        hour = moment.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
        edges = [edge for dip in self.dips for edge in (dip.start, dip.end) if edge > moment]
        return min([hour, *edges])

    def calls(self) -> Iterator[Activity]:
        busy_until: datetime | None = None
        profile, rng = self.profile, self.rng
        for span_start, span_end in self.free:
            moment = span_start if busy_until is None else max(span_start, busy_until)
            while moment < span_end:
                rate = self.rate(moment, profile.calls_per_hour)
                if rate <= 0:
                    moment = self._next_change(moment)
                    continue
                occupied = 17.5 + 22.5 + profile.outgoing_share * 0.7 * _TALK_MEAN
                occupied += (1 - profile.outgoing_share) * _TALK_MEAN
                mean_gap = max(20.0, 1 / rate - occupied)
                moment += timedelta(seconds=rng.gammavariate(GAP_SHAPE, mean_gap / GAP_SHAPE))
                if moment >= span_end or self.rate(moment, profile.calls_per_hour) <= 0:
                    continue
                call = self._call(moment)
                busy_until = call.end + timedelta(seconds=rng.uniform(5, 40))
                moment = busy_until
                yield call

    def _call(self, start: datetime) -> Activity:
        rng = self.rng
        outgoing = rng.random() < self.profile.outgoing_share
        answered = not outgoing or rng.random() < 0.7
        ring = rng.uniform(5, 30) if answered else rng.uniform(15, 40)
        talk = (
            min(TALK_CAP, rng.lognormvariate(math.log(TALK_MEDIAN), TALK_SIGMA)) if answered else 0
        )
        direction = "calls_out" if outgoing else "calls_in"
        metrics = [direction]
        if answered:
            metrics.append(f"{direction}_answered")
            if talk >= CONVERSATION_SECONDS:
                metrics.append("conversations")
        return Activity(start, start + timedelta(seconds=ring + talk), tuple(metrics))

    def chats(self) -> Iterator[Activity]:
        per_hour = self.profile.chats_per_hour
        if per_hour <= 0:
            return
        for span_start, span_end in self.free:
            moment = span_start
            while True:
                # Thinning: candidates at the highest rate, kept in proportion to the rate then.
                moment += timedelta(seconds=self.rng.expovariate(per_hour * 1.2 * 1.15 / 3600))
                if moment >= span_end:
                    break
                if self.rng.random() * per_hour * 1.2 * 1.15 / 3600 < self.rate(moment, per_hour):
                    length = timedelta(minutes=self.rng.uniform(3, 20))
                    yield Activity(moment, moment + length, ("chats",))


def _poisson(rng: random.Random, mean: float) -> int:
    count, total = 0, rng.expovariate(1.0)
    while total < mean:
        count += 1
        total += rng.expovariate(1.0)
    return count


def _subtract(
    spans: Sequence[tuple[datetime, datetime]], holes: Sequence[tuple[datetime, datetime]]
) -> list[tuple[datetime, datetime]]:
    result = []
    for start, end in spans:
        pieces = [(start, end)]
        for hole_start, hole_end in holes:
            pieces = [
                piece
                for a, b in pieces
                for piece in ((a, min(b, hole_start)), (max(a, hole_end), b))
                if piece[1] > piece[0]
            ]
        result.extend(pieces)
    return result


def manager_day(
    profile: Profile,
    department_id: str,
    zone: ZoneInfo,
    workdays: Workdays,
    day: date,
    dips: Sequence[Dip],
    seed: int,
) -> list[Activity]:
    """The manager's calls and chats of local ``day`` (the same for the same seed), by start;
    none on a day off."""
    intervals = workdays.intervals(profile.manager_id, department_id, zone, day)
    rng = random.Random(f"day:{seed}:{profile.manager_id}:{day.isoformat()}")
    today = _Day(profile, intervals, dips, rng, zone)
    return sorted([*today.calls(), *today.chats()], key=lambda activity: activity.start)


def silences(
    activities: Sequence[Activity],
    start: datetime,
    end: datetime,
    working_seconds: Callable[[datetime, datetime], float],
) -> list[float]:
    """Working minutes of each stretch from ``start`` to ``end`` without a call or chat in
    progress: what any rule telling a silence sees on a usual day (meetings, breaks, lulls)."""
    found: list[float] = []
    cursor = start
    for activity in sorted(activities, key=lambda a: a.start):
        if activity.start > cursor:
            found.append(working_seconds(cursor, min(activity.start, end)) / 60)
        cursor = max(cursor, activity.end)
        if cursor >= end:
            return found
    found.append(working_seconds(cursor, end) / 60)
    return found


def hour_rows(
    manager_id: str, department_id: str, zone: ZoneInfo, activities: Sequence[Activity]
) -> list[HourRow]:
    """The hourly history the worker's rollup would hold for these activities (each counted
    in the local hour it began), one row per local hour with any."""
    counts: dict[tuple[date, int], dict[str, int]] = {}
    for activity in activities:
        local = activity.start.astimezone(zone)
        row = counts.setdefault((local.date(), local.hour), {})
        for metric in activity.metrics:
            row[metric] = row.get(metric, 0) + 1
    return [
        HourRow(manager_id, department_id, local_date, hour, metrics)
        for (local_date, hour), metrics in sorted(counts.items())
    ]
