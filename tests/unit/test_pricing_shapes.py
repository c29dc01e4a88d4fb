"""Real usage shapes of the three vendors, read by the adapters and priced, against figures worked out by hand.

The bodies follow replies recorded from the vendors' APIs (/work/shared/wire-examples: openai/chat_completion.yaml,
anthropic/messages_tool_use.yaml, google/generate_content.yaml); the first test of each vendor keeps the recorded
counts, the others change only the counts, to exercise cache writes and reads, thinking and a prompt past 200k.

Rates used, USD per million tokens, from the vendors' pricing pages:
- https://openai.com/api/pricing/ : gpt-4o-mini input 0.15, cached input 0.075, output 0.60;
  gpt-5-mini input 0.25, cached input 0.025, output 2.00 (reasoning tokens are output).
- https://www.anthropic.com/pricing#api (and docs.claude.com "Pricing"): claude-opus-4-6 input 5, output 25;
  claude-haiku-4-5 input 1, 5-minute cache write 1.25, 1-hour cache write 2, cache read 0.10, output 5;
  claude-sonnet-4-5 for prompts up to 200k tokens input 3, 5m write 3.75, 1h write 6, read 0.30, output 15, and past
  200k (every token of the prompt, cache reads and writes included, counts) input 6, 5m write 7.50, 1h write 12,
  read 0.60, output 22.50.
- https://ai.google.dev/gemini-api/docs/pricing : gemini-2.5-flash input 0.30, output (thinking included) 2.50;
  gemini-2.5-pro for prompts up to 200k tokens input 1.25, context caching 0.125, output 10, and past 200k input
  2.50, caching 0.25, output 15.
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import pytest
from anthropic.types import Message
from anthropic.types import Usage as AnthropicUsage
from google.genai import types as genai_types
from openai.types import CompletionUsage
from openai.types.chat import ChatCompletion

from cascade import Attempt, Cascade, Policy
from cascade.prices import Usage, data_version, load_prices
from cascade.providers.anthropic import AnthropicProvider
from cascade.providers.base import Completion, CompletionRequest, ProviderSettings
from cascade.providers.base import Message as ChatMessage
from cascade.providers.google import GoogleProvider
from cascade.providers.openai import OpenAIProvider
from cascade.providers.usage import UsageDetail, anthropic_detail, openai_detail
from cascade.testing import ScriptedProvider

DAY = datetime(2026, 12, 1, tzinfo=UTC)
SETTINGS = ProviderSettings(api_key="test-key")

# openai/chat_completion.yaml, as recorded (gpt-4o-mini).
OPENAI_BODY: dict[str, Any] = {
    "id": "chatcmpl-ASYMQRl3A3DXL9FWCK9tnGRcKIO7q",
    "object": "chat.completion",
    "created": 1731368630,
    "model": "gpt-4o-mini-2024-07-18",
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "This is a test.", "refusal": None},
            "logprobs": None,
            "finish_reason": "stop",
        }
    ],
    "usage": {
        "prompt_tokens": 12,
        "completion_tokens": 5,
        "total_tokens": 17,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    },
    "system_fingerprint": "fp_0ba0d124f1",
}

# anthropic/messages_tool_use.yaml's envelope and usage as recorded (claude-opus-4-6), with a text answer.
ANTHROPIC_BODY: dict[str, Any] = {
    "id": "msg_011Cdof1KE9dF97gueQXJ39E",
    "type": "message",
    "role": "assistant",
    "model": "claude-opus-4-6",
    "content": [{"type": "text", "text": "Paris, France."}],
    "stop_reason": "end_turn",
    "stop_sequence": None,
    "usage": {
        "cache_creation": {"ephemeral_1h_input_tokens": 0, "ephemeral_5m_input_tokens": 0},
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "inference_geo": "global",
        "input_tokens": 671,
        "output_tokens": 55,
        "output_tokens_details": {"thinking_tokens": 0},
        "service_tier": "standard",
    },
}

# google/generate_content.yaml, as recorded (gemini-2.5-flash, with thinking).
GEMINI_BODY: dict[str, Any] = {
    "candidates": [
        {
            "content": {"parts": [{"text": "Hello! How can I help you today?"}], "role": "model"},
            "finishReason": "STOP",
            "index": 0,
        }
    ],
    "modelVersion": "gemini-2.5-flash",
    "responseId": "bzlXaa_EE_aHqtsPi_zw8Ao",
    "usageMetadata": {
        "candidatesTokenCount": 9,
        "promptTokenCount": 9,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 9}],
        "thoughtsTokenCount": 34,
        "totalTokenCount": 52,
    },
}


def _request(model: str) -> CompletionRequest:
    return CompletionRequest(model=model, messages=(ChatMessage("user", "q"),), max_output_tokens=4096)


def _openai(model: str, usage: dict[str, Any]) -> Completion:
    body = {**copy.deepcopy(OPENAI_BODY), "model": model, "usage": usage}
    return OpenAIProvider(SETTINGS).parse(ChatCompletion.model_validate(body), _request(model), 0.0)


def _anthropic(model: str, **usage: Any) -> Completion:
    body = copy.deepcopy(ANTHROPIC_BODY)
    body["model"] = model
    body["usage"].update(usage)
    return AnthropicProvider(SETTINGS).parse(Message.model_validate(body), _request(model), 0.0)


def _gemini(model: str, **usage: Any) -> Completion:
    body = copy.deepcopy(GEMINI_BODY)
    body["modelVersion"] = model
    body["usageMetadata"].update(usage)
    reply = genai_types.GenerateContentResponse.model_validate(body)
    return GoogleProvider(SETTINGS).parse(reply, _request(model), 0.0)


def _cost(model: str, completion: Completion) -> float:
    cost, rates = load_prices().priced(model, Usage.of(completion), DAY)
    assert rates is not None and rates.source == data_version()
    return cost


# -- what the extraction reads, on the wire JSON and on the SDK objects ------------------------------------------


def test_recorded_usage_has_no_detail_and_reads_the_same_from_json_and_sdk_objects() -> None:
    assert openai_detail(OPENAI_BODY["usage"]) == UsageDetail()
    assert openai_detail(CompletionUsage.model_validate(OPENAI_BODY["usage"])) == UsageDetail()
    assert anthropic_detail(ANTHROPIC_BODY["usage"]) == UsageDetail()
    assert anthropic_detail(AnthropicUsage.model_validate(ANTHROPIC_BODY["usage"])) == UsageDetail()


def test_openai_reasoning_and_cache_writes_are_read() -> None:
    usage = copy.deepcopy(OPENAI_BODY["usage"])
    usage["prompt_tokens_details"]["cache_write_tokens"] = 256
    usage["completion_tokens_details"]["reasoning_tokens"] = 640
    expected = UsageDetail(cache_write_tokens=256, reasoning_tokens=640)
    assert openai_detail(usage) == openai_detail(CompletionUsage.model_validate(usage)) == expected


def test_anthropic_cache_writes_by_lifetime_and_thinking_are_read() -> None:
    usage = {
        **ANTHROPIC_BODY["usage"],
        "cache_creation": {"ephemeral_5m_input_tokens": 4000, "ephemeral_1h_input_tokens": 2000},
        "cache_creation_input_tokens": 6000,
        "output_tokens_details": {"thinking_tokens": 800},
    }
    expected = UsageDetail(cache_write_tokens=6000, cache_write_1h_tokens=2000, reasoning_tokens=800)
    assert anthropic_detail(usage) == anthropic_detail(AnthropicUsage.model_validate(usage)) == expected
    # A reply from before 1-hour caching has the total only: every write was a 5-minute one.
    older = {"input_tokens": 10, "output_tokens": 3, "cache_creation_input_tokens": 512}
    assert anthropic_detail(older) == UsageDetail(cache_write_tokens=512)
    # A detail count that is not a count reads as none (the adapter checks the counts it relies on itself).
    odd = {**usage, "cache_creation": {"ephemeral_1h_input_tokens": "2000"}, "output_tokens_details": None}
    assert anthropic_detail(odd) == UsageDetail(cache_write_tokens=6000)


# -- priced, against the hand figures ----------------------------------------------------------------------------


def test_openai_recorded_reply() -> None:
    completion = _openai("gpt-4o-mini", OPENAI_BODY["usage"])
    assert _cost("gpt-4o-mini", completion) == pytest.approx((12 * 0.15 + 5 * 0.60) / 1e6)


def test_openai_cached_prompt_and_reasoning() -> None:
    usage = copy.deepcopy(OPENAI_BODY["usage"])
    usage.update(prompt_tokens=1200, completion_tokens=850, total_tokens=2050)
    usage["prompt_tokens_details"]["cached_tokens"] = 1024
    usage["completion_tokens_details"]["reasoning_tokens"] = 640
    completion = _openai("gpt-5-mini", usage)
    assert (completion.input_tokens, completion.cached_input_tokens, completion.reasoning_tokens) == (1200, 1024, 640)
    # 176 fresh x 0.25 + 1024 cached x 0.025 + 850 output (640 of them reasoning) x 2.00
    assert _cost("gpt-5-mini", completion) == pytest.approx((176 * 0.25 + 1024 * 0.025 + 850 * 2.00) / 1e6)


def test_anthropic_recorded_reply() -> None:
    completion = _anthropic("claude-opus-4-6")
    assert _cost("claude-opus-4-6", completion) == pytest.approx((671 * 5 + 55 * 25) / 1e6)


def test_anthropic_cache_writes_bill_at_1_25x_and_2x_not_at_the_input_rate() -> None:
    completion = _anthropic(
        "claude-haiku-4-5",
        input_tokens=1500,
        cache_creation_input_tokens=6000,
        cache_creation={"ephemeral_5m_input_tokens": 4000, "ephemeral_1h_input_tokens": 2000},
        cache_read_input_tokens=20_000,
        output_tokens=1200,
        output_tokens_details={"thinking_tokens": 800},
    )
    assert completion.input_tokens == 1500 + 6000 + 20_000
    assert (completion.cache_write_tokens, completion.cache_write_1h_tokens, completion.reasoning_tokens) == (
        6000,
        2000,
        800,
    )
    # 1500 x 1 + 4000 x 1.25 + 2000 x 2 + 20000 x 0.10 + 1200 x 5
    expected = (1500 * 1 + 4000 * 1.25 + 2000 * 2 + 20_000 * 0.10 + 1200 * 5) / 1e6
    assert _cost("claude-haiku-4-5", completion) == pytest.approx(expected)
    assert expected == pytest.approx(0.0185)


def test_anthropic_prompt_past_200k_bills_every_token_at_the_long_context_rates() -> None:
    shape = {
        "cache_creation_input_tokens": 12_000,
        "cache_creation": {"ephemeral_5m_input_tokens": 10_000, "ephemeral_1h_input_tokens": 2000},
        "cache_read_input_tokens": 190_000,
        "output_tokens": 2000,
        "output_tokens_details": {"thinking_tokens": 1500},
    }
    # 3000 + 12000 + 190000 = 205000 prompt tokens: past 200k.
    long = _anthropic("claude-sonnet-4-5", input_tokens=3000, **shape)
    expected = (3000 * 6 + 10_000 * 7.50 + 2000 * 12 + 190_000 * 0.60 + 2000 * 22.50) / 1e6
    assert _cost("claude-sonnet-4-5", long) == pytest.approx(expected) == pytest.approx(0.276)
    # 10000 fewer cache reads: 3000 + 12000 + 180000 = 195000 prompt tokens, within 200k: the base rates.
    short = _anthropic("claude-sonnet-4-5", input_tokens=3000, **{**shape, "cache_read_input_tokens": 180_000})
    expected_short = (3000 * 3 + 10_000 * 3.75 + 2000 * 6 + 180_000 * 0.30 + 2000 * 15) / 1e6
    assert _cost("claude-sonnet-4-5", short) == pytest.approx(expected_short) == pytest.approx(0.1425)


def test_gemini_recorded_reply_bills_thinking_as_output() -> None:
    completion = _gemini("gemini-2.5-flash")
    assert (completion.output_tokens, completion.reasoning_tokens) == (9 + 34, 34)
    assert _cost("gemini-2.5-flash", completion) == pytest.approx((9 * 0.30 + 43 * 2.50) / 1e6)


@pytest.mark.parametrize(
    ("prompt", "cached", "expected"),
    [
        # 4000 fresh x 1.25 + 8000 cached x 0.125 + (400 + 1600 thinking) x 10
        (12_000, 8000, (4000 * 1.25 + 8000 * 0.125 + 2000 * 10) / 1e6),
        # past 200k: 50000 fresh x 2.50 + 200000 cached x 0.25 + 2000 x 15
        (250_000, 200_000, (50_000 * 2.50 + 200_000 * 0.25 + 2000 * 15) / 1e6),
    ],
    ids=["within-200k", "past-200k"],
)
def test_gemini_cached_prompt_and_thinking_at_both_tiers(prompt: int, cached: int, expected: float) -> None:
    completion = _gemini(
        "gemini-2.5-pro",
        promptTokenCount=prompt,
        cachedContentTokenCount=cached,
        candidatesTokenCount=400,
        thoughtsTokenCount=1600,
        totalTokenCount=prompt + 2000,
    )
    assert (completion.input_tokens, completion.cached_input_tokens, completion.output_tokens) == (prompt, cached, 2000)
    assert _cost("gemini-2.5-pro", completion) == pytest.approx(expected)


# -- through the engine: the attempt records the figures, and they give the cost again ---------------------------


def test_the_attempt_records_the_price_data_and_rates_so_its_cost_can_be_worked_again() -> None:
    model = "claude-sonnet-4-5"
    # The pinned data has one price for this model whatever the day, so the engine's "today" is deterministic.
    assert not isinstance(load_prices()[model].info.prices, list)
    policy = Policy.from_dict(
        {"name": "one", "version": "1", "stages": [{"name": "only", "provider": "anthropic", "model": model}]}
    )
    reply = _anthropic(
        model,
        input_tokens=3000,
        cache_creation_input_tokens=12_000,
        cache_creation={"ephemeral_5m_input_tokens": 10_000, "ephemeral_1h_input_tokens": 2000},
        cache_read_input_tokens=190_000,
        output_tokens=2000,
        output_tokens_details={"thinking_tokens": 1500},
    )
    router = Cascade(policy, providers={"anthropic": ScriptedProvider("anthropic", {model: [reply]})})
    result = router.run("Summarise the attached contract.")
    (attempt,) = result.attempts
    assert attempt.cost_usd == pytest.approx(0.276) == pytest.approx(result.cost_usd)
    assert (attempt.cache_write_tokens, attempt.cache_write_1h_tokens, attempt.reasoning_tokens) == (12_000, 2000, 1500)
    price = attempt.price
    assert price is not None
    assert (price.source, price.model, price.above_prompt_tokens) == (data_version(), model, 200_000)
    assert (price.input, price.cached_input, price.cache_write, price.cache_write_1h, price.output) == (
        6.0,
        0.6,
        7.5,
        12.0,
        22.5,
    )
    # An old trace, read back: its own figures price it again, whatever the price data says by then.
    stored = Attempt.model_validate_json(attempt.model_dump_json())
    assert stored.price is not None and stored.price.cost(Usage.of(stored)) == pytest.approx(attempt.cost_usd)
