"""The cascade's decisions, driven through the public API with scripted providers (no HTTP)."""

from __future__ import annotations

import asyncio
import math
from pathlib import Path
from typing import Any

import pytest
import structlog
from structlog.testing import capture_logs

from cascade import BudgetExhaustedError, Cascade, CascadeExhausted, load_policy
from cascade.errors import BatchError, OverloadedError, RateLimitedError, VendorConnectionError
from cascade.policy import Policy
from cascade.prices import load_prices
from cascade.providers.base import CompletionRequest
from cascade.testing import ScriptedProvider, completion, judge_json

POLICY = load_policy(Path(__file__).resolve().parents[2] / "policies" / "default.yaml")
PRICES = load_prices()
MINI, FLASH, SONNET = "gpt-4o-mini", "gemini-1.5-flash", "claude-3-5-sonnet-20241022"


def ans(text: str, model: str, provider: str, i: int = 100, o: int = 20) -> Any:
    return completion(text, model=model, provider=provider, input_tokens=i, output_tokens=o)


def judge(score: Any, i: int = 300, o: int = 15) -> Any:
    return completion(
        judge_json(score) if not isinstance(score, str) else score, model=MINI, input_tokens=i, output_tokens=o
    )


def router(
    openai: list, google: list | None = None, anthropic: list | None = None, policy: Policy = POLICY, **scripts: Any
) -> tuple[Cascade, dict[str, ScriptedProvider]]:
    providers = {
        "openai": ScriptedProvider("openai", {MINI: openai}),
        "google": ScriptedProvider("google", {FLASH: google or []}),
        "anthropic": ScriptedProvider("anthropic", {SONNET: anthropic or []}),
    }
    return Cascade(policy, providers=providers, retry_backoff_s=0.0), providers


def cost(model: str, i: int, o: int) -> float:
    return PRICES.cost(model, i, o)


def test_accepted_at_the_first_stage_with_cost_by_hand() -> None:
    r, _ = router([ans("Positive.", MINI, "openai"), judge(9)])
    result = r.run("Is this review positive? 'Great phone'")
    assert (result.answer, result.stage, result.model, result.confidence) == ("Positive.", "mini", MINI, 0.9)
    assert result.accepted and result.escalations == 0 and not result.budget_exhausted
    # 100 x 0.15 + 20 x 0.60 (answer) + 300 x 0.15 + 15 x 0.60 (judge), per million tokens
    assert result.cost_usd == pytest.approx((100 * 0.15 + 20 * 0.60 + 300 * 0.15 + 15 * 0.60) / 1e6)
    assert result.flagship_cost_usd == pytest.approx((100 * 3.00 + 20 * 15.00) / 1e6)
    assert [(a.stage, a.role) for a in result.attempts] == [("mini", "answer"), ("mini", "judge")]
    assert result.attempts[1].threshold == 0.8 and result.attempts[1].judge_reason == "scripted verdict"


def test_escalates_to_the_second_and_third_stage() -> None:
    r, p = router(
        [ans("Maybe.", MINI, "openai"), judge(5), judge(6)],
        [ans("Probably.", FLASH, "google", 90, 30)],
        [ans("Definitely positive.", SONNET, "anthropic", 95, 40)],
    )
    result = r.run("q")
    assert result.stage == "sonnet" and result.escalations == 2 and result.confidence is None and result.accepted
    assert result.stages_tried() == ["mini", "flash", "sonnet"]
    expected = (
        cost(MINI, 100, 20) + cost(MINI, 300, 15) + cost(FLASH, 90, 30) + cost(MINI, 300, 15) + cost(SONNET, 95, 40)
    )
    assert result.cost_usd == pytest.approx(expected)
    assert result.flagship_cost_usd == pytest.approx(cost(SONNET, 95, 40))
    assert len(p["anthropic"].requests) == 1  # the last stage is not judged by default


def test_accepted_at_the_second_stage() -> None:
    r, _ = router([ans("Maybe.", MINI, "openai"), judge(5), judge(7)], [ans("Yes.", FLASH, "google")])
    result = r.run("q")
    assert (result.stage, result.confidence, result.escalations) == ("flash", 0.7, 1)


