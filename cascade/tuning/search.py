"""The in-sample search: the setting with the lowest mean cost whose replayed quality meets a target.

This is what `cascade tune --confidence 0` writes, and the path `cascade.tuning.guarantee` walks for three
stages. A threshold matters only through which traced confidences it accepts, so the candidates for a stage
are the distinct confidences traced there, plus 0.0, 1.0 (1.0 accepts nothing below 1) and `never` (+inf:
accepts nothing, so "every stage escalates" is a setting too): searching them is exact, not a grid. Past
`MAX_CANDIDATES` distinct confidences at a stage (continuous judge scores on a million traces), the
candidates are the traced confidences at evenly spaced quantiles. A threshold found is a traced confidence
(the lowest it accepts), so the tuned policy replays to exactly the figures reported; where the policy's own
threshold ties with it, the policy's is kept.

- Up to three stages (two thresholds) the search is exhaustive: the cost and quality of every pair
  (t0, t1) come from a 2-D prefix sum over the queries' (rank at stage 0, rank at stage 1), computed in
  row blocks with numpy, so 10,000 traces with 10,000 distinct confidences each take seconds.
  A candidate is skipped when every query it would newly escalate (compared with the next lower candidate)
  gains no quality by escalating: the lower candidate costs no more and is worth at least as much, so the
  optimum is never lost. With real labels this removes most candidates.
- More than three stages: block coordinate descent. Starting from the policy's thresholds (and from all
  0, all 1 and all `never`), each step runs
  the exact search above over two consecutive thresholds with the others fixed; sweeps repeat until none
  improves. Each step keeps or improves (first quality up to the target, then cost down), so it ends at a
  setting that meets the target if any step found one, but it may miss the global optimum.

Pure functions over the arrays of `cascade.tuning.replay`; no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from cascade.decide import accepts
from cascade.tuning.replay import (
    BoolArray,
    FloatArray,
    IntArray,
    ReplayData,
    replay,
    walk,
)

MAX_EXACT_STAGES = 3
MAX_CANDIDATES = 2_000  # per threshold: beyond, quantiles of the traced confidences (see `_candidates`)
PLOT_POINTS = 20_000  # settings kept for the frontier plot (an even sample when more were searched)
_BLOCK_CELLS = 1 << 21  # threshold pairs evaluated per numpy block (about 16 MB per array)
_MAX_SWEEPS = 50
_REL_TOL = 1e-9
# How many candidates accept a confidence: `accepts` is a comparison, so ranks come from a sorted search.
SIDE: Literal["left", "right"] = "right" if accepts(0.5, 0.5) else "left"

RelativeTo = Literal["last", "absolute"]


@dataclass(frozen=True)
class SearchResult:
    """The best setting found: thresholds, mean cost and quality, and whether it meets the target."""

    thresholds: tuple[float, ...]
    cost: float
    quality: float
    feasible: bool
    method: str
    settings: int
    points: FloatArray | None = None  # (m, 2): mean cost and quality of the settings searched (sampled)


@dataclass
class _Pair:
    """Two consecutive thresholds to tune (a, b) with the others fixed, as totals over the live queries."""

    const_cost: float
    const_quality: float
    conf_a: FloatArray
    conf_b: FloatArray
    cost_a: FloatArray
    cost_b: FloatArray
    cost_rest: FloatArray
    q_a: FloatArray
    q_b: FloatArray
    q_rest: FloatArray
    single: bool


@dataclass
class _Best:
    """The best cell so far: feasible beats infeasible, then lower cost (feasible) or higher quality."""

    need: float
    qtol: float
    cost: float = math.inf
    quality: float = -math.inf
    feasible: bool = False
    cell: tuple[int, int] = (0, 0)

    def better(self, feasible: bool, cost: float, quality: float) -> bool:
        if feasible != self.feasible:
            return feasible
        ctol = _REL_TOL * max(abs(cost), abs(self.cost) if math.isfinite(self.cost) else 0.0, 1e-300)
        cheaper, same_cost = cost < self.cost - ctol, abs(cost - self.cost) <= ctol
        higher, same_quality = quality > self.quality + self.qtol, abs(quality - self.quality) <= self.qtol
        if feasible:
            return cheaper or (same_cost and higher)
        return higher or (same_quality and cheaper)

    def offer(self, cost: FloatArray, quality: FloatArray, row0: int) -> None:
        """Consider a block of cells (rows row0.. of the grid)."""
        feasible = quality >= self.need - self.qtol
        flat_cost, flat_q = cost.ravel(), quality.ravel()
        if feasible.any():
            masked = np.where(feasible, cost, np.inf).ravel()
            low = float(masked.min())
            near = np.flatnonzero(masked <= low + _REL_TOL * max(abs(low), 1e-300))
            pick = int(near[np.argmax(flat_q[near])])
        elif not self.feasible:
            top = float(flat_q.max())
            near = np.flatnonzero(flat_q >= top - self.qtol)
            pick = int(near[np.argmin(flat_cost[near])])
        else:
            return
        ok = bool(feasible.ravel()[pick])
        if self.better(ok, float(flat_cost[pick]), float(flat_q[pick])):
            row, col = divmod(pick, cost.shape[1])
            self.cost, self.quality, self.feasible = float(flat_cost[pick]), float(flat_q[pick]), ok
            self.cell = (row0 + row, col)


def _ranks(candidates: FloatArray, conf: FloatArray) -> IntArray:
    """How many candidates accept each confidence; a query is escalated at candidate m exactly when m >= rank."""
    return np.searchsorted(candidates, conf, side=SIDE).astype(np.int64)


def _counts(index: IntArray, weights: FloatArray, size: int) -> FloatArray:
    """Weights summed per index (`np.bincount`, always float)."""
    return np.bincount(index, weights, size).astype(np.float64, copy=False)


def _candidates(conf: FloatArray, gains: BoolArray, limit: int | None = None) -> FloatArray:
    """Distinct confidences, 0.0, 1.0 and `never` (+inf), without those that only escalate queries gaining nothing.

    Past `MAX_CANDIDATES` distinct values (continuous judge scores on very many traces) the candidates are the
    traced confidences at evenly spaced quantiles, so a threshold still replays exactly to its figures.
    """
    finite = conf[np.isfinite(conf)]
    values = np.unique(np.concatenate([finite, [0.0, 1.0, np.inf]]))
    limit = MAX_CANDIDATES if limit is None else limit
    if len(values) > limit:
        picked = np.quantile(finite, np.linspace(0, 1, limit), method="inverted_cdf")
        values = np.unique(np.concatenate([picked, [0.0, 1.0, np.inf]]))
    ranks = _ranks(values, conf)
    useful = np.zeros(len(values), dtype=bool)
    useful[0] = True
    useful[ranks[gains & (ranks < len(values))]] = True
    return values[useful]


def _pair_problem(data: ReplayData, thresholds: Sequence[float], j: int) -> _Pair:
    """Reduce the data to tuning thresholds j and j+1 (or j alone when j+1 is the last stage)."""
    n, last = data.n, data.k - 1
    rows = np.arange(n)
    single = j + 1 == last
    pre_stop, pre_paid = walk(data, thresholds, data.entry, j)
    settled = (pre_stop >= 0) | (data.entry >= (j + 1 if single else j + 2))
    full_stop, full_paid = walk(data, thresholds, data.entry, data.k)
    live = ~settled
    const_cost = float(full_paid[settled].sum() + pre_paid[live].sum())
    const_quality = float(data.stop_quality[rows, full_stop][settled].sum())
    enters_b = data.entry == j + 1
    if single:
        conf_b = np.full(n, np.inf)
        cost_b, q_b = data.cost[:, last], data.stop_quality[:, last]
        cost_rest, q_rest = np.zeros(n), np.zeros(n)
    else:
        conf_b, cost_b, q_b = data.confidence[:, j + 1], data.cost[:, j + 1], data.stop_quality[:, j + 1]
        rest_stop, cost_rest = walk(data, thresholds, np.full(n, j + 2, dtype=np.int64), data.k)
        q_rest = data.stop_quality[rows, rest_stop]
    return _Pair(
        const_cost,
        const_quality,
        np.where(enters_b, -np.inf, data.confidence[:, j])[live],
        conf_b[live],
        np.where(enters_b, 0.0, data.cost[:, j])[live],
        cost_b[live],
        cost_rest[live],
        np.where(enters_b, q_b, data.stop_quality[:, j])[live],
        q_b[live],
        q_rest[live],
        single,
    )


def _solve_pair(
    pair: _Pair,
    need: float,
    qtol: float,
    want_points: bool,
    frontier: list[FloatArray] | None = None,
    limit: int | None = None,
) -> tuple[tuple[float, float], _Best, int, FloatArray | None]:
    """Every (a, b) candidate pair, in row blocks; returns the best thresholds, the cell and how many.

    With `frontier`, each block's undominated cells are added to it as rows (cost, quality, a, b): totals.
    """
    t_a = _candidates(pair.conf_a, (pair.q_b > pair.q_a) | (pair.q_rest > pair.q_a), limit)
    t_b = np.array([1.0]) if pair.single else _candidates(pair.conf_b, pair.q_rest > pair.q_b, limit)
    m0, m1 = len(t_a), len(t_b)
    r_a = _ranks(t_a, pair.conf_a)
    r_b = np.full(len(pair.conf_b), m1, dtype=np.int64) if pair.single else _ranks(t_b, pair.conf_b)
    row_cost = pair.const_cost + pair.cost_a.sum() + np.cumsum(_counts(r_a, pair.cost_b, m0 + 1))[:m0]
    row_q = pair.const_quality + pair.q_a.sum() + np.cumsum(_counts(r_a, pair.q_b - pair.q_a, m0 + 1))[:m0]
    both = (r_a < m0) & (r_b < m1)
    order = np.argsort(r_a[both], kind="stable")
    ra, rb = r_a[both][order], r_b[both][order]
    w_cost, w_q = pair.cost_rest[both][order], (pair.q_rest - pair.q_b)[both][order]
    best = _Best(need, qtol)
    carry_cost, carry_q = np.zeros(m1), np.zeros(m1)
    block = max(1, _BLOCK_CELLS // m1)
    stride = max(1, -(-m0 * m1 // PLOT_POINTS))
    sampled: list[FloatArray] = []
    for r0 in range(0, m0, block):
        r1 = min(m0, r0 + block)
        lo, hi = np.searchsorted(ra, [r0, r1])
        flat = (ra[lo:hi] - r0) * m1 + rb[lo:hi]
        grids = []
        for weights, carry in ((w_cost[lo:hi], carry_cost), (w_q[lo:hi], carry_q)):
            grid = _counts(flat, weights, (r1 - r0) * m1).reshape(r1 - r0, m1)
            np.cumsum(grid, axis=1, out=grid)
            np.cumsum(grid, axis=0, out=grid)
            grid += carry
            carry[:] = grid[-1]
            grids.append(grid)
        cost, quality = grids[0] + row_cost[r0:r1, None], grids[1] + row_q[r0:r1, None]
        best.offer(cost, quality, r0)
        if frontier is not None:
            rows, cols = np.divmod(np.arange(cost.size), m1)
            cells = np.column_stack([cost.ravel(), quality.ravel(), t_a[r0 + rows], t_b[cols]])
            frontier.append(pareto_rows(cells))
        if want_points:
            start = (-r0 * m1) % stride
            sampled.append(np.column_stack([cost.ravel()[start::stride], quality.ravel()[start::stride]]))
    points = np.concatenate(sampled) if sampled else None
    row, col = best.cell
    return (float(t_a[row]), float(t_b[col])), best, m0 * m1, points


def pareto_rows(cells: FloatArray) -> FloatArray:
    """The rows (cost, quality, ...) that no other row beats on both cost and quality, by increasing cost."""
    if len(cells) == 0:
        return cells
    ordered = cells[np.lexsort((-cells[:, 1], cells[:, 0]))]
    keep = ordered[:, 1] > np.maximum.accumulate(np.concatenate([[-np.inf], ordered[:-1, 1]]))
    return ordered[keep]


def frontier(data: ReplayData, candidates: int | None = None) -> FloatArray:
    """Three stages: every undominated setting, rows (mean cost, mean quality, threshold 0, threshold 1), over
    at most `candidates` thresholds per stage (default `MAX_CANDIDATES`)."""
    if data.k != 3:
        raise ValueError(f"the frontier is searched for three stages, not {data.k}")
    blocks: list[FloatArray] = []
    _solve_pair(_pair_problem(data, [1.0, 1.0], 0), 0.0, 0.0, False, blocks, candidates)
    front = pareto_rows(np.concatenate(blocks))
    front[:, :2] /= max(data.n, 1)
    return front


def search(
    data: ReplayData, need: float, start: Sequence[float] | None = None, *, want_points: bool = False
) -> SearchResult:
    """The cheapest thresholds whose mean quality is at least `need` (the highest quality if none reach it)."""
    k = data.k
    if k < 2:
        outcome = replay(data, ())
        q = float(outcome.quality.mean()) if data.n else 0.0
        return SearchResult((), float(outcome.cost.mean()) if data.n else 0.0, q, q >= need - _REL_TOL, "none", 1)
    n = max(data.n, 1)
    need_total, qtol = need * n, _REL_TOL * n
    theta = list(start) if start is not None else [1.0] * (k - 1)
    if k <= MAX_EXACT_STAGES:
        pair_ts, best, cells, points = _solve_pair(_pair_problem(data, theta, 0), need_total, qtol, want_points)
        theta = [pair_ts[0]] if k == 2 else list(pair_ts)
        method = "exact"
    else:
        starts = [theta, [1.0] * (k - 1), [0.0] * (k - 1), [math.inf] * (k - 1)]
        best, cells, collected = _Best(need_total, qtol), 0, []
        for first in starts:
            ts, found, count, pts = _descend(data, list(first), need_total, qtol, want_points)
            cells += count
            collected.extend(pts)
            if best.better(found.feasible, found.cost, found.quality):
                best, theta = found, ts
        points = np.concatenate(collected) if collected else None
        method = "block coordinate descent"
    if start is not None and best.feasible:
        theta, best = _keep_start(data, theta, list(start), best)
    if points is not None:
        points = points / n
    return SearchResult(tuple(theta), best.cost / n, best.quality / n, best.feasible, method, cells, points)


def _keep_start(data: ReplayData, theta: list[float], start: list[float], best: _Best) -> tuple[list[float], _Best]:
    """Where the policy's own threshold does as well as the one found (a tie), keep the policy's: no needless edit."""
    for j, value in enumerate(start):
        if theta[j] == value:
            continue
        trial = [*theta[:j], value, *theta[j + 1 :]]
        outcome = replay(data, trial)
        cost, quality = float(outcome.cost.sum()), float(outcome.quality.sum())
        if quality >= best.need - best.qtol and cost <= best.cost + _REL_TOL * max(abs(best.cost), 1e-300):
            theta, best = trial, _Best(best.need, best.qtol, cost, quality, True)
    return theta, best


def _descend(
    data: ReplayData, theta: list[float], need_total: float, qtol: float, want_points: bool
) -> tuple[list[float], _Best, int, list[FloatArray]]:
    """Block coordinate descent from `theta`: exact searches over consecutive pairs until none improves."""
    now = replay(data, theta)
    best = _Best(need_total, qtol, float(now.cost.sum()), float(now.quality.sum()))
    best.feasible = best.quality >= need_total - qtol
    cells, collected = 0, []
    for _ in range(_MAX_SWEEPS):
        improved = False
        for j in range(data.k - 2):
            pair_ts, found, count, pts = _solve_pair(_pair_problem(data, theta, j), need_total, qtol, want_points)
            cells += count
            if pts is not None:
                collected.append(pts)
            if best.better(found.feasible, found.cost, found.quality):
                theta[j], theta[j + 1], best, improved = pair_ts[0], pair_ts[1], found, True
        if not improved:
            break
    return theta, best, cells, collected


# -- targets ---------------------------------------------------------------------------------------


def needed_quality(data: ReplayData, target: float, relative_to: RelativeTo = "last") -> float:
    """The mean quality to reach: `target` itself, or `target` x the last stage's own quality on `data`."""
    if relative_to == "absolute":
        return target
    return target * float(data.alone_quality[:, -1].mean()) if data.n else 0.0
