"""Reply bodies in each vendor's real wire format, for the fake server and for synthesized cassettes.

Shapes follow recordings of the real APIs (see `cassettes/README.md`): OpenAI Chat Completions, Anthropic
Messages and Gemini `generateContent`, including their error objects. Ids are made up but shaped like the
vendors' own.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass
class FakeReply:
    """One scripted HTTP reply. `body` may be a dict (sent as JSON), str or bytes (sent as is)."""

    status: int = 200
    body: Any = None
    headers: Mapping[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    # Drop the connection without answering (a reset, as the client sees it).
    drop: bool = False
    # Send the reply one byte at a time, this many seconds apart (a vendor that trickles); the status line and
    # headers too, unless `trickle_headers` is False (then only the body trickles).
    trickle_s: float = 0.0
    trickle_headers: bool = True
    # Send the status line, the headers (whose content-length promises the whole body) and only this many bytes of
    # the body, then close the connection: a stream broken part way, as the client sees it.
    cut_after: int | None = None


def _short_id(*parts: object) -> str:
    return hashlib.sha1(repr(parts).encode()).hexdigest()[:24]


# -- OpenAI -------------------------------------------------------------------------------------------


def openai_chat(
    text: str | None,
    *,
    prompt_tokens: int,
    completion_tokens: int,
    model: str = "gpt-4o-mini-2024-07-18",
    finish_reason: str | None = None,
    refusal: str | None = None,
    top_logprobs: Mapping[str, float] | None = None,
    cached_tokens: int = 0,
    tool_calls: Sequence[Mapping[str, Any]] | None = None,
) -> FakeReply:
    """A Chat Completions reply. `top_logprobs` fills the first token's top log-probabilities.

    `tool_calls` (`{"id", "name", "arguments"}` each; the id may be left out, arguments may be a mapping or raw
    text) become the message's function calls; the finish reason is then `tool_calls` unless given.
    """
    if finish_reason is None:
        finish_reason = "tool_calls" if tool_calls else "stop"
    logprobs = None
    if top_logprobs:
        first = max(top_logprobs, key=lambda t: top_logprobs[t])
        logprobs = {
            "content": [
                {
                    "token": first,
                    "logprob": top_logprobs[first],
                    "bytes": list(first.encode()),
                    "top_logprobs": [
                        {"token": t, "logprob": lp, "bytes": list(t.encode())} for t, lp in top_logprobs.items()
                    ],
                }
            ],
            "refusal": None,
        }
    body = {
        "id": "chatcmpl-" + _short_id(text, prompt_tokens, model),
        "object": "chat.completion",
        "created": 1732838400,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": _openai_message(text, refusal, tool_calls),
                "logprobs": logprobs,
                "finish_reason": finish_reason,
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
            "prompt_tokens_details": {"cached_tokens": cached_tokens, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": 0,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        },
        "service_tier": "default",
        "system_fingerprint": "fp_0ba0d124f1",
    }
    headers = {
        "content-type": "application/json",
        "x-request-id": "req_" + _short_id("openai", text, prompt_tokens),
        "openai-processing-ms": "412",
        "openai-version": "2020-10-01",
        "x-ratelimit-limit-requests": "30000",
        "x-ratelimit-remaining-requests": "29999",
    }
    return FakeReply(200, body, headers)


def _openai_message(
    text: str | None, refusal: str | None, tool_calls: Sequence[Mapping[str, Any]] | None
) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": text}
    if tool_calls:
        # Arguments travel as JSON text; ids look like the API's (`call_` and 24 characters).
        message["tool_calls"] = [
            {
                "id": call.get("id") or "call_" + _short_id("call", i, call["name"]),
                "type": "function",
                "function": {
                    "name": call["name"],
                    "arguments": args if isinstance(args := call["arguments"], str) else json.dumps(args),
                },
            }
            for i, call in enumerate(tool_calls)
        ]
    message["refusal"] = refusal
    message["annotations"] = []
    return message


def openai_stream(
    text: str | Sequence[str] | None,
    *,
    prompt_tokens: int,
    completion_tokens: int,
    model: str = "gpt-4o-mini-2024-07-18",
    finish_reason: str | None = None,
    refusal: str | None = None,
    cached_tokens: int = 0,
    tool_calls: Sequence[Mapping[str, Any]] | None = None,
    usage: bool = True,
    error: Mapping[str, Any] | None = None,
) -> FakeReply:
    """A streamed Chat Completions reply (`stream=True` with `stream_options.include_usage`), as SSE.

    `text` streams as the content deltas given (a str: one delta per 6 characters); `tool_calls` as in
    `openai_chat`, each call's arguments in fragments of 6 characters. The finish reason comes in a chunk of its
    own, then the usage chunk (none with `usage=False`: a stream cut there) and `[DONE]`. `error` (fields of an
    error object: `message`, `type`, `code`) ends the stream after its content with the `{"error": ...}` chunk
    the API sends when it fails mid-stream.
    """
    if finish_reason is None:
        finish_reason = "tool_calls" if tool_calls else "stop"
    chunk_id = "chatcmpl-" + _short_id("stream", text, prompt_tokens, model)

    def chunk(delta: dict[str, Any] | None, reason: str | None = None, **extra: Any) -> dict[str, Any]:
        choices = [] if delta is None else [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": reason}]
        head = {"id": chunk_id, "object": "chat.completion.chunk", "created": 1732838400, "model": model}
        return {**head, "system_fingerprint": "fp_0ba0d124f1", "choices": choices, "usage": None, **extra}

    # The first chunk names the role, with empty content before text and null content before tool calls.
    chunks = [chunk({"role": "assistant", "content": None if tool_calls else "", "refusal": None})]
    pieces = [] if text is None else _pieces(text) if isinstance(text, str) else list(text)
    chunks += [chunk({"content": piece}) for piece in pieces]
    chunks += [chunk({"refusal": piece}) for piece in _pieces(refusal or "")]
    for i, call in enumerate(tool_calls or ()):
        args = call["arguments"] if isinstance(call["arguments"], str) else json.dumps(call["arguments"])
        call_id = call.get("id") or "call_" + _short_id("call", i, call["name"])
        start = {"index": i, "id": call_id, "type": "function", "function": {"name": call["name"], "arguments": ""}}
        chunks.append(chunk({"tool_calls": [start]}))
        chunks += [chunk({"tool_calls": [{"index": i, "function": {"arguments": a}}]}) for a in _pieces(args)]
    events = [_sse_data(c) for c in chunks]
    if error is not None:
        fields = {"message": "The server had an error while processing your request.", "type": "server_error"}
        events.append(_sse_data({"error": {**fields, "param": None, "code": None, **error}}))
        return FakeReply(200, "".join(events), _openai_stream_headers(chunk_id))
    events.append(_sse_data(chunk({}, finish_reason)))
    if usage:
        counts = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
            "prompt_tokens_details": {"cached_tokens": cached_tokens, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": 0,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        }
        events.append(_sse_data(chunk(None, usage=counts)))
    events.append("data: [DONE]\n\n")
    return FakeReply(200, "".join(events), _openai_stream_headers(chunk_id))


def _openai_stream_headers(chunk_id: str) -> dict[str, str]:
    return {
        "content-type": "text/event-stream; charset=utf-8",
        "x-request-id": "req_" + _short_id("openai-stream", chunk_id),
        "openai-processing-ms": "207",
        "openai-version": "2020-10-01",
    }


def _pieces(text: str, size: int = 6) -> list[str]:
    """Text cut into the deltas a stream sends it in."""
    return [text[i : i + size] for i in range(0, len(text), size)]


def _sse_data(payload: Mapping[str, Any]) -> str:
    return f"data: {json.dumps(payload, separators=(',', ':'))}\n\n"


def openai_error(
    status: int, message: str, *, type_: str, code: str | None, retry_after: float | None = None
) -> FakeReply:
    """An OpenAI error object, e.g. 429 `rate_limit_exceeded` or 500 `server_error`."""
    headers = {"content-type": "application/json", "x-request-id": "req_" + _short_id("openai-err", status)}
    if retry_after is not None:
        headers["retry-after"] = _seconds(retry_after)
        headers["retry-after-ms"] = str(int(retry_after * 1000))
    body = {"error": {"message": message, "type": type_, "param": None, "code": code}}
    return FakeReply(status, body, headers)


# -- Anthropic ----------------------------------------------------------------------------------------


def anthropic_message(
    text: str | Sequence[str] | None,
    *,
    input_tokens: int,
    output_tokens: int,
    model: str = "claude-3-5-sonnet-20241022",
    stop_reason: str | None = None,
    cache_read_input_tokens: int = 0,
    cache_creation_input_tokens: int = 0,
    thinking: str | None = None,
    stop_details: Mapping[str, Any] | None = None,
    tool_uses: Sequence[Mapping[str, Any]] | None = None,
) -> FakeReply:
    """A Messages reply. `stop_reason` may be `end_turn`, `max_tokens` or `refusal` (with `stop_details`).

    `text` may be several strings (one text block each); `thinking` puts a thinking block first. Cache reads and
    writes are counted apart from `input_tokens`, as the API does. `tool_uses` (`{"id", "name", "input"}` each,
    the id may be left out) add `tool_use` blocks after the text; the stop reason is then `tool_use` unless given.
    """
    if stop_reason is None:
        stop_reason = "tool_use" if tool_uses else "end_turn"
    texts = [] if text is None else [text] if isinstance(text, str) else list(text)
    content: list[dict[str, Any]] = [{"type": "text", "text": t} for t in texts]
    for i, use in enumerate(tool_uses or ()):
        # Ids look like the API's (`toolu_01` and 22 characters); `caller` is what it adds to a direct call.
        use_id = use.get("id") or "toolu_01" + _short_id("tool_use", i, use["name"])[:22]
        block = {"type": "tool_use", "id": use_id, "name": use["name"], "input": dict(use["input"])}
        content.append({**block, "caller": {"type": "direct"}})
    if thinking is not None:
        signature = "EqQBCkgIARABGAIiQ" + _short_id("signature", thinking)
        content.insert(0, {"type": "thinking", "thinking": thinking, "signature": signature})
    body: dict[str, Any] = {
        "id": "msg_01" + _short_id(text, input_tokens)[:22],
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": {
            "input_tokens": input_tokens,
            "cache_creation_input_tokens": cache_creation_input_tokens,
            "cache_read_input_tokens": cache_read_input_tokens,
            "output_tokens": output_tokens,
            "service_tier": "standard",
        },
    }
    if stop_details is not None:
        body["stop_details"] = dict(stop_details)
    headers = {"content-type": "application/json", "request-id": "req_01" + _short_id("anthropic", text)[:22]}
    return FakeReply(200, body, headers)


def anthropic_stream(
    text: str | Sequence[str] | None,
    *,
    input_tokens: int,
    output_tokens: int,
    model: str = "claude-3-5-sonnet-20241022",
    stop_reason: str | None = None,
    cache_read_input_tokens: int = 0,
    cache_creation_input_tokens: int = 0,
    thinking: str | None = None,
    stop_details: Mapping[str, Any] | None = None,
    tool_uses: Sequence[Mapping[str, Any]] | None = None,
    error: tuple[str, str] | None = None,
) -> FakeReply:
    """A streamed Messages reply (`stream=True`), as SSE: `message_start`, each block's start, deltas and stop,
    `message_delta`, `message_stop`, with a `ping` after the first block starts as the API sends.

    `text` is one text block, streamed as the deltas given (a str: one delta per 6 characters); `thinking` puts a
    thinking block first; `tool_uses` as in `anthropic_message`, each input streamed as `input_json_delta`
    fragments (an input given as a str is sent as that raw JSON text). `error=(type, message)` ends the stream
    after its content blocks with an `error` event (e.g. `overloaded_error`), as the API does when it fails
    mid-stream.
    """
    if stop_reason is None:
        stop_reason = "tool_use" if tool_uses else "end_turn"
    message_id = "msg_01" + _short_id("stream", text, input_tokens)[:22]
    cache = {
        "cache_creation_input_tokens": cache_creation_input_tokens,
        "cache_read_input_tokens": cache_read_input_tokens,
    }
    usage = {
        "input_tokens": input_tokens,
        **cache,
        "cache_creation": {"ephemeral_5m_input_tokens": cache_creation_input_tokens, "ephemeral_1h_input_tokens": 0},
        "output_tokens": 1,
        "service_tier": "standard",
    }
    start = {"id": message_id, "type": "message", "role": "assistant", "model": model, "content": []}
    message = {**start, "stop_reason": None, "stop_sequence": None, "usage": usage}
    events: list[tuple[str, dict[str, Any]]] = [("message_start", {"message": message})]
    blocks: list[tuple[dict[str, Any], list[dict[str, Any]]]] = []
    if thinking is not None:
        deltas = [{"type": "thinking_delta", "thinking": piece} for piece in _pieces(thinking)]
        signature = "EqQBCkgIARABGAIiQ" + _short_id("signature", thinking)
        deltas.append({"type": "signature_delta", "signature": signature})
        blocks.append(({"type": "thinking", "thinking": "", "signature": ""}, deltas))
    if text is not None:
        pieces = _pieces(text) if isinstance(text, str) else list(text)
        blocks.append(({"type": "text", "text": ""}, [{"type": "text_delta", "text": piece} for piece in pieces]))
    for i, use in enumerate(tool_uses or ()):
        use_id = use.get("id") or "toolu_01" + _short_id("tool_use", i, use["name"])[:22]
        raw = use["input"] if isinstance(use["input"], str) else json.dumps(dict(use["input"]))
        deltas = [{"type": "input_json_delta", "partial_json": piece} for piece in ["", *_pieces(raw)]]
        blocks.append(({"type": "tool_use", "id": use_id, "name": use["name"], "input": {}}, deltas))
    for index, (block, deltas) in enumerate(blocks):
        events.append(("content_block_start", {"index": index, "content_block": block}))
        if index == 0:
            events.append(("ping", {}))
        events += [("content_block_delta", {"index": index, "delta": delta}) for delta in deltas]
        events.append(("content_block_stop", {"index": index}))
    if error is not None:
        events.append(("error", {"error": {"type": error[0], "message": error[1]}}))
    else:
        delta: dict[str, Any] = {"stop_reason": stop_reason, "stop_sequence": None}
        if stop_details is not None:
            delta["stop_details"] = dict(stop_details)
        final_usage = {"input_tokens": input_tokens, **cache, "output_tokens": output_tokens}
        events += [("message_delta", {"delta": delta, "usage": final_usage}), ("message_stop", {})]
    body = "".join(f"event: {kind}\ndata: {json.dumps({'type': kind, **data})}\n\n" for kind, data in events)
    headers = {
        "content-type": "text/event-stream; charset=utf-8",
        "request-id": "req_01" + _short_id("anthropic-stream", text)[:22],
    }
    return FakeReply(200, body, headers)


def anthropic_error(status: int, type_: str, message: str, *, retry_after: float | None = None) -> FakeReply:
    """An Anthropic error object, e.g. 429 `rate_limit_error` or 529 `overloaded_error`."""
    request_id = "req_01" + _short_id("anthropic-err", status)[:22]
    headers = {"content-type": "application/json", "request-id": request_id, "x-should-retry": "true"}
    if retry_after is not None:
        headers["retry-after"] = _seconds(retry_after)
    body = {"type": "error", "error": {"type": type_, "message": message}, "request_id": request_id}
    return FakeReply(status, body, headers)


# -- Google Gemini ------------------------------------------------------------------------------------


def gemini_content(
    text: str | None,
    *,
    prompt_tokens: int,
    output_tokens: int,
    thoughts_tokens: int = 0,
    cached_tokens: int = 0,
    model: str = "gemini-1.5-flash-002",
    finish_reason: str = "STOP",
    block_reason: str | None = None,
    top_logprobs: Mapping[str, float] | None = None,
    int_enums: bool = False,
    function_calls: Sequence[Mapping[str, Any]] = (),
) -> FakeReply:
    """A generateContent reply. `block_reason` makes a prompt-level safety block (no candidates).

    Zero counts are left out, as the API does. `int_enums` encodes enums as numbers: what the legacy SDK's REST
    transport asks for (`$alt=json;enum-encoding=int`). `function_calls` (`{"name", "args"?, "id"?,
    "thought_signature"?}` each) adds `functionCall` parts after the text part (`text=None`: calls only, as a
    turn of calls usually is); `args` defaults to `{}`, and `id` is left out unless given (recorded
    gemini-2.0-flash calls have none).
    """
    usage: dict[str, Any] = {"promptTokenCount": prompt_tokens, "totalTokenCount": prompt_tokens + output_tokens}
    if cached_tokens:
        usage["cachedContentTokenCount"] = cached_tokens
    usage["promptTokensDetails"] = [{"modality": "TEXT", "tokenCount": prompt_tokens}]
    response_id = _short_id(text, *function_calls)[:22]
    body: dict[str, Any] = {"usageMetadata": usage, "modelVersion": model, "responseId": response_id}
    if block_reason:
        usage["totalTokenCount"] = prompt_tokens
        body["promptFeedback"] = {"blockReason": block_reason, "safetyRatings": _SAFETY_RATINGS_BLOCKED}
        return _gemini_reply(body, int_enums)
    if output_tokens:
        usage["candidatesTokenCount"] = output_tokens
    if thoughts_tokens:
        usage["thoughtsTokenCount"] = thoughts_tokens
        usage["totalTokenCount"] += thoughts_tokens
    candidate: dict[str, Any] = {"finishReason": finish_reason, "index": 0}
    parts: list[dict[str, Any]] = [] if text is None else [{"text": text}]
    parts += [_gemini_function_call(call) for call in function_calls]
    if parts:
        candidate["content"] = {"parts": parts, "role": "model"}
    if finish_reason == "SAFETY":
        candidate["safetyRatings"] = _SAFETY_RATINGS_BLOCKED
    if top_logprobs:
        chosen = max(top_logprobs, key=lambda t: top_logprobs[t])
        candidate["avgLogprobs"] = top_logprobs[chosen]
        candidate["logprobsResult"] = {
            "topCandidates": [{"candidates": [{"token": t, "logProbability": lp} for t, lp in top_logprobs.items()]}],
            "chosenCandidates": [{"token": chosen, "logProbability": top_logprobs[chosen]}],
        }
    body["candidates"] = [candidate]
    return _gemini_reply(body, int_enums)


def _gemini_function_call(call: Mapping[str, Any]) -> dict[str, Any]:
    """One `functionCall` part; a Gemini 2.5+ signature rides beside the call, in the part."""
    function_call: dict[str, Any] = {"name": call["name"], "args": dict(call.get("args") or {})}
    if call.get("id") is not None:
        function_call["id"] = call["id"]
    part: dict[str, Any] = {"functionCall": function_call}
    if call.get("thought_signature") is not None:
        part["thoughtSignature"] = call["thought_signature"]
    return part


def gemini_stream(
    texts: Sequence[str],
    *,
    prompt_tokens: int,
    output_tokens: int,
    thoughts_tokens: int = 0,
    cached_tokens: int = 0,
    model: str = "gemini-1.5-flash-002",
    finish_reason: str | None = "STOP",
    block_reason: str | None = None,
    function_calls: Sequence[Mapping[str, Any]] = (),
    error: tuple[int, str, str] | None = None,
    json_array: bool = False,
) -> FakeReply:
    """A streamGenerateContent reply: Server-Sent Events (`alt=sse`, what google-genai asks for), or with
    `json_array` one JSON array of chunks with numbered enums (the legacy SDK's REST transport).

    Each of `texts` is one chunk's text, with the running usage (only the prompt counted, as the API sends it); the
    last chunk adds the `function_calls` (whole), the finishReason and the final usage. The last chunk's
    counts, ids and model are those `gemini_content` gives for the whole text, so a stream and the same answer
    unstreamed read alike. `finish_reason=None` leaves the last chunk out (a stream that ends early); `error`,
    `(status, grpc_status, message)`, sends an error event after the texts instead of it; `block_reason` is a
    prompt blocked outright, one chunk.
    """
    whole = gemini_content(
        "".join(texts) if texts else None,
        prompt_tokens=prompt_tokens,
        output_tokens=output_tokens,
        thoughts_tokens=thoughts_tokens,
        cached_tokens=cached_tokens,
        model=model,
        finish_reason=finish_reason or "STOP",
        block_reason=block_reason,
        function_calls=function_calls,
    ).body
    running = {
        "promptTokenCount": prompt_tokens,
        "totalTokenCount": prompt_tokens,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": prompt_tokens}],
    }

    def partial(text: str) -> dict[str, Any]:
        content = {"parts": [{"text": text}], "role": "model"}
        return {
            "candidates": [{"content": content}],
            "usageMetadata": running,
            "modelVersion": model,
            "responseId": whole["responseId"],
        }

    chunks: list[dict[str, Any]]
    if block_reason:
        chunks = [whole]
    elif finish_reason is None or error is not None:
        chunks = [partial(text) for text in texts]
        if error is not None:
            chunks.append(gemini_error(*error).body)
    else:
        last = whole["candidates"][0]
        parts: list[dict[str, Any]] = [] if not texts else [{"text": texts[-1]}]
        parts += [_gemini_function_call(call) for call in function_calls]
        if parts:
            last["content"] = {"parts": parts, "role": "model"}
        chunks = [*(partial(text) for text in texts[:-1]), whole]
    if json_array:
        # Pretty-printed, as the API sends it; the SDK's parser skips the whitespace between values.
        array = "[" + ",\r\n".join(json.dumps(_numbered_enums(c), indent=2) for c in chunks) + "]"
        return FakeReply(200, array, {"content-type": "application/json; charset=UTF-8"})
    events = "".join(f"data: {json.dumps(chunk)}\r\n\r\n" for chunk in chunks)
    return FakeReply(200, events, {"content-type": "text/event-stream", "content-disposition": "attachment"})


def gemini_error(status: int, grpc_status: str, message: str, *, retry_delay_s: float | None = None) -> FakeReply:
    """A Google API error object; a 429 may carry a `RetryInfo` detail with the delay."""
    error: dict[str, Any] = {"code": status, "message": message, "status": grpc_status}
    if retry_delay_s is not None:
        error["details"] = [
            {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": f"{math.ceil(retry_delay_s)}s"}
        ]
    return FakeReply(status, {"error": error}, {"content-type": "application/json; charset=UTF-8"})


_SAFETY_RATINGS_BLOCKED = [
    {"category": "HARM_CATEGORY_HATE_SPEECH", "probability": "NEGLIGIBLE"},
    {"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH", "blocked": True},
    {"category": "HARM_CATEGORY_HARASSMENT", "probability": "NEGLIGIBLE"},
    {"category": "HARM_CATEGORY_SEXUALLY_EXPLICIT", "probability": "NEGLIGIBLE"},
]

# Enum numbers of the Gemini v1beta protos (google.ai.generativelanguage_v1beta.types), for `int_enums`.
_GEMINI_ENUM_NUMBERS = {
    "finishReason": {
        "STOP": 1,
        "MAX_TOKENS": 2,
        "SAFETY": 3,
        "RECITATION": 4,
        "OTHER": 5,
        "LANGUAGE": 6,
        "BLOCKLIST": 7,
        "PROHIBITED_CONTENT": 8,
        "SPII": 9,
    },
    "blockReason": {"SAFETY": 1, "OTHER": 2, "BLOCKLIST": 3, "PROHIBITED_CONTENT": 4},
    "category": {
        "HARM_CATEGORY_HARASSMENT": 7,
        "HARM_CATEGORY_HATE_SPEECH": 8,
        "HARM_CATEGORY_SEXUALLY_EXPLICIT": 9,
        "HARM_CATEGORY_DANGEROUS_CONTENT": 10,
    },
    "probability": {"NEGLIGIBLE": 1, "LOW": 2, "MEDIUM": 3, "HIGH": 4},
    "modality": {"TEXT": 1},
}


def _gemini_reply(body: dict[str, Any], int_enums: bool) -> FakeReply:
    return FakeReply(
        200, _numbered_enums(body) if int_enums else body, {"content-type": "application/json; charset=UTF-8"}
    )


def _numbered_enums(value: Any, key: str = "") -> Any:
    if key == "args":  # a function call's arguments are the model's words, not enums
        return value
    if isinstance(value, dict):
        return {k: _numbered_enums(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [_numbered_enums(v, key) for v in value]
    if isinstance(value, str) and key in _GEMINI_ENUM_NUMBERS:
        return _GEMINI_ENUM_NUMBERS[key].get(value, value)
    return value


def _seconds(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)
