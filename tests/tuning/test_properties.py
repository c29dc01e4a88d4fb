"""Property tests: the vectorised replay and search agree with a fold of `cascade.decide` over each trace.

`plain_fold` runs the live cascade's own decision function over every trace, one query at a time. eval's
`fold_replay` folds it once per group of traces the decision cannot tell apart, and the numpy replay and the
threshold search are accelerators: all must give the same answers, per query for the replays, and "meets the
target, nothing feasible is cheaper" (brute force over every behaviour a threshold can have) for the search.
"""

from __future__ import annotations

import itertools
import json
import math
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import structlog
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from cascade.cli import app
from cascade.decide import fold
from cascade.policy import Policy
from cascade.tuning.replay import ReplayOutcome, evaluate, fold_replay, replay, replay_data
from cascade.tuning.search import search
from cascade.tuning.traces import StageTrace, Trace

MODELS = [
    ("openai", "gpt-4o-mini"),
    ("google", "gemini-2.0-flash"),
    ("anthropic", "claude-haiku-4-5"),
    ("anthropic", "claude-sonnet-4-5"),
]
CONFIDENCES = [0.0, 0.2, 0.5, 0.7, 0.8, 0.9, 1.0]
FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def make_policy(k: int, *, judge_last: bool = False, on_error: str = "escalate", route: bool = True) -> Policy:
    stages = [
        {"name": f"s{i}", "provider": p, "model": m, **({"threshold": 0.5} if i < k - 1 else {})}
        for i, (p, m) in enumerate(MODELS[:k])
    ]
    rules = [{"name": "hard", "stage": f"s{k - 1}", "keywords": ["hard"]}] if route else []
    return Policy.from_dict(
        {
            "name": "prop",
            "version": "1",
            "stages": stages,
            "routing": {"rules": rules},
            "judge_last_stage": judge_last,
            "on_error": on_error,
        }
    )


@st.composite
def stage_traces(draw: Any) -> StageTrace:
    answered = draw(st.integers(0, 9)) > 0
    judge = draw(st.sampled_from([0.0, 0.00001, 0.00002]))
    return StageTrace(
        answer="a" if answered else None,
        confidence=draw(st.sampled_from(CONFIDENCES)) if answered else 0.0,
        cost_usd=draw(st.sampled_from([0.0, 0.00003, 0.0001, 0.0004, 0.002])) + judge,
        judge_cost_usd=judge,
        correct=draw(st.sampled_from([True, False, 0.5])) if answered else None,
        error=None if answered else "BadRequestError: no",
    )


@st.composite
def trace_sets(draw: Any, k: int) -> list[Trace]:
    n = draw(st.integers(1, 7))
    return [
        Trace(
            id=f"t{i}",
            query=draw(st.sampled_from(["easy one", "a hard one", "plain"])),
            stages={f"s{j}": draw(stage_traces()) for j in range(k)},
        )
        for i in range(n)
    ]


def plain_fold(policy: Policy, traces: list[Trace], thresholds: tuple[float, ...]) -> ReplayOutcome:
    """`cascade.decide` folded over every trace, one at a time: the reference for every accelerator."""
    data = replay_data(policy, traces)
    rules = data.rules.with_thresholds(thresholds)
    cost, quality, answerer = [], [], []
    for i, row in enumerate(data.results):
        done, tried = fold(rules, int(data.entry[i]), row.__getitem__)
        cost.append(sum(r.cost_usd for r in tried))
        quality.append(0.0 if done.stage is None else float(data.alone_quality[i, done.stage]))
        answerer.append(-1 if done.stage is None else done.stage)
    return ReplayOutcome(np.array(cost), np.array(quality), np.array(answerer, dtype=np.int64))


def plain_mean(policy: Policy, traces: list[Trace], thresholds: tuple[float, ...]) -> tuple[float, float]:
    """Mean cost and quality of the plain fold (the reference for the search)."""
    outcome = plain_fold(policy, traces, thresholds)
    return float(outcome.cost.mean()), float(outcome.quality.mean())


def every_setting(traces: list[Trace], k: int) -> list[tuple[float, ...]]:
    """Every behaviour a threshold can have: each traced value, the midpoints between them, 0, 1 and never."""
    grids = []
    for j in range(k - 1):
        values = sorted({t.stages[f"s{j}"].confidence for t in traces} | {0.0, 1.0})
        grids.append(sorted(set(values) | {(a + b) / 2 for a, b in itertools.pairwise(values)} | {math.inf}))
    return list(itertools.product(*grids))


@st.composite
def problems(draw: Any) -> tuple[Policy, list[Trace], float]:
    k = draw(st.integers(2, 3))
    policy = make_policy(
        k,
        judge_last=draw(st.booleans()),
        on_error=draw(st.sampled_from(["escalate", "escalate", "raise"])),
        route=draw(st.booleans()),
    )
    return policy, draw(trace_sets(k)), draw(st.sampled_from([0.0, 0.4, 0.6, 0.75, 0.9, 1.0]))


