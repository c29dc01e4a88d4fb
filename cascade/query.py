"""Check and normalize a query before any vendor call: a bad query costs nothing and says what is wrong."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from cascade.errors import InvalidQueryError
from cascade.providers.base import Message, ToolCall

Query = str | Sequence[Mapping[str, Any]]

# Characters per token for the context-window check: optimistic (real text runs about 4), so as never to refuse a
# query a model would take. Budgets use a true upper bound instead (`cascade.budget`).
CHARS_PER_TOKEN = 4.0


def normalize_query(query: Any, system: Any = None) -> tuple[tuple[Message, ...], str | None]:
    """A string or a list of chat messages -> messages and a system prompt.

    Messages are `{"role", "content"}` mappings in OpenAI's shape: `system`, `user`, `assistant` (which may carry
    `tool_calls`, its content then null) and `tool` (`tool_call_id` and the result as `content`). A `system`
    message inside the list is taken as the system prompt (joined with `system` if both are given). Every tool call
    must be answered by the tool turns right after it, and the conversation must end with the user or a tool
    result. Raises `InvalidQueryError` (a `ValueError`) for empty, non-text or malformed queries.
    """
    if system is not None:
        system = _text(system, "system prompt", allow_empty=True) or None
    if isinstance(query, str):
        return (Message("user", _text(query, "query")),), system
    if query is None:
        raise InvalidQueryError("query is None: pass a string or a list of {'role', 'content'} messages")
    if isinstance(query, bytes | bytearray) or not isinstance(query, Sequence):
        raise InvalidQueryError(f"query must be a string or a list of messages, not {type(query).__name__}")
    messages: list[Message] = []
    systems: list[str] = [system] if system else []
    unanswered: dict[str, str] = {}  # tool call id -> tool name, for the calls of the last assistant turn
    for i, item in enumerate(query):
        if not isinstance(item, Mapping) or "role" not in item:
            raise InvalidQueryError(f"message {i} must be a mapping with 'role' and 'content'")
        role = item["role"]
        if unanswered and role != "tool":
            raise InvalidQueryError(f"message {i}: tool calls {', '.join(unanswered)} have no tool result before it")
        if role == "tool":
            messages.append(_tool_result(i, item, unanswered))
            continue
        if role == "assistant" and item.get("tool_calls"):
            calls = _tool_calls(i, item["tool_calls"])
            content = item.get("content")
            text = "" if content is None else _text(content, f"message {i} content", allow_empty=True)
            messages.append(Message("assistant", text, tool_calls=calls))
            unanswered = {call.id: call.name for call in calls}
            continue
        if "content" not in item:
            raise InvalidQueryError(f"message {i} must be a mapping with 'role' and 'content'")
        content = _text(item["content"], f"message {i} content")
        if role == "system":
            systems.append(content)
        elif role in ("user", "assistant"):
            messages.append(Message(role, content))
        else:
            raise InvalidQueryError(f"message {i} has role {role!r}: use 'system', 'user', 'assistant' or 'tool'")
    if unanswered:
        raise InvalidQueryError(f"tool calls {', '.join(unanswered)} have no tool result")
    if not any(m.role == "user" for m in messages):
        raise InvalidQueryError("query has no user message")
    if messages[-1].role == "assistant":
        raise InvalidQueryError("the last message must come from the user or be a tool result")
    return tuple(messages), ("\n\n".join(systems) or None)


def _tool_calls(i: int, raw: Any) -> tuple[ToolCall, ...]:
    """An assistant turn's `tool_calls`: OpenAI's `{"id", "type": "function", "function": {"name", "arguments"}}`
    (arguments as JSON text or a mapping), or the flat `{"id", "name", "arguments"}`."""
    if isinstance(raw, str | bytes) or not isinstance(raw, Sequence):
        raise InvalidQueryError(f"message {i}: tool_calls must be a list")
    calls: list[ToolCall] = []
    for j, call in enumerate(raw):
        where = f"message {i} tool_calls[{j}]"
        function = call.get("function", call) if isinstance(call, Mapping) else None
        if not isinstance(call, Mapping) or not isinstance(function, Mapping):
            raise InvalidQueryError(f"{where} must be a mapping with an id and a function")
        call_id, name, arguments = call.get("id"), function.get("name"), function.get("arguments", {})
        if not isinstance(call_id, str) or not call_id or not isinstance(name, str) or not name:
            raise InvalidQueryError(f"{where} needs a text id and a function name")
        if isinstance(arguments, str):
            try:
                arguments = json.loads(arguments) if arguments.strip() else {}
            except ValueError:
                raise InvalidQueryError(f"{where}: arguments are not JSON") from None
        if not isinstance(arguments, Mapping):
            raise InvalidQueryError(f"{where}: arguments must be a JSON object")
        calls.append(ToolCall(call_id, name, dict(arguments), signature=_signature(call)))
    if len({c.id for c in calls}) != len(calls):
        raise InvalidQueryError(f"message {i}: two tool calls with the same id")
    return tuple(calls)


def _signature(call: Mapping[str, Any]) -> str | None:
    """A Gemini thought signature given back with a call: `signature`, or where Google's OpenAI-compatible API puts
    it (`extra_content.google.thought_signature`)."""
    extra = call.get("extra_content")
    google = extra.get("google") if isinstance(extra, Mapping) else None
    signature = call.get("signature") or (google.get("thought_signature") if isinstance(google, Mapping) else None)
    return signature if isinstance(signature, str) and signature else None


def _tool_result(i: int, item: Mapping[str, Any], unanswered: dict[str, str]) -> Message:
    """A `tool` turn: the result of one of the calls of the assistant turn before it."""
    call_id = item.get("tool_call_id")
    if not isinstance(call_id, str) or call_id not in unanswered:
        raise InvalidQueryError(
            f"message {i}: a tool result must answer a tool call of the turn before (by tool_call_id)"
        )
    content = item.get("content")
    if isinstance(content, Mapping | list):  # a structured result is sent as its JSON text
        content = json.dumps(content, ensure_ascii=False)
    text = _text(content, f"message {i} content", allow_empty=True)
    return Message("tool", text, tool_call_id=call_id, name=unanswered.pop(call_id))


def _text(value: Any, what: str, *, allow_empty: bool = False) -> str:
    if not isinstance(value, str):
        raise InvalidQueryError(f"{what} must be text, not {type(value).__name__}")
    if not allow_empty and not value.strip():
        raise InvalidQueryError(f"{what} is empty")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidQueryError(
            f"{what} is not valid Unicode text (a lone surrogate at position {exc.start})"
        ) from None
    return value


def messages_json(messages: Sequence[Message]) -> list[dict[str, Any]]:
    """Messages as `normalize_query` reads them (OpenAI's shape): what a traces row or a served reply writes back."""
    out: list[dict[str, Any]] = []
    for m in messages:
        if m.role == "tool":
            out.append({"role": "tool", "tool_call_id": m.tool_call_id, "content": m.content})
        elif m.tool_calls:
            calls = []
            for call in m.tool_calls:
                arguments = call.arguments if isinstance(call.arguments, str) else json.dumps(call.arguments)
                entry: dict[str, Any] = {
                    "id": call.id,
                    "type": "function",
                    "function": {"name": call.name, "arguments": arguments},
                }
                if call.signature:
                    entry["extra_content"] = {"google": {"thought_signature": call.signature}}
                calls.append(entry)
            out.append({"role": m.role, "content": m.content or None, "tool_calls": calls})
        else:
            out.append({"role": m.role, "content": m.content})
    return out


def query_text(messages: Sequence[Message], system: str | None = None) -> str:
    """All the text of a query, as routing rules and the judge see it."""
    if len(messages) == 1 and not system:
        return messages[0].content
    return "\n\n".join(m.content for m in messages if m.role == "user")


def estimate_input_tokens(messages: Sequence[Message], system: str | None) -> int:
    """An optimistic token count without a tokenizer, for context windows."""
    chars = sum(len(m.content) + sum(len(str(c.arguments)) for c in m.tool_calls) for m in messages) + len(system or "")
    return int(chars / CHARS_PER_TOKEN) + 1
