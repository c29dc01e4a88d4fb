"""Gemini `generateContent`: the parts of a request both Google SDKs take alike, and replies and errors, read
from the wire JSON that both receive.

`google-genai` (pydantic models) and the legacy `google-generativeai` (protobuf messages) parse the same JSON into
different objects; each adapter turns its object back into that JSON (camelCase keys, enum names) and the finish
reason, usage, function call and block logic lives here once. The other way, `contents` and
`function_calling_config` build a request's turns and tool choice as dicts keyed by the protos' field names
(`function_call`, `allowed_function_names`), which google-genai's types and the legacy protos both accept.

`streamGenerateContent` sends the same reply as a series of chunks, each shaped like a whole reply; `ChunkReader`
reads them as they come and hands the reply they make up to the same `parse_completion`.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeGuard

from cascade.errors import BadRequestError, MalformedResponseError, ProviderError, StreamInterruptedError
from cascade.providers.base import (
    Completion,
    FinishReason,
    Message,
    StreamPiece,
    StreamReader,
    TextPiece,
    ToolCall,
    ToolCallPiece,
    ToolChoice,
    error_for_status,
)

_FINISH_REASONS: dict[str, FinishReason] = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    # The model paused and could go on from a continuation token (we turn the SDK's automatic follow-up
    # requests off, so a stage stays one request): the text is incomplete, as with MAX_TOKENS.
    "CONTINUATION": "length",
    "SAFETY": "blocked",
    "RECITATION": "blocked",
    "BLOCKLIST": "blocked",
    "PROHIBITED_CONTENT": "blocked",
    "SPII": "blocked",
    "IMAGE_SAFETY": "blocked",
    "IMAGE_PROHIBITED_CONTENT": "blocked",
    "MODEL_ARMOR": "blocked",
    # MALFORMED_FUNCTION_CALL, UNEXPECTED_TOOL_CALL, TOO_MANY_TOOL_CALLS: no usable call came back, "other".
}
_RETRY_DELAY = re.compile(r"^\s*(\d+(?:\.\d+)?)s\s*$")
_RETRY_INFO = "type.googleapis.com/google.rpc.RetryInfo"


def parse_completion(body: Mapping[str, Any], *, provider: str, requested_model: str, latency_s: float) -> Completion:
    """A `Completion` from a generateContent reply; `MalformedResponseError` when fields we rely on are missing."""

    model = str(body.get("modelVersion") or requested_model)

    def malformed(problem: str) -> MalformedResponseError:
        return MalformedResponseError(f"{provider}: generateContent reply {problem}", provider=provider, model=model)

    # Runs on every Gemini call: plain loops, and `type(...) is dict` before the (slower) Mapping check.
    usage = body.get("usageMetadata")
    if not _is_mapping(usage):
        raise malformed("has no usageMetadata")
    counts: dict[str, int] = {}
    for key in _COUNT_KEYS:
        n = usage.get(key) or 0
        if not isinstance(n, int) or n < 0:
            raise malformed(f"has unusable token counts: {dict(usage)!r}")
        counts[key] = n
    if not counts["promptTokenCount"]:
        raise malformed(f"has unusable token counts: {dict(usage)!r}")
    prompt, candidates_tokens, thoughts = (
        counts["promptTokenCount"],
        counts["candidatesTokenCount"],
        counts["thoughtsTokenCount"],
    )
    if "thoughtsTokenCount" not in usage:
        # Thinking is billed as output. The legacy SDK's protos predate `thoughtsTokenCount` and drop it, but the
        # total still counts it: the total is prompt + candidates + thoughts + `toolUsePromptTokenCount`. That last
        # one counts results of tools the API runs itself (search, code execution), which we never turn on; the
        # function results a conversation sends back are part of the prompt. The protos drop it as well (0 here).
        thoughts = max(0, counts["totalTokenCount"] - prompt - candidates_tokens - counts["toolUsePromptTokenCount"])
    common: dict[str, Any] = {
        "input_tokens": prompt,
        "output_tokens": candidates_tokens + thoughts,
        "reasoning_tokens": thoughts,
        "cached_input_tokens": counts["cachedContentTokenCount"],
        "model": model,
        "latency_s": latency_s,
        "provider": provider,
        "request_id": body.get("responseId"),
    }

    candidates = body.get("candidates")
    if not candidates:
        feedback = body.get("promptFeedback") or {}
        block_reason = feedback.get("blockReason")
        if not block_reason:
            raise malformed("has neither candidates nor promptFeedback.blockReason")
        refusal = feedback.get("blockReasonMessage") or f"prompt blocked: {block_reason}"
        return Completion(text=None, finish_reason="blocked", refusal=refusal, **common)

    candidate = candidates[0]
    if not _is_mapping(candidate):
        raise malformed("has a candidate that is not an object")
    raw_reason = candidate.get("finishReason")
    if raw_reason is None:
        # A complete (non-streamed) candidate always says why it stopped.
        raise malformed("has a candidate without finishReason")
    # Unknown reasons, including numbers of enums newer than the legacy protos, are "other".
    finish_reason = _FINISH_REASONS.get(raw_reason, "other") if isinstance(raw_reason, str) else "other"
    if finish_reason == "blocked":
        refusal = candidate.get("finishMessage") or f"answer blocked: {raw_reason}"
        return Completion(text=None, finish_reason="blocked", refusal=refusal, **common)

    parts = (candidate.get("content") or {}).get("parts") or []
    texts: list[str] = []
    calls: list[ToolCall] = []
    for part in parts:
        if not _is_mapping(part):
            continue
        call = part.get("functionCall")
        if call is not None:
            calls.append(_tool_call(call, len(calls), malformed, part.get("thoughtSignature")))
            continue
        part_text = part.get("text")
        if isinstance(part_text, str) and not part.get("thought"):
            texts.append(part_text)
    text = "".join(texts) if texts else None
    # A turn of function calls finishes with STOP too, often without any text.
    if finish_reason == "stop" and text is None and not calls:
        raise malformed("finished with STOP but has neither text nor function calls")
    return Completion(
        text=text,
        finish_reason=finish_reason,
        first_token_logprobs=_first_token_logprobs(candidate),
        tool_calls=tuple(calls),
        **common,
    )


class ChunkReader(StreamReader):
    """One `streamGenerateContent` reply, read chunk by chunk; each chunk is wire JSON (`to_wire` makes it of
    what the SDK hands over), shaped like a whole generateContent reply.

    A chunk carries the next parts of the candidate (text, or a function call: whole, in one chunk), and the
    running `usageMetadata`; the last one adds the `finishReason` and the final counts. A prompt blocked outright
    is one chunk of `promptFeedback`. At the end the chunks, merged into one reply (parts in order, the latest
    of everything else), go through `parse_completion`, so a streamed answer reads exactly as the same answer
    unstreamed. A stream without the finish reason or the block (cut off, or closed early) is no answer:
    `StreamInterruptedError`.
    """

    def __init__(self, to_wire: Callable[[Any], Mapping[str, Any]], *, provider: str, requested_model: str) -> None:
        self._to_wire = to_wire
        self._provider = provider
        self._requested_model = requested_model
        self._body: dict[str, Any] = {}  # the reply's fields but its candidates, the latest of each
        self._candidate: dict[str, Any] = {}  # the candidate's fields but its content
        self._parts: list[Any] = []
        self._calls = 0

    def _model(self) -> str:
        return str(self._body.get("modelVersion") or self._requested_model)

    def _malformed(self, problem: str) -> MalformedResponseError:
        return MalformedResponseError(
            f"{self._provider}: streamGenerateContent chunk {problem}", provider=self._provider, model=self._model()
        )

    def feed(self, event: Any) -> list[StreamPiece]:
        chunk = self._to_wire(event)
        for key, value in chunk.items():
            if key != "candidates":
                self._body[key] = value
        candidates = chunk.get("candidates")
        if not candidates:
            return []
        candidate = candidates[0] if isinstance(candidates, list) else None
        if not _is_mapping(candidate):
            raise self._malformed("has a candidate that is not an object")
        for key, value in candidate.items():
            if key == "logprobsResult" and _is_mapping(value):
                self._add_logprobs(value)
            elif key != "content":
                self._candidate[key] = value
        parts = (candidate.get("content") or {}).get("parts") or []
        if not isinstance(parts, list):
            raise self._malformed("has parts that are not a list")
        pieces: list[StreamPiece] = []
        for part in parts:
            if not _is_mapping(part):
                continue
            self._parts.append(part)
            call = part.get("functionCall")
            if call is not None:
                # The id and parsed arguments `parse_completion` will give this call, so the pieces match the end.
                tool_call = _tool_call(call, self._calls, self._malformed, part.get("thoughtSignature"))
                pieces.append(ToolCallPiece(self._calls, tool_call.id, tool_call.name, json.dumps(tool_call.arguments)))
                self._calls += 1
                continue
            text = part.get("text")
            if isinstance(text, str) and text and not part.get("thought"):
                pieces.append(TextPiece(text))
        return pieces

    def _add_logprobs(self, result: Mapping[str, Any]) -> None:
        # Each chunk's log-probabilities are those of its own tokens: in order, they are the reply's.
        merged = self._candidate.setdefault("logprobsResult", {})
        for key, steps in result.items():
            if isinstance(steps, list):
                merged[key] = [*merged.get(key, ()), *steps]

    def finish(self, latency_s: float) -> Completion:
        feedback = self._body.get("promptFeedback")
        blocked = _is_mapping(feedback) and bool(feedback.get("blockReason"))
        if self._candidate.get("finishReason") is None and not blocked:
            raise StreamInterruptedError(
                f"{self._provider}: the stream ended without a finish reason (an answer cut short)",
                provider=self._provider,
                model=self._model(),
            )
        body = dict(self._body)
        if self._candidate or self._parts:
            body["candidates"] = [{**self._candidate, "content": {"role": "model", "parts": self._parts}}]
        return parse_completion(
            body, provider=self._provider, requested_model=self._requested_model, latency_s=latency_s
        )


def _tool_call(
    call: Any, index: int, malformed: Callable[[str], MalformedResponseError], signature: Any = None
) -> ToolCall:
    """A `functionCall` part as a `ToolCall`. Gemini often leaves the call's `id` out (recorded gemini-2.0-flash
    replies have none): such a call gets one made of its place among the reply's calls and its name, the same
    every time the reply is read. The results sent back later carry it (Gemini matches them by name and order)."""
    name = call.get("name") if _is_mapping(call) else None
    if not isinstance(name, str) or not name:
        raise malformed("has a functionCall without a name")
    arguments = call.get("args")
    if arguments is None:  # a function without parameters: the API leaves `args` out
        arguments = {}
    elif not _is_mapping(arguments):
        raise malformed(f"has a functionCall whose args are not an object ({name})")
    call_id = call.get("id")
    if not isinstance(call_id, str) or not call_id:
        call_id = f"call_{index}_{name}"
    signed = signature if isinstance(signature, str) and signature else None
    return ToolCall(id=call_id, name=name, arguments=dict(arguments), signature=signed)


class CannotExpress(ValueError):
    """A request that Gemini's wire format, or the legacy SDK's protos, cannot carry (a schema the legacy backend
    has no words for, a tool call whose arguments are not an object). Raised while the request is built, before
    anything is sent; each adapter's `translate` reports it with `cannot_send`."""


