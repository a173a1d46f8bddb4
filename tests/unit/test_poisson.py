"""The drop rule's maths, with numbers a person can check by hand."""

from __future__ import annotations

import math
import random
from itertools import accumulate

import pytest
from hypothesis import given
from hypothesis import strategies as st

from processors.alerting import poisson
from processors.alerting.drop import DROP_WINDOWS


def test_the_cdf_of_small_means_is_the_textbook_sum() -> None:
    # P(X ≤ 0 | 3) = e^-3; P(X ≤ 2 | 10) = e^-10 (1 + 10 + 100/2) = 61 e^-10.
    assert poisson.cdf(0, 3) == pytest.approx(math.exp(-3), rel=1e-14)
    assert poisson.cdf(0, 3) == pytest.approx(0.049787, abs=1e-6)
    assert poisson.cdf(2, 10) == pytest.approx(61 * math.exp(-10), rel=1e-14)
    assert poisson.cdf(2, 10) == pytest.approx(0.0027694, abs=1e-7)
    # P(X ≤ 1 | 0.5) = e^-0.5 × 1.5; at the mean, P(X ≤ 1 | 1) = 2/e.
    assert poisson.cdf(1, 0.5) == pytest.approx(1.5 * math.exp(-0.5), rel=1e-14)
    assert poisson.cdf(1, 1) == pytest.approx(2 / math.e, rel=1e-14)


@pytest.mark.parametrize(("k", "lam"), [(7, 12.5), (40, 31.0), (3, 0.2), (250, 300.0), (30, 30)])
def test_the_cdf_matches_the_plain_sum_where_that_sum_is_safe(k: int, lam: float) -> None:
    plain = sum(math.exp(i * math.log(lam) - lam - math.lgamma(i + 1)) for i in range(k + 1))
    assert poisson.cdf(k, lam) == pytest.approx(plain, rel=1e-12)


@given(st.integers(min_value=0, max_value=150), st.floats(min_value=0.01, max_value=120))
def test_the_cdf_matches_the_plain_sum_on_either_side_of_the_mean(k: int, lam: float) -> None:
    # Below the mean the terms are summed, above it the complement: both meet the plain sum of
    # positive terms (accurate where e^-λ is a normal double).
    plain = math.fsum(math.exp(i * math.log(lam) - lam - math.lgamma(i + 1)) for i in range(k + 1))
    assert poisson.cdf(k, lam) == pytest.approx(min(plain, 1.0), rel=1e-11)


def test_the_cdf_stays_exact_where_the_plain_sum_underflows() -> None:
    # e^-1000 is no double; its log is.
    assert poisson.log_cdf(0, 1000) == pytest.approx(-1000, rel=1e-15)
    # log P(X ≤ 1 | 1000) = -1000 + log(1001).
    assert poisson.log_cdf(1, 1000) == pytest.approx(-1000 + math.log(1001), rel=1e-15)
    # At the mean of a large λ: 1/2 + 2 / (3 √(2πλ)) ≈ 0.508410 (Ramanujan; error O(1/λ)).
    assert poisson.cdf(1000, 1000) == pytest.approx(0.508410, abs=1e-5)
    # Far above the mean the complement is summed: P(X ≤ 60 | 10) = 1 - (about 1e-23).
    assert poisson.log_cdf(60, 10) == pytest.approx(0, abs=1e-20)
    assert poisson.log_cdf(60, 10) < 0


def test_the_cdf_edges() -> None:
    assert poisson.log_cdf(-1, 4) == -math.inf
    assert poisson.cdf(0, 0) == 1.0
    with pytest.raises(ValueError, match="finite"):
        poisson.log_cdf(1, -1)
    # Monotone in k, summing to 1.
    values = [poisson.cdf(k, 12.3) for k in range(60)]
    assert values == sorted(values)
    assert values[-1] == pytest.approx(1, abs=1e-15)


def test_the_threshold_follows_from_the_budget() -> None:
    # 1 false alarm per 20 working days, a judgement per working minute of an 8-hour day:
    # alpha = (1/20) / 480 ≈ 1.04e-4 per evaluation.
    alpha = poisson.evaluation_alpha(1 / 20, 480)
    assert alpha == pytest.approx(1.0417e-4, rel=1e-4)
    # A shorter day (a 4-hour Friday) spends the same budget over fewer judgements.
    assert poisson.evaluation_alpha(1 / 20, 240) == pytest.approx(2 * alpha)


