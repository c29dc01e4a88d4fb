"""The replay predicts the live cascade: same scripted vendors, traced in shadow mode then run for real."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cascade.engine import Cascade
from cascade.errors import BadRequestError, CascadeExhausted
from cascade.policy import Policy
from cascade.providers.base import CompletionRequest
from cascade.testing import ScriptedProvider, completion, judge_json
from cascade.tuning.replay import accept_mask, evaluate, policy_thresholds, replay, replay_data
from cascade.tuning.traces import Trace, collect_flow

MODELS = [("openai", "gpt-4o-mini"), ("google", "gemini-2.0-flash"), ("anthropic", "claude-haiku-4-5")]
# What a stage does for a query: a judge score 0-10, or "unreadable" (judge reply not JSON), "judge-down"
# (the judge call fails), "down" (the answer call fails) or "blocked" (a billed reply with no answer).
Behaviour = int | str
BEHAVIOURS = st.one_of(st.integers(0, 10), st.sampled_from(["unreadable", "judge-down", "down", "blocked"]))


def policy_with(thresholds: list[float], *, judge_last: bool, on_error: str) -> Policy:
    stages: list[dict[str, Any]] = [
        {"name": f"s{i}", "provider": p, "model": m, "retries": 0} for i, (p, m) in enumerate(MODELS)
    ]
    for stage, threshold in zip(stages, thresholds, strict=False):
        stage["threshold"] = threshold
    return Policy.from_dict(
        {
            "name": "live",
            "version": "1",
            "stages": stages,
            "judge": {"retries": 0},
            "routing": {"rules": [{"name": "hard", "stage": "s2", "keywords": ["hard"]}]},
            "judge_last_stage": judge_last,
            "on_error": on_error,
        }
    )


def scripted(plan: dict[tuple[str, str], Behaviour]) -> dict[str, ScriptedProvider]:
    """Providers answering `plan[(query id, stage)]`; the openai one is also the judge."""
    stage_of = {model: f"s{i}" for i, (_, model) in enumerate(MODELS)}

    def reply(request: CompletionRequest) -> Any:
        text = request.messages[-1].content
        if "<<<ANSWER " in text:
            qid, stage = re.search(r"answer (q\d+) (s\d)", text).groups()  # type: ignore[union-attr]
            behaviour = plan[(qid, stage)]
            if behaviour == "judge-down":
                return BadRequestError("judge refused", provider="openai", model=request.model, status_code=400)
            return "a score of eight" if behaviour == "unreadable" else judge_json(behaviour)
        qid = re.search(r"q\d+", text).group(0)  # type: ignore[union-attr]
        stage = stage_of[request.model]
        behaviour = plan[(qid, stage)]
        if behaviour == "down":
            return BadRequestError("bad", provider="x", model=request.model, status_code=400)
        if behaviour == "blocked":
            return completion(None, model=request.model, finish_reason="blocked", input_tokens=20, output_tokens=3)
        return completion(f"answer {qid} {stage} " + "x" * len(qid), model=request.model, input_tokens=30)

    return {name: ScriptedProvider(name, reply) for name, _ in MODELS}


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.tuples(st.booleans(), st.lists(BEHAVIOURS, min_size=3, max_size=3)), min_size=1, max_size=6),
    st.lists(st.sampled_from([0.0, 0.3, 0.5, 0.8, 1.0]), min_size=2, max_size=2),
    st.booleans(),
    st.sampled_from(["escalate", "raise"]),
)
def test_replay_predicts_the_live_cascade(
    queries: list[tuple[bool, list[Behaviour]]], thresholds: list[float], judge_last: bool, on_error: str
) -> None:
    policy = policy_with(thresholds, judge_last=judge_last, on_error=on_error)
    plan = {(f"q{i}", f"s{j}"): b for i, (_, row) in enumerate(queries) for j, b in enumerate(row)}
    texts = {f"q{i}": f"query q{i}" + (" is hard" if hard else "") for i, (hard, _) in enumerate(queries)}
    router = Cascade(policy, providers=scripted(plan), retry_backoff_s=0.0)
    traces: list[Trace] = []
    for qid, text in texts.items():
        ctx = router.context(text, query_id=qid)
        trace = router.drive(collect_flow(ctx, {"id": qid, "query": text}), policy)
        labeled = {n: s.model_copy(update={"correct": True}) for n, s in trace.stages.items()}
        traces.append(trace.model_copy(update={"stages": labeled}))
    outcome = replay(replay_data(policy, traces), policy_thresholds(policy))
    for i, (qid, text) in enumerate(texts.items()):
        try:
            live = router.run(text, query_id=qid)
        except CascadeExhausted as exc:
            live = exc.result
        predicted = f"s{outcome.answerer[i]}" if outcome.answerer[i] >= 0 else None
        assert predicted == live.stage, (qid, plan, live.attempts)
        assert outcome.cost[i] == pytest.approx(live.cost_usd, rel=1e-9, abs=1e-15)


def test_accept_mask_is_the_live_rule() -> None:
    conf = np.array([-np.inf, 0.0, 0.69, 0.7, 0.71, 1.0, np.inf])
    assert accept_mask(0.7, conf).tolist() == [False, False, False, True, True, True, True]


def test_a_routing_rule_sends_a_traced_query_straight_to_its_stage() -> None:
    policy = policy_with([0.5, 0.5], judge_last=False, on_error="escalate")
    stage = {"answer": "a", "confidence": 1.0, "cost_usd": 1.0, "judge_cost_usd": 0.5, "correct": True}
    traces = [
        Trace.model_validate({"id": "1", "query": "a hard one", "stages": dict.fromkeys(("s0", "s1", "s2"), stage)}),
        Trace.model_validate({"id": "2", "stages": dict.fromkeys(("s0", "s1", "s2"), stage)}),  # no text: no routing
    ]
    report = evaluate(replay_data(policy, traces), (0.5, 0.5))
    assert report.cascade.shares == {"s0": 0.5, "s1": 0.0, "s2": 0.5}
    assert report.cascade.cost_per_query == pytest.approx((0.5 + 1.0) / 2)  # the last stage is not judged live


def test_the_oracle_takes_the_cheapest_best_stage() -> None:
    policy = policy_with([0.5, 0.5], judge_last=False, on_error="escalate")

    def stage(cost: float, correct: bool | float) -> dict[str, Any]:
        return {"answer": "a", "confidence": 0.9, "cost_usd": cost, "correct": correct}

    traces = [
        Trace.model_validate(
            {"id": "1", "stages": {"s0": stage(1, False), "s1": stage(2, True), "s2": stage(3, True)}}
        ),
        Trace.model_validate({"id": "2", "stages": {"s0": stage(1, 0.5), "s1": stage(2, 0.0), "s2": stage(3, 0.5)}}),
    ]
    report = evaluate(replay_data(policy, traces), (0.5, 0.5))
    assert report.oracle.cost_per_query == pytest.approx(1.5) and report.oracle.quality == pytest.approx(0.75)
    assert report.cascade.quality == pytest.approx(0.25) and report.saving_against(report.last) == pytest.approx(2 / 3)
