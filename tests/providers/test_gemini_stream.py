"""Streaming on both Google backends, through `Provider.stream` / `astream` and the real SDKs against the fake server.

google-genai streams `:streamGenerateContent?alt=sse` (sync over httpx2, async over httpx2 or aiohttp); the legacy
SDK's REST transport streams the same replies as one JSON array. For each: the pieces in order, the final
completion equal to what the same answer unstreamed gives (`complete`, the SDK's own reading and `parse`), tool
calls whole, usage from the last chunk, and every way a stream can fail ending in a typed error, never a clean end.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
import time
from collections.abc import Iterator
from typing import Any

import pytest

from cascade.errors import (
    MalformedResponseError,
    OverloadedError,
    ProviderError,
    StreamInterruptedError,
    VendorConnectionError,
    VendorTimeoutError,
)
from cascade.providers import _gemini_wire as gemini_wire
from cascade.providers.base import (
    Completion,
    CompletionRequest,
    Message,
    Provider,
    ProviderSettings,
    StreamPiece,
    TextPiece,
    ToolCall,
    ToolCallPiece,
)
from cascade.providers.google import GoogleProvider
from cascade.providers.google_legacy import GoogleLegacyProvider
from cascade.testing import FakeReply, FakeVendorServer, wire
from tests.providers.streams import drain

KEY = "test-google-CANARY0123"
MODEL = "gemini-2.5-flash"
TEXTS = ["The capital", " of Norway", " is Oslo."]
# (backend, how it is driven): google-genai sync, async over httpx2 and over aiohttp; the legacy SDK sync and async.
FLAVOURS = ["genai-sync", "genai-async", "genai-aiohttp", "legacy-sync", "legacy-async"]
TIMEOUT_S = 1.0
LATE_S = 3.0  # how long past its timeout a call may end, measured loosely


@pytest.fixture
def server() -> Iterator[FakeVendorServer]:
    with FakeVendorServer() as running:
        yield running


def build(flavour: str, server: FakeVendorServer) -> Provider:
    async_http = "aiohttp" if flavour == "genai-aiohttp" else "httpx"
    settings = ProviderSettings(api_key=KEY, base_url=server.url, async_http=async_http)
    return GoogleLegacyProvider(settings) if flavour.startswith("legacy") else GoogleProvider(settings)


def legacy(flavour: str) -> bool:
    return flavour.startswith("legacy")


def request(**fields: Any) -> CompletionRequest:
    question = (Message("user", "What is the capital of Norway?"),)
    return CompletionRequest(MODEL, question, **{"max_output_tokens": 64, "timeout_s": TIMEOUT_S, **fields})


def run(
    flavour: str, server: FakeVendorServer, req: CompletionRequest | None = None
) -> tuple[list[StreamPiece | Completion], ProviderError | None]:
    """What one stream yielded, and the error it ended with (None: it ended cleanly)."""
    return drain(build(flavour, server), req or request(), asynchronous=not flavour.endswith("sync"))


def unstreamed(flavour: str, server: FakeVendorServer, reply: FakeReply) -> Completion:
    """The same answer sent whole, read by the same backend (`complete`: the SDK, then `parse`)."""
    server.script("google", reply)
    adapter = build(flavour, server)
    try:
        return adapter.complete(request())
    finally:
        asyncio.run(adapter.aclose())


def comparable(completion: Completion) -> Completion:
    return dataclasses.replace(completion, latency_s=0.0)


def streamed(flavour: str, server: FakeVendorServer, reply: FakeReply) -> tuple[list[StreamPiece], Completion]:
    server.script("google", reply)
    items, error = run(flavour, server)
    assert error is None, error
    last = items[-1]
    assert isinstance(last, Completion)
    pieces = [item for item in items[:-1] if not isinstance(item, Completion)]
    assert len(pieces) == len(items) - 1  # one completion, last
    return pieces, last


def failed(flavour: str, server: FakeVendorServer, reply: FakeReply, **fields: Any) -> tuple[ProviderError, float]:
    """The error a stream of `reply` ended with, and how long it took; never a completion."""
    server.script("google", reply)
    start = time.monotonic()
    items, error = run(flavour, server, request(**fields))
    elapsed = time.monotonic() - start
    assert error is not None, "the stream ended cleanly"
    assert not any(isinstance(item, Completion) for item in items)
    assert KEY not in str(error) and KEY not in repr(error)
    assert (error.provider, error.model) == ("google", MODEL)
    return error, elapsed


def answer(flavour: str, texts: list[str] = TEXTS, **fields: Any) -> FakeReply:
    counts = {"prompt_tokens": 13, "output_tokens": 8, "model": MODEL}
    return wire.gemini_stream(texts, **{**counts, **fields}, json_array=legacy(flavour))


def whole(flavour: str, text: str | None, **fields: Any) -> FakeReply:
    counts = {"prompt_tokens": 13, "output_tokens": 8, "model": MODEL}
    return wire.gemini_content(text, **{**counts, **fields}, int_enums=legacy(flavour))


# -- answers -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_text_streams_in_order_and_ends_as_the_same_answer_unstreamed(flavour: str, server: FakeVendorServer) -> None:
    pieces, completion = streamed(flavour, server, answer(flavour, thoughts_tokens=21, cached_tokens=4))

    assert pieces == [TextPiece(text) for text in TEXTS]
    assert completion.text == "The capital of Norway is Oslo." and completion.finish_reason == "stop"
    # Usage from the last chunk (the earlier ones count the prompt only); thinking is billed as output.
    assert (completion.input_tokens, completion.output_tokens) == (13, 8 + 21)
    assert (completion.reasoning_tokens, completion.cached_input_tokens) == (21, 4)
    assert completion.model == MODEL
    assert (completion.request_id is None) is legacy(flavour)  # the legacy protos have no `responseId`
    assert comparable(completion) == comparable(
        unstreamed(flavour, server, whole(flavour, "".join(TEXTS), thoughts_tokens=21, cached_tokens=4))
    )
    stream_request, whole_request = server.requests
    # The same request, on the stream path; google-genai asks for Server-Sent Events, the legacy SDK for JSON.
    assert stream_request.body == whole_request.body
    path, query = stream_request.path.split("?", 1)
    assert path == f"/{'v1beta' if legacy(flavour) else 'v1'}/models/{MODEL}:streamGenerateContent"
    assert query == ("%24alt=json%3Benum-encoding%3Dint" if legacy(flavour) else "alt=sse")


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_tool_calls_stream_whole_with_the_ids_and_arguments_of_the_end(flavour: str, server: FakeVendorServer) -> None:
    calls = [{"name": "get_weather", "args": {"city": "Oslo", "days": 3}}, {"name": "get_user_country", "id": "fc-7"}]
    pieces, completion = streamed(flavour, server, answer(flavour, ["Let me check."], function_calls=calls))

    assert pieces == [
        TextPiece("Let me check."),
        ToolCallPiece(0, "call_0_get_weather", "get_weather", '{"city": "Oslo", "days": 3}'),
        ToolCallPiece(1, "fc-7", "get_user_country", "{}"),
    ]
    assert completion.tool_calls == (
        ToolCall("call_0_get_weather", "get_weather", {"city": "Oslo", "days": 3}),
        ToolCall("fc-7", "get_user_country", {}),
    )
    assert completion.usable and completion.text == "Let me check."
    assert comparable(completion) == comparable(
        unstreamed(flavour, server, whole(flavour, "Let me check.", function_calls=calls))
    )


@pytest.mark.parametrize("flavour", ["genai-sync", "legacy-async"])
def test_a_prompt_blocked_outright_is_one_chunk_and_a_blocked_completion(
    flavour: str, server: FakeVendorServer
) -> None:
    pieces, completion = streamed(flavour, server, answer(flavour, [], output_tokens=0, block_reason="SAFETY"))

    assert pieces == []
    assert (completion.text, completion.finish_reason, completion.refusal) == (
        None,
        "blocked",
        "prompt blocked: SAFETY",
    )
    blocked = whole(flavour, None, output_tokens=0, block_reason="SAFETY")
    assert comparable(completion) == comparable(unstreamed(flavour, server, blocked))


@pytest.mark.parametrize("flavour", ["genai-async", "legacy-sync"])
def test_an_answer_blocked_after_some_text_ends_blocked(flavour: str, server: FakeVendorServer) -> None:
    pieces, completion = streamed(flavour, server, answer(flavour, finish_reason="SAFETY"))

    # The text already streamed is no answer: the completion says so, and the engine withdraws what was shown.
    assert pieces == [TextPiece(text) for text in TEXTS]
    assert (completion.text, completion.finish_reason, completion.usable) == (None, "blocked", False)


# -- faults --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_a_stream_cut_part_way_is_a_connection_error(flavour: str, server: FakeVendorServer) -> None:
    reply = answer(flavour)
    cut = FakeReply(200, reply.body, reply.headers, cut_after=len(reply.body) // 2)
    error, _ = failed(flavour, server, cut)
    assert isinstance(error, VendorConnectionError) and error.retryable


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_a_stream_that_stalls_ends_at_its_timeout(flavour: str, server: FakeVendorServer) -> None:
    reply = answer(flavour)
    stalled = FakeReply(200, reply.body, reply.headers, trickle_s=30, trickle_headers=False)
    error, elapsed = failed(flavour, server, stalled)
    assert isinstance(error, VendorTimeoutError)
    assert TIMEOUT_S * 0.9 <= elapsed < TIMEOUT_S + LATE_S


# One byte every 0.05 s satisfies every read timeout. The sync drivers and the legacy adapter (its reads run on its
# pool) keep to the call's deadline themselves, as does aiohttp's total timeout; over httpx2, an async stream is
# bounded by the engine, as `acomplete` is.
@pytest.mark.parametrize("flavour", ["genai-sync", "genai-aiohttp", "legacy-sync", "legacy-async"])
def test_a_stream_that_trickles_ends_at_its_timeout(flavour: str, server: FakeVendorServer) -> None:
    reply = answer(flavour)
    trickling = FakeReply(200, reply.body, reply.headers, trickle_s=0.05, trickle_headers=False)
    error, elapsed = failed(flavour, server, trickling)
    assert isinstance(error, VendorTimeoutError)
    assert elapsed < TIMEOUT_S + LATE_S


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_a_stream_without_its_last_chunk_is_interrupted(flavour: str, server: FakeVendorServer) -> None:
    server.script("google", answer(flavour, finish_reason=None))
    items, error = run(flavour, server)
    assert isinstance(error, StreamInterruptedError) and error.retryable
    assert "without a finish reason" in str(error)
    assert items == [TextPiece(text) for text in TEXTS]  # what came is streamed; no completion follows


@pytest.mark.parametrize("flavour", [f for f in FLAVOURS if not legacy(f)])
def test_an_error_event_mid_stream_is_the_error_its_status_gives(flavour: str, server: FakeVendorServer) -> None:
    error, _ = failed(flavour, server, answer(flavour, error=(503, "UNAVAILABLE", "The model is overloaded.")))
    assert isinstance(error, OverloadedError) and error.status_code == 503
    assert "The model is overloaded." in str(error)


@pytest.mark.parametrize("flavour", ["legacy-sync", "legacy-async"])
def test_an_error_object_mid_stream_on_the_legacy_sdk_is_an_interrupted_stream(
    flavour: str, server: FakeVendorServer
) -> None:
    # The SDK's array reader empties an object it cannot read as a reply: the status is lost, not the failure.
    error, _ = failed(flavour, server, answer(flavour, error=(503, "UNAVAILABLE", "The model is overloaded.")))
    assert isinstance(error, StreamInterruptedError) and error.retryable


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_an_event_that_is_not_json_is_malformed(flavour: str, server: FakeVendorServer) -> None:
    first = answer(flavour).body.split(",\r\n" if legacy(flavour) else "\r\n\r\n")[0]
    broken = first + (',\r\n{"candidates": [}]' if legacy(flavour) else '\r\n\r\ndata: {"candidates": [\r\n\r\n')
    error, _ = failed(flavour, server, FakeReply(200, broken, answer(flavour).headers))
    assert isinstance(error, MalformedResponseError) and not isinstance(error, StreamInterruptedError)


@pytest.mark.parametrize("flavour", ["genai-sync", "genai-async", "legacy-sync"])
def test_a_function_call_without_a_name_is_malformed(flavour: str, server: FakeVendorServer) -> None:
    reply = answer(flavour, [], function_calls=[{"name": "get_weather", "args": {"city": "Oslo"}}])
    nameless = re.sub(r'"name": "get_weather",\s*', "", reply.body)
    assert nameless != reply.body
    error, _ = failed(flavour, server, FakeReply(200, nameless, reply.headers))
    assert isinstance(error, MalformedResponseError) and "functionCall without a name" in str(error)


def test_a_legacy_body_that_ends_inside_its_array_is_interrupted(server: FakeVendorServer) -> None:
    reply = answer("legacy-sync")
    unfinished = reply.body[: reply.body.index(",\r\n") + 3] + '{"candidates": []'  # the HTTP body itself is whole
    error, _ = failed("legacy-sync", server, FakeReply(200, unfinished, reply.headers))
    assert isinstance(error, StreamInterruptedError)


# -- the shared reader, on wire JSON -------------------------------------------------------------------------------


def reader() -> gemini_wire.ChunkReader:
    return gemini_wire.ChunkReader(dict, provider="google", requested_model=MODEL)


def chunk(parts: list[dict[str, Any]], **candidate: Any) -> dict[str, Any]:
    usage = {"promptTokenCount": 5, "candidatesTokenCount": 2, "totalTokenCount": 7}
    return {"candidates": [{"content": {"parts": parts, "role": "model"}, **candidate}], "usageMetadata": usage}


def test_thoughts_stream_nothing_and_log_probabilities_come_from_the_first_chunk() -> None:
    top = {"topCandidates": [{"candidates": [{"token": "Os", "logProbability": -0.1}]}]}
    later = {"topCandidates": [{"candidates": [{"token": "lo", "logProbability": -0.2}]}]}
    stream = reader()
    assert stream.feed(chunk([{"text": "thinking...", "thought": True}])) == []
    assert stream.feed(chunk([{"text": "Os"}], logprobsResult=top)) == [TextPiece("Os")]
    assert stream.feed(chunk([{"text": "lo"}], logprobsResult=later, finishReason="STOP")) == [TextPiece("lo")]
    completion = stream.finish(0.5)
    assert completion.text == "Oslo" and completion.first_token_logprobs == {"Os": -0.1}
    merged = {
        "usageMetadata": chunk([])["usageMetadata"],
        "candidates": [
            {
                "content": {"parts": [{"text": "thinking...", "thought": True}, {"text": "Os"}, {"text": "lo"}]},
                "logprobsResult": {"topCandidates": top["topCandidates"] + later["topCandidates"]},
                "finishReason": "STOP",
            }
        ],
    }
    assert completion == gemini_wire.parse_completion(merged, provider="google", requested_model=MODEL, latency_s=0.5)


def test_a_chunk_whose_candidate_is_not_an_object_is_malformed() -> None:
    with pytest.raises(MalformedResponseError, match="candidate that is not an object"):
        reader().feed({"candidates": ["Oslo"]})


def test_a_stream_with_no_chunks_is_interrupted() -> None:
    with pytest.raises(StreamInterruptedError, match="without a finish reason"):
        reader().finish(0.1)