def cannot_send(exc: CannotExpress, *, provider: str, model: str) -> BadRequestError:
    """The cascade error for a request that could not be built: a bad request that never reached the vendor (no
    status code)."""
    return BadRequestError(f"{provider}: cannot send this request: {exc}", provider=provider, model=model)


def contents(messages: Sequence[Message], *, signatures: bool = False) -> list[dict[str, Any]]:
    """A conversation as `Content` dicts. Assistant turns are the "model"'s, their calls `function_call` parts
    after any text; the results of a turn's calls go back together, in one "user" turn of `function_response`
    parts (how Gemini takes the answers to parallel calls). With `signatures` (google-genai: the legacy protos
    have no such field), a call's thought signature goes back in its part, as Gemini 3 requires."""
    turns: list[dict[str, Any]] = []
    names: dict[str, str] = {}  # call id -> function name, for results that do not say it
    answering = False  # the last turn holds function responses
    for message in messages:
        if message.role == "tool":
            part = {"function_response": _function_response(message, names)}
            if answering:
                turns[-1]["parts"].append(part)
            else:
                turns.append({"role": "user", "parts": [part]})
            answering = True
            continue
        answering = False
        if message.role == "assistant" and message.tool_calls:
            parts: list[dict[str, Any]] = [{"text": message.content}] if message.content else []
            for call in message.tool_calls:
                names[call.id] = call.name
                called: dict[str, Any] = {"function_call": {"name": call.name, "args": _arguments(call), "id": call.id}}
                if signatures and call.signature:
                    called["thought_signature"] = _signature_bytes(call.signature)
                parts.append(called)
            turns.append({"role": "model", "parts": parts})
        else:
            turns.append({"role": _ROLES[message.role], "parts": [{"text": message.content}]})
    return turns