def test_windows_that_cannot_be_rare_enough_take_no_share_of_the_level() -> None:
    alpha = 1e-4
    # A window expecting 3 can show at most e^-3 ≈ 0.05 of rarity: never under 1e-4, so it
    # does not count. Those expecting 12, 14, 30 (e^-12 ≈ 6e-6) can: m = 3, level 3.3e-5.
    assert poisson.testable_count([-3, -12, -14, -30], alpha) == 3
    found = poisson.scan([(0, 3.0), (0, 12.0), (2, 14.0), (10, 30.0)], alpha)
    assert found.tested == 3
    assert math.exp(found.log_threshold) == pytest.approx(alpha / 3)
    # P(X≤0|12) = 6.1e-6 and P(X≤10|30) = 2.2e-5 are under it, P(X≤2|14) = 113 e^-14 =
    # 9.4e-5 is not; the rarest is the window expecting 12.
    assert found.breached
    assert found.index == 1
    assert found.log_p == pytest.approx(-12)


def test_a_usual_count_does_not_breach_and_nothing_testable_says_so() -> None:
    assert not poisson.scan([(11, 12.0), (29, 30.0)], 1e-4).breached
    nothing = poisson.scan([(0, 3.0), (0, 5.0)], 1e-4)
    assert not nothing.breached
    assert nothing.tested == 0


def _poisson_sample(rng: random.Random, lam: float) -> int:
    """Knuth's method: fine for the per-minute means here (under 1)."""
    limit, k, product = math.exp(-lam), 0, rng.random()
    while product > limit:
        k += 1
        product *= rng.random()
    return k


def _bursts(rng: random.Random, per_minute: float, dispersion: float) -> int:
    """One minute of a compound Poisson stream whose bursts hold log-series numbers of calls:
    the count of any window is negative binomial with variance ``dispersion`` × mean."""
    q = 1 - 1 / dispersion
    burst_mean = -q / ((1 - q) * math.log(1 - q))
    calls = 0
    for _ in range(_poisson_sample(rng, per_minute / burst_mean)):
        # Inversion of P(K = k) = -q^k / (k ln(1 - q)), k ≥ 1.
        u, k, term = rng.random(), 1, -q / math.log(1 - q)
        total = term
        while u > total:
            term *= q * k / (k + 1)
            k += 1
            total += term
        calls += k
    return calls


def _false_alarms(
    per_hour: float,
    days: int,
    budget: float,
    seed: int,
    *,
    dispersion: float = 1.0,
    judged_as: float | None = None,
) -> int:
    """Alarms (breaches after a clear minute) in ``days`` simulated 8-hour working days of
    calls at exactly the expected rate, judged each minute over the drop rule's windows. With
    ``dispersion`` above 1 the calls come in bursts (``_bursts``), judged as counts of the
    dispersion ``judged_as`` (by default the true one)."""
    rng = random.Random(seed)
    per_minute, day_minutes = per_hour / 60, 480
    alpha = poisson.evaluation_alpha(budget, day_minutes)
    lengths = [minutes for minutes in DROP_WINDOWS if minutes < day_minutes] + [day_minutes]
    assumed = dispersion if judged_as is None else judged_as
    alarms = 0
    for _ in range(days):
        calls = (
            _bursts(rng, per_minute, dispersion)
            if dispersion > 1
            else _poisson_sample(rng, per_minute)
            for _ in range(day_minutes)
        )
        totals = list(accumulate(calls, initial=0))
        before = False
        for end in range(1, day_minutes + 1):
            windows = []
            for length in lengths:
                length = min(length, end)  # never before the start of the day
                windows.append((totals[end] - totals[end - length], per_minute * length))
                if length == end:
                    break
            breached = poisson.scan(windows, alpha, assumed).breached
            alarms += breached and not before
            before = breached
    return alarms


def test_a_normal_day_stays_within_the_default_budget() -> None:
    # 1 per 20 working days over 100 days allows 5; the bound is conservative, and a seeded
    # run of a 20-calls-an-hour manager gives none.
    assert _false_alarms(20, days=100, budget=1 / 20, seed=1) <= 5


