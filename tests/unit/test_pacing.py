"""The shared token bucket, on a controlled clock."""

from __future__ import annotations

import pytest

from ingest.pacing import TokenBucket


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_burst_then_rate() -> None:
    clock = Clock()
    bucket = TokenBucket(rate=2, capacity=3, clock=clock)
    assert [bucket.try_take() for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.try_take() == pytest.approx(0.5)  # one token every half second
    clock.now += 0.5
    assert bucket.try_take() == 0.0


def test_refill_never_exceeds_capacity() -> None:
    clock = Clock()
    bucket = TokenBucket(rate=10, capacity=2, clock=clock)
    clock.now += 3600
    assert [bucket.try_take() for _ in range(2)] == [0.0, 0.0]
    assert bucket.try_take() > 0


def test_debt_lets_a_large_item_through_and_delays_the_next() -> None:
    clock = Clock()
    bucket = TokenBucket(rate=100, capacity=10, clock=clock)
    assert bucket.take_with_debt(50) == pytest.approx(0.4)  # 40 tokens of debt at 100/s
    assert bucket.try_take() == pytest.approx(0.41)


@pytest.mark.parametrize(("rate", "capacity"), [(0, 1), (-1, 5), (1, 0.5)])
def test_nonsense_limits_are_refused(rate: float, capacity: float) -> None:
    with pytest.raises(ValueError, match="rate must be positive"):
        TokenBucket(rate, capacity)
