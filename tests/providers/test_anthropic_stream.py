"""The anthropic adapter's streaming, through `Provider.stream` / `astream` and the real SDK against the fake
server: the pieces in order (the answer's text only, never the thinking), the final completion equal to what
`parse` gives for the same answer unstreamed, the forced output tool streaming as text, and every way a stream
can fail ending in a typed error, never in a clean end."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from anthropic.types import Message as SDKMessage

from cascade.errors import (
    MalformedResponseError,
    OverloadedError,
    ProviderError,
    RateLimitedError,
    StreamInterruptedError,
    VendorTimeoutError,
)
from cascade.providers.anthropic import AnthropicProvider
from cascade.providers.base import (
    Completion,
    CompletionRequest,
    Message,
    OutputSchema,
    ProviderSettings,
    StreamPiece,
    TextPiece,
    Tool,
    ToolCallPiece,
)
from cascade.testing import FakeReply, FakeVendorServer, wire
from tests.providers.streams import drain

KEY = "sk-ant-test-CANARY0123"
MODES = ["sync", "async"]
MODEL = "claude-sonnet-4-6"
OLD_MODEL = "claude-3-5-haiku-20241022"  # structured output through a forced tool
WEATHER = Tool(
    "get_weather",
    "The weather now in a city",
    {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)
OUTPUT = OutputSchema("capital_answer", {"type": "object", "properties": {"city": {"type": "string"}}})


def _request(**fields: Any) -> CompletionRequest:
    question = (Message("user", "What is the capital of Norway?"),)
    return CompletionRequest(**{"model": MODEL, "messages": question, "max_output_tokens": 256, **fields})


@pytest.fixture
def server() -> Iterator[FakeVendorServer]:
    with FakeVendorServer() as running:
        yield running


@pytest.fixture
def adapter(server: FakeVendorServer) -> Iterator[AnthropicProvider]:
    provider = AnthropicProvider(ProviderSettings(api_key=KEY, base_url=server.url))
    yield provider
    asyncio.run(provider.aclose())


def _run(
    adapter: AnthropicProvider, request: CompletionRequest, mode: str
) -> tuple[list[StreamPiece | Completion], ProviderError | None]:
    """What the stream yielded, and the error it ended with (None: it ended cleanly)."""
    return drain(adapter, request, asynchronous=mode == "async")


def _unstreamed(reply: FakeReply, request: CompletionRequest) -> Completion:
    """What `parse` makes of the same answer sent whole."""
    return AnthropicProvider(ProviderSettings(api_key=KEY)).parse(SDKMessage.model_validate(reply.body), request, 0.0)


def _comparable(completion: Completion) -> Completion:
    return dataclasses.replace(completion, latency_s=0.0, request_id=None)


def _completion(items: list[StreamPiece | Completion]) -> Completion:
    last = items[-1]
    assert isinstance(last, Completion)
    return last


def _failed(adapter: AnthropicProvider, reply: FakeReply, server: FakeVendorServer, mode: str, **request: Any) -> Any:
    server.script("anthropic", reply)
    items, error = _run(adapter, _request(**request), mode)
    assert error is not None, "the stream ended cleanly"
    assert not any(isinstance(item, Completion) for item in items)
    assert KEY not in str(error) and KEY not in repr(error)
    assert (error.provider, error.model) == ("anthropic", MODEL)
    return error


def _events(reply: FakeReply) -> list[str]:
    return [event + "\n\n" for event in reply.body.split("\n\n") if event]


def _text(items: list[StreamPiece | Completion]) -> str:
    return "".join(item.text for item in items if isinstance(item, TextPiece))


# -- answers -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_text_streams_in_order_and_ends_as_parse_would(
    adapter: AnthropicProvider, server: FakeVendorServer, mode: str
) -> None:
    deltas = ["The capital", " of Norway", " is Oslo."]
    fields = {
        "input_tokens": 40,
        "output_tokens": 282,
        "cache_read_input_tokens": 1200,
        "cache_creation_input_tokens": 30,
        "thinking": "A plain geography question.",
    }
    streamed = wire.anthropic_stream(deltas, **fields)
    server.script("anthropic", streamed)

    items, error = _run(adapter, _request(), mode)

    assert error is None
    assert items[:-1] == [TextPiece(d) for d in deltas], "the answer's text only: the thinking never streams out"
    completion = _completion(items)
    unstreamed = _unstreamed(wire.anthropic_message("".join(deltas), **fields), _request())
    assert _comparable(completion) == _comparable(unstreamed)
    # message_start says 1 output token; message_delta's running total is the count.
    assert (completion.input_tokens, completion.output_tokens) == (40 + 1200 + 30, 282)
    assert (completion.cached_input_tokens, completion.cache_write_tokens) == (1200, 30)
    assert completion.request_id == streamed.headers["request-id"]
    assert server.requests[-1].body["stream"] is True


def test_a_stream_shaped_as_the_api_sends_it(adapter: AnthropicProvider, server: FakeVendorServer) -> None:
    # Padded data lines, a ping with a space, usage fields the adapter does not know, as real streams have.
    start = {
        "type": "message_start",
        "message": {
            "model": "claude-sonnet-4-6-20260217",
            "id": "msg_01Stream000000000000000",
            "type": "message",
            "role": "assistant",
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {
                "input_tokens": 43,
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 0,
                "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0},
                "output_tokens": 1,
                "service_tier": "standard",
                "inference_geo": "not_available",
            },
        },
    }
    body = (
        f"event: message_start\ndata: {json.dumps(start, separators=(',', ':'))}    \n\n"
        + 'event: content_block_start\ndata: {"type":"content_block_start","index":0,'
        '"content_block":{"type":"text","text":""}          }\n\n'
        'event: ping\ndata: {"type": "ping"}\n\n'
        'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,'
        '"delta":{"type":"text_delta","text":"Look both"}       }\n\n'
        'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,'
        '"delta":{"type":"text_delta","text":" ways."}}\n\n'
        'event: content_block_stop\ndata: {"type":"content_block_stop","index":0               }\n\n'
        'event: message_delta\ndata: {"type":"message_delta","delta":{"stop_reason":"end_turn",'
        '"stop_sequence":null},"usage":{"input_tokens":43,"cache_creation_input_tokens":0,'
        '"cache_read_input_tokens":0,"output_tokens":7}      }\n\n'
        'event: message_stop\ndata: {"type":"message_stop"         }\n\n'
    )
    server.script("anthropic", FakeReply(200, body, {"content-type": "text/event-stream; charset=utf-8"}))

    items, error = _run(adapter, _request(), "sync")

    assert error is None
    assert items[:-1] == [TextPiece("Look both"), TextPiece(" ways.")]
    completion = _completion(items)
    assert (completion.text, completion.finish_reason, completion.model) == (
        "Look both ways.",
        "stop",
        "claude-sonnet-4-6-20260217",
    )
    assert (completion.input_tokens, completion.output_tokens) == (43, 7)
    assert completion.request_id == "msg_01Stream000000000000000", "no request-id header: the message id"


@pytest.mark.parametrize("mode", MODES)
def test_tool_uses_stream_as_pieces_and_end_parsed(
    adapter: AnthropicProvider, server: FakeVendorServer, mode: str
) -> None:
    uses = [
        {"id": "toolu_01Oslo00000000000000000", "name": "get_weather", "input": {"city": "Oslo"}},
        {"id": "toolu_01Lima00000000000000000", "name": "get_weather", "input": {"city": "Lima"}},
    ]
    fields: dict[str, Any] = {"input_tokens": 300, "output_tokens": 90, "tool_uses": uses}
    server.script("anthropic", wire.anthropic_stream("Checking both.", **fields))

    items, error = _run(adapter, _request(tools=(WEATHER,)), mode)

    assert error is None
    assert _text(items) == "Checking both."
    pieces = [item for item in items if isinstance(item, ToolCallPiece)]
    for index, use in enumerate(uses):
        own = [p for p in pieces if p.index == index]
        assert (own[0].id, own[0].name) == (use["id"], use["name"])
        assert all(p.id is None and p.name is None for p in own[1:])
        assert json.loads("".join(p.arguments for p in own)) == use["input"]
    completion = _completion(items)
    unstreamed = _unstreamed(wire.anthropic_message("Checking both.", **fields), _request(tools=(WEATHER,)))
    assert _comparable(completion) == _comparable(unstreamed)
    assert [call.arguments for call in completion.tool_calls] == [{"city": "Oslo"}, {"city": "Lima"}]


@pytest.mark.parametrize("mode", MODES)
def test_the_forced_output_tool_streams_as_the_answer_text(
    adapter: AnthropicProvider, server: FakeVendorServer, mode: str
) -> None:
    raw = '{"city": "Oslo"}'  # as the model writes it (parse would write the same object compactly)
    use = {"id": "toolu_01Answer000000000000000", "name": OUTPUT.name, "input": raw}
    server.script("anthropic", wire.anthropic_stream(None, input_tokens=80, output_tokens=12, tool_uses=[use]))
    request = _request(model=OLD_MODEL, output=OUTPUT)

    items, error = _run(adapter, request, mode)

    assert error is None
    assert not any(isinstance(item, ToolCallPiece) for item in items), "the answer is not a tool call"
    assert json.loads(_text(items)) == {"city": "Oslo"}
    completion = _completion(items)
    whole = wire.anthropic_message(
        None, input_tokens=80, output_tokens=12, tool_uses=[{**use, "input": {"city": "Oslo"}}]
    )
    unstreamed = _unstreamed(whole, request)
    assert _comparable(replace(completion, text=unstreamed.text)) == _comparable(unstreamed)
    # The answer's text is the JSON as it streamed: what the reader was shown, byte for byte.
    assert completion.text == raw == _text(items) and completion.tool_calls == ()


def test_a_refusal_is_what_parse_makes_of_it(adapter: AnthropicProvider, server: FakeVendorServer) -> None:
    fields: dict[str, Any] = {
        "input_tokens": 20,
        "output_tokens": 3,
        "stop_reason": "refusal",
        "stop_details": {"type": "refusal", "category": "cyber", "explanation": "Not something I can help with."},
    }
    server.script("anthropic", wire.anthropic_stream("Here is how to", **fields))

    items, error = _run(adapter, _request(), "sync")

    assert error is None
    completion = _completion(items)
    assert (completion.finish_reason, completion.text) == ("refusal", None)
    assert completion.refusal == "Not something I can help with."
    assert _comparable(completion) == _comparable(
        _unstreamed(wire.anthropic_message("Here is how to", **fields), _request())
    )


# -- faults ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("where", [0.5, 0.95])
def test_a_cut_stream_is_interrupted(
    adapter: AnthropicProvider, server: FakeVendorServer, mode: str, where: float
) -> None:
    streamed = wire.anthropic_stream("The capital of Norway is Oslo.", input_tokens=14, output_tokens=8)
    cut = int(len(streamed.body) * where)  # mid-event: the content-length promised the rest
    error = _failed(adapter, dataclasses.replace(streamed, cut_after=cut), server, mode)
    assert isinstance(error, StreamInterruptedError) and error.retryable
    assert "broke off" in str(error)


@pytest.mark.parametrize("mode", MODES)
def test_a_stall_past_the_timeout_is_a_timeout(adapter: AnthropicProvider, server: FakeVendorServer, mode: str) -> None:
    streamed = wire.anthropic_stream("Oslo.", input_tokens=14, output_tokens=2)
    stalling = dataclasses.replace(streamed, trickle_s=4.0, trickle_headers=False)
    start = time.monotonic()
    error = _failed(adapter, stalling, server, mode, timeout_s=0.5)
    assert isinstance(error, VendorTimeoutError)
    assert time.monotonic() - start < 3.5


def test_a_trickle_is_held_to_the_deadline(adapter: AnthropicProvider, server: FakeVendorServer) -> None:
    streamed = wire.anthropic_stream("The capital of Norway is Oslo.", input_tokens=14, output_tokens=8)
    start = time.monotonic()
    error = _failed(adapter, dataclasses.replace(streamed, trickle_s=0.02), server, "sync", timeout_s=1.0)
    assert isinstance(error, VendorTimeoutError)
    assert time.monotonic() - start < 4.0


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    ("error_type", "kind", "status"),
    [("overloaded_error", OverloadedError, 529), ("rate_limit_error", RateLimitedError, 429)],
)
def test_an_error_event_is_the_error_it_names(
    adapter: AnthropicProvider,
    server: FakeVendorServer,
    mode: str,
    error_type: str,
    kind: type[Exception],
    status: int,
) -> None:
    streamed = wire.anthropic_stream(
        ["The capital", " of"], input_tokens=14, output_tokens=8, error=(error_type, "Busy")
    )
    server.script("anthropic", streamed)
    items, error = _run(adapter, _request(), mode)
    assert type(error) is kind
    assert error is not None and getattr(error, "status_code", None) == status
    assert items == [TextPiece("The capital"), TextPiece(" of")], "the pieces before it came through"
    assert f"{error_type}: Busy" in str(error)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("dropped", [1, 2], ids=["no-message-stop", "no-message-delta-nor-stop"])
def test_a_stream_without_its_final_event_is_interrupted(
    adapter: AnthropicProvider, server: FakeVendorServer, mode: str, dropped: int
) -> None:
    streamed = wire.anthropic_stream("Oslo.", input_tokens=14, output_tokens=2)
    body = "".join(_events(streamed)[:-dropped])  # a clean end of the body, before the vendor's last word
    error = _failed(adapter, dataclasses.replace(streamed, body=body), server, mode)
    assert isinstance(error, StreamInterruptedError) and "message_stop" in str(error)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    "bad_event",
    [
        'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":{"ty\n\n',
        'event: content_block_delta\ndata: {"type":"content_block_delta","index":7,'
        '"delta":{"type":"text_delta","text":"x"}}\n\n',
        'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,'
        '"delta":{"type":"input_json_delta","partial_json":"{"}}\n\n',
    ],
    ids=["not-json", "delta-for-no-block", "json-delta-in-a-text-block"],
)
def test_malformed_event_data_is_malformed(
    adapter: AnthropicProvider, server: FakeVendorServer, mode: str, bad_event: str
) -> None:
    streamed = wire.anthropic_stream("Oslo.", input_tokens=14, output_tokens=2)
    events = _events(streamed)
    body = "".join([*events[:3], bad_event, *events[3:]])  # after message_start, the block's start and a ping
    error = _failed(adapter, dataclasses.replace(streamed, body=body), server, mode)
    assert isinstance(error, MalformedResponseError) and not isinstance(error, StreamInterruptedError)


@pytest.mark.parametrize("mode", MODES)
def test_a_tool_input_that_is_not_json_is_malformed(
    adapter: AnthropicProvider, server: FakeVendorServer, mode: str
) -> None:
    use = {"id": "toolu_01Bad000000000000000000", "name": "get_weather", "input": '{"city": "Oslo"'}
    streamed = wire.anthropic_stream(None, input_tokens=14, output_tokens=2, tool_uses=[use])
    error = _failed(adapter, streamed, server, mode, tools=(WEATHER,))
    assert isinstance(error, MalformedResponseError) and "not JSON" in str(error)