def test_a_loose_budget_is_kept_too_and_shows_the_detector_is_not_just_mute() -> None:
    # 1 per working day over 40 days allows 40. A manager at 60 calls an hour comes out at a
    # few (the bound counts every judgement as if independent; neighbouring minutes share
    # almost all their calls), so the budget is an upper limit, not the expected rate.
    alarms = _false_alarms(60, days=40, budget=1.0, seed=2)
    assert 0 < alarms <= 40


def test_negative_binomial_by_hand() -> None:
    # Mean 4, variance 8 (φ = 2): shape r = 4, success probability 1/2, so
    # P(0) = 2^-4 = 0.0625, P(1) = 4 × 2^-5 = 0.125, P(2) = C(5, 2) × 2^-6 = 0.15625.
    assert math.exp(poisson.log_cdf_dispersed(0, 4, 2)) == pytest.approx(0.0625, rel=1e-13)
    assert math.exp(poisson.log_cdf_dispersed(1, 4, 2)) == pytest.approx(0.1875, rel=1e-13)
    assert math.exp(poisson.log_cdf_dispersed(2, 4, 2)) == pytest.approx(0.34375, rel=1e-13)
    assert poisson.log_floor(4, 2) == pytest.approx(-4 * math.log(2))
    # φ = 1 is Poisson.
    assert poisson.log_cdf_dispersed(3, 7.5, 1.0) == poisson.log_cdf(3, 7.5)
    assert poisson.log_floor(7.5) == -7.5


@pytest.mark.parametrize(("lam", "phi"), [(0.7, 1.5), (12.0, 3.0), (40.0, 8.0), (300.0, 1.2)])
def test_negative_binomial_has_the_stated_mean_and_variance(lam: float, phi: float) -> None:
    pmf = [math.exp(poisson.log_pmf_dispersed(k, lam, phi)) for k in range(4000)]
    assert sum(pmf) == pytest.approx(1, abs=1e-9)
    mean = sum(k * p for k, p in enumerate(pmf))
    assert mean == pytest.approx(lam, rel=1e-6)
    assert sum((k - mean) ** 2 * p for k, p in enumerate(pmf)) == pytest.approx(phi * lam, rel=1e-6)
    # Both ways of summing the tail (below the mean, and the complement above it) agree with
    # the plain sum.
    for k in (0, 1, int(lam / 2), int(lam), int(lam * 2) + 3):
        plain = sum(pmf[: k + 1])
        assert math.exp(poisson.log_cdf_dispersed(k, lam, phi)) == pytest.approx(plain, rel=1e-9)


def test_bursty_counts_need_more_expected_before_an_empty_window_is_rare() -> None:
    # Nothing in a window expecting 12 is rare for Poisson counts (e^-12 = 6.1e-6) but not when
    # calls come in bursts with variance three times the mean: 3^-6 = 1.4e-3.
    assert poisson.scan([(0, 12.0)], 1e-4).breached
    bursty = poisson.scan([(0, 12.0)], 1e-4, dispersion=3.0)
    assert not bursty.breached
    assert bursty.tested == 0
    # 12 × ln 3 / 2 = 6.6 of rarity; to reach ln(1e4) = 9.2 the window must expect 16.8.
    assert poisson.scan([(0, 17.0)], 1e-4, dispersion=3.0).breached
    with pytest.raises(ValueError, match="dispersion"):
        poisson.scan([(0, 17.0)], 1e-4, dispersion=0.5)


def test_bursty_calls_break_a_poisson_budget_and_keep_a_dispersed_one() -> None:
    # A manager at 20 calls an hour whose calls come in bursts (variance 3 × the mean): judged
    # as if Poisson, 1 per working day over 30 days (30 allowed) is broken several times over;
    # judged with the dispersion it stays within it.
    as_poisson = _false_alarms(20, days=30, budget=1.0, seed=3, dispersion=3.0, judged_as=1.0)
    dispersed = _false_alarms(20, days=30, budget=1.0, seed=3, dispersion=3.0)
    assert as_poisson > 30
    assert dispersed <= 30