def test_vendor_error_is_recorded_and_escalates() -> None:
    err = OverloadedError("anthropic HTTP 529: Overloaded", provider="google", model=FLASH, status_code=529)
    r, _ = router([ans("Maybe.", MINI, "openai"), judge(3)], [err, err, err], [ans("Yes.", SONNET, "anthropic")])
    result = router_run = r.run("q")
    assert router_run.stage == "sonnet"
    errors = [a for a in result.attempts if a.error]
    assert [(a.stage, a.retry, a.error.type, a.error.status_code) for a in errors] == [
        ("flash", 0, "OverloadedError", 529),
        ("flash", 1, "OverloadedError", 529),
        ("flash", 2, "OverloadedError", 529),
    ]


def test_unparseable_judge_reply_gives_zero_and_escalates() -> None:
    r, _ = router(
        [ans("Maybe.", MINI, "openai"), judge("Looks great to me!"), judge(9)], [ans("Yes.", FLASH, "google")]
    )
    result = r.run("q")
    bad = result.attempts[1]
    assert bad.role == "judge" and bad.confidence == 0.0 and bad.error.type == "JudgeError"
    assert result.stage == "flash"


def test_routing_rule_sends_coding_straight_to_the_last_stage() -> None:
    r, p = router([], [], [ans("Here is the refactor.", SONNET, "anthropic")])
    result = r.run("Refactor our codebase so the billing module is split across files.")
    assert (result.entry_stage, result.route, result.stage) == ("sonnet", "rule:multi-file-coding", "sonnet")
    assert p["openai"].requests == [] and result.escalations == 0


def test_budget_stops_the_cascade_and_returns_the_best_answer() -> None:
    r, p = router([ans("Maybe.", MINI, "openai"), judge(4), judge(5)], [ans("Probably.", FLASH, "google")])
    result = r.run("q", max_cost_usd=0.01)  # sonnet's worst case (4,096 output tokens) is $0.06
    assert result.budget_exhausted and not result.accepted
    assert (result.answer, result.stage, result.confidence) == ("Probably.", "flash", 0.5)
    assert p["anthropic"].requests == []
    assert result.cost_usd <= 0.01


def test_budget_too_small_for_anything_raises_with_the_trace() -> None:
    r, p = router([])
    with pytest.raises(BudgetExhaustedError) as info:
        r.run("q", max_cost_usd=1e-7)
    assert info.value.result.attempts == [] and p["openai"].requests == []


def test_all_tiers_failing_raises_one_error_with_the_whole_trace() -> None:
    down = VendorConnectionError("connection refused", provider="x")
    r, _ = router([down] * 3, [down] * 3, [down] * 3)
    with pytest.raises(CascadeExhausted) as info:
        r.run("q")
    attempts = info.value.attempts
    assert len(attempts) == 9 and {a.error.type for a in attempts} == {"VendorConnectionError"}
    assert [a.stage for a in attempts] == ["mini"] * 3 + ["flash"] * 3 + ["sonnet"] * 3


def test_best_low_confidence_answer_survives_later_failures() -> None:
    down = VendorConnectionError("refused", provider="x")
    r, _ = router([ans("Maybe.", MINI, "openai"), judge(4)], [down] * 3, [down] * 3)
    result = r.run("q")
    assert (result.answer, result.accepted, result.confidence) == ("Maybe.", False, 0.4)


def test_on_error_raise_stops_at_the_first_failure() -> None:
    policy = POLICY.model_copy(update={"on_error": "raise"})
    down = VendorConnectionError("refused", provider="openai")
    r, p = router([down] * 3, policy=policy)
    with pytest.raises(CascadeExhausted, match="on_error=raise"):
        r.run("q")
    assert p["google"].requests == []


