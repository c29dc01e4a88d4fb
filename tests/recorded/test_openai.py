"""The OpenAI adapter against recorded Chat Completions traffic, each case sync and async.

Cassettes live in `cassettes/openai/`; see tests/conftest.py for how they are replayed and synthesized.
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import json
import math
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
from cascade.prices import load_prices
from cascade.providers import DEFAULT_BASE_URL_ENV, DEFAULT_KEY_ENV
from cascade.providers.base import Completion, CompletionRequest, Message, ProviderSettings
from cascade.providers.openai import OpenAIProvider
from cascade.testing import FakeVendorServer, wire
from cascade.testing.wire import FakeReply

MODEL = "gpt-4o-mini"
QUESTION = CompletionRequest(
    model=MODEL,
    messages=(Message("user", "What is 2 + 2? Reply with the number only."),),
    system="You are a terse calculator.",
    max_output_tokens=64,
)
Complete = Callable[[OpenAIProvider, CompletionRequest], Awaitable[Completion]]


def _settings() -> ProviderSettings:
    return ProviderSettings(api_key_env=DEFAULT_KEY_ENV["openai"], base_url_env=DEFAULT_BASE_URL_ENV["openai"])


@pytest.fixture
async def provider() -> AsyncIterator[OpenAIProvider]:
    provider = OpenAIProvider(_settings())
    yield provider
    await provider.aclose()


@pytest.mark.vcr
@pytest.mark.fake_vendor("openai", wire.openai_chat("4", prompt_tokens=27, completion_tokens=1, cached_tokens=0))
async def test_answer_with_usage(provider: OpenAIProvider, complete: Complete) -> None:
    completion = await complete(provider, QUESTION)
    assert (completion.text, completion.finish_reason, completion.usable) == ("4", "stop", True)
    assert (completion.input_tokens, completion.output_tokens) == (27, 1)
    assert completion.model == "gpt-4o-mini-2024-07-18" and completion.provider == "openai"
    # The x-request-id header when the vendor sends it; the body id once cassettes have scrubbed the header.
    assert completion.request_id and completion.request_id.startswith(("req_", "chatcmpl-"))
    assert load_prices().cost(MODEL, completion.input_tokens, completion.output_tokens) == pytest.approx(
        (27 * 0.15 + 1 * 0.60) / 1e6
    )


@pytest.mark.vcr
@pytest.mark.fake_vendor("openai", wire.openai_chat("12", prompt_tokens=1200, completion_tokens=1, cached_tokens=1024))
async def test_cached_prompt_tokens_are_reported(provider: OpenAIProvider, complete: Complete) -> None:
    completion = await complete(provider, QUESTION)
    assert (completion.input_tokens, completion.cached_input_tokens) == (1200, 1024)
    expected = (176 * 0.15 + 1024 * 0.075 + 1 * 0.60) / 1e6
    assert load_prices().cost(MODEL, 1200, 1, 1024) == pytest.approx(expected)


@pytest.mark.vcr
@pytest.mark.fake_vendor(
    "openai",
    wire.openai_error(
        429,
        "Rate limit reached for gpt-4o-mini on requests per min (RPM): Limit 500, Used 500, Requested 1.",
        type_="requests",
        code="rate_limit_exceeded",
        retry_after=20,
    ),
)
async def test_rate_limited_keeps_retry_after(provider: OpenAIProvider, complete: Complete) -> None:
    with pytest.raises(RateLimitedError) as info:
        await complete(provider, QUESTION)
    assert (info.value.status_code, info.value.retry_after) == (429, 20.0)
    assert "Rate limit reached" in str(info.value) and info.value.body["code"] == "rate_limit_exceeded"


@pytest.mark.vcr
@pytest.mark.fake_vendor(
    "openai",
    wire.openai_error(
        500, "The server had an error while processing your request. Sorry about that!", type_="server_error", code=None
    ),
)
async def test_server_error(provider: OpenAIProvider, complete: Complete) -> None:
    with pytest.raises(ServerError) as info:
        await complete(provider, QUESTION)
    assert info.value.status_code == 500 and not isinstance(info.value, OverloadedError)


@pytest.mark.vcr
@pytest.mark.fake_vendor(
    "openai",
    wire.openai_error(
        503, "The engine is currently overloaded, please try again later.", type_="server_error", code=None
    ),
)
async def test_service_unavailable_is_overloaded(provider: OpenAIProvider, complete: Complete) -> None:
    with pytest.raises(OverloadedError) as info:
        await complete(provider, QUESTION)
    assert info.value.status_code == 503 and info.value.retryable


@pytest.mark.vcr
@pytest.mark.fake_vendor(
    "openai",
    wire.openai_chat(None, prompt_tokens=30, completion_tokens=9, refusal="I'm sorry, I can't help with that."),
)
async def test_refusal(provider: OpenAIProvider, complete: Complete) -> None:
    completion = await complete(provider, QUESTION)
    assert (completion.text, completion.finish_reason) == (None, "refusal")
    assert completion.output_tokens == 9  # still billed
    with pytest.raises(ContentBlockedError, match="can't help"):
        completion.answer_text()


@pytest.mark.vcr
@pytest.mark.fake_vendor(
    "openai", wire.openai_chat(None, prompt_tokens=30, completion_tokens=0, finish_reason="content_filter")
)
async def test_content_filter(provider: OpenAIProvider, complete: Complete) -> None:
    completion = await complete(provider, QUESTION)
    assert (completion.text, completion.finish_reason) == (None, "blocked")
    with pytest.raises(ContentBlockedError):
        completion.answer_text()


@pytest.mark.vcr
@pytest.mark.fake_vendor(
    "openai",
    wire.openai_chat(
        "The answer is four, because two plus", prompt_tokens=27, completion_tokens=64, finish_reason="length"
    ),
)
async def test_truncated(provider: OpenAIProvider, complete: Complete) -> None:
    completion = await complete(provider, QUESTION)
    assert completion.finish_reason == "length" and completion.text.startswith("The answer is four")
    with pytest.raises(TruncatedError):
        completion.answer_text()


@pytest.mark.vcr
@pytest.mark.fake_vendor(
    "openai",
    wire.openai_chat(
        "8",
        prompt_tokens=310,
        completion_tokens=1,
        top_logprobs={"8": math.log(0.7), "9": math.log(0.2), "7": math.log(0.1)},
    ),
)
async def test_first_token_logprobs(provider: OpenAIProvider, complete: Complete) -> None:
    request = CompletionRequest(
        model=MODEL, messages=(Message("user", "Score 0-10?"),), max_output_tokens=1, top_logprobs=20
    )
    completion = await complete(provider, request)
    assert completion.first_token_logprobs == pytest.approx(
        {"8": math.log(0.7), "9": math.log(0.2), "7": math.log(0.1)}
    )


def _without_usage() -> FakeReply:
    reply = wire.openai_chat("4", prompt_tokens=27, completion_tokens=1)
    del reply.body["usage"]
    return reply


@pytest.mark.vcr
@pytest.mark.fake_vendor("openai", _without_usage())
async def test_reply_without_usage_is_malformed(provider: OpenAIProvider, complete: Complete) -> None:
    with pytest.raises(MalformedResponseError, match="no usage"):
        await complete(provider, QUESTION)


@pytest.mark.vcr
@pytest.mark.fake_vendor(
    "openai", FakeReply(200, "<html><body>502 Bad Gateway</body></html>", {"content-type": "text/html"})
)
async def test_reply_that_is_not_json_is_malformed(provider: OpenAIProvider, complete: Complete) -> None:
    with pytest.raises(MalformedResponseError):
        await complete(provider, QUESTION)


@pytest.mark.vcr
@pytest.mark.fake_vendor(
    "openai",
    FakeReply(
        200, '{"id": "chatcmpl-AbC123", "object": "chat.completion", "choi', {"content-type": "application/json"}
    ),
)
async def test_cut_off_json_is_malformed(provider: OpenAIProvider, complete: Complete) -> None:
    # A JSON content type over a body that is not JSON: the SDK raises json.JSONDecodeError itself.
    with pytest.raises(MalformedResponseError, match="not JSON") as info:
        await complete(provider, QUESTION)
    assert isinstance(info.value.__cause__, json.JSONDecodeError)


async def test_missing_key_names_the_variable(monkeypatch: pytest.MonkeyPatch, complete: Complete) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(MissingAPIKeyError, match="OPENAI_API_KEY"):
        await complete(OpenAIProvider(_settings()), QUESTION)


# Request bodies, response headers (scrubbed from cassettes), timeouts, dropped connections and event loops are
# checked against the local fake server: nothing here is recorded.


@pytest.fixture
def fake_openai(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeVendorServer]:
    with FakeVendorServer() as server:
        monkeypatch.setenv(DEFAULT_BASE_URL_ENV["openai"], server.url + "/v1")
        monkeypatch.setenv("OPENAI_API_KEY", "local-test-key")
        yield server


async def test_request_body_and_request_id(
    fake_openai: FakeVendorServer, provider: OpenAIProvider, complete: Complete
) -> None:
    reply = wire.openai_chat("4", prompt_tokens=27, completion_tokens=1)
    fake_openai.script("openai", reply, reply)
    completion = await complete(provider, QUESTION)
    assert completion.request_id == reply.headers["x-request-id"]  # from the header, not the body id
    body = fake_openai.requests[0].body
    assert body["messages"][0] == {"role": "system", "content": "You are a terse calculator."}
    assert body["max_completion_tokens"] == 64 and "max_tokens" not in body
    assert not {"temperature", "logprobs", "top_logprobs"} & set(body)

    await complete(provider, dataclasses.replace(QUESTION, system=None, temperature=0.0, top_logprobs=50))
    body = fake_openai.requests[1].body
    assert [m["role"] for m in body["messages"]] == ["user"]
    assert (body["temperature"], body["logprobs"], body["top_logprobs"]) == (0.0, True, 20)  # the API's cap


async def test_timeout_and_dropped_connection(
    fake_openai: FakeVendorServer, provider: OpenAIProvider, complete: Complete
) -> None:
    fake_openai.script("openai", FakeReply(200, {}, delay_s=1.0), FakeReply(drop=True))
    with pytest.raises(VendorTimeoutError) as timed_out:
        await complete(provider, dataclasses.replace(QUESTION, timeout_s=0.2))
    assert timed_out.value.retryable
    with pytest.raises(VendorConnectionError):
        await complete(provider, QUESTION)
    assert len(fake_openai.requests) == 2  # no SDK retries


# The first loop's connection is never closed (as when a caller forgets `aclose`): Python warns when it is collected.
@pytest.mark.filterwarnings("ignore::ResourceWarning")
def test_async_calls_from_a_second_event_loop(fake_openai: FakeVendorServer) -> None:
    """A second `asyncio.run` must not reuse the first loop's connections (a bare "Event loop is closed")."""
    provider = OpenAIProvider(_settings())
    reply = wire.openai_chat("4", prompt_tokens=27, completion_tokens=1)
    fake_openai.script("openai", reply, reply)

    async def ask(close: bool) -> str | None:
        try:
            return (await provider.acomplete(QUESTION)).text
        finally:
            if close:
                await provider.aclose()

    assert asyncio.run(ask(close=False)) == "4"
    assert asyncio.run(ask(close=True)) == "4"
    gc.collect()  # let the first loop's connection go now, under this test's warning filter