def _signature_bytes(signature: str) -> bytes:
    """A thought signature as the bytes the SDK takes (it arrives base64, URL-safe or standard, in the JSON)."""
    padded = signature + "=" * (-len(signature) % 4)
    try:
        if "-" in signature or "_" in signature:
            return base64.urlsafe_b64decode(padded)
        return base64.b64decode(padded, validate=True)
    except (ValueError, binascii.Error):
        raise CannotExpress("a tool call's thought signature is not base64") from None


def function_calling_config(choice: ToolChoice) -> dict[str, Any]:
    """A tool choice as a `FunctionCallingConfig` dict: AUTO, ANY (some call), NONE, or ANY of the one named."""
    if choice.mode == "tool":
        if not choice.name:
            raise CannotExpress("tool_choice 'tool' names no tool")
        return {"mode": "ANY", "allowed_function_names": [choice.name]}
    return {"mode": _CALLING_MODES[choice.mode]}


_ROLES = {"user": "user", "assistant": "model"}
_CALLING_MODES = {"auto": "AUTO", "required": "ANY", "none": "NONE"}


def _arguments(call: ToolCall) -> dict[str, Any]:
    if not isinstance(call.arguments, str):
        return dict(call.arguments)
    # Raw text another vendor's model wrote: Gemini takes only an object.
    try:
        parsed = json.loads(call.arguments)
    except ValueError:
        parsed = None
    if not isinstance(parsed, dict):
        raise CannotExpress(f"the arguments of tool call {call.id} ({call.name}) are not a JSON object")
    return parsed