def test_blocked_and_truncated_answers_escalate() -> None:
    blocked = completion(None, model=MINI, finish_reason="refusal")
    truncated = completion("Half an ans", model=FLASH, provider="google", finish_reason="length")
    r, _ = router([blocked], [truncated], [ans("Whole answer.", SONNET, "anthropic")])
    result = r.run("q")
    assert [a.error.type for a in result.attempts if a.error] == ["ContentBlockedError", "TruncatedError"]
    assert result.attempts[0].cost_usd > 0  # a refusal is still billed
    assert result.stage == "sonnet"


def test_retry_after_is_honoured_within_the_stage() -> None:
    limited = RateLimitedError("429", provider="openai", status_code=429, retry_after=0.01)
    r, _ = router([limited, ans("Positive.", MINI, "openai"), judge(9)])
    result = r.run("q")
    assert [(a.role, a.retry, a.error and a.error.type) for a in result.attempts] == [
        ("answer", 0, "RateLimitedError"),
        ("answer", 1, None),
        ("judge", 0, None),
    ]


def test_retry_after_longer_than_the_stage_timeout_moves_on_instead_of_waiting() -> None:
    limited = RateLimitedError("429", provider="openai", status_code=429, retry_after=600)
    r, _ = router([limited, judge(9)], [ans("Yes.", FLASH, "google")])
    result = r.run("q")
    assert result.stage == "flash" and result.latency_s < 5


def test_judge_per_stage_override_and_logprobs_method() -> None:
    data = POLICY.model_dump()
    data["stages"][0]["judge"] = {"provider": "google", "model": FLASH, "method": "logprobs"}
    policy = Policy.from_dict(data)
    lp = {"9": math.log(0.6), "8": math.log(0.4)}
    google = ScriptedProvider("google", {FLASH: [completion("9", model=FLASH, first_token_logprobs=lp)]})
    openai = ScriptedProvider("openai", {MINI: [ans("Positive.", MINI, "openai")]})
    result = Cascade(policy, providers={"openai": openai, "google": google}).run("q")
    assert result.confidence == pytest.approx(0.86)
    assert google.requests[0].top_logprobs == 20
    assert "Reply with the integer only." in google.requests[0].messages[0].content


def test_classifier_picks_the_entry_stage() -> None:
    data = POLICY.model_dump()
    data["routing"]["classifier"] = {"labels": {"low": "mini", "medium": "flash", "high": "sonnet"}}
    policy = Policy.from_dict(data)
    openai = ScriptedProvider("openai", {MINI: [completion("high", model=MINI)]})
    anthropic = ScriptedProvider("anthropic", {SONNET: [ans("Deep answer.", SONNET, "anthropic")]})
    result = Cascade(policy, providers={"openai": openai, "anthropic": anthropic}).run("Explain monads.")
    assert (result.route, result.stage) == ("classifier:high", "sonnet")
    assert result.attempts[0].role == "classify" and result.attempts[0].label == "high"


def test_logs_have_stable_names_and_no_text_unless_opted_in() -> None:
    r, _ = router([ans("SECRET ANSWER", MINI, "openai"), judge(3), judge(9)], [ans("Other.", FLASH, "google")])
    with capture_logs() as events:
        r.run("SECRET QUERY")
    names = [e["event"] for e in events]
    assert names == [
        "cascade.answer",
        "cascade.judge",
        "cascade.escalate",
        "cascade.answer",
        "cascade.judge",
        "cascade.done",
    ]
    assert all(e["policy"] == "default" and e["policy_version"] == "1.0" and e["query_id"] for e in events)
    assert events[1]["confidence"] == 0.3 and events[1]["threshold"] == 0.8
    assert "SECRET" not in repr(events)
    policy = POLICY.model_copy(update={"log_text": True})
    r, _ = router([ans("SECRET ANSWER", MINI, "openai"), judge(9)], policy=policy)
    with capture_logs() as events:
        r.run("SECRET QUERY")
    assert events[0]["query"] == "SECRET QUERY" and events[0]["answer"] == "SECRET ANSWER"


