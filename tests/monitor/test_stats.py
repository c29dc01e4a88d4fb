"""The drift check's statistics against brute force, closed forms and published values."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from cascade.monitor.stats import (
    betainc,
    binom_cdf,
    binomial_upper_bound,
    kolmogorov_q,
    ks_two_sample,
    rate_below,
    two_means,
    two_proportions,
)


def brute_cdf(k: int, n: int, p: float) -> float:
    return sum(math.comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(k + 1))


def test_binomial_tail_matches_the_sum_of_its_terms() -> None:
    rng = random.Random(0)
    for _ in range(500):
        n = rng.randint(1, 200)
        k, p = rng.randint(-1, n + 1), rng.random()
        assert binom_cdf(k, n, p) == pytest.approx(brute_cdf(min(max(k, -1), n), n, p) if k >= 0 else 0.0, abs=1e-11)


def test_betainc_closed_forms() -> None:
    assert betainc(1, 1, 0.3) == pytest.approx(0.3)  # uniform
    assert betainc(2, 1, 0.3) == pytest.approx(0.09)  # x^a when b = 1
    assert betainc(1, 3, 0.3) == pytest.approx(1 - 0.7**3)
    assert betainc(5, 7, 0.0) == 0.0 and betainc(5, 7, 1.0) == 1.0
    with pytest.raises(ValueError):
        betainc(0, 1, 0.5)


def test_large_n_tail_is_the_normal_one() -> None:
    # 49,000 heads in 100,000 fair tosses is 6.32 standard deviations low: about 1.3e-10.
    assert binom_cdf(49_000, 100_000, 0.5) == pytest.approx(
        0.5 * math.erfc(1000.5 / math.sqrt(25_000) / math.sqrt(2)), rel=0.05
    )


def test_clopper_pearson_upper_bound() -> None:
    assert binomial_upper_bound(0, 10, 0.05) == pytest.approx(1 - 0.05 ** (1 / 10))  # closed form at k = 0
    assert binomial_upper_bound(10, 10, 0.05) == 1.0
    for k, n in [(3, 20), (95, 100), (480, 500)]:
        bound = binomial_upper_bound(k, n, 0.05)
        assert k / n < bound < 1 and binom_cdf(k, n, bound) == pytest.approx(0.05, abs=1e-9)


def test_rate_below_exact_for_whole_outcomes_hoeffding_for_partial_credit() -> None:
    exact = rate_below([1.0] * 90 + [0.0] * 10, 0.95, 0.05)
    assert exact.method == "exact binomial" and exact.p_value == pytest.approx(brute_cdf(90, 100, 0.95))
    assert exact.below(0.05) and exact.upper_bound < 0.95
    assert not rate_below([1.0] * 95 + [0.0] * 5, 0.95, 0.05).below(0.05)
    partial = rate_below([0.5] * 100, 0.7, 0.05)
    assert partial.method == "Hoeffding" and partial.p_value == pytest.approx(math.exp(-2 * 100 * 0.2**2))
    assert partial.upper_bound == pytest.approx(0.5 + math.sqrt(math.log(20) / 200))
    assert rate_below([0.0, 1.0], 0.0, 0.05).p_value == 1.0


def test_kolmogorov_distribution_published_values() -> None:
    assert kolmogorov_q(1.3581) == pytest.approx(0.05, abs=1e-4)  # the 5% critical value
    assert kolmogorov_q(1.6276) == pytest.approx(0.01, abs=1e-4)
    assert kolmogorov_q(1.0) == pytest.approx(0.26999967, abs=1e-6)
    assert kolmogorov_q(1.18 - 1e-9) == pytest.approx(kolmogorov_q(1.18 + 1e-9), abs=1e-7)  # the two series meet
    assert kolmogorov_q(0.0) == 1.0 and kolmogorov_q(10.0) < 1e-80


def test_ks_statistic_by_hand_and_its_power() -> None:
    d, _ = ks_two_sample([1, 2, 3, 4], [3, 4, 5, 6])
    assert d == pytest.approx(0.5)  # at 2: 2/4 of the first, 0 of the second
    rng = np.random.default_rng(0)
    assert ks_two_sample(rng.normal(size=400), rng.normal(size=400))[1] > 0.01
    assert ks_two_sample(rng.normal(size=400), rng.normal(0.5, size=400))[1] < 1e-6


def test_two_sample_z_tests() -> None:
    assert two_proportions(30, 100, 30, 100) == pytest.approx(1.0)
    # 30% and 45% of 100: pooled 0.375, se = sqrt(0.375 * 0.625 * 0.02), z = 2.19
    z = 0.15 / math.sqrt(0.375 * 0.625 * 0.02)
    assert two_proportions(30, 100, 45, 100) == pytest.approx(math.erfc(z / math.sqrt(2)))
    assert two_proportions(0, 10, 0, 10) == 1.0
    assert two_means([1.0, 2.0, 3.0], [1.0, 2.0, 3.0]) == pytest.approx(1.0)
    assert two_means([1.0] * 5, [2.0] * 5) == 0.0 and two_means([1.0], [2.0, 3.0]) == 1.0
    rng = np.random.default_rng(1)
    assert two_means(rng.normal(1.0, 0.1, 200), rng.normal(1.05, 0.1, 200)) < 1e-3


def test_the_lower_bound_a_baseline_supports() -> None:
    from cascade.monitor.stats import rate_lower_bound

    assert rate_lower_bound([1.0] * 400, 0.05) == pytest.approx(0.05 ** (1 / 400))  # closed form at k = n
    bound = rate_lower_bound([1.0] * 90 + [0.0] * 10, 0.05)
    assert bound < 0.9 and 1 - binom_cdf(89, 100, bound) == pytest.approx(0.05, abs=1e-9)  # P(X >= 90) = alpha
    assert rate_lower_bound([0.5] * 50, 0.05) == pytest.approx(0.5 - math.sqrt(math.log(20) / 100))
