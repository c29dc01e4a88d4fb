"""What a result serialises to."""

from __future__ import annotations

import json

from cascade.result import Attempt, CascadeResult, PolicyRef


def result(cost: float, flagship: float) -> CascadeResult:
    attempt = Attempt(stage="mini", role="answer", provider="openai", model="gpt-4o-mini", cost_usd=cost)
    return CascadeResult(
        query_id="q",
        answer="a",
        stage="mini",
        provider="openai",
        model="gpt-4o-mini",
        confidence=None,
        accepted=True,
        cost_usd=cost,
        flagship_cost_usd=flagship,
        latency_s=0.1,
        escalations=0,
        entry_stage="mini",
        route="default",
        policy=PolicyRef(name="p", version="1"),
        attempts=[attempt],
    )


def test_money_in_json_carries_no_float_noise_and_python_keeps_the_exact_sum() -> None:
    noisy = 0.0003 + 0.00055365  # 0.0008536500000000001
    assert repr(noisy) == "0.0008536500000000001"
    made = result(noisy, 0.0021)
    dumped = json.loads(made.model_dump_json())
    assert dumped["cost_usd"] == 0.00085365 and dumped["attempts"][0]["cost_usd"] == 0.00085365
    assert dumped["savings_usd"] == 0.00124635
    assert made.cost_usd == noisy
