"""Every path through policies/default.yaml, end to end: real adapters, real SDKs, replayed HTTP.

Costs are checked against token counts x the published prices, summed by hand.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cascade import BudgetExhaustedError, Cascade, CascadeExhausted
from cascade.testing import wire

POLICY = Path(__file__).resolve().parents[2] / "policies" / "default.yaml"
MTOK = 1e6
# USD per million tokens (list prices, from genai-prices)
MINI = (0.15, 0.60)
FLASH = (0.075, 0.30)
SONNET = (3.00, 15.00)
REVIEW = "Is this review positive? 'Great phone, battery lasts two days.'"


def usd(price: tuple[float, float], tokens_in: int, tokens_out: int) -> float:
    return (tokens_in * price[0] + tokens_out * price[1]) / MTOK


def verdict(score: int, reason: str, prompt_tokens: int = 310) -> wire.FakeReply:
    return wire.openai_chat(
        json.dumps({"score": score, "reason": reason}), prompt_tokens=prompt_tokens, completion_tokens=18
    )


def router() -> Cascade:
    return Cascade.from_policy(POLICY, retry_backoff_s=0.0)


@pytest.mark.vcr
@pytest.mark.fake_vendor(
    "openai",
    wire.openai_chat("Positive.", prompt_tokens=24, completion_tokens=3),
    verdict(9, "The review is clearly positive."),
)
def test_accepted_at_the_first_stage() -> None:
    result = router().run(REVIEW)
    assert (result.answer, result.stage, result.model, result.confidence) == ("Positive.", "mini", "gpt-4o-mini", 0.9)
    assert result.escalations == 0 and result.accepted
    assert result.cost_usd == pytest.approx(usd(MINI, 24, 3) + usd(MINI, 310, 18))
    assert result.flagship_cost_usd == pytest.approx(usd(SONNET, 24, 3))
    assert result.attempts[0].served_by == "gpt-4o-mini-2024-07-18"


@pytest.mark.vcr
@pytest.mark.fake_vendor(
    "openai",
    wire.openai_chat("Probably positive?", prompt_tokens=24, completion_tokens=5),
    verdict(5, "Hedged."),
    verdict(8, "Correct and direct."),
)
@pytest.mark.fake_vendor(
    "google", wire.gemini_content("Positive: the reviewer praises the battery.", prompt_tokens=22, output_tokens=11)
)
def test_escalated_to_the_second_stage() -> None:
    result = router().run(REVIEW)
    assert (result.stage, result.model, result.confidence, result.escalations) == ("flash", "gemini-1.5-flash", 0.8, 1)
    assert result.cost_usd == pytest.approx(
        usd(MINI, 24, 5) + usd(MINI, 310, 18) + usd(FLASH, 22, 11) + usd(MINI, 310, 18)
    )
    assert result.flagship_cost_usd == pytest.approx(usd(SONNET, 22, 11))


@pytest.mark.vcr
@pytest.mark.fake_vendor(
    "openai",
    wire.openai_chat("Maybe.", prompt_tokens=24, completion_tokens=2),
    verdict(3, "Not an answer."),
    verdict(6, "Partly right."),
)
@pytest.mark.fake_vendor("google", wire.gemini_content("It seems positive.", prompt_tokens=22, output_tokens=5))
@pytest.mark.fake_vendor(
    "anthropic", wire.anthropic_message("Positive: long battery life is praised.", input_tokens=27, output_tokens=10)
)
async def test_escalated_to_the_third_stage_async() -> None:
    async with router() as cascade:
        result = await cascade.arun(REVIEW)
    assert (result.stage, result.model, result.confidence, result.escalations) == (
        "sonnet",
        "claude-3-5-sonnet-20241022",
        None,
        2,
    )
    assert result.stages_tried() == ["mini", "flash", "sonnet"]
    assert result.cost_usd == pytest.approx(
        usd(MINI, 24, 2) + usd(MINI, 310, 18) + usd(FLASH, 22, 5) + usd(MINI, 310, 18) + usd(SONNET, 27, 10)
    )
    assert result.flagship_cost_usd == pytest.approx(usd(SONNET, 27, 10))


_GEMINI_503 = wire.gemini_error(503, "UNAVAILABLE", "The model is overloaded. Please try again later.")


@pytest.mark.vcr
@pytest.mark.fake_vendor(
    "openai", wire.openai_chat("Maybe.", prompt_tokens=24, completion_tokens=2), verdict(4, "Vague.")
)
@pytest.mark.fake_vendor("google", _GEMINI_503, _GEMINI_503, _GEMINI_503)
@pytest.mark.fake_vendor("anthropic", wire.anthropic_message("Positive.", input_tokens=27, output_tokens=3))
def test_vendor_error_is_retried_recorded_and_escalates() -> None:
    result = router().run(REVIEW)
    assert result.stage == "sonnet"
    failed = [a for a in result.attempts if a.error]
    assert [(a.stage, a.retry, a.error.type, a.error.status_code) for a in failed] == [
        ("flash", 0, "OverloadedError", 503),
        ("flash", 1, "OverloadedError", 503),
        ("flash", 2, "OverloadedError", 503),
    ]
    assert result.cost_usd == pytest.approx(usd(MINI, 24, 2) + usd(MINI, 310, 18) + usd(SONNET, 27, 3))


@pytest.mark.vcr
@pytest.mark.fake_vendor(
    "openai",
    wire.openai_chat("Positive.", prompt_tokens=24, completion_tokens=3),
    wire.openai_chat("Looks right to me, I'd say 9 out of 10.", prompt_tokens=310, completion_tokens=12),
    verdict(9, "Correct."),
)
@pytest.mark.fake_vendor("google", wire.gemini_content("Positive.", prompt_tokens=22, output_tokens=3))
def test_unparseable_judge_reply_escalates() -> None:
    result = router().run(REVIEW)
    judge = result.attempts[1]
    assert (judge.role, judge.confidence, judge.error.type) == ("judge", 0.0, "JudgeError")
    assert result.stage == "flash"
    assert result.cost_usd == pytest.approx(
        usd(MINI, 24, 3) + usd(MINI, 310, 12) + usd(FLASH, 22, 3) + usd(MINI, 310, 18)
    )


@pytest.mark.vcr
@pytest.mark.fake_vendor(
    "anthropic",
    wire.anthropic_message(
        "Move the shared models into app/models and import them from both modules.", input_tokens=48, output_tokens=17
    ),
)
def test_routing_rule_sends_multi_file_coding_to_the_last_stage() -> None:
    result = router().run("Refactor the billing module so it stops importing the users module across files.")
    assert (result.route, result.entry_stage, result.stage) == ("rule:multi-file-coding", "sonnet", "sonnet")
    assert len(result.attempts) == 1
    assert result.cost_usd == pytest.approx(usd(SONNET, 48, 17)) == result.flagship_cost_usd


@pytest.mark.vcr
@pytest.mark.fake_vendor(
    "openai",
    wire.openai_chat("Maybe.", prompt_tokens=24, completion_tokens=2),
    verdict(4, "Vague."),
    verdict(6, "Better but unsure."),
)
@pytest.mark.fake_vendor("google", wire.gemini_content("Seems positive.", prompt_tokens=22, output_tokens=4))
def test_budget_stops_the_cascade_before_the_flagship() -> None:
    result = router().run(REVIEW, max_cost_usd=0.01)  # sonnet's worst case is 4,096 output tokens: $0.06
    assert result.budget_exhausted and not result.accepted
    assert (result.stage, result.answer, result.confidence) == ("flash", "Seems positive.", 0.6)
    assert "sonnet" not in result.stages_tried()


def test_a_budget_too_small_for_any_call_makes_no_call() -> None:
    with pytest.raises(BudgetExhaustedError) as info:
        router().run(REVIEW, max_cost_usd=0.000001)
    assert info.value.result.attempts == []


_OPENAI_500 = wire.openai_error(
    500, "The server had an error while processing your request.", type_="server_error", code=None
)
_GEMINI_500 = wire.gemini_error(500, "INTERNAL", "An internal error has occurred.")
_ANTHROPIC_529 = wire.anthropic_error(529, "overloaded_error", "Overloaded")


@pytest.mark.vcr
@pytest.mark.fake_vendor("openai", _OPENAI_500, _OPENAI_500, _OPENAI_500)
@pytest.mark.fake_vendor("google", _GEMINI_500, _GEMINI_500, _GEMINI_500)
@pytest.mark.fake_vendor("anthropic", _ANTHROPIC_529, _ANTHROPIC_529, _ANTHROPIC_529)
def test_all_tiers_failing_raises_one_error_with_the_whole_trace() -> None:
    with pytest.raises(CascadeExhausted) as info:
        router().run(REVIEW)
    trace = info.value.result.attempts
    assert [(a.stage, a.error.type, a.error.status_code) for a in trace] == (
        [("mini", "ServerError", 500)] * 3
        + [("flash", "ServerError", 500)] * 3
        + [("sonnet", "OverloadedError", 529)] * 3
    )
    assert info.value.result.cost_usd == 0.0


@pytest.mark.vcr
@pytest.mark.fake_vendor(
    "openai", wire.openai_chat("Positive.", prompt_tokens=24, completion_tokens=3), verdict(9, "Clearly positive.")
)
async def test_sync_run_works_inside_a_running_event_loop() -> None:
    result = router().run(REVIEW)
    assert result.stage == "mini" and result.confidence == 0.9
