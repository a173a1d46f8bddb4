"""The one backoff every retry loop uses: doubles up to its cap, jittered down to half, reset by
a success."""

from __future__ import annotations

import pytest

from salespulse.backoff import Backoff, backoff_delay


@pytest.mark.parametrize("failures", [0, 1, 3, 10, 100])
def test_backoff_doubles_up_to_the_cap_with_jitter(failures: int) -> None:
    ceiling = min(30.0, 0.5 * 2**failures)
    for _ in range(50):
        delay = backoff_delay(failures, 0.5, 30.0)
        assert ceiling / 2 <= delay <= ceiling


def test_waits_grow_until_a_success_resets_them() -> None:
    waits = Backoff(first=1.0, cap=8.0)
    ceilings = [1.0, 2.0, 4.0, 8.0, 8.0]
    for ceiling in ceilings:
        assert ceiling / 2 <= waits.next() <= ceiling
    waits.reset()
    assert 0.5 <= waits.next() <= 1.0
