"""The google-genai adapter against recorded Gemini `generateContent` traffic, each case sync and async.

Cassettes live in `cassettes/google/`; see tests/conftest.py for how they are replayed and synthesized.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

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
from cascade.providers import DEFAULT_BASE_URL_ENV, DEFAULT_KEY_ENV
from cascade.providers._gemini_wire import http_error
from cascade.providers.base import Completion, CompletionRequest, Message, ProviderSettings
from cascade.providers.google import GoogleProvider
from cascade.testing import FakeVendorServer, wire
from cascade.testing.wire import FakeReply

MODEL = "gemini-2.5-flash"
QUESTION = CompletionRequest(
    model=MODEL,
    messages=(Message("user", "What is 2 + 2? Reply with the number only."),),
    system="You are a terse calculator.",
    max_output_tokens=256,
)
Complete = Callable[[GoogleProvider, CompletionRequest], Awaitable[Completion]]


def _without_usage() -> FakeReply:
    reply = wire.gemini_content("4", prompt_tokens=18, output_tokens=1, model=MODEL)
    del reply.body["usageMetadata"]
    return reply


@pytest.fixture
async def provider() -> AsyncIterator[GoogleProvider]:
    """Built as the engine builds it: key and base URL from the default environment variables."""
    provider = GoogleProvider(
        ProviderSettings(api_key_env=DEFAULT_KEY_ENV["google"], base_url_env=DEFAULT_BASE_URL_ENV["google"])
    )
    yield provider
    await provider.aclose()  # in the test's own event loop, which owns the async connections


@pytest.mark.vcr
@pytest.mark.fake_vendor(
    "google",
    wire.gemini_content("12", prompt_tokens=31, output_tokens=1, thoughts_tokens=24, cached_tokens=16, model=MODEL),
)
async def test_answer_with_usage(provider: GoogleProvider, complete: Complete) -> None:
    request = CompletionRequest(
        model=MODEL,
        messages=(
            Message("user", "What is 2 + 2? Reply with the number only."),
            Message("assistant", "4"),
            Message("user", "And that times 3?"),
        ),
        system="You are a terse calculator.",
        max_output_tokens=256,
    )
    completion = await complete(provider, request)
    assert completion.answer_text() == "12"
    assert completion.finish_reason == "stop"
    assert completion.model == MODEL
    assert completion.provider == "google"
    assert completion.input_tokens == 31
    assert completion.cached_input_tokens == 16
    assert completion.output_tokens == 1 + 24  # thinking is billed as output
    assert completion.request_id
    assert completion.first_token_logprobs == {}


@pytest.mark.vcr
@pytest.mark.fake_vendor(
    "google",
    wire.gemini_error(
        429,
        "RESOURCE_EXHAUSTED",
        "You exceeded your current quota, please check your plan and billing details.",
        retry_delay_s=37,
    ),
)
async def test_rate_limited_takes_retry_delay_from_body(provider: GoogleProvider, complete: Complete) -> None:
    with pytest.raises(RateLimitedError) as caught:
        await complete(provider, QUESTION)
    assert caught.value.status_code == 429
    assert caught.value.retry_after == 37.0
    assert caught.value.retryable
    assert "exceeded your current quota" in str(caught.value)


@pytest.mark.vcr
@pytest.mark.fake_vendor(
    "google",
    wire.gemini_error(500, "INTERNAL", "An internal error has occurred. Please retry or report in AI Studio."),
)
async def test_server_error(provider: GoogleProvider, complete: Complete) -> None:
    with pytest.raises(ServerError) as caught:
        await complete(provider, QUESTION)
    assert not isinstance(caught.value, OverloadedError)
    assert caught.value.status_code == 500
    assert caught.value.body["error"]["status"] == "INTERNAL"


@pytest.mark.vcr
@pytest.mark.fake_vendor(
    "google", wire.gemini_error(503, "UNAVAILABLE", "The model is overloaded. Please try again later.")
)
async def test_overloaded(provider: GoogleProvider, complete: Complete) -> None:
    with pytest.raises(OverloadedError) as caught:
        await complete(provider, QUESTION)
    assert caught.value.status_code == 503
    assert caught.value.retryable


@pytest.mark.vcr
@pytest.mark.fake_vendor(
    "google", wire.gemini_content(None, prompt_tokens=18, output_tokens=0, finish_reason="SAFETY", model=MODEL)
)
async def test_answer_blocked_for_safety(provider: GoogleProvider, complete: Complete) -> None:
    completion = await complete(provider, QUESTION)
    assert completion.finish_reason == "blocked"
    assert completion.text is None
    assert completion.refusal is not None and "SAFETY" in completion.refusal
    assert (completion.input_tokens, completion.output_tokens) == (18, 0)
    with pytest.raises(ContentBlockedError) as caught:
        completion.answer_text()
    assert caught.value.completion is completion


@pytest.mark.vcr
@pytest.mark.fake_vendor(
    "google",
    wire.gemini_content(None, prompt_tokens=18, output_tokens=0, block_reason="PROHIBITED_CONTENT", model=MODEL),
)
async def test_prompt_blocked(provider: GoogleProvider, complete: Complete) -> None:
    completion = await complete(provider, QUESTION)
    assert completion.finish_reason == "blocked"
    assert completion.text is None
    assert completion.refusal is not None and "PROHIBITED_CONTENT" in completion.refusal
    assert completion.input_tokens == 18
    with pytest.raises(ContentBlockedError):
        completion.answer_text()


@pytest.mark.vcr
@pytest.mark.fake_vendor(
    "google",
    wire.gemini_content(
        "The capital of France is", prompt_tokens=15, output_tokens=5, finish_reason="MAX_TOKENS", model=MODEL
    ),
)
async def test_truncated_at_max_tokens(provider: GoogleProvider, complete: Complete) -> None:
    request = CompletionRequest(
        model=MODEL,
        messages=(Message("user", "What is the capital of France?"),),
        system="You are a helpful chatbot.",
        max_output_tokens=5,
    )
    completion = await complete(provider, request)
    assert completion.finish_reason == "length"
    assert completion.text == "The capital of France is"
    assert completion.output_tokens == 5
    with pytest.raises(TruncatedError):
        completion.answer_text()


@pytest.mark.vcr
@pytest.mark.fake_vendor(
    "google",
    wire.gemini_content(
        "9",
        prompt_tokens=52,
        output_tokens=1,
        model=MODEL,
        top_logprobs={"9": -0.0123, "8": -4.71, "10": -6.02},
    ),
)
async def test_first_token_logprobs(provider: GoogleProvider, complete: Complete) -> None:
    request = CompletionRequest(
        model=MODEL,
        messages=(Message("user", "Score this answer from 0 to 10. Reply with the score only.\n\nQ: 2+2\nA: 4"),),
        max_output_tokens=8,
        top_logprobs=3,
    )
    completion = await complete(provider, request)
    assert completion.answer_text() == "9"
    assert completion.first_token_logprobs == pytest.approx({"9": -0.0123, "8": -4.71, "10": -6.02})


@pytest.mark.vcr
@pytest.mark.fake_vendor("google", _without_usage())
async def test_reply_without_usage_is_malformed(provider: GoogleProvider, complete: Complete) -> None:
    with pytest.raises(MalformedResponseError, match="usageMetadata"):
        await complete(provider, QUESTION)


@pytest.mark.vcr
@pytest.mark.fake_vendor(
    "google", FakeReply(200, "<html><body>Service temporarily unavailable</body></html>", {"content-type": "text/html"})
)
async def test_reply_that_is_not_json_is_malformed(provider: GoogleProvider, complete: Complete) -> None:
    with pytest.raises(MalformedResponseError, match="not JSON"):
        await complete(provider, QUESTION)


async def test_missing_key_names_the_variables(
    provider: GoogleProvider, complete: Complete, monkeypatch: pytest.MonkeyPatch
) -> None:
    for var in DEFAULT_KEY_ENV["google"]:
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(MissingAPIKeyError, match="GEMINI_API_KEY or GOOGLE_API_KEY"):
        await complete(provider, QUESTION)


# Timeouts and dropped connections cannot be recorded: these tests talk to a local fake server, never a vendor.


@pytest.fixture
def fake_google(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeVendorServer]:
    with FakeVendorServer() as server:
        monkeypatch.setenv(DEFAULT_BASE_URL_ENV["google"], server.url)
        monkeypatch.setenv("GEMINI_API_KEY", "test-key")
        yield server


async def test_timeout(fake_google: FakeVendorServer, provider: GoogleProvider, complete: Complete) -> None:
    fake_google.script("google", FakeReply(200, {}, delay_s=2.0))
    with pytest.raises(VendorTimeoutError) as caught:
        await complete(provider, dataclasses.replace(QUESTION, timeout_s=0.3))
    assert caught.value.retryable


async def test_dropped_connection(fake_google: FakeVendorServer, provider: GoogleProvider, complete: Complete) -> None:
    fake_google.script("google", FakeReply(drop=True))
    with pytest.raises(VendorConnectionError):
        await complete(provider, QUESTION)


def test_retry_after_header_wins_over_retry_info() -> None:
    body = wire.gemini_error(429, "RESOURCE_EXHAUSTED", "quota", retry_delay_s=37).body
    with_header = http_error(429, "quota", provider="google", model=MODEL, body=body, headers={"Retry-After": "5"})
    without = http_error(429, "quota", provider="google", model=MODEL, body=body, headers={})
    assert isinstance(with_header, RateLimitedError) and with_header.retry_after == 5.0
    assert isinstance(without, RateLimitedError) and without.retry_after == 37.0