def test_result_serializes_to_json() -> None:
    r, _ = router([ans("Positive.", MINI, "openai"), judge(9)])
    payload = r.run("q").model_dump_json()
    from cascade import CascadeResult

    again = CascadeResult.model_validate_json(payload)
    assert again.answer == "Positive." and '"savings_usd"' in payload


async def test_arun_is_the_same_cascade() -> None:
    r, _ = router([ans("Maybe.", MINI, "openai"), judge(5), judge(8)], [ans("Yes.", FLASH, "google")])
    result = await r.arun("q")
    assert (result.stage, result.escalations) == ("flash", 1)


async def test_arun_many_overlaps_calls_and_keeps_order() -> None:
    def script(request: CompletionRequest) -> Any:
        text = request.messages[0].content
        return judge_json(9) if "<<<ANSWER" in text else f"answer to {text}"

    openai = ScriptedProvider("openai", script, delay_s=0.05)
    r = Cascade(POLICY, providers={"openai": openai})
    results = await r.arun_many([f"q{i}" for i in range(20)], concurrency=10)
    assert [res.answer for res in results] == [f"answer to q{i}" for i in range(20)]
    assert openai.max_in_flight == 10


def test_run_many_keeps_order_and_can_return_errors() -> None:
    def script(request: CompletionRequest) -> Any:
        text = request.messages[0].content
        if "<<<ANSWER" in text:
            return judge_json(9)
        if text == "q3":
            return VendorConnectionError("refused", provider="openai")
        return f"answer to {text}"

    down = VendorConnectionError("refused", provider="x")
    providers = {
        "openai": ScriptedProvider("openai", script, delay_s=0.01),
        "google": ScriptedProvider("google", lambda r: down),
        "anthropic": ScriptedProvider("anthropic", lambda r: down),
    }
    r = Cascade(POLICY, providers=providers, retry_backoff_s=0.0)
    results = r.run_many([f"q{i}" for i in range(6)], concurrency=4, return_exceptions=True)
    assert isinstance(results[3], CascadeExhausted)
    assert [x.answer for i, x in enumerate(results) if i != 3] == [f"answer to q{i}" for i in (0, 1, 2, 4, 5)]
    assert providers["openai"].max_in_flight > 1
    with pytest.raises(BatchError) as raised:
        r.run_many(["q3"])
    assert isinstance(raised.value.outcomes[0], CascadeExhausted) and list(raised.value.errors) == [0]


async def test_run_works_inside_a_running_event_loop() -> None:
    r, _ = router([ans("Positive.", MINI, "openai"), judge(9)])
    assert asyncio.get_running_loop().is_running()
    assert r.run("q").answer == "Positive."


async def test_async_call_past_its_timeout_is_a_timeout_and_escalates() -> None:
    data = POLICY.model_dump()
    data["stages"][0].update(timeout_s=0.05, retries=0)
    data["stages"][1]["judge"] = {"provider": "anthropic", "model": SONNET}
    policy = Policy.from_dict(data)
    slow = ScriptedProvider("openai", {MINI: [ans("late", MINI, "openai")]}, delay_s=2.0)
    google = ScriptedProvider("google", {FLASH: [ans("Yes.", FLASH, "google")]})
    anthropic = ScriptedProvider("anthropic", {SONNET: [judge(9)]})
    r = Cascade(policy, providers={"openai": slow, "google": google, "anthropic": anthropic})
    result = await r.arun("q")
    assert result.attempts[0].error.type == "VendorTimeoutError"
    assert (result.stage, result.confidence) == ("flash", 0.9)
    assert result.latency_s < 1.9  # the slow call was cancelled, not awaited


def test_context_window_and_bad_queries_fail_before_any_call() -> None:
    r, p = router([])
    with pytest.raises(ValueError, match="context window"):
        r.run("word " * 1_000_000)
    with pytest.raises(ValueError):
        r.run("   ")
    assert p["openai"].requests == []


def test_structlog_is_never_configured_by_the_library() -> None:
    before = structlog.get_config()
    r, _ = router([ans("Positive.", MINI, "openai"), judge(9)])
    with capture_logs():
        r.run("q")
    assert structlog.get_config() == before
