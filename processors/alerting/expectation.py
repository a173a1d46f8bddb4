"""How much a manager was expected to do, and where they are heading: one computation for the
dip rule and for the head of sales' page, so that both speak of the same "expected".

Expected is the manager's baseline summed over the working time of a window
(``docs/baselines.md``); a manager without enough history is held against the day norm of their
role, spread evenly over that day's working time (``docs/alerts.md``, norms).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from processors.alerting.baseline import Baselines
from processors.alerting.rules import Period, RulesFile
from processors.alerting.workdays import Workdays, local_midnight
from salespulse.directory import ManagerEntry


@dataclass(frozen=True, slots=True)
class Expected:
    """An expected count, what it came from (``"baseline"`` or ``"norm"``), and how much more
    than Poisson the manager's counts vary (``Baselines.dispersion``; 1 = Poisson)."""

    count: float
    source: str
    dispersion: float = 1.0


def day_norm_rate(
    workdays: Workdays,
    rules: RulesFile,
    manager: ManagerEntry,
    department_id: str,
    zone: ZoneInfo,
    metric: str,
    day: date,
) -> float | None:
    """A manager's day norm as a rate per working second of local ``day``; None without a
    norm or without working time that day."""
    norm = rules.norm_for(metric, Period.DAY, department_id, manager.role)
    if norm is None:
        return None
    day_seconds = workdays.seconds(
        manager.id,
        department_id,
        zone,
        local_midnight(day, zone),
        local_midnight(day + timedelta(days=1), zone),
    )
    return norm.at_least / day_seconds if day_seconds else None


def expected_count(
    workdays: Workdays,
    baselines: Baselines,
    rules: RulesFile,
    manager: ManagerEntry,
    department_id: str,
    zone: ZoneInfo,
    metric: str,
    start: datetime,
    end: datetime,
) -> Expected | None:
    """The count a manager was expected to reach in [start, end): their baseline, or for a
    manager without enough history, the day norm of their role (the norm of the local day
    ``start`` falls in). None when neither exists."""
    pieces = workdays.hour_pieces(manager.id, department_id, zone, start, end)
    total = 0.0
    for day, hour, seconds in pieces:
        rate = baselines.rate(manager.id, metric, day.weekday(), hour)
        if rate is None:
            break
        total += rate * seconds
    else:
        return Expected(total, "baseline", baselines.dispersion(manager.id, metric))
    day = start.astimezone(zone).date()
    norm_rate = day_norm_rate(workdays, rules, manager, department_id, zone, metric, day)
    if norm_rate is None:
        return None
    seconds = sum(seconds for _, _, seconds in pieces)
    # Held against the norm, a manager is as bursty as their own history says, or as the
    # managers with history are.
    return Expected(norm_rate * seconds, "norm", baselines.dispersion(manager.id, metric))


def projected_total(actual: float, elapsed_seconds: float, total_seconds: float) -> float | None:
    """The period's total at the pace so far: ``actual × total ÷ elapsed`` working seconds.
    None before any working time has passed."""
    if elapsed_seconds <= 0 or total_seconds <= 0:
        return None
    return actual * total_seconds / elapsed_seconds