def _function_response(message: Message, names: Mapping[str, str]) -> dict[str, Any]:
    name = message.name or names.get(message.tool_call_id or "")
    if not name:
        raise CannotExpress(f"the result of tool call {message.tool_call_id} does not name its tool")
    # `response` must be an object: a result that is one goes as it is, any other text under "result".
    try:
        value = json.loads(message.content)
    except ValueError:
        value = None
    response: dict[str, Any] = {
        "name": name,
        "response": value if isinstance(value, dict) else {"result": message.content},
    }
    if message.tool_call_id:
        response["id"] = message.tool_call_id
    return response


def http_error(status: int, message: str, *, body: Any = None, headers: Any = None, **where: str) -> ProviderError:
    """The cascade error for a Gemini HTTP error; a 429 without `retry-after` takes the body's RetryInfo delay."""
    return error_for_status(status, message, body=body, headers=headers, retry_after=retry_delay(body), **where)


def retry_delay(body: Any) -> float | None:
    """Seconds from a `google.rpc.RetryInfo` detail (`"retryDelay": "37s"`) in an error body, else None."""
    error = body.get("error") if isinstance(body, Mapping) else None
    details = error.get("details") if isinstance(error, Mapping) else None
    for detail in details if isinstance(details, list) else ():
        if isinstance(detail, Mapping) and detail.get("@type") == _RETRY_INFO:
            match = _RETRY_DELAY.match(str(detail.get("retryDelay", "")))
            if match:
                return float(match.group(1))
    return None


def error_message(body: Any, fallback: str) -> str:
    """The `error.message` of a Google error body, the start of a body that is not JSON, else the fallback."""
    if isinstance(body, str) and body.strip():
        return body.strip()[:200]
    error = body.get("error") if isinstance(body, Mapping) else None
    message = error.get("message") if isinstance(error, Mapping) else None
    return message if isinstance(message, str) and message else fallback


_COUNT_KEYS = (
    "promptTokenCount",
    "candidatesTokenCount",
    "thoughtsTokenCount",
    "cachedContentTokenCount",
    "toolUsePromptTokenCount",
    "totalTokenCount",
)


def _is_mapping(value: Any) -> TypeGuard[Mapping[str, Any]]:
    return type(value) is dict or isinstance(value, Mapping)


def _first_token_logprobs(candidate: Mapping[str, Any]) -> dict[str, float]:
    steps = (candidate.get("logprobsResult") or {}).get("topCandidates") or []
    if not steps:
        return {}
    return {
        c["token"]: float(c["logProbability"])
        for c in steps[0].get("candidates") or []
        if "token" in c and "logProbability" in c
    }
