"""A request's `messages`, checked field by field and turned into the messages cascade takes.

Accepted: `system` and `developer` turns (the system prompt), `user` and `assistant` text (a string or text parts),
an assistant turn's `tool_calls` (its content may then be null) and the `tool` turns that answer them. Anything else
(images, audio, `name`, `function_call`) is refused with 400 naming the field, not dropped. What is left to check,
the order of the turns, is the engine's (`cascade.query.normalize_query`), reported as a 400 on `messages`.
"""

from __future__ import annotations

import json
from typing import Any

from cascade.serve.api_error import bad_request

ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant", "tool": "tool"}
_FIELDS = {
    "system": {"role", "content"},
    "user": {"role", "content"},
    # `refusal: null` is what the openai SDK sends back when a caller appends a reply's message as it came.
    "assistant": {"role", "content", "tool_calls", "refusal"},
    "tool": {"role", "content", "tool_call_id"},
}
_CALL_FIELDS = {"id", "type", "function", "extra_content"}


def parse_messages(value: Any) -> list[dict[str, Any]]:
    """The messages in the shape `Cascade.arun` takes; `APIError` (400) naming the first field that cannot be."""
    if not isinstance(value, list) or not value:
        raise bad_request("`messages` must be a non-empty list of {role, content} messages", "messages")
    messages: list[dict[str, Any]] = []
    calls_to_answer: set[str] = set()  # the ids of the last assistant turn's tool calls not answered yet
    for i, message in enumerate(value):
        where = f"messages[{i}]"
        if not isinstance(message, dict):
            raise bad_request(f"{where} must be an object with a role and a content", where)
        role = message.get("role")
        if role not in ROLES:
            raise bad_request(
                f"{where}.role must be system, developer, user, assistant or tool (got {role!r})", f"{where}.role"
            )
        kind = ROLES[role]
        for name in message:
            if name not in _FIELDS[kind]:
                fields = ", ".join(sorted(_FIELDS[kind]))
                raise bad_request(f"{where}.{name} is not supported: a {role} message has {fields}", f"{where}.{name}")
        if kind == "tool":
            messages.append(_tool_result(message, where, calls_to_answer))
            continue
        calls_to_answer = set()
        if kind == "assistant":
            messages.append(_assistant(message, where))
            calls_to_answer = {call["id"] for call in messages[-1].get("tool_calls", ())}
        else:
            messages.append({"role": kind, "content": _content(message.get("content"), f"{where}.content")})
    return messages


def _assistant(message: dict[str, Any], where: str) -> dict[str, Any]:
    if message.get("refusal") is not None:
        raise bad_request(f"{where}.refusal must be null: a refused answer is never served", f"{where}.refusal")
    raw_calls = message.get("tool_calls")
    if raw_calls is None or raw_calls == []:
        return {"role": "assistant", "content": _content(message.get("content"), f"{where}.content")}
    if not isinstance(raw_calls, list):
        raise bad_request(f"{where}.tool_calls must be a list of tool calls", f"{where}.tool_calls")
    calls = [_tool_call(call, f"{where}.tool_calls[{j}]") for j, call in enumerate(raw_calls)]
    content = message.get("content")
    text = None if content is None else _content(content, f"{where}.content", allow_empty=True)
    return {"role": "assistant", "content": text, "tool_calls": calls}


def _tool_call(call: Any, where: str) -> dict[str, Any]:
    """One call of an assistant turn, as a reply of this server (or OpenAI's) gave it."""
    shape = '{"id", "type": "function", "function": {"name", "arguments"}}'
    if not isinstance(call, dict) or call.get("type") != "function" or not isinstance(call.get("function"), dict):
        raise bad_request(f"{where} must be a function call {shape}", where)
    for name in call:
        if name not in _CALL_FIELDS:
            raise bad_request(f"{where}.{name} is not supported: a tool call is {shape}", f"{where}.{name}")
    if not isinstance(call.get("id"), str) or not call["id"]:
        raise bad_request(f"{where}.id must be the call's id (text)", f"{where}.id")
    function = call["function"]
    for name in function:
        if name not in ("name", "arguments"):
            raise bad_request(f"{where}.function.{name} is not supported", f"{where}.function.{name}")
    if not isinstance(function.get("name"), str) or not function["name"]:
        raise bad_request(f"{where}.function.name must be the tool's name", f"{where}.function.name")
    arguments = function.get("arguments")
    try:
        parsed = json.loads(arguments) if isinstance(arguments, str) else None
    except (ValueError, RecursionError):
        parsed = None
    if not isinstance(parsed, dict):
        where_args = f"{where}.function.arguments"
        raise bad_request(f"{where_args} must be the JSON text of an object, as the reply gave it", where_args)
    checked = {"id": call["id"], "type": "function", "function": {"name": function["name"], "arguments": arguments}}
    if "extra_content" in call:
        checked["extra_content"] = _extra_content(call["extra_content"], f"{where}.extra_content")
    return checked


def _extra_content(value: Any, where: str) -> dict[str, Any]:
    """Where Google's OpenAI-compatible API (and this server) put a Gemini thought signature: the only extra taken."""
    google = value.get("google") if isinstance(value, dict) and set(value) == {"google"} else None
    signature = (
        google.get("thought_signature") if isinstance(google, dict) and set(google) == {"thought_signature"} else None
    )
    if not isinstance(signature, str):
        raise bad_request(f'{where} must be {{"google": {{"thought_signature": "..."}}}}', where)
    return {"google": {"thought_signature": signature}}


def _tool_result(message: dict[str, Any], where: str, calls_to_answer: set[str]) -> dict[str, Any]:
    call_id = message.get("tool_call_id")
    if not isinstance(call_id, str) or call_id not in calls_to_answer:
        raise bad_request(
            f"{where}.tool_call_id must name a tool call of the assistant turn before it, not answered yet",
            f"{where}.tool_call_id",
        )
    calls_to_answer.discard(call_id)
    content = _content(message.get("content"), f"{where}.content", allow_empty=True)
    return {"role": "tool", "tool_call_id": call_id, "content": content}


def _content(value: Any, where: str, *, allow_empty: bool = False) -> str:
    """A message's text: a string, or text parts joined by newlines."""
    if isinstance(value, str):
        return value
    if not isinstance(value, list) or (not value and not allow_empty):
        raise bad_request(f"{where} must be a string or a list of text parts", where)
    texts = []
    for j, part in enumerate(value):
        here = f"{where}[{j}]"
        if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(part.get("text"), str):
            raise bad_request(f'{here}: only text parts are supported ({{"type": "text", "text": "..."}})', here)
        if set(part) != {"type", "text"}:
            raise bad_request(f"{here} has fields other than type and text", here)
        texts.append(part["text"])
    return "\n".join(texts)
