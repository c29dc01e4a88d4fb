"""The Anthropic adapter against recorded Messages API traffic, each case sync and async.

Cassettes live in `cassettes/anthropic/`; see tests/conftest.py for how they are replayed and synthesized.
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import pytest

from cascade.errors import (
    ContentBlockedError,
    MalformedResponseError,
    MissingAPIKeyError,
    OverloadedError,
    RateLimitedError,
    ServerError,
    TruncatedError,
    VendorConnectionError,
    VendorTimeoutError,
)
from cascade.prices import load_prices
from cascade.providers import DEFAULT_BASE_URL_ENV, DEFAULT_KEY_ENV
from cascade.providers.anthropic import AnthropicProvider
from cascade.providers.base import Completion, CompletionRequest, Message, ProviderSettings
from cascade.testing import FakeVendorServer, wire
from cascade.testing.wire import FakeReply

MODEL = "claude-haiku-4-5"
SNAPSHOT = "claude-haiku-4-5-20251001"  # the model the API says answered
QUESTION = CompletionRequest(
    model=MODEL,
    messages=(Message("user", "What is 2 + 2? Reply with the number only."),),
    system="You are a terse calculator.",
    max_output_tokens=256,
)
Complete = Callable[[AnthropicProvider, CompletionRequest], Awaitable[Completion]]


def _without_usage() -> FakeReply:
    reply = wire.anthropic_message("4", input_tokens=18, output_tokens=5, model=SNAPSHOT)
    del reply.body["usage"]
    return reply


def _sent_body(cassette: Any) -> dict[str, Any]:
    """The JSON body of the one request in the cassette: the very body sent, since requests match on body."""
    (request,) = cassette.requests
    body: dict[str, Any] = json.loads(request.body)
    return body


@pytest.fixture
async def provider() -> AsyncIterator[AnthropicProvider]:
    """Built as the engine builds it: key and base URL from the default environment variables."""
    provider = AnthropicProvider(
        ProviderSettings(api_key_env=DEFAULT_KEY_ENV["anthropic"], base_url_env=DEFAULT_BASE_URL_ENV["anthropic"])
    )
    yield provider
    await provider.aclose()  # in the test's own event loop, which owns the async connections


@pytest.mark.vcr
@pytest.mark.fake_vendor(
    "anthropic",
    wire.anthropic_message(
        "12",
        input_tokens=25,
        output_tokens=5,
        cache_read_input_tokens=2048,
        cache_creation_input_tokens=512,
        model=SNAPSHOT,
    ),
)
async def test_answer_with_usage(provider: AnthropicProvider, complete: Complete, vcr: Any) -> None:
    request = CompletionRequest(
        model=MODEL,
        messages=(
            Message("user", "What is 2 + 2? Reply with the number only."),
            Message("assistant", "4"),
            Message("user", "And that times 3?"),
        ),
        system="You are a terse calculator.",
        max_output_tokens=256,
        temperature=0.3,
    )
    completion = await complete(provider, request)
    assert completion.answer_text() == "12"
    assert completion.finish_reason == "stop"
    assert completion.model == SNAPSHOT
    assert completion.provider == "anthropic"
    # The prompt is uncached + cache reads + cache writes; cache reads are also reported on their own.
    assert completion.input_tokens == 25 + 2048 + 512
    assert completion.cached_input_tokens == 2048
    assert completion.output_tokens == 5
    # The `request-id` header when there is one; cassettes drop it, so on replay the message id stands in.
    assert completion.request_id and completion.request_id.startswith(("req_", "msg_"))
    assert completion.first_token_logprobs == {}
    # Cache reads billed at the cached rate: (25 + 512) x $1 + 2048 x $0.10 + 5 x $5 per million tokens.
    cost = load_prices().cost(completion.model, completion.input_tokens, completion.output_tokens, 2048)
    assert cost == pytest.approx((537 * 1.00 + 2048 * 0.10 + 5 * 5.00) / 1e6)

    sent = _sent_body(vcr)
    assert sent["system"] == "You are a terse calculator."  # top-level, not a message
    assert sent["max_tokens"] == 256
    assert [m["role"] for m in sent["messages"]] == ["user", "assistant", "user"]
    assert "temperature" not in sent  # the 2026-10-21 API version rejects sampling parameters


@pytest.mark.vcr
@pytest.mark.fake_vendor(
    "anthropic",
    wire.anthropic_message(
        ["The answer", " is 4."],
        input_tokens=40,
        output_tokens=96,
        thinking="2 + 2 is 4.",
        model=SNAPSHOT,
    ),
)
async def test_text_blocks_joined_and_thinking_left_out(provider: AnthropicProvider, complete: Complete) -> None:
    completion = await complete(provider, QUESTION)
    assert completion.answer_text() == "The answer is 4."
    assert completion.output_tokens == 96  # thinking is billed in output_tokens already


@pytest.mark.vcr
@pytest.mark.fake_vendor(
    "anthropic",
    wire.anthropic_error(
        429,
        "rate_limit_error",
        "This request would exceed the rate limit for your organization of 50 requests per minute.",
        retry_after=23,
    ),
)
async def test_rate_limited(provider: AnthropicProvider, complete: Complete) -> None:
    with pytest.raises(RateLimitedError) as caught:
        await complete(provider, QUESTION)
    assert caught.value.status_code == 429
    assert caught.value.retry_after == 23.0
    assert caught.value.retryable
    assert caught.value.body["error"]["type"] == "rate_limit_error"
    assert "rate_limit_error" in str(caught.value)


@pytest.mark.vcr
@pytest.mark.fake_vendor("anthropic", wire.anthropic_error(500, "api_error", "Internal server error"))
async def test_server_error(provider: AnthropicProvider, complete: Complete) -> None:
    with pytest.raises(ServerError) as caught:
        await complete(provider, QUESTION)
    assert not isinstance(caught.value, OverloadedError)
    assert caught.value.status_code == 500
    assert caught.value.retryable


@pytest.mark.vcr
@pytest.mark.fake_vendor("anthropic", wire.anthropic_error(529, "overloaded_error", "Overloaded"))
async def test_overloaded_529(provider: AnthropicProvider, complete: Complete) -> None:
    with pytest.raises(OverloadedError) as caught:
        await complete(provider, QUESTION)
    assert caught.value.status_code == 529
    assert caught.value.retryable
    assert caught.value.body["error"]["type"] == "overloaded_error"


@pytest.mark.vcr
@pytest.mark.fake_vendor(
    "anthropic",
    wire.anthropic_message(
        "I can",  # a refusal may cut in after some text: none of it is an answer
        input_tokens=31,
        output_tokens=3,
        stop_reason="refusal",
        stop_details={
            "type": "refusal",
            "category": "cyber",
            "explanation": "The request could enable the development of malware.",
        },
        model=SNAPSHOT,
    ),
)
async def test_refusal(provider: AnthropicProvider, complete: Complete) -> None:
    completion = await complete(provider, QUESTION)
    assert completion.finish_reason == "refusal"
    assert completion.text is None
    assert completion.refusal == "The request could enable the development of malware."
    assert (completion.input_tokens, completion.output_tokens) == (31, 3)  # billed all the same
    with pytest.raises(ContentBlockedError) as caught:
        completion.answer_text()
    assert caught.value.completion is completion


@pytest.mark.vcr
@pytest.mark.fake_vendor(
    "anthropic",
    wire.anthropic_message(
        "The capital of France is", input_tokens=15, output_tokens=5, stop_reason="max_tokens", model=SNAPSHOT
    ),
)
async def test_truncated_at_max_tokens(provider: AnthropicProvider, complete: Complete) -> None:
    request = CompletionRequest(
        model=MODEL,
        messages=(Message("user", "What is the capital of France?"),),
        max_output_tokens=5,
    )
    completion = await complete(provider, request)
    assert completion.finish_reason == "length"
    assert completion.text == "The capital of France is"
    assert completion.output_tokens == 5
    with pytest.raises(TruncatedError):
        completion.answer_text()


@pytest.mark.vcr
@pytest.mark.fake_vendor("anthropic", wire.anthropic_message("9", input_tokens=52, output_tokens=5, model=SNAPSHOT))
async def test_logprobs_are_not_asked_for(provider: AnthropicProvider, complete: Complete, vcr: Any) -> None:
    """The Messages API has no log-probabilities: nothing is sent for them and none come back."""
    request = CompletionRequest(
        model=MODEL,
        messages=(Message("user", "Score this answer from 0 to 10. Reply with the score only.\n\nQ: 2+2\nA: 4"),),
        max_output_tokens=8,
        top_logprobs=5,
    )
    completion = await complete(provider, request)
    assert completion.answer_text() == "9"
    assert completion.first_token_logprobs == {}
    assert set(_sent_body(vcr)) == {"model", "max_tokens", "messages"}


@pytest.mark.vcr
@pytest.mark.fake_vendor("anthropic", _without_usage())
async def test_reply_without_usage_is_malformed(provider: AnthropicProvider, complete: Complete) -> None:
    with pytest.raises(MalformedResponseError, match="no usage"):
        await complete(provider, QUESTION)


@pytest.mark.vcr
@pytest.mark.fake_vendor("anthropic", wire.anthropic_message(None, input_tokens=18, output_tokens=2, model=SNAPSHOT))
async def test_finished_reply_without_text_is_malformed(provider: AnthropicProvider, complete: Complete) -> None:
    with pytest.raises(MalformedResponseError, match="no text content"):
        await complete(provider, QUESTION)


@pytest.mark.vcr
@pytest.mark.fake_vendor(
    "anthropic",
    FakeReply(200, "<html><body>Service temporarily unavailable</body></html>", {"content-type": "text/html"}),
)
async def test_reply_that_is_not_json_is_malformed(provider: AnthropicProvider, complete: Complete) -> None:
    # The SDK hands a non-JSON content type back as a string instead of raising.
    with pytest.raises(MalformedResponseError, match="not a message object"):
        await complete(provider, QUESTION)


@pytest.mark.vcr
@pytest.mark.fake_vendor("anthropic", FakeReply(200, '{"id": "msg_01', {"content-type": "application/json"}))
async def test_cut_off_json_is_malformed(provider: AnthropicProvider, complete: Complete) -> None:
    with pytest.raises(MalformedResponseError, match="not JSON"):
        await complete(provider, QUESTION)


async def test_missing_key_names_the_variable(
    provider: AnthropicProvider, complete: Complete, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    with pytest.raises(MissingAPIKeyError, match="ANTHROPIC_API_KEY"):
        await complete(provider, QUESTION)


# Timeouts, dropped connections and event loops cannot be recorded: these tests talk to a local fake server.


@pytest.fixture
def fake_anthropic(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeVendorServer]:
    with FakeVendorServer() as server:
        monkeypatch.setenv(DEFAULT_BASE_URL_ENV["anthropic"], server.url)
        monkeypatch.setenv("ANTHROPIC_API_KEY", "test-key")
        yield server


async def test_timeout(fake_anthropic: FakeVendorServer, provider: AnthropicProvider, complete: Complete) -> None:
    fake_anthropic.script("anthropic", FakeReply(200, {}, delay_s=2.0))
    with pytest.raises(VendorTimeoutError) as caught:
        await complete(provider, dataclasses.replace(QUESTION, timeout_s=0.3))
    assert caught.value.retryable
    assert len(fake_anthropic.requests) == 1  # no SDK retries


async def test_dropped_connection(
    fake_anthropic: FakeVendorServer, provider: AnthropicProvider, complete: Complete
) -> None:
    fake_anthropic.script("anthropic", FakeReply(drop=True))
    with pytest.raises(VendorConnectionError):
        await complete(provider, QUESTION)
    assert len(fake_anthropic.requests) == 1


# The first loop's connection is never closed (as when a caller forgets `aclose`): Python warns when it is collected.
@pytest.mark.filterwarnings("ignore::ResourceWarning")
def test_async_calls_from_a_second_event_loop(fake_anthropic: FakeVendorServer) -> None:
    """A second `asyncio.run` must not reuse the first loop's connections ("Event loop is closed")."""
    provider = AnthropicProvider(
        ProviderSettings(api_key_env=DEFAULT_KEY_ENV["anthropic"], base_url_env=DEFAULT_BASE_URL_ENV["anthropic"])
    )
    reply = wire.anthropic_message("4", input_tokens=18, output_tokens=5, model=SNAPSHOT)
    fake_anthropic.script("anthropic", reply, reply)

    async def ask(close: bool) -> str | None:
        try:
            return (await provider.acomplete(QUESTION)).text
        finally:
            if close:
                await provider.aclose()

    assert asyncio.run(ask(close=False)) == "4"
    assert asyncio.run(ask(close=True)) == "4"
    gc.collect()  # let the first loop's connection go now, under this test's warning filter
