"""The guarantee: the score test, the walk it runs along, and how often the written thresholds break the target."""

from __future__ import annotations

import math

import numpy as np
import pytest

from cascade.policy import Policy
from cascade.tuning.guarantee import (
    _binned,
    _two_stage_walk,
    certify,
    critical_value,
    differences,
    lower_bound,
    score_statistic,
)
from cascade.tuning.replay import ReplayData, TraceColumns, replay, replay_data_from_columns
from cascade.tuning.search import needed_quality, search
from cascade.tuning.tuner import reference_quality, tune


def policy(k: int, *, on_error: str = "escalate", route: bool = False) -> Policy:
    models = [("openai", "gpt-4o-mini"), ("google", "gemini-2.0-flash"), ("anthropic", "claude-sonnet-4-5")]
    chosen = [*models[: k - 1], models[-1]]
    stages = [
        {"name": f"s{i}", "provider": p, "model": m, **({"threshold": 0.5} if i < k - 1 else {})}
        for i, (p, m) in enumerate(chosen)
    ]
    rules = [{"name": "hard", "stage": f"s{k - 1}", "keywords": ["hard"]}] if route else []
    return Policy.from_dict(
        {"name": "g", "version": "1", "stages": stages, "on_error": on_error, "routing": {"rules": rules}}
    )


def population(n: int, k: int, seed: int, *, levels: int = 11, failures: float = 0.0, **kw: str) -> ReplayData:
    """Traces whose judge reads correctness through noise (confidence higher when right), as arrays."""
    rng = np.random.default_rng(seed)
    difficulty = rng.normal(size=n)
    right = np.stack([rng.random(n) < 1 / (1 + np.exp(-(0.8 + 0.6 * j - 1.5 * difficulty))) for j in range(k)], 1)
    score = 1 / (1 + np.exp(-(1.6 * (2 * right - 1) + 1.5 * rng.normal(size=(n, k)))))
    confidence = np.round(score * (levels - 1)) / (levels - 1) if levels else score
    answered = rng.random((n, k)) >= failures
    cost = np.array([0.0002, 0.0006, 0.004][-k:]) * rng.lognormal(0, 0.3, (n, k))
    columns = TraceColumns(
        ids=tuple(f"q{i}" for i in range(n)),
        entry=np.where(rng.random(n) < (0.1 if kw.get("route") else 0.0), k - 1, 0).astype(np.int64),
        answered=answered,
        confidence=np.where(answered, confidence, 0.0),
        cost_usd=cost,
        answer_cost=cost * 0.8,
        quality=np.where(answered, right, 0).astype(float),
        error=~answered,
    )
    return replay_data_from_columns(policy(k, on_error=kw.get("on_error", "escalate")), columns)


def test_the_score_test_of_a_proportion_is_wilsons() -> None:
    # Absolute target, correct / wrong: the paired difference is q - target, and the null's fit is the binomial
    # at the target, so the statistic is Wilson's (p - target) / sqrt(target (1 - target) / n).
    rng = np.random.default_rng(3)
    for n, target in ((50, 0.8), (400, 0.9), (2000, 0.97)):
        q = (rng.random(n) < target + 0.02).astype(float)
        count, total = _binned(q - target, -target, np.zeros(n, dtype=np.int64), 1)
        wilson = (q.mean() - target) / math.sqrt(target * (1 - target) / n)
        assert score_statistic(count, total, -target)[0] == pytest.approx(wilson, rel=1e-9) or q.mean() <= target
        p, z = q.mean(), critical_value(0.95)
        centre, half = p + z * z / (2 * n), z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
        assert lower_bound(q, np.ones(n), 0.95) == pytest.approx((centre - half) / (1 + z * z / n), abs=1e-6)


def test_a_sample_without_losses_is_not_taken_for_a_setting_that_never_loses() -> None:
    # 99% of the reference's quality; every cheap answer agrees with the reference. With 200 labels a loss rate
    # of 1.5% could hide in them (zero losses has chance e^-3 there): not certified. With 2,000: certified.
    z = critical_value(0.95)
    for n, certified in ((200, False), (2000, True)):
        r = np.ones(n)
        d = differences(r, r, 0.99)
        count, total = _binned(d, -0.99, np.zeros(n, dtype=np.int64), 1)
        assert bool(score_statistic(count, total, -0.99)[0] >= z) == certified
    assert critical_value(0.95) == pytest.approx(1.6448536, abs=1e-6)


