"""Thresholds that keep the quality target on traffic not seen yet, with a stated confidence (Learn then Test).

The claim, for thresholds certified at confidence 1 - delta from n labelled traces: if new queries are
exchangeable with them (drawn from the same traffic), then with probability at least 1 - delta the cascade's
quality over a new batch of n or more queries meets the target (a larger batch averages out more, so the
promise holds for all the traffic to come, too). It says nothing about traffic that drifts away from the
labels (new products, new users, a model update); that is for live monitoring.

How (Angelopoulos, Bates, Candes, Jordan and Lei, "Learn then Test", 2021):

- Each setting s of the thresholds is a hypothesis "s breaks the target": E[q_s - a r] < 0, with q_s what the
  cascade with s is worth on a query, r what the reference is worth on the same query (the last stage alone
  for a relative target; 1 for an absolute one) and a the target. The per-query differences are paired.
- The settings are tested in a fixed order, from every stage `never` (the last stage's quality, paid in full)
  to the cheapest, each at level delta; the walk stops at the first setting not rejected (fixed-sequence
  testing). The chance of certifying any setting that breaks the target is then at most delta, however many
  settings are tested, provided the order does not depend on the labels that test it:
    - two stages: the threshold from `never` down to 0 is an order known in advance; a test only changes at a
      traced confidence, so testing there is testing every threshold, and every label both orders and tests;
    - three stages: a plane of settings has no such order, so a path is learned from a seeded random 30% of the
      labels (their cost-quality frontier, most expensive first) and tested on the other 70%;
    - more stages: the same, the frontier's points found by block coordinate descent at a ladder of qualities.
- With a relative target and `on_error: escalate`, every stage `never` cannot lose quality on any query (the
  last stage answers, or the best earlier answer when it fails), so it is certified without a test.
- Each test is a one-sided score test of the paired differences (Wilson's construction: the variance of the
  labels' mean is that of the null's maximum-likelihood fit, on a support that includes the worst difference,
  -a, so a sample that happens to show no losses is not read as a setting that never loses), with the spread
  of a new batch's mean added, as observed: it tests the batch the promise is about, which the mean of n
  labels alone would overstate (a population test at 95% keeps the target on an unseen batch as large as the
  labels only about 88% of the time). The normal approximation is its one approximation, and the walk's
  error control, exact for the population's mean, carries over to a batch's approximately:
  benchmarks/tune_guarantee.py measures how often the target holds on unseen traffic.

The written thresholds are the cheapest certified setting, by mean cost on all the labels. Pure numpy; no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from cascade.tuning.replay import FloatArray, IntArray, ReplayData, replay
from cascade.tuning.search import MAX_EXACT_STAGES, SIDE, frontier, search

BINS = 256  # the null's fit reads the differences in this many bins (their sums are kept exactly)
GRID = np.linspace(1.0, 0.0, 1001)  # two stages with more distinct confidences than MAX_PATH: these, in order
MAX_PATH = 2_000
PATH_SHARE = 0.3  # three or more stages: the share of the labels that learns the path
PATH_POINTS = 120  # at most this many frontier settings are tested
PATH_CANDIDATES = 500  # thresholds per stage the path's frontier is searched over
_LADDER = 24  # more than three stages: quality levels the descent is run at


def critical_value(confidence: float) -> float:
    """z such that a standard normal exceeds it with probability 1 - confidence."""
    lo, hi = -10.0, 10.0
    for _ in range(100):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if 0.5 * math.erfc(mid / math.sqrt(2)) > 1 - confidence else (lo, mid)
    return (lo + hi) / 2


def _binned(d: FloatArray, low: float, rows: IntArray, m: int) -> tuple[FloatArray, FloatArray]:
    """Counts and sums of the differences `d` per (row, bin): `rows[i]` is the row query i adds to."""
    span = max(1.0 - low, 1e-12)
    bins = np.clip(((d - low) / span * BINS).astype(np.int64), 0, BINS - 1)
    flat = rows * BINS + bins
    count = np.bincount(flat, minlength=m * BINS).astype(np.float64).reshape(m, BINS)
    total = np.bincount(flat, weights=d, minlength=m * BINS).astype(np.float64).reshape(m, BINS)
    return count, total


def score_statistic(count: FloatArray, total: FloatArray, low: float, batch: float = 0.0) -> FloatArray:
    """Per row of binned differences (counts, sums): the score statistic of "the mean is 0 or less".

    The null fit reweights the bins as empirical likelihood does (p_b = c_b / (n (1 + l v_b))), with the worst
    value `low` as one more support point, so that when the sample holds no difference that low the fit can
    still move mass there, as the truth might. `batch` = n / m adds the spread of the mean of a new batch of m
    queries (as observed in the sample): the statistic then tests that batch's mean, not the population's.
    """
    n = count.sum(axis=1)
    s = total.sum(axis=1)
    v = np.divide(total, count, out=np.zeros_like(total), where=count > 0)
    lo = np.zeros(len(n))
    hi = np.full(len(n), (1 - 1e-12) / max(-low, 1e-12))
    for _ in range(60):
        mid = (lo + hi) / 2
        g = (count * v / (1 + mid[:, None] * v)).sum(axis=1)
        lo, hi = np.where(g > 0, mid, lo), np.where(g > 0, hi, mid)
    lam = (lo + hi) / 2
    safe_n = np.maximum(n, 1)
    p = count / (safe_n[:, None] * (1 + lam[:, None] * v))
    rest = np.clip(1 - p.sum(axis=1), 0, None)
    var0 = (p * v * v).sum(axis=1) + rest * low * low
    spread = np.maximum((count * v * v).sum(axis=1) / safe_n - (s / safe_n) ** 2, 0.0)
    z = s / np.sqrt(safe_n * np.maximum(var0 + batch * spread, 1e-300))
    return np.where((n > 0) & (s > 0), z, -np.inf)


def lower_bound(quality: FloatArray, reference: FloatArray, confidence: float) -> float:
    """The largest a such that the score test rejects "mean(quality - a reference) <= 0" at `confidence`:
    a one-sided lower confidence bound on mean quality / mean reference (the quality itself when reference = 1).
    """
    if not len(quality) or float(reference.mean()) <= 0:
        return 0.0
    z, rows = critical_value(confidence), np.zeros(len(quality), dtype=np.int64)
    lo, hi = 0.0, float(quality.mean() / reference.mean())
    for _ in range(30):
        mid = (lo + hi) / 2
        d = quality - mid * reference
        count, total = _binned(d, -mid, rows, 1)
        lo, hi = (mid, hi) if score_statistic(count, total, -mid)[0] >= z else (lo, mid)
    return lo


@dataclass(frozen=True)
class Certified:
    """The cheapest certified setting and how the walk went; `statistic[i]`: the test of setting i of the path."""

    thresholds: tuple[float, ...] | None  # None: not even the first setting of the walk was certified
    path: list[tuple[float, ...]]
    statistic: FloatArray
    saving: FloatArray  # each setting's saving against the last stage alone, on the labels that tested it
    certified: int  # how many settings of the path were certified (a prefix of it)
    tested_on: int  # how many labels tested the path
    how: str
    critical: float

    def labels_to_certify(self, index: int) -> float:
        """Labels needed to certify path settings 0..index, if their paired differences kept their mean and
        spread (the statistic grows with the square root of the labels); inf when one of them loses quality."""
        z = self.statistic[: index + 1]
        if not len(z) or not np.all(z > 0):
            return math.inf
        return float(self.tested_on * np.max((self.critical / z) ** 2))


def differences(outcome_quality: FloatArray, reference: FloatArray, target: float) -> FloatArray:
    """The paired differences q - a r (q: the cascade on a query; r: the reference on the same query)."""
    return outcome_quality - target * reference


def certify(
    data: ReplayData,
    reference: FloatArray,
    target: float,
    confidence: float,
    *,
    first_is_safe: bool,
    seed: int = 0,
    need: float = 0.0,
) -> Certified:
    """Walk the settings from the most conservative to the cheapest, testing each on the paired differences."""
    critical = critical_value(confidence)
    if data.k == 2:
        path, z, cost = _two_stage_walk(data, reference, target, batch=1.0)
        tested_on, how, last = data.n, "every threshold, from never down", float(data.alone_cost[:, -1].mean())
    else:
        order = np.random.default_rng(seed).permutation(data.n)
        cut = round(data.n * PATH_SHARE)
        learn, test = np.sort(order[:cut]), np.sort(order[cut:])
        path = _learned_path(data.subset(learn), need)
        z, cost = _test_path(data.subset(test), reference[test], target, path, batch=len(test) / max(data.n, 1))
        tested_on, last = len(test), float(data.alone_cost[test, -1].mean()) if len(test) else 0.0
        how = f"the frontier of {len(learn)} labels (seed {seed}), tested on the other {len(test)}"
    saving = 1 - cost / last if last > 0 else np.zeros(len(cost))
    passed = z >= critical
    if first_is_safe and len(passed):
        passed[0] = True
    count = int(np.argmin(passed)) if not passed.all() else len(passed)
    if count == 0:
        return Certified(None, path, z, saving, 0, tested_on, how, critical)
    cheapest = min(range(count), key=lambda i: (float(cost[i]), -i))
    return Certified(path[cheapest], path, z, saving, count, tested_on, how, critical)


def _two_stage_walk(
    data: ReplayData, reference: FloatArray, target: float, batch: float = 0.0
) -> tuple[list[tuple[float, ...]], FloatArray, FloatArray]:
    """Two stages: `never`, then every traced confidence downwards (past MAX_PATH of them, `GRID`).

    Returns the path, each setting's statistic and its cost. A query either stops at stage 0 or runs on; it
    stops from the first setting of the path whose threshold accepts its confidence (`first`) on, so every
    setting's binned differences are a prefix sum over `first` (stopping) plus a suffix sum (running on).
    """
    key = np.where(data.entry == 0, data.confidence[:, 0], -np.inf)  # a routed query never stops at stage 0
    finite = np.unique(key[np.isfinite(key)])[::-1]
    thresholds = np.concatenate([[np.inf], finite if len(finite) <= MAX_PATH else GRID])
    m = len(thresholds)
    first = m - np.searchsorted(thresholds[::-1], key, side=SIDE)
    stop, run = first < m, np.ones(data.n, dtype=bool)
    count_stop, total_stop = _binned(differences(data.stop_quality[:, 0], reference, target)[stop], -target,
                                     first[stop], m)  # fmt: skip
    count_run, total_run = _binned(differences(data.stop_quality[:, 1], reference, target)[run], -target, first, m + 1)
    count = np.cumsum(count_stop, axis=0) + _later(count_run)
    total = np.cumsum(total_stop, axis=0) + _later(total_run)
    cost_run = data.cost[:, 1] + np.where(data.entry == 0, data.cost[:, 0], 0.0)
    cost_stop = np.bincount(first[stop], data.cost[stop, 0], m).astype(np.float64)
    cost = np.cumsum(cost_stop) + _later(np.bincount(first, cost_run, m + 1).astype(np.float64)[:, None])[:, 0]
    z = score_statistic(count, total, -target, batch)
    return [(float(t),) for t in thresholds], z, cost / max(data.n, 1)


def _later(per_row: FloatArray) -> FloatArray:
    """Row p of the result: the sum of rows p+1 onwards of `per_row` (m + 1 rows in, m out)."""
    return np.cumsum(per_row[::-1], axis=0)[::-1][1:]


def _learned_path(learn: ReplayData, need: float) -> list[tuple[float, ...]]:
    """Three or more stages: the learning part's undominated settings, most expensive first, from all `never`."""
    never = (math.inf,) * (learn.k - 1)
    if learn.k <= MAX_EXACT_STAGES:
        front = frontier(learn, PATH_CANDIDATES)[::-1]  # most expensive (highest quality) first
        points = [tuple(float(t) for t in row[2:]) for row in front]
    else:
        top = float(replay(learn, never).quality.mean()) if learn.n else 0.0
        levels = np.linspace(top, max(need - 0.1 * abs(need), 0.0), _LADDER)
        points = [search(learn, float(level)).thresholds for level in levels]
    if len(points) > PATH_POINTS:
        keep = np.unique(np.linspace(0, len(points) - 1, PATH_POINTS).round().astype(int))
        points = [points[i] for i in keep]
    unique = list(dict.fromkeys(p for p in points if p != never))
    return [never, *unique]


def _test_path(
    test: ReplayData, reference: FloatArray, target: float, path: Sequence[tuple[float, ...]], batch: float = 0.0
) -> tuple[FloatArray, FloatArray]:
    """The score statistic and the mean cost of every setting of the path on the testing part."""
    zs, costs = np.empty(len(path)), np.empty(len(path))
    rows = np.zeros(test.n, dtype=np.int64)
    for i, thresholds in enumerate(path):
        outcome = replay(test, thresholds)
        count, total = _binned(differences(outcome.quality, reference, target), -target, rows, 1)
        zs[i] = score_statistic(count, total, -target, batch)[0]
        costs[i] = float(outcome.cost.mean()) if test.n else 0.0
    return zs, costs
