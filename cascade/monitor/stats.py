"""The statistical tests of `cascade drift`, in plain Python and numpy (no SciPy).

- `rate_below`: is a live rate (quality, agreement) significantly below a promised one? One-sided: the exact
  binomial test for 0/1 outcomes (the binomial tail through the regularized incomplete beta function, and the
  Clopper-Pearson upper bound), Hoeffding's inequality for partial credit in [0, 1]. `rate_lower_bound` is the
  promise a baseline sample supports.
- `ks_two_sample`: the two-sample Kolmogorov-Smirnov test, with the asymptotic p-value and Stephens' small-sample
  correction. On discrete scores (a judge's tenths) it is conservative: it raises fewer alarms, never more.
- `two_proportions` and `two_means`: two-sided z-tests (pooled proportions; Welch's unpooled variances).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

Sample = Sequence[float] | NDArray[np.float64]
_EPS = 1e-14
_TINY = 1e-300


def betainc(a: float, b: float, x: float) -> float:
    """The regularized incomplete beta function I_x(a, b), by its continued fraction (modified Lentz)."""
    if not (a > 0 and b > 0):
        raise ValueError(f"betainc needs a, b > 0 (got {a}, {b})")
    if x <= 0:
        return 0.0
    if x >= 1:
        return 1.0
    log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    # The fraction converges fast on this side of the mean; the other side by symmetry.
    if x < (a + 1) / (a + b + 2):
        return math.exp(log_front) * _beta_fraction(a, b, x) / a
    return 1.0 - math.exp(log_front) * _beta_fraction(b, a, 1 - x) / b


def _beta_fraction(a: float, b: float, x: float) -> float:
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1)
    d = 1.0 / (d if abs(d) > _TINY else _TINY)
    h = d
    # Converges in O(sqrt(max(a, b))) terms: a cap far above that is only a guard.
    for m in range(1, 100_000):
        for numerator in (m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
                          -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))):  # fmt: skip
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > _TINY else _TINY)
            c = 1.0 + numerator / c
            c = c if abs(c) > _TINY else _TINY
            h *= d * c
        if abs(d * c - 1.0) < _EPS:
            break
    return h


def binom_cdf(k: int, n: int, p: float) -> float:
    """P(X <= k) for X ~ Binomial(n, p)."""
    if k < 0:
        return 0.0
    if k >= n:
        return 1.0
    return betainc(n - k, k + 1, 1.0 - p)


def binomial_upper_bound(k: int, n: int, alpha: float) -> float:
    """The one-sided Clopper-Pearson upper bound: the true rate is below it with confidence 1 - alpha."""
    if k >= n:
        return 1.0
    low, high = k / n, 1.0
    for _ in range(60):  # P(X <= k) falls as p rises: bisect to where it is alpha
        mid = (low + high) / 2
        if binom_cdf(k, n, mid) > alpha:
            low = mid
        else:
            high = mid
    return high


def rate_lower_bound(values: Sequence[float], alpha: float) -> float:
    """The lowest rate outcomes in [0, 1] are consistent with at confidence 1 - alpha (one-sided): Clopper-Pearson
    for 0/1 outcomes, Hoeffding for partial credit."""
    n = len(values)
    if n == 0:
        raise ValueError("no outcomes")
    total = float(sum(values))
    if all(v in (0.0, 1.0) for v in values):
        k = round(total)
        return 1.0 - binomial_upper_bound(n - k, n, alpha)
    return max(total / n - math.sqrt(math.log(1 / alpha) / (2 * n)), 0.0)


@dataclass(frozen=True)
class RateTest:
    """A one-sided test that the live rate is below `promised`: its p-value and the live rate's upper bound."""

    rate: float
    n: int
    promised: float
    p_value: float
    upper_bound: float
    method: str

    def below(self, alpha: float) -> bool:
        return self.p_value < alpha


def rate_below(values: Sequence[float], promised: float, alpha: float) -> RateTest:
    """Test H0 "the live rate is at least `promised`" against "it is lower", from outcomes in [0, 1]."""
    n = len(values)
    if n == 0:
        raise ValueError("no outcomes to test")
    total = float(sum(values))
    rate = total / n
    if all(v in (0.0, 1.0) for v in values):
        k = round(total)
        p_value = 1.0 if promised <= 0 else binom_cdf(k, n, min(promised, 1.0))
        return RateTest(rate, n, promised, p_value, binomial_upper_bound(k, n, alpha), "exact binomial")
    # Partial credit: Hoeffding's inequality holds for any outcomes bounded in [0, 1].
    gap = promised - rate
    p_value = math.exp(-2 * n * gap * gap) if gap > 0 else 1.0
    bound = min(rate + math.sqrt(math.log(1 / alpha) / (2 * n)), 1.0)
    return RateTest(rate, n, promised, p_value, bound, "Hoeffding")


def kolmogorov_q(lam: float) -> float:
    """P(K > lam) for the Kolmogorov distribution (the limit of sqrt(n) times the KS statistic)."""
    if lam <= 0.0:
        return 1.0
    if lam < 1.18:  # the series in exp(-1/lam^2) converges fast for small lam, the other for large
        y = math.exp(-(math.pi**2) / (8 * lam * lam))
        total = sum(y ** ((2 * j - 1) ** 2) for j in range(1, 6))
        return min(max(1.0 - math.sqrt(2 * math.pi) / lam * total, 0.0), 1.0)
    x = math.exp(-2 * lam * lam)
    total = sum(float((-1) ** (j - 1)) * x ** (j * j) for j in range(1, 6))
    return min(max(2.0 * total, 0.0), 1.0)


def ks_two_sample(a: Sample, b: Sample) -> tuple[float, float]:
    """The two-sample KS statistic D (the largest gap between the two empirical CDFs) and its p-value."""
    x, y = np.sort(np.asarray(a, dtype=float)), np.sort(np.asarray(b, dtype=float))
    n, m = len(x), len(y)
    if n == 0 or m == 0:
        raise ValueError("the KS test needs two non-empty samples")
    points = np.concatenate([x, y])
    gap = np.abs(np.searchsorted(x, points, side="right") / n - np.searchsorted(y, points, side="right") / m)
    d = float(gap.max())
    en = math.sqrt(n * m / (n + m))
    return d, kolmogorov_q((en + 0.12 + 0.11 / en) * d)


def _two_sided(z: float) -> float:
    return math.erfc(abs(z) / math.sqrt(2))


def two_proportions(k1: int, n1: int, k2: int, n2: int) -> float:
    """The two-sided p-value that two rates (k1 of n1, k2 of n2) differ (pooled z-test)."""
    pooled = (k1 + k2) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if se == 0:
        return 1.0  # both all 0 or all 1: no difference to see
    return _two_sided((k2 / n2 - k1 / n1) / se)


def two_means(a: Sample, b: Sample) -> float:
    """The two-sided p-value that two means differ (Welch's z-test: large samples, unequal variances)."""
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if len(x) < 2 or len(y) < 2:
        return 1.0
    se = math.sqrt(float(x.var(ddof=1)) / len(x) + float(y.var(ddof=1)) / len(y))
    diff = float(y.mean() - x.mean())
    if se == 0:
        return 1.0 if diff == 0 else 0.0
    return _two_sided(diff / se)
