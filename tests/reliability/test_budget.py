"""No call is made that could take a query past `max_cost_usd`, whatever the text, prompts or classifier.

The scripted vendors bill the worst a byte-level tokeniser can: one input token per UTF-8 byte plus the message
overhead, and the whole output allowance. If the cascade's reservation were not an upper bound, some query here
would end over its limit.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cascade import Cascade
from cascade.budget import MESSAGE_OVERHEAD_TOKENS
from cascade.errors import BudgetExhaustedError, CascadeExhausted
from cascade.policy import Policy
from cascade.providers.base import CompletionRequest
from cascade.testing import ScriptedProvider, completion, judge_json

TEXT = st.text(alphabet=st.sampled_from(["a", " ", "é", "中", "文", "🙂", "\n"]), min_size=1, max_size=400)


def worst_case_vendor(name: str, score: int) -> ScriptedProvider:
    def script(request: CompletionRequest) -> Any:
        texts = [m.content for m in request.messages] + ([request.system] if request.system else [])
        billed_in = sum(len(t.encode("utf-8")) for t in texts) + MESSAGE_OVERHEAD_TOKENS * len(texts)
        prompt = request.messages[0].content
        text = judge_json(score) if "<<<ANSWER" in prompt else ("low" if "Classify" in prompt else "an answer")
        return completion(text, model=request.model, input_tokens=billed_in, output_tokens=request.max_output_tokens)

    return ScriptedProvider(name, script)


def policy(system_prompt: str, judge_prompt: str, classifier: bool) -> Policy:
    routing: dict[str, Any] = {}
    if classifier:
        routing["classifier"] = {"provider": "openai", "model": "gpt-4o-mini", "labels": {"low": "mini"}}
    return Policy.from_dict(
        {
            "name": "budget",
            "version": "1",
            "stages": [
                {
                    "name": "mini",
                    "provider": "openai",
                    "model": "gpt-4o-mini",
                    "threshold": 0.9,
                    "system_prompt": system_prompt,
                    "max_output_tokens": 300,
                },
                {"name": "sonnet", "provider": "anthropic", "model": "claude-sonnet-4-5", "max_output_tokens": 500},
            ],
            "judge": {"prompt": judge_prompt},
            "routing": routing,
        }
    )


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    query=TEXT,
    system_prompt=TEXT,
    judge_prompt=TEXT,
    classifier=st.booleans(),
    score=st.integers(0, 10),
    limit=st.floats(1e-6, 0.02),
)
def test_no_query_ends_over_its_cost_limit(
    query: str, system_prompt: str, judge_prompt: str, classifier: bool, score: int, limit: float
) -> None:
    vendors = {name: worst_case_vendor(name, score) for name in ("openai", "anthropic")}
    router = Cascade(policy(system_prompt, judge_prompt, classifier), providers=vendors)
    if not query.strip():
        return
    try:
        result = router.run(query, max_cost_usd=limit)
    except (BudgetExhaustedError, CascadeExhausted) as exc:
        result = exc.result
    assert result.cost_usd <= limit * (1 + 1e-9), f"spent {result.cost_usd} of {limit}"


def test_the_classifier_is_not_called_when_it_could_break_the_budget() -> None:
    vendors = {name: worst_case_vendor(name, 9) for name in ("openai", "anthropic")}
    router = Cascade(policy("", "", classifier=True), providers=vendors)
    with pytest.raises(BudgetExhaustedError) as info:
        router.run("hello", max_cost_usd=1e-9)
    assert info.value.result.attempts == []
    assert info.value.result.route == "default (classifier over budget)"
    assert vendors["openai"].requests == []