@pytest.mark.parametrize(("on_error", "route", "levels"), [("escalate", False, 11), ("raise", True, 0)])
def test_the_two_stage_walk_tests_what_the_replay_does_at_every_threshold(
    on_error: str, route: bool, levels: int
) -> None:
    data = population(300, 2, 5, levels=levels, failures=0.05, on_error=on_error, route=str(route))
    reference = reference_quality(data, "last")
    path, z, cost = _two_stage_walk(data, reference, 0.95)
    assert path[0] == (math.inf,) and len(path) == len(set(path))
    for i, thresholds in enumerate(path):
        outcome = replay(data, thresholds)
        d = differences(outcome.quality, reference, 0.95)
        count, total = _binned(d, -0.95, np.zeros(data.n, dtype=np.int64), 1)
        assert z[i] == pytest.approx(score_statistic(count, total, -0.95)[0], rel=1e-9, abs=1e-12)
        assert cost[i] == pytest.approx(float(outcome.cost.mean()), rel=1e-9)


@pytest.mark.parametrize(("k", "target", "labels"), [(2, 0.95, 300), (2, 0.99, 500), (3, 0.95, 400)])
def test_the_written_thresholds_rarely_break_the_target_and_the_in_sample_optimum_often_does(
    k: int, target: float, labels: int
) -> None:
    truth = population(15_000, k, 11, levels=0)  # a continuous judge: the in-sample optimum overfits most
    need = needed_quality(truth, target)
    broken, broken_in_sample, saved = 0, 0, []
    reps = 20
    for rep in range(reps):
        rows = np.random.default_rng(100 + rep).integers(0, truth.n, labels)
        sample = truth.subset(rows)
        guaranteed = tune(sample, target, confidence=0.95, seed=rep).result.thresholds
        optimum = search(sample, needed_quality(sample, target)).thresholds
        broken += float(replay(truth, guaranteed).quality.mean()) < need
        broken_in_sample += float(replay(truth, optimum).quality.mean()) < need
        saved.append(1 - float(replay(truth, guaranteed).cost.mean()) / float(truth.alone_cost[:, -1].mean()))
    assert broken <= 0.1 * reps  # at most 5% expected; a margin for 60 draws
    assert broken_in_sample >= 0.25 * reps
    assert np.median(saved) > 0.3  # and it still saves


def test_every_stage_never_is_certified_without_a_test_when_it_cannot_lose() -> None:
    data = population(6, 3, 1)
    walk = certify(data, reference_quality(data, "last"), 0.99, 0.95, first_is_safe=True)
    assert walk.thresholds == (math.inf, math.inf) and walk.certified >= 1
    assert certify(data, np.ones(data.n), 0.99, 0.95, first_is_safe=False).thresholds is None


def test_the_three_stage_path_is_learned_on_one_part_and_tested_on_the_other() -> None:
    data = population(2_000, 3, 2)
    walk = certify(data, reference_quality(data, "last"), 0.95, 0.95, first_is_safe=True, seed=4)
    assert walk.path[0] == (math.inf, math.inf) and walk.tested_on == 1_400
    assert "600 labels (seed 4)" in walk.how and walk.thresholds in walk.path[: walk.certified]
    costs = [float(replay(data, p).cost.mean()) for p in walk.path[: walk.certified]]
    assert float(replay(data, walk.thresholds).cost.mean()) == pytest.approx(min(costs), rel=0.05)


def test_the_report_says_what_the_guarantee_cost_and_how_many_labels_would_do() -> None:
    small = population(150, 2, 8)
    report = tune(small, 0.99, confidence=0.95)
    zero = tune(small, 0.99, confidence=0)
    assert zero.result.thresholds == search(small, needed_quality(small, 0.99)).thresholds
    assert report.optimum.thresholds == zero.result.thresholds
    assert report.guarantee_cost == pytest.approx(zero.saving - report.saving)
    assert report.guarantee_cost > 0 and report.more_labels is not None and report.more_labels.labels > 150
    assert report.quality_lower < report.in_sample.cascade.quality
    assert zero.certified is None and zero.bound_confidence == 0.95
    big = tune(population(20_000, 2, 8), 0.99, confidence=0.95)
    assert big.saving > 0.5 * big.optimum_saving and big.result.feasible


def test_holdout_and_folds_report_but_never_change_what_is_written() -> None:
    data = population(400, 2, 9)
    plain = tune(data, 0.95).result.thresholds
    held = tune(data, 0.95, holdout=0.25, seed=3)
    folded = tune(data, 0.95, folds=4, seed=3)
    assert held.result.thresholds == plain == folded.result.thresholds
    assert held.held_out is not None and len(held.held_out.rows) == 100 and held.tuned_on == 400
    assert folded.held_out is not None and folded.held_out.how == "4-fold cross-validation, seed 3"
