"""`cascade tune` as one function: thresholds, and every figure the command reports about them.

`tune` writes, by default, the cheapest thresholds certified to keep the target on new traffic at a confidence
(`cascade.tuning.guarantee`); with `confidence=0`, the in-sample optimum (`cascade.tuning.search`). Either
way the thresholds learn from every label. A holdout or cross-validation can still be asked for, to report
what tuning on part of the labels would have done on the rest; it never changes what is written.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from cascade.tuning.guarantee import Certified, certify, lower_bound
from cascade.tuning.replay import (
    EvalReport,
    FloatArray,
    IntArray,
    ReplayData,
    ReplayOutcome,
    accept_mask,
    evaluate,
    replay,
    report,
)
from cascade.tuning.search import RelativeTo, SearchResult, needed_quality, search

REPORT_CONFIDENCE = 0.95  # the lower bound shown for the in-sample optimum (--confidence 0)
_NEAR_OPTIMUM = 0.9  # "more labels" projects the labels that would certify 90% of the in-sample saving


@dataclass(frozen=True)
class HeldOut:
    """Figures on queries the thresholds replayed were not tuned on (reported; not what is written)."""

    how: str
    report: EvalReport
    need: float
    rows: IntArray  # the queries held out (indices into the data)

    @property
    def met(self) -> bool:
        """Whether the held-out quality reaches the (held-out) target."""
        return self.report.cascade.quality >= self.need - 1e-9


@dataclass(frozen=True)
class MoreLabels:
    """With about `labels` labels of the same traffic, the walk would certify a setting saving `saving`."""

    labels: int
    saving: float


@dataclass(frozen=True)
class TuneReport:
    """The thresholds to write, with the figures `cascade tune` reports about them."""

    thresholds: dict[str, float]
    target: float
    relative_to: RelativeTo
    need: float  # the mean quality to reach on these labels
    confidence: float  # 0: the in-sample optimum
    method: str
    result: SearchResult  # the written setting on all the labels
    in_sample: EvalReport  # the written thresholds replayed on all the labels
    optimum: SearchResult  # the in-sample optimum (what --confidence 0 writes)
    optimum_report: EvalReport
    certified: Certified | None  # the walk (None with confidence 0)
    quality_lower: float  # one-sided lower confidence bound on the written setting's mean quality
    ratio_lower: float | None  # ... on its quality / the last stage's (relative targets)
    bound_confidence: float
    more_labels: MoreLabels | None  # set when too few labels kept the saving well below the in-sample one
    held_out: HeldOut | None
    rows: IntArray  # the queries the written thresholds were tuned on: all of them

    @property
    def tuned_on(self) -> int:
        """How many queries the thresholds were tuned on."""
        return len(self.rows)

    @property
    def saving(self) -> float:
        """What the written thresholds save against the last stage alone, on these labels."""
        return self.in_sample.saving_against(self.in_sample.last)

    @property
    def optimum_saving(self) -> float:
        """What the in-sample optimum saves against the last stage alone."""
        return self.optimum_report.saving_against(self.optimum_report.last)

    @property
    def guarantee_cost(self) -> float:
        """The saving given up for the guarantee: the in-sample optimum's saving minus the written one's."""
        return self.optimum_saving - self.saving


def reference_quality(data: ReplayData, relative_to: RelativeTo) -> FloatArray:
    """Per query, what the target is a share of: the last stage alone (relative) or 1 (absolute)."""
    return data.alone_quality[:, -1] if relative_to == "last" else np.ones(data.n)


def choose(
    data: ReplayData,
    target: float,
    relative_to: RelativeTo,
    confidence: float,
    seed: int,
    start: Sequence[float] | None,
    want_points: bool = False,
) -> tuple[SearchResult, SearchResult, Certified | None]:
    """(the written setting, the in-sample optimum, the walk): the thresholds `tune` would write on `data`."""
    need = needed_quality(data, target, relative_to)
    optimum = search(data, need, start, want_points=want_points)
    if confidence <= 0:
        return optimum, optimum, None
    safe = relative_to == "last" and not data.rules.raise_on_error and target <= 1
    walk = certify(
        data, reference_quality(data, relative_to), target, confidence, first_is_safe=safe, seed=seed, need=need
    )
    method = f"learn-then-test at confidence {confidence:g}, fixed-sequence along {walk.how}"
    if walk.thresholds is None:
        fallback = tuple(math.inf for _ in range(data.k - 1))
        outcome = replay(data, fallback)
        result = SearchResult(fallback, _mean(outcome.cost), _mean(outcome.quality), False, method, walk.certified)
        return result, optimum, walk
    thresholds = _keep_start(data, walk.thresholds, start)
    outcome = replay(data, thresholds)
    result = SearchResult(
        thresholds, _mean(outcome.cost), _mean(outcome.quality), True, method, len(walk.path), optimum.points
    )
    return result, optimum, walk


def tune(
    data: ReplayData,
    target: float,
    relative_to: RelativeTo = "last",
    *,
    confidence: float = 0.95,
    holdout: float = 0.0,
    folds: int = 0,
    seed: int = 0,
    start: Sequence[float] | None = None,
    want_points: bool = False,
) -> TuneReport:
    """The thresholds to write (tuned on every label) and the figures reported about them.

    `confidence` > 0: the cheapest setting certified to keep the target on new traffic with that probability;
    0: the in-sample optimum. `folds` >= 2 adds k-fold cross-validated figures, else `holdout` in (0, 1) the
    figures of tuning on the rest and replaying on a seeded random part; neither changes what is written.
    """
    if not 0 <= confidence < 1:
        raise ValueError(f"confidence is in [0, 1), got {confidence}")
    result, optimum, walk = choose(data, target, relative_to, confidence, seed, start, want_points)
    written = evaluate(data, result.thresholds)
    best = written if optimum.thresholds == result.thresholds else evaluate(data, optimum.thresholds)
    bound = confidence if confidence > 0 else REPORT_CONFIDENCE
    outcome = replay(data, result.thresholds)
    quality_lower = lower_bound(outcome.quality, np.ones(data.n), bound)
    ratio = lower_bound(outcome.quality, data.alone_quality[:, -1], bound) if relative_to == "last" else None
    held: HeldOut | None = None
    if folds >= 2:
        held = _cross_validate(data, target, relative_to, confidence, folds, seed, start)
    elif 0 < holdout < 1:
        held = _held_out(data, target, relative_to, confidence, holdout, seed, start)
    saving = written.saving_against(written.last)
    return TuneReport(
        dict(zip(data.stages[:-1], result.thresholds, strict=True)),
        target,
        relative_to,
        needed_quality(data, target, relative_to),
        confidence,
        result.method,
        result,
        written,
        optimum,
        best,
        walk,
        quality_lower,
        ratio,
        bound,
        _more_labels(data, walk, best.saving_against(best.last), saving),
        held,
        np.arange(data.n, dtype=np.int64),
    )


def _mean(values: FloatArray) -> float:
    return float(values.mean()) if len(values) else 0.0


def _keep_start(data: ReplayData, found: tuple[float, ...], start: Sequence[float] | None) -> tuple[float, ...]:
    """Two stages: keep the policy's own threshold where it accepts exactly the traced queries the one found
    does (the walk certified every threshold down to the next traced confidence, so it is certified too)."""
    if start is None or data.k != 2 or start[0] == found[0]:
        return found
    conf = data.confidence[:, 0]
    same = np.array_equal(accept_mask(start[0], conf), accept_mask(found[0], conf))
    return (float(start[0]),) if same and start[0] <= found[0] else found


def _more_labels(data: ReplayData, walk: Certified | None, optimum: float, saving: float) -> MoreLabels | None:
    """When the written saving is well below the in-sample optimum's: the labels that would certify 90% of it,
    if the paired differences kept their mean and spread (a projection, not a promise)."""
    if walk is None or optimum <= 0 or saving >= _NEAR_OPTIMUM * optimum:
        return None
    scale = data.n / max(walk.tested_on, 1)
    for index in range(walk.certified, len(walk.path)):
        if walk.saving[index] >= _NEAR_OPTIMUM * optimum:
            labels = walk.labels_to_certify(index) * scale
            return MoreLabels(math.ceil(labels), float(walk.saving[index])) if math.isfinite(labels) else None
    return None


def _held_out(
    data: ReplayData,
    target: float,
    relative_to: RelativeTo,
    confidence: float,
    holdout: float,
    seed: int,
    start: Sequence[float] | None,
) -> HeldOut | None:
    order = np.random.default_rng(seed).permutation(data.n).astype(np.int64)
    n_out = round(data.n * holdout)
    train, test = np.sort(order[n_out:]), np.sort(order[:n_out])
    if not len(train) or not len(test):
        return None
    thresholds = choose(data.subset(train), target, relative_to, confidence, seed, start)[0].thresholds
    test_data = data.subset(test)
    how = f"{len(test)} queries held out: {holdout:.0%}, seed {seed}; tuned on the other {len(train)}"
    return HeldOut(how, evaluate(test_data, thresholds), needed_quality(test_data, target, relative_to), test)


def _cross_validate(
    data: ReplayData,
    target: float,
    relative_to: RelativeTo,
    confidence: float,
    folds: int,
    seed: int,
    start: Sequence[float] | None,
) -> HeldOut:
    folds = min(folds, data.n)
    order = np.random.default_rng(seed).permutation(data.n)
    cost, quality = np.zeros(data.n), np.zeros(data.n)
    answerer = np.full(data.n, -1, dtype=np.int64)
    for fold in np.array_split(order, folds):
        rest = np.setdiff1d(np.arange(data.n), fold)
        thresholds = choose(data.subset(rest), target, relative_to, confidence, seed, start)[0].thresholds
        outcome = replay(data.subset(fold), thresholds)
        cost[fold], quality[fold], answerer[fold] = outcome.cost, outcome.quality, outcome.answerer
    pooled = report(data, ReplayOutcome(cost, quality, answerer))
    need = needed_quality(data, target, relative_to)
    return HeldOut(f"{folds}-fold cross-validation, seed {seed}", pooled, need, np.arange(data.n, dtype=np.int64))