@FAST
@given(problems())
def test_tune_meets_the_target_and_nothing_feasible_is_cheaper(problem: tuple[Policy, list[Trace], float]) -> None:
    policy, traces, need = problem
    result = search(replay_data(policy, traces), need)
    brute = [(plain_mean(policy, traces, th), th) for th in every_setting(traces, len(policy.stages))]
    feasible = [(cost, th) for (cost, quality), th in brute if quality >= need - 1e-9]
    assert result.feasible == bool(feasible)
    cost, quality = plain_mean(policy, traces, result.thresholds)
    assert cost == pytest.approx(result.cost, abs=1e-12) and quality == pytest.approx(result.quality, abs=1e-12)
    if feasible:
        assert quality >= need - 1e-9
        assert cost <= min(c for c, _ in feasible) + 1e-12
    else:
        assert quality >= max(q for (_, q), _ in brute) - 1e-9  # the best it can do


@FAST
@given(problems(), st.lists(st.sampled_from([*CONFIDENCES, math.inf]), min_size=2, max_size=2))
def test_the_vectorised_replay_agrees_with_the_fold(
    problem: tuple[Policy, list[Trace], float], ts: list[float]
) -> None:
    policy, traces, _ = problem
    thresholds = tuple(ts[: len(policy.stages) - 1])
    data = replay_data(policy, traces)
    plain = plain_fold(policy, traces, thresholds)
    for fast in (replay(data, thresholds), fold_replay(data, thresholds)):
        for i in range(len(traces)):
            assert fast.cost[i] == pytest.approx(plain.cost[i], abs=1e-15)
            assert fast.quality[i] == plain.quality[i]
            assert fast.answerer[i] == plain.answerer[i]
    report = evaluate(data, thresholds)
    cost, quality = plain_mean(policy, traces, thresholds)
    assert report.cascade.cost_per_query == pytest.approx(cost) and report.cascade.quality == pytest.approx(quality)
    last = [t.stages[data.stages[-1]] for t in traces]
    assert report.last.quality == pytest.approx(sum(s.quality() for s in last) / len(traces))
    assert report.last.cost_per_query == pytest.approx(sum(s.answer_cost() for s in last) / len(traces))


@FAST
@given(trace_sets(4), st.sampled_from([0.5, 0.75, 0.9]), st.booleans())
def test_more_than_three_stages_descend_to_a_setting_at_least_as_good_as_each_start(
    traces: list[Trace], need: float, route: bool
) -> None:
    policy = make_policy(4, route=route)
    start = (0.5, 0.5, 0.5)
    result = search(replay_data(policy, traces), need, start)
    assert result.method == "block coordinate descent"
    cost, quality = plain_mean(policy, traces, result.thresholds)
    assert cost == pytest.approx(result.cost, abs=1e-12) and quality == pytest.approx(result.quality, abs=1e-12)
    assert result.feasible == (quality >= need - 1e-9)
    for first in (start, (1.0,) * 3, (0.0,) * 3, (math.inf,) * 3):
        first_cost, first_quality = plain_mean(policy, traces, first)
        if first_quality >= need - 1e-9:
            assert result.feasible and cost <= first_cost + 1e-12


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(problems())
def test_the_tune_command_agrees_with_brute_force(problem: tuple[Policy, list[Trace], float]) -> None:
    policy, traces, need = problem
    with tempfile.TemporaryDirectory() as tmp:
        policy_file, traces_file, out = Path(tmp, "p.yaml"), Path(tmp, "t.jsonl"), Path(tmp, "tuned.yaml")
        policy_file.write_text(json.dumps(policy.model_dump(exclude_none=True)))  # JSON is YAML
        traces_file.write_text("".join(t.to_json() + "\n" for t in traces))
        args = ["tune", "--policy", str(policy_file), "--traces", str(traces_file), "--output", str(out)]
        result = CliRunner().invoke(
            app, [*args, "--target", str(need), "--relative-to", "absolute", "--confidence", "0", "--json"]
        )
        structlog.reset_defaults()
        brute = [plain_mean(policy, traces, th) for th in every_setting(traces, len(policy.stages))]
        cheapest = min((c for c, q in brute if q >= need - 1e-9), default=None)
        if cheapest is None:
            assert result.exit_code == 1 and not out.exists()
            return
        assert result.exit_code == 0, result.output
        tuned = Policy.from_file(out)
        thresholds = tuple(s.threshold for s in tuned.stages[:-1])
        written = json.loads(result.stdout)["thresholds"].values()
        assert tuple(math.inf if v == "never" else v for v in written) == thresholds
        cost, quality = plain_mean(policy, traces, thresholds)  # type: ignore[arg-type]
        assert quality >= need - 1e-9 and cost <= cheapest + 1e-12
