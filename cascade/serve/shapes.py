"""OpenAI's chat-completion bodies, from and to cascade's: what a request may hold, and what a reply says.

A request names a served policy as its model (`"cascade/<policy name>"`) and sends chat messages. The policy
decides each stage's model, sampling and output length, so request fields that would set them (`temperature`,
`max_tokens`, ...) are refused with 400 naming the field, rather than silently ignored. Accepted: `model`,
`messages` (text, assistant tool calls and tool results: `cascade.serve.messages`), `tools`, `tool_choice`,
`parallel_tool_calls` and `response_format` (`cascade.serve.features`), `stream` and `stream_options`
(`include_usage`), `n` (1), `user` (an end-user id; cascade does not use it) and the extension `cascade`:
`{"trace": true}` adds the trace to the reply, `{"max_cost_usd": 0.01}` is the query's budget, and
`{"stream_mode": "buffered"}` (or `speculative`, `final`) how a stream shows answers (the policy's by default).

A reply is a `chat.completion`: the accepted answer as the one choice (text, the JSON of a structured answer, or
tool calls), `model` the model that gave it, and `usage` the tokens of every call the cascade made (answers,
judges, the classifier). The trace summary is also in `x-cascade-*` headers on every answer and on a 502 (a
stream carries it in its last chunk instead: `cascade.serve.chunks`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

from cascade.engine import QueryOptions
from cascade.errors import BudgetExhaustedError, CascadeExhausted, redact
from cascade.result import CascadeResult, ToolCallResult
from cascade.serve.api_error import APIError as APIError  # re-exported: the error of every reply
from cascade.serve.api_error import bad_request as _bad
from cascade.serve.features import FIELDS as FEATURE_FIELDS
from cascade.serve.features import Features, parse_features
from cascade.serve.messages import parse_messages
from cascade.streaming import STREAM_MODES, StreamMode

MODEL_PREFIX = "cascade/"
ACCEPTED_FIELDS = frozenset({"model", "messages", "stream", "stream_options", "n", "user", "cascade", *FEATURE_FIELDS})
# What a reply's `cascade` field and the x-cascade-* headers say about the query.
SUMMARY_FIELDS = (
    "query_id",
    "stage",
    "confidence",
    "accepted",
    "cost_usd",
    "flagship_cost_usd",
    "savings_usd",
    "escalations",
    "route",
    "budget_exhausted",
)
_EXTENSION_FIELDS = ("trace", "max_cost_usd", "stream_mode")


@dataclass(frozen=True)
class ChatRequest:
    """A chat-completion request, checked: the policy to run, the messages as cascade takes them, and how."""

    policy: str
    messages: list[dict[str, Any]]
    max_cost_usd: float | None = None
    trace: bool = False
    stream: bool = False
    include_usage: bool = False  # stream_options.include_usage: a usage chunk before [DONE]
    stream_mode: StreamMode | None = None  # None: the policy's
    features: Features = field(default_factory=Features)

    def run_options(self, query_id: str) -> QueryOptions:
        """What `Cascade.arun` / `astream` are given besides the messages."""
        return {
            "policy": self.policy,
            "max_cost_usd": self.max_cost_usd,
            "query_id": query_id,
            "tools": self.features.tools,
            "tool_choice": self.features.tool_choice,
            "output_type": self.features.output_type,
        }


def model_id(policy: str) -> str:
    return MODEL_PREFIX + policy


def parse_chat_request(body: bytes, policies: Collection[str]) -> ChatRequest:
    """Check a request body; raises `APIError` (400, or 404 for a model that is not served) naming the field."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):  # UnicodeDecodeError included
        raise _bad("the request body is not JSON", None, "invalid_json") from None
    if not isinstance(data, dict):
        raise _bad("the request body must be a JSON object", None)
    for name in data:
        if name not in ACCEPTED_FIELDS:
            raise _bad(
                f"{name!r} is not supported: the policy sets each stage's model, sampling and output length "
                f"(accepted: {', '.join(sorted(ACCEPTED_FIELDS))})",
                name,
                "unsupported_parameter",
            )
    stream = data.get("stream")
    if stream not in (None, True, False):
        raise _bad("`stream` must be true or false", "stream")
    include_usage = _stream_options(data.get("stream_options"), stream=bool(stream))
    if data.get("n") not in (None, 1):
        raise _bad("`n` must be 1: a cascade returns one answer", "n")
    if not isinstance(data.get("user"), str | None):
        raise _bad("`user` must be a string", "user")
    policy = _policy(data.get("model"), policies)
    max_cost, trace, mode = _extension(data.get("cascade"), stream=bool(stream))
    messages = parse_messages(data.get("messages"))
    features = parse_features(data)
    return ChatRequest(policy, messages, max_cost, trace, bool(stream), include_usage, mode, features)


