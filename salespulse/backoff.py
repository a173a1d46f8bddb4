"""The one way salespulse waits between attempts: exponential, capped, jittered, with a reset.

A wait starts at ``first`` and doubles after every failure up to ``cap``; each wait is a random
time between half and all of that, so that bridges and workers restarted together do not
retry in step against a service that is coming back. A success resets it. ::

    waits = Backoff(first=0.5, cap=30.0)
    while True:
        try:
            send()
        except Unavailable:
            await asyncio.sleep(waits.next())
            continue
        waits.reset()
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field


def backoff_delay(failures: int, first: float, cap: float) -> float:
    """The wait after ``failures`` failures in a row (0 for the first wait): about
    ``first``·2^failures, never above ``cap``, randomised down to half."""
    ceiling = min(cap, first * 2.0 ** min(failures, 32))
    return ceiling * random.uniform(0.5, 1.0)


@dataclass
class Backoff:
    """Successive waits of one retry loop (see the module's example)."""

    first: float
    cap: float
    failures: int = field(default=0, init=False)

    def next(self) -> float:
        """The wait before the next attempt; each call counts one more failure."""
        delay = backoff_delay(self.failures, self.first, self.cap)
        self.failures += 1
        return delay

    def reset(self) -> None:
        """After a success: the next failure waits ``first`` again."""
        self.failures = 0
