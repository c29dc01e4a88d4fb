"""What `cascade eval` predicts from a trace is what the live cascade does on the same vendor replies.

Random traces are played twice: through `Cascade.run` with scripted vendors that answer, fail and judge as the
trace says, and through eval's fold (`fold_replay`). The stage that answers, whether it was accepted and the
stages tried must be the same.
"""

from __future__ import annotations

import re
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cascade import Cascade
from cascade.errors import BadRequestError, CascadeExhausted
from cascade.policy import Policy
from cascade.providers.base import CompletionRequest
from cascade.testing import ScriptedProvider, judge_json
from cascade.tuning.replay import fold_replay, replay_data
from cascade.tuning.traces import StageTrace, Trace

MODELS = [("openai", "gpt-4o-mini"), ("google", "gemini-2.0-flash"), ("anthropic", "claude-sonnet-4-5")]


@st.composite
def stage_plan(draw: Any) -> dict[str, Any]:
    answered = draw(st.integers(0, 4)) > 0
    return {
        "answered": answered,
        "score": draw(st.integers(0, 10)),
        "judge_failed": answered and draw(st.integers(0, 5)) == 0,
    }


@st.composite
def cases(draw: Any) -> tuple[Policy, list[dict[str, Any]], str, tuple[float, ...]]:
    k = draw(st.integers(2, 3))
    thresholds = tuple(draw(st.sampled_from([0.0, 0.3, 0.5, 0.7, 0.9, 1.0])) for _ in range(k - 1))
    stages = [
        {
            "name": f"s{i}",
            "provider": p,
            "model": m,
            "retries": 0,
            **({"threshold": thresholds[i]} if i < k - 1 else {}),
        }
        for i, (p, m) in enumerate(MODELS[:k])
    ]
    policy = Policy.from_dict(
        {
            "name": "live",
            "version": "1",
            "stages": stages,
            "judge": {"retries": 0},
            "judge_last_stage": draw(st.booleans()),
            "on_error": draw(st.sampled_from(["escalate", "raise"])),
            "routing": {"rules": [{"name": "hard", "stage": f"s{k - 1}", "keywords": ["hard"]}]},
        }
    )
    query = draw(st.sampled_from(["an easy one", "a hard one"]))
    return policy, [draw(stage_plan()) for _ in range(k)], query, thresholds


def _live(policy: Policy, plan: list[dict[str, Any]], query: str) -> tuple[str | None, bool, list[str]]:
    def script(request: CompletionRequest) -> Any:
        prompt = request.messages[0].content
        judged = re.search(r"answer from s(\d)", prompt) if "<<<ANSWER" in prompt else None
        if judged is not None:
            step = plan[int(judged.group(1))]
            if step["judge_failed"]:
                raise BadRequestError("judge down", status_code=400)
            return judge_json(step["score"])
        index = next(i for i, s in enumerate(policy.stages) if s.model == request.model)
        if not plan[index]["answered"]:
            raise BadRequestError("no", status_code=400)
        return f"answer from s{index}"

    vendors = {name: ScriptedProvider(name, script) for name in ("openai", "google", "anthropic")}
    try:
        result = Cascade(policy, providers=vendors).run(query)
    except CascadeExhausted as exc:
        return None, False, exc.result.stages_tried()
    return result.stage, result.accepted, result.stages_tried()


def _trace(plan: list[dict[str, Any]], query: str) -> Trace:
    stages = {}
    for i, step in enumerate(plan):
        answered, judge_failed = step["answered"], step["judge_failed"]
        stages[f"s{i}"] = StageTrace(
            answer=f"answer from s{i}" if answered else None,
            confidence=step["score"] / 10 if answered and not judge_failed else 0.0,
            cost_usd=0.001,
            judge_cost_usd=0.0002,
            correct=True if answered else None,
            error="judge call failed" if judge_failed else (None if answered else "BadRequestError: no"),
        )
    return Trace(id="q", query=query, stages=stages)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases())
def test_eval_predicts_what_the_live_cascade_does(
    case: tuple[Policy, list[dict[str, Any]], str, tuple[float, ...]],
) -> None:
    policy, plan, query, thresholds = case
    stage, accepted, tried = _live(policy, plan, query)
    data = replay_data(policy, [_trace(plan, query)])
    folded = fold_replay(data, thresholds)
    answerer = int(folded.answerer[0])
    assert stage == (data.stages[answerer] if answerer >= 0 else None)
    live_entry = policy.stage_index(tried[0]) if tried else None
    assert live_entry == int(data.entry[0])
    # the stages the live cascade asked for an answer are the ones eval paid for
    expected_cost = sum(data.results[0][policy.stage_index(name)].cost_usd for name in tried)
    assert folded.cost[0] == expected_cost
    if stage is not None:
        is_last = stage == policy.stages[-1].name
        step = plan[policy.stage_index(stage)]
        score = 0.0 if step["judge_failed"] else step["score"] / 10
        assert accepted == (is_last or score >= thresholds[policy.stage_index(stage)])