def _stream_options(value: Any, *, stream: bool) -> bool:
    """`stream_options`: only with `stream: true` (as OpenAI says); `include_usage` is its one field."""
    if value is None:
        return False
    if not stream:
        raise _bad("stream_options is only allowed when stream is true", "stream_options")
    if not isinstance(value, dict):
        raise _bad('stream_options must be an object such as {"include_usage": true}', "stream_options")
    for name in value:
        if name != "include_usage":
            raise _bad(f"stream_options.{name} is not supported (include_usage)", f"stream_options.{name}")
    include = value.get("include_usage", False)
    if not isinstance(include, bool):
        raise _bad("stream_options.include_usage must be true or false", "stream_options.include_usage")
    return include


def _policy(model: Any, policies: Collection[str]) -> str:
    if not isinstance(model, str) or not model:
        raise _bad("`model` is required: one of the models GET /v1/models lists", "model")
    name = model.removeprefix(MODEL_PREFIX)
    if not model.startswith(MODEL_PREFIX) or name not in policies:
        served = ", ".join(model_id(p) for p in policies)
        raise APIError(404, f"the model {model!r} is not served here (served: {served})", code="model_not_found")
    return name


def _extension(value: Any, *, stream: bool) -> tuple[float | None, bool, StreamMode | None]:
    """The `cascade` extension field: `max_cost_usd`, `trace` and (for a stream) `stream_mode`."""
    if value is None:
        return None, False, None
    if not isinstance(value, dict):
        raise _bad('`cascade` must be an object such as {"trace": true, "max_cost_usd": 0.01}', "cascade")
    for name in value:
        if name not in _EXTENSION_FIELDS:
            accepted = ", ".join(_EXTENSION_FIELDS)
            raise _bad(f"cascade.{name} is not a field (accepted: {accepted})", f"cascade.{name}")
    trace = value.get("trace", False)
    if not isinstance(trace, bool):
        raise _bad("cascade.trace must be true or false", "cascade.trace")
    cost = value.get("max_cost_usd")
    if cost is not None and (
        isinstance(cost, bool) or not isinstance(cost, int | float) or not math.isfinite(cost) or cost <= 0
    ):
        raise _bad("cascade.max_cost_usd must be a positive number of US dollars", "cascade.max_cost_usd")
    mode = value.get("stream_mode")
    if mode is not None and not stream:
        raise _bad("cascade.stream_mode is only allowed when stream is true", "cascade.stream_mode")
    if mode is not None and mode not in STREAM_MODES:
        raise _bad(f"cascade.stream_mode must be one of {', '.join(STREAM_MODES)}", "cascade.stream_mode")
    return (float(cost) if cost is not None else None), trace, mode


def completion_body(result: CascadeResult, created: int, trace: bool) -> dict[str, Any]:
    """The `chat.completion` reply for an answered query."""
    dumped = result.model_dump(mode="json")
    body: dict[str, Any] = {
        "id": f"chatcmpl-{result.query_id}",
        "object": "chat.completion",
        "created": created,
        "model": answered_by(result),
        "choices": [
            {"index": 0, "message": assistant_message(result), "logprobs": None, "finish_reason": finish_reason(result)}
        ],
        "usage": usage(result),
    }
    if trace:
        body["cascade"] = trace_body(result, dumped)
    return body


def assistant_message(result: CascadeResult) -> dict[str, Any]:
    """The answer as OpenAI's assistant message: its text (a structured answer's JSON), or its tool calls with
    whatever text came with them (null when none did)."""
    message: dict[str, Any] = {"role": "assistant", "content": result.answer, "refusal": None}
    if result.tool_calls:
        message["content"] = result.answer or None
        message["tool_calls"] = [tool_call_body(call) for call in result.tool_calls]
    return message


def finish_reason(result: CascadeResult) -> str:
    # cascade accepts only an answer that ended on its own: a cut-off or refused one escalates.
    return "tool_calls" if result.tool_calls else "stop"


