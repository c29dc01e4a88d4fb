"""OpenAI's chat-completion bodies, from and to cascade's: what a request may hold, and what a reply says.

A request names a served policy as its model (`"cascade/<policy name>"`) and sends chat messages. The policy
decides each stage's model, sampling and output length, so request fields that would set them (`temperature`,
`max_tokens`, `tools`, ...) are refused with 400 naming the field, rather than silently ignored. Accepted: `model`,
`messages` (text only: a string or text parts), `stream` (false: streaming is not served yet), `n` (1), `user`
(an end-user id; cascade does not use it) and the extension `cascade`: `{"trace": true}` adds the trace to the
reply, `{"max_cost_usd": 0.01}` is the query's budget.

A reply is a `chat.completion`: the accepted answer as the one choice, `model` the model that gave it, and `usage`
the tokens of every call the cascade made (answers, judges, the classifier). The trace summary is also in
`x-cascade-*` headers on every answer and on a 502.
"""

from __future__ import annotations

import json
import math
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from cascade.result import CascadeResult

MODEL_PREFIX = "cascade/"
ACCEPTED_FIELDS = frozenset({"model", "messages", "stream", "n", "user", "cascade"})
ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant"}
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
_DEFAULT_TYPE = {401: "authentication_error", 429: "rate_limit_error", 500: "server_error", 502: "upstream_error"}


