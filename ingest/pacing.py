"""One token bucket for every rate in the bridges: the generator's send rate, the HTTP
receiver's per-client limit, and the pace of calls to a CRM's REST API."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


class TokenBucket:
    """``rate`` tokens per second, at most ``capacity`` banked (the burst).

    The clock is injectable so that the arithmetic is tested without sleeping.
    """

    def __init__(
        self, rate: float, capacity: float, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if rate <= 0 or capacity < 1:
            raise ValueError("rate must be positive and capacity at least 1")
        self.rate = rate
        self.capacity = float(capacity)
        self._clock = clock
        self._tokens = float(capacity)
        self._updated = clock()

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self.capacity, self._tokens + (now - self._updated) * self.rate)
        self._updated = now

    def try_take(self, count: float = 1.0) -> float:
        """Take ``count`` tokens if they are there and return 0; otherwise take nothing and
        return the seconds until they would be."""
        self._refill()
        if self._tokens >= count:
            self._tokens -= count
            return 0.0
        return (count - self._tokens) / self.rate

    def take_with_debt(self, count: float) -> float:
        """Take ``count`` tokens even past zero and return the seconds the debt takes to clear.

        For pacing a stream whose items may be larger than the bucket: the item goes through,
        and the wait before the next one keeps the long-run rate.
        """
        self._refill()
        self._tokens -= count
        return max(0.0, -self._tokens / self.rate)

    async def acquire(self, count: float = 1.0) -> None:
        """Reserve ``count`` tokens now and wait until they are paid for.

        Reserving at once serves concurrent callers in the order they asked: each one's debt
        adds to the wait of those after it.
        """
        await asyncio.sleep(self.take_with_debt(count))