def tool_call_body(call: ToolCallResult) -> dict[str, Any]:
    """One tool call as OpenAI gives it (arguments as JSON text). A Gemini thought signature goes where Google's
    OpenAI-compatible API puts it, `extra_content.google.thought_signature`: the engine reads it back from there
    when the caller sends the call back in the conversation."""
    body: dict[str, Any] = {
        "id": call.id,
        "type": "function",
        "function": {"name": call.name, "arguments": json.dumps(call.arguments, ensure_ascii=False)},
    }
    if call.signature is not None:
        body["extra_content"] = {"google": {"thought_signature": call.signature}}
    return body


def answered_by(result: CascadeResult) -> str | None:
    """The model the vendor says answered, else the policy's id for it."""
    answers = [a for a in result.attempts if a.role == "answer" and a.stage == result.stage and a.error is None]
    return (answers[-1].served_by if answers else None) or result.model


def usage(result: CascadeResult) -> dict[str, Any]:
    """Tokens of every call the query made, summed; cached and reasoning tokens as OpenAI details them."""
    prompt = sum(a.input_tokens for a in result.attempts)
    completion = sum(a.output_tokens for a in result.attempts)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {
            "cached_tokens": sum(a.cached_input_tokens for a in result.attempts),
            "cache_write_tokens": sum(a.cache_write_tokens for a in result.attempts),
        },
        "completion_tokens_details": {"reasoning_tokens": sum(a.reasoning_tokens for a in result.attempts)},
    }


def summary_body(result: CascadeResult, dumped: dict[str, Any] | None = None) -> dict[str, Any]:
    """The trace summary: what the x-cascade-* headers say, as JSON (a stream's last chunk carries it)."""
    dumped = dumped if dumped is not None else result.model_dump(mode="json")
    summary = {name: dumped[name] for name in SUMMARY_FIELDS}
    return {**summary, "policy": dumped["policy"], "stages_tried": result.stages_tried()}


def trace_body(result: CascadeResult, dumped: dict[str, Any] | None = None) -> dict[str, Any]:
    """The `cascade` field: the summary, the stages tried and every call (attempt) the query made."""
    dumped = dumped if dumped is not None else result.model_dump(mode="json")
    return {**summary_body(result, dumped), "attempts": dumped["attempts"]}


def summary_headers(result: CascadeResult) -> dict[str, str]:
    """The trace summary as `x-cascade-*` headers (ASCII; money in dollars without float noise)."""
    values = {
        "query-id": result.query_id,
        "policy": f"{result.policy.name}@{result.policy.version}",
        "stage": result.stage or "none",
        "stages-tried": ",".join(result.stages_tried()),
        "confidence": "none" if result.confidence is None else f"{result.confidence:.4g}",
        "accepted": "true" if result.accepted else "false",
        "cost-usd": _usd(result.cost_usd),
        "flagship-cost-usd": _usd(result.flagship_cost_usd),
        "savings-usd": _usd(result.flagship_cost_usd - result.cost_usd),
        "escalations": str(result.escalations),
        "route": result.route,
    }
    return {f"x-cascade-{name}": ascii_header(value) for name, value in values.items()}


def no_answer_error(exc: CascadeExhausted | BudgetExhaustedError, trace: bool) -> APIError:
    """502 for a query no tier answered: its id, the last error, and the trace summary in the headers (a stream
    that has started sends the same body as its last event)."""
    result = exc.result
    message = redact(str(exc))
    last = next((a.error for a in reversed(result.attempts) if a.error is not None), None)
    if last is not None and last.message not in message:
        message += f"; last error: {last.type}: {redact(last.message)}"
    extra: dict[str, object] = {"query_id": result.query_id}
    if trace:
        extra["cascade"] = trace_body(result)
    code = "budget_exhausted" if isinstance(exc, BudgetExhaustedError) else "cascade_exhausted"
    headers = {**summary_headers(result), "x-should-retry": "false"}
    return APIError(502, message, code=code, headers=headers, extra=extra)


def _usd(value: float) -> str:
    text = f"{value:.12f}".rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text


def ascii_header(value: str) -> str:
    """A header value as printable ASCII: anything else (a newline in a stage name) is escaped, never sent raw."""
    return "".join(c if " " <= c <= "~" else f"\\u{ord(c):04x}" for c in value)


def models_body(policies: Collection[str], created: int) -> dict[str, Any]:
    return {"object": "list", "data": [model_body(name, created) for name in policies]}


def model_body(policy: str, created: int) -> dict[str, Any]:
    return {"id": model_id(policy), "object": "model", "created": created, "owned_by": "cascade"}
