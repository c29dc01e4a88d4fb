"""The openai adapter's streaming, through `Provider.stream` / `astream` and the real SDK against the fake server:
the pieces in order, the final completion equal to what `parse` gives for the same answer unstreamed, and every
way a stream can fail ending in a typed error, never in a clean end."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from collections.abc import Iterator
from typing import Any

import httpx2
import pytest
from openai.types.chat import ChatCompletion

from cascade.errors import (
    MalformedResponseError,
    OverloadedError,
    ProviderError,
    RateLimitedError,
    ServerError,
    StreamInterruptedError,
    VendorTimeoutError,
)
from cascade.providers.base import (
    Completion,
    CompletionRequest,
    Message,
    ProviderSettings,
    StreamPiece,
    TextPiece,
    Tool,
    ToolCallPiece,
)
from cascade.providers.openai import OpenAIProvider
from cascade.testing import FakeReply, FakeVendorServer, wire
from tests.providers.streams import drain

KEY = "sk-test-CANARY0123"
MODES = ["sync", "async"]
WEATHER = Tool(
    "get_weather",
    "The weather now in a city",
    {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)


def _request(**fields: Any) -> CompletionRequest:
    question = (Message("user", "What is the capital of Norway?"),)
    return CompletionRequest(**{"model": "gpt-4o-mini", "messages": question, "max_output_tokens": 64, **fields})


@pytest.fixture
def server() -> Iterator[FakeVendorServer]:
    with FakeVendorServer() as running:
        yield running


@pytest.fixture
def adapter(server: FakeVendorServer) -> Iterator[OpenAIProvider]:
    provider = OpenAIProvider(ProviderSettings(api_key=KEY, base_url=server.url + "/v1"))
    yield provider
    asyncio.run(provider.aclose())


def _run(
    adapter: OpenAIProvider, request: CompletionRequest, mode: str
) -> tuple[list[StreamPiece | Completion], ProviderError | None]:
    """What the stream yielded, and the error it ended with (None: it ended cleanly)."""
    return drain(adapter, request, asynchronous=mode == "async")


def _unstreamed(reply: FakeReply, request: CompletionRequest) -> Completion:
    """What `parse` makes of the same answer sent whole."""
    return OpenAIProvider(ProviderSettings(api_key=KEY)).parse(ChatCompletion.model_validate(reply.body), request, 0.0)


def _comparable(completion: Completion) -> Completion:
    return dataclasses.replace(completion, latency_s=0.0, request_id=None)


def _failed(adapter: OpenAIProvider, reply: FakeReply, server: FakeVendorServer, mode: str, **request: Any) -> Any:
    server.script("openai", reply)
    items, error = _run(adapter, _request(**request), mode)
    assert error is not None, "the stream ended cleanly"
    assert not any(isinstance(item, Completion) for item in items)
    assert KEY not in str(error) and KEY not in repr(error)
    assert (error.provider, error.model) == ("openai", "gpt-4o-mini")
    return error


def _events(reply: FakeReply) -> list[str]:
    return [event + "\n\n" for event in reply.body.split("\n\n") if event]


# -- answers -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_text_streams_in_order_and_ends_as_parse_would(
    adapter: OpenAIProvider, server: FakeVendorServer, mode: str
) -> None:
    deltas = ["The capital", " of Norway", " is Oslo."]
    counts = {"prompt_tokens": 14, "completion_tokens": 8, "cached_tokens": 6}
    streamed = wire.openai_stream(deltas, **counts)
    server.script("openai", streamed)

    items, error = _run(adapter, _request(), mode)

    assert error is None
    assert items[:-1] == [TextPiece(d) for d in deltas]
    completion = items[-1]
    assert isinstance(completion, Completion)
    unstreamed = _unstreamed(wire.openai_chat("".join(deltas), **counts), _request())
    assert _comparable(completion) == _comparable(unstreamed)
    assert (completion.input_tokens, completion.output_tokens, completion.cached_input_tokens) == (14, 8, 6)
    assert completion.request_id == streamed.headers["x-request-id"]
    sent = server.requests[-1].body
    assert sent["stream"] is True and sent["stream_options"] == {"include_usage": True}


@pytest.mark.parametrize("mode", MODES)
def test_tool_calls_stream_as_pieces_and_end_parsed(
    adapter: OpenAIProvider, server: FakeVendorServer, mode: str
) -> None:
    calls = [
        {"id": "call_Oslo0000000000000000000a", "name": "get_weather", "arguments": {"city": "Oslo"}},
        {"id": "call_Lima0000000000000000000b", "name": "get_weather", "arguments": {"city": "Lima"}},
    ]
    server.script("openai", wire.openai_stream(None, prompt_tokens=75, completion_tokens=51, tool_calls=calls))

    items, error = _run(adapter, _request(tools=(WEATHER,)), mode)

    assert error is None
    pieces = [item for item in items if isinstance(item, ToolCallPiece)]
    assert len(pieces) == len(items) - 1, "only tool-call pieces before the completion"
    for index, call in enumerate(calls):
        own = [p for p in pieces if p.index == index]
        assert (own[0].id, own[0].name) == (call["id"], call["name"])
        assert all(p.id is None and p.name is None for p in own[1:])
        assert json.loads("".join(p.arguments for p in own)) == call["arguments"]
    assert [p.index for p in pieces] == sorted(p.index for p in pieces), "one call after the other"
    completion = items[-1]
    assert isinstance(completion, Completion)
    unstreamed = _unstreamed(
        wire.openai_chat(None, prompt_tokens=75, completion_tokens=51, tool_calls=calls), _request(tools=(WEATHER,))
    )
    assert _comparable(completion) == _comparable(unstreamed)
    assert [c.arguments for c in completion.tool_calls] == [{"city": "Oslo"}, {"city": "Lima"}]


@pytest.mark.parametrize(
    ("text", "fields", "finish"),
    [
        ("Oslo is the capital and", {"finish_reason": "length"}, "length"),
        (None, {"refusal": "I can't help with that."}, "refusal"),
        ("Some text the filter then", {"finish_reason": "content_filter"}, "blocked"),
    ],
)
def test_unusable_endings_are_what_parse_makes_of_them(
    adapter: OpenAIProvider, server: FakeVendorServer, text: str | None, fields: dict[str, Any], finish: str
) -> None:
    counts = {"prompt_tokens": 20, "completion_tokens": 5}
    server.script("openai", wire.openai_stream(text, **counts, **fields))

    items, error = _run(adapter, _request(), "sync")

    assert error is None
    completion = items[-1]
    assert isinstance(completion, Completion) and completion.finish_reason == finish
    assert _comparable(completion) == _comparable(_unstreamed(wire.openai_chat(text, **counts, **fields), _request()))
    # A refusal's words are not answer text: nothing of them streams out.
    assert "".join(i.text for i in items if isinstance(i, TextPiece)) == (text or "")


def test_the_first_tokens_logprobs_come_from_the_stream(adapter: OpenAIProvider, server: FakeVendorServer) -> None:
    streamed = wire.openai_stream(["8", "."], prompt_tokens=30, completion_tokens=2)
    first = json.loads(_events(streamed)[1].removeprefix("data: "))
    top = [{"token": "8", "logprob": -0.1, "bytes": [56]}, {"token": "7", "logprob": -2.5, "bytes": [55]}]
    first["choices"][0]["logprobs"] = {"content": [{"token": "8", "logprob": -0.1, "bytes": [56], "top_logprobs": top}]}
    events = _events(streamed)
    events[1] = f"data: {json.dumps(first)}\n\n"
    server.script("openai", dataclasses.replace(streamed, body="".join(events)))

    items, _ = _run(adapter, _request(top_logprobs=2), "sync")

    completion = items[-1]
    assert isinstance(completion, Completion)
    assert completion.first_token_logprobs == {"8": -0.1, "7": -2.5}


# -- faults ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("where", [0.5, 0.93])
def test_a_cut_stream_is_interrupted(
    adapter: OpenAIProvider, server: FakeVendorServer, mode: str, where: float
) -> None:
    streamed = wire.openai_stream("The capital of Norway is Oslo.", prompt_tokens=14, completion_tokens=8)
    cut = int(len(streamed.body) * where)  # mid-event: the content-length promised the rest
    error = _failed(adapter, dataclasses.replace(streamed, cut_after=cut), server, mode)
    assert isinstance(error, StreamInterruptedError) and error.retryable
    assert "broke off" in str(error)


@pytest.mark.parametrize("mode", MODES)
def test_a_stall_past_the_timeout_is_a_timeout(adapter: OpenAIProvider, server: FakeVendorServer, mode: str) -> None:
    streamed = wire.openai_stream("Oslo.", prompt_tokens=14, completion_tokens=2)
    stalling = dataclasses.replace(streamed, trickle_s=4.0, trickle_headers=False)
    start = time.monotonic()
    error = _failed(adapter, stalling, server, mode, timeout_s=0.5)
    assert isinstance(error, VendorTimeoutError)
    assert time.monotonic() - start < 3.5


def test_a_trickle_is_held_to_the_deadline(adapter: OpenAIProvider, server: FakeVendorServer) -> None:
    # Every read gets a byte in time, so only the call's deadline (the sync transport's) ends it.
    streamed = wire.openai_stream("The capital of Norway is Oslo.", prompt_tokens=14, completion_tokens=8)
    start = time.monotonic()
    error = _failed(adapter, dataclasses.replace(streamed, trickle_s=0.02), server, "sync", timeout_s=1.0)
    assert isinstance(error, VendorTimeoutError)
    assert time.monotonic() - start < 4.0


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    ("fields", "kind"),
    [
        ({"type": "server_error"}, ServerError),
        ({"type": "server_error", "code": "server_is_overloaded"}, OverloadedError),
        ({"type": "tokens", "code": "rate_limit_exceeded"}, RateLimitedError),
    ],
)
def test_an_error_event_is_the_error_it_names(
    adapter: OpenAIProvider, server: FakeVendorServer, mode: str, fields: dict[str, Any], kind: type[Exception]
) -> None:
    streamed = wire.openai_stream(["The capital", " of"], prompt_tokens=14, completion_tokens=8, error=fields)
    server.script("openai", streamed)
    items, error = _run(adapter, _request(), mode)
    assert type(error) is kind
    assert items == [TextPiece("The capital"), TextPiece(" of")], "the pieces before it came through"
    assert "error event in the stream" in str(error)


@pytest.mark.parametrize("mode", MODES)
def test_a_stream_without_its_finish_reason_is_interrupted(
    adapter: OpenAIProvider, server: FakeVendorServer, mode: str
) -> None:
    streamed = wire.openai_stream("Oslo.", prompt_tokens=14, completion_tokens=2)
    # The content, then [DONE]: the finish chunk and the usage chunk never came.
    body = "".join(_events(streamed)[:-3]) + "data: [DONE]\n\n"
    error = _failed(adapter, dataclasses.replace(streamed, body=body), server, mode)
    assert isinstance(error, StreamInterruptedError) and "finish reason" in str(error)


@pytest.mark.parametrize("mode", MODES)
def test_a_stream_without_its_usage_chunk_is_interrupted(
    adapter: OpenAIProvider, server: FakeVendorServer, mode: str
) -> None:
    streamed = wire.openai_stream("Oslo.", prompt_tokens=14, completion_tokens=2, usage=False)
    error = _failed(adapter, streamed, server, mode)
    assert isinstance(error, StreamInterruptedError) and "usage" in str(error)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    "bad_event",
    [
        'data: {"id":"chatcmpl-x","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"cont\n\n',
        'data: {"id":"chatcmpl-x","object":"chat.completion.chunk","model":"m","choices":"none"}\n\n',
        'data: {"id":"chatcmpl-x","object":"chat.completion.chunk","model":"m","choices":[{"index":0,'
        '"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{}"}}]}}]}\n\n',
    ],
    ids=["not-json", "choices-not-a-list", "tool-call-without-id"],
)
def test_malformed_event_data_is_malformed(
    adapter: OpenAIProvider, server: FakeVendorServer, mode: str, bad_event: str
) -> None:
    streamed = wire.openai_stream("Oslo.", prompt_tokens=14, completion_tokens=2)
    events = _events(streamed)
    body = "".join([*events[:2], bad_event, *events[2:]])
    error = _failed(adapter, dataclasses.replace(streamed, body=body), server, mode)
    assert isinstance(error, MalformedResponseError) and not isinstance(error, StreamInterruptedError)


def test_the_fake_server_cuts_a_body_where_told(server: FakeVendorServer) -> None:
    server.script(
        "openai", FakeReply(200, "data: one\n\ndata: two\n\n", {"content-type": "text/event-stream"}, cut_after=9)
    )
    received = b""
    with (
        pytest.raises(httpx2.RemoteProtocolError),
        httpx2.stream("POST", server.url + "/v1/chat/completions", json={}) as response,
    ):
        assert response.headers["content-length"] == "22"
        for data in response.iter_bytes():
            received += data
    assert received == b"data: one"
