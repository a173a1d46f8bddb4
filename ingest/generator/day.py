"""One manager's working day: its random stream, local clock and id sequence.

Every manager-day draws from its own ``random.Random`` seeded by (seed, manager, date), so the
output depends only on the inputs and a day looks the same whichever window it is part of.
"""

from __future__ import annotations

import calendar
import random
from datetime import date

from ingest.generator.population import Manager, Population, utc_offset_seconds

HOUR = 3600
DAY = 24 * HOUR
OFF_HOURS_SHARE = 0.02


class ManagerDay:
    def __init__(
        self, pop: Population, manager: Manager, day: date, seed: int, factor: float
    ) -> None:
        self.manager = manager
        self.colleagues = [m for m in pop.members(manager.department) if m.id != manager.id]
        self.rng = random.Random(f"{seed}:{manager.id}:{day.isoformat()}")
        self.factor = factor
        self.stamp = day.strftime("%Y%m%d")
        self.offset = utc_offset_seconds(pop.department_of(manager).zone, day)
        self.midnight = calendar.timegm(day.timetuple()) - self.offset
        self.serial = 0

    def at(self, second: int) -> int:
        """UTC epoch seconds of the local time ``second`` seconds after midnight."""
        return self.midnight + second

    def between(self, low: int, high: int) -> int:
        """Uniform integer in [low, high]; cheaper than ``randint`` on the hot path."""
        return low + int(self.rng.random() * (high - low + 1))

    def count(self, low: int, high: int, scaled: bool = True) -> int:
        """How many of something happen today: uniform in [low, high], times the intensity."""
        value = self.rng.uniform(low, high + 1)
        return int(value * self.factor) if scaled else min(high, int(value))

    def next_id(self, prefix: str) -> str:
        self.serial += 1
        return f"{prefix}-{self.stamp}-{self.manager.id}-{self.serial:04d}"

    def colleague(self) -> Manager | None:
        return self.rng.choice(self.colleagues) if self.colleagues else None

    def work_second(self) -> int:
        """Seconds after local midnight: 09:00-13:00 or 14:00-18:00, rarely just outside them."""
        if self.rng.random() < OFF_HOURS_SHARE:
            if self.rng.random() < 0.5:
                return self.between(8 * HOUR, 9 * HOUR - 1)
            return self.between(18 * HOUR, 19 * HOUR + 30 * 60 - 1)
        second = self.between(0, 8 * HOUR - 1)
        return 9 * HOUR + second if second < 4 * HOUR else 14 * HOUR + second - 4 * HOUR

    def talk_seconds(self) -> int:
        # Lognormal with a median of about a minute: a third under 30 s, a few over ten minutes.
        return max(1, min(2 * HOUR, int(self.rng.lognormvariate(4.0, 1.1))))

    def customer_number(self) -> str:
        return f"79{self.between(0, 10**9 - 1):09d}"