class APIError(Exception):
    """An error reply of the server, in OpenAI's shape: `{"error": {"message", "type", "param", "code"}}`.

    Raised inside the app and turned into its response there; it never reaches a library caller.
    """

    def __init__(
        self,
        status: int,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        type_: str | None = None,
        headers: Mapping[str, str] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code
        self.type = type_ or _DEFAULT_TYPE.get(status, "invalid_request_error")
        self.headers = dict(headers or {})
        self.extra = dict(extra or {})

    def body(self) -> dict[str, Any]:
        error = {"message": self.message, "type": self.type, "param": self.param, "code": self.code}
        return {"error": {**error, **self.extra}}


@dataclass(frozen=True)
class ChatRequest:
    """A chat-completion request, checked: the policy to run and the messages as cascade takes them."""

    policy: str
    messages: list[dict[str, str]]
    max_cost_usd: float | None = None
    trace: bool = False


def _bad(message: str, param: str | None, code: str = "invalid_request") -> APIError:
    return APIError(400, message, param=param, code=code)


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
    stream = data.get("stream")
    if stream is True:
        raise _bad(
            "streaming is not supported yet: send `stream: false` or leave it out", "stream", "unsupported_parameter"
        )
    if stream not in (None, False):
        raise _bad("`stream` must be true or false", "stream")
    for name in data:
        if name not in ACCEPTED_FIELDS:
            raise _bad(
                f"{name!r} is not supported: the policy sets each stage's model, sampling and output length "
                f"(accepted: {', '.join(sorted(ACCEPTED_FIELDS))})",
                name,
                "unsupported_parameter",
            )
    if data.get("n") not in (None, 1):
        raise _bad("`n` must be 1: a cascade returns one answer", "n")
    if not isinstance(data.get("user"), str | None):
        raise _bad("`user` must be a string", "user")
    policy = _policy(data.get("model"), policies)
    max_cost, trace = _extension(data.get("cascade"))
    return ChatRequest(policy, _messages(data.get("messages")), max_cost, trace)


def _policy(model: Any, policies: Collection[str]) -> str:
    if not isinstance(model, str) or not model:
        raise _bad("`model` is required: one of the models GET /v1/models lists", "model")
    name = model.removeprefix(MODEL_PREFIX)
    if not model.startswith(MODEL_PREFIX) or name not in policies:
        served = ", ".join(model_id(p) for p in policies)
        raise APIError(404, f"the model {model!r} is not served here (served: {served})", code="model_not_found")
    return name


def _extension(value: Any) -> tuple[float | None, bool]:
    """The `cascade` extension field: `max_cost_usd` and `trace`."""
    if value is None:
        return None, False
    if not isinstance(value, dict):
        raise _bad('`cascade` must be an object such as {"trace": true, "max_cost_usd": 0.01}', "cascade")
    for name in value:
        if name not in ("trace", "max_cost_usd"):
            raise _bad(f"cascade.{name} is not a field (accepted: trace, max_cost_usd)", f"cascade.{name}")
    trace = value.get("trace", False)
    if not isinstance(trace, bool):
        raise _bad("cascade.trace must be true or false", "cascade.trace")
    cost = value.get("max_cost_usd")
    if cost is not None and (
        isinstance(cost, bool) or not isinstance(cost, int | float) or not math.isfinite(cost) or cost <= 0
    ):
        raise _bad("cascade.max_cost_usd must be a positive number of US dollars", "cascade.max_cost_usd")
    return (float(cost) if cost is not None else None), trace


def _messages(value: Any) -> list[dict[str, str]]:
    if not isinstance(value, list) or not value:
        raise _bad("`messages` must be a non-empty list of {role, content} messages", "messages")
    messages = []
    for i, message in enumerate(value):
        where = f"messages[{i}]"
        if not isinstance(message, dict):
            raise _bad(f"{where} must be an object with a role and a content", where)
        for name in message:
            if name not in ("role", "content"):
                raise _bad(f"{where}.{name} is not supported: a message has a role and a content", f"{where}.{name}")
        role = message.get("role")
        if role not in ROLES:
            raise _bad(f"{where}.role must be system, developer, user or assistant (got {role!r})", f"{where}.role")
        messages.append({"role": ROLES[role], "content": _content(message.get("content"), f"{where}.content")})
    return messages


def _content(value: Any, where: str) -> str:
    """A message's text: a string, or text parts joined by newlines."""
    if isinstance(value, str):
        return value
    if not isinstance(value, list) or not value:
        raise _bad(f"{where} must be a string or a list of text parts", where)
    texts = []
    for j, part in enumerate(value):
        here = f"{where}[{j}]"
        if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(part.get("text"), str):
            raise _bad(f'{here}: only text parts are supported ({{"type": "text", "text": "..."}})', here)
        if set(part) != {"type", "text"}:
            raise _bad(f"{here} has fields other than type and text", here)
        texts.append(part["text"])
    return "\n".join(texts)


def completion_body(result: CascadeResult, created: int, trace: bool) -> dict[str, Any]:
    """The `chat.completion` reply for an answered query."""
    dumped = result.model_dump(mode="json")
    body: dict[str, Any] = {
        "id": f"chatcmpl-{result.query_id}",
        "object": "chat.completion",
        "created": created,
        "model": _answered_by(result),
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": result.answer, "refusal": None},
                "logprobs": None,
                # cascade accepts only an answer that ended on its own: a cut-off or refused one escalates.
                "finish_reason": "stop",
            }
        ],
        "usage": usage(result),
    }
    if trace:
        body["cascade"] = trace_body(result, dumped)
    return body


def _answered_by(result: CascadeResult) -> str | None:
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


def trace_body(result: CascadeResult, dumped: dict[str, Any] | None = None) -> dict[str, Any]:
    """The `cascade` field: the summary, the stages tried and every call (attempt) the query made."""
    dumped = dumped if dumped is not None else result.model_dump(mode="json")
    summary = {name: dumped[name] for name in SUMMARY_FIELDS}
    return {
        **summary,
        "policy": dumped["policy"],
        "stages_tried": result.stages_tried(),
        "attempts": dumped["attempts"],
    }


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
    return {f"x-cascade-{name}": _header(value) for name, value in values.items()}


def _usd(value: float) -> str:
    text = f"{value:.12f}".rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text


def _header(value: str) -> str:
    """A header value as printable ASCII: anything else (a newline in a stage name) is escaped, never sent raw."""
    return "".join(c if " " <= c <= "~" else f"\\u{ord(c):04x}" for c in value)


def models_body(policies: Collection[str], created: int) -> dict[str, Any]:
    return {"object": "list", "data": [model_body(name, created) for name in policies]}


def model_body(policy: str, created: int) -> dict[str, Any]:
    return {"id": model_id(policy), "object": "model", "created": created, "owned_by": "cascade"}
