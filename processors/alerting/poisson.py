"""Poisson tail probabilities and the scan that turns them into alerts with a known false-alarm
rate: the maths of the ``drop`` rule, with no knowledge of managers, calendars or rules.

A manager's count of calls in a window of working time is taken as Poisson with mean ``λ``, the
count expected there (``processors.alerting.expectation``). The smaller P(X ≤ observed | λ), the
less a normal day explains the window. ``scan`` looks at several windows ending at the same
instant and says whether the smallest of those probabilities is too small to be chance, at a
per-evaluation level ``alpha``: Bonferroni over the windows that could reach the level at all
(Tarone's refinement for discrete tests), so that a normal stream breaches at any one evaluation
with probability at most ``alpha``. ``evaluation_alpha`` spreads a false-alarm budget over a
working day's evaluations. The derivation is in ``docs/alerts.md`` (the ``drop`` rule).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

# A term smaller than this share of the sum so far changes no bit of a double.
_NEGLIGIBLE = 1e-17


def log_pmf(k: int, lam: float) -> float:
    """log P(X = k) for X ~ Poisson(lam)."""
    if k < 0:
        return -math.inf
    if lam == 0:
        return 0.0 if k == 0 else -math.inf
    return k * math.log(lam) - lam - math.lgamma(k + 1)


def log_cdf(k: int, lam: float) -> float:
    """log P(X ≤ k) for X ~ Poisson(lam), exact to rounding for any lam.

    The terms are summed relative to P(X = k), so nothing under- or overflows: P(X ≤ 0 | 1000)
    is e^-1000, which a double cannot hold, and its log is -1000. Below the mean the terms
    P(X = i) shrink as i falls (each is i/lam of the next); at or above it the complement
    P(X > k) is summed instead (each term lam/i of the previous), which is under one half there,
    so ``log1p`` keeps its precision. The sums need about k terms far below the mean and a few
    times sqrt(lam) near it."""
    if not lam >= 0 or math.isinf(lam):
        raise ValueError(f"a Poisson mean must be finite and not negative, not {lam!r}")
    if k < 0:
        return -math.inf
    if lam == 0:
        return 0.0
    return _log_cdf_from(log_pmf(k, lam), k, k < lam, lambda i: i / lam, lambda i: lam / (i + 1))


def _log_cdf_from(
    log_k: float,
    k: int,
    below_mean: bool,
    down: Callable[[int], float],
    up: Callable[[int], float],
) -> float:
    """log P(X ≤ k) from log P(X = k) and the ratios of neighbouring terms, ``down(i)`` =
    P(X = i - 1) / P(X = i) and ``up(i)`` = P(X = i + 1) / P(X = i): summed relative to
    P(X = k), so nothing under- or overflows. Below the mean the terms shrink going down, and
    are summed down to 0; at or above it the complement P(X > k), under about one half there,
    is summed upwards and ``log1p`` keeps its precision."""
    if below_mean:
        total, term = 1.0, 1.0
        for i in range(k, 0, -1):
            term *= down(i)
            total += term
            if term < total * _NEGLIGIBLE:
                break
        return log_k + math.log(total)
    total, term, i = 0.0, 1.0, k
    while True:
        term *= up(i)
        i += 1
        total += term
        if term < total * _NEGLIGIBLE:
            break
    return math.log1p(-min(1.0, math.exp(log_k + math.log(total))))


def cdf(k: int, lam: float) -> float:
    """P(X ≤ k) for X ~ Poisson(lam)."""
    return math.exp(log_cdf(k, lam))


# A dispersion this close to 1 is Poisson: the negative binomial's shape λ/(φ-1) would be huge.
_POISSON_DISPERSION = 1 + 1e-9


def log_floor(lam: float, dispersion: float = 1.0) -> float:
    """log P(X = 0): the smallest tail probability a window expecting ``lam`` can show.

    Poisson: -λ. Negative binomial with mean λ and variance φλ (shape r = λ/(φ-1), success
    probability 1/φ): P(X = 0) = φ^-r, so its log is -λ ln φ / (φ - 1), which is -λ as φ → 1
    and shrinks in size as φ grows: the burstier the counts, the more a window must expect
    before an empty one is rare."""
    if dispersion <= _POISSON_DISPERSION:
        return -lam
    return -lam * math.log(dispersion) / (dispersion - 1)


def log_pmf_dispersed(k: int, lam: float, dispersion: float) -> float:
    """log P(X = k) for X negative binomial with mean ``lam`` and variance ``dispersion × lam``
    (Poisson when ``dispersion`` is 1)."""
    if dispersion <= _POISSON_DISPERSION:
        return log_pmf(k, lam)
    if k < 0:
        return -math.inf
    if lam == 0:
        return 0.0 if k == 0 else -math.inf
    r = lam / (dispersion - 1)
    return (
        math.lgamma(k + r)
        - math.lgamma(r)
        - math.lgamma(k + 1)
        + log_floor(lam, dispersion)
        + k * math.log1p(-1 / dispersion)
    )


def log_cdf_dispersed(k: int, lam: float, dispersion: float) -> float:
    """log P(X ≤ k) for X negative binomial with mean ``lam`` and variance ``dispersion × lam``
    (``log_cdf`` when ``dispersion`` is 1).

    Summed downwards from P(X = k), each term P(X = i - 1) = P(X = i) × i / ((i - 1 + r) q) with
    q = 1 - 1/φ, so nothing under- or overflows. The drop rule asks only about counts well under
    the mean, where the sum is short; at or above the mean the complement is summed upwards
    (each term (i + r) q / (i + 1) of the previous), which is under about one half there."""
    if dispersion <= _POISSON_DISPERSION:
        return log_cdf(k, lam)
    if not lam >= 0 or math.isinf(lam) or math.isinf(dispersion):
        raise ValueError(f"a mean and a dispersion must be finite, not {lam!r}, {dispersion!r}")
    if k < 0:
        return -math.inf
    if lam == 0:
        return 0.0
    r, q = lam / (dispersion - 1), 1 - 1 / dispersion
    return _log_cdf_from(
        log_pmf_dispersed(k, lam, dispersion),
        k,
        k < lam,
        lambda i: i / ((i - 1 + r) * q),
        lambda i: (i + r) * q / (i + 1),
    )


def evaluation_alpha(alarms_per_working_day: float, evaluations_per_working_day: float) -> float:
    """The per-evaluation level that keeps a normal stream's expected false alarms per working
    day at or under the budget: each evaluation breaches with probability at most ``alpha``, and
    an alarm needs at least one breaching evaluation, so a day expects at most
    ``alpha × evaluations`` of them (whatever the correlation between evaluations)."""
    if alarms_per_working_day <= 0 or evaluations_per_working_day <= 0:
        raise ValueError("a budget and a number of evaluations must be positive")
    return min(1.0, alarms_per_working_day / evaluations_per_working_day)


def testable_count(floors: Sequence[float], alpha: float) -> int:
    """Tarone's m: the smallest m ≥ 1 such that at most m windows could go under ``alpha / m``.

    ``floors`` are the windows' ``log_floor``: the log of the smallest tail probability each
    can show, P(X ≤ 0) (nothing observed), so a window whose floor is at or above
    log(alpha/m) can never breach at that level and needs no share of ``alpha``. Which windows
    those are depends on the expectations alone, never on the counts, so the Bonferroni bound
    over the others still holds."""
    m = 1
    while True:
        level = math.log(alpha / m)
        if sum(floor < level for floor in floors) <= m:
            return m
        m += 1


@dataclass(frozen=True, slots=True)
class Scan:
    """The outcome of one evaluation.

    ``tested`` windows could reach the per-window level ``exp(log_threshold)`` = alpha/m. When
    ``breached``, ``index`` is the window with the smallest tail probability and ``log_p`` its
    log; otherwise both are None (the probabilities above the level are not worked out)."""

    breached: bool
    tested: int
    log_threshold: float
    index: int | None = None
    log_p: float | None = None


def scan(windows: Sequence[tuple[int, float]], alpha: float, dispersion: float = 1.0) -> Scan:
    """Judge ``(observed, expected)`` windows ending at one instant at per-evaluation level
    ``alpha``: breached when some window's P(X ≤ observed | expected) is under alpha/m, m from
    ``testable_count``. The counts are Poisson, or with ``dispersion`` φ > 1 negative binomial
    with variance φ × expected (bursty activity: ``baseline.Baselines.dispersion``). Under a
    stream whose counts have that distribution, P(breached) ≤ alpha."""
    if not 0 < alpha <= 1:
        raise ValueError(f"alpha must be in (0, 1], not {alpha!r}")
    if not dispersion >= 1 or math.isinf(dispersion):
        raise ValueError(f"a dispersion is at least 1 and finite, not {dispersion!r}")
    floors = [log_floor(lam, dispersion) for _, lam in windows]
    m = testable_count(floors, alpha)
    log_threshold = math.log(alpha / m)
    tested = 0
    best: tuple[float, int] | None = None
    for index, (observed, lam) in enumerate(windows):
        if floors[index] >= log_threshold:
            continue  # cannot go under the level even with nothing observed
        tested += 1
        # P(X ≤ k) ≥ P(X = k): one lgamma rules out the usual window, near its mean, where the
        # whole sum would take the most terms.
        if log_pmf_dispersed(observed, lam, dispersion) >= log_threshold:
            continue
        log_p = log_cdf_dispersed(observed, lam, dispersion)
        if log_p < log_threshold and (best is None or log_p < best[0]):
            best = (log_p, index)
    if best is None:
        return Scan(False, tested, log_threshold)
    return Scan(True, tested, log_threshold, best[1], best[0])
