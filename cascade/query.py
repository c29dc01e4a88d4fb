"""Check and normalize a query before any vendor call: a bad query costs nothing and says what is wrong."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from cascade.errors import InvalidQueryError
from cascade.providers.base import Message

Query = str | Sequence[Mapping[str, Any]]

# Characters per token for the context-window check: optimistic (real text runs about 4), so as never to refuse a
# query a model would take. Budgets use a true upper bound instead (`cascade.budget`).
CHARS_PER_TOKEN = 4.0


def normalize_query(query: Any, system: Any = None) -> tuple[tuple[Message, ...], str | None]:
    """A string or a list of `{"role", "content"}` messages -> messages and a system prompt.

    A `system` message inside the list is taken as the system prompt (joined with `system` if both are given).
    Raises `InvalidQueryError` (a `ValueError`) for empty, non-text or malformed queries.
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
    for i, item in enumerate(query):
        if not isinstance(item, Mapping) or "role" not in item or "content" not in item:
            raise InvalidQueryError(f"message {i} must be a mapping with 'role' and 'content'")
        role, content = item["role"], _text(item["content"], f"message {i} content")
        if role == "system":
            systems.append(content)
        elif role in ("user", "assistant"):
            messages.append(Message(role, content))
        else:
            raise InvalidQueryError(f"message {i} has role {role!r}: use 'system', 'user' or 'assistant'")
    if not messages:
        raise InvalidQueryError("query has no user message")
    if messages[-1].role != "user":
        raise InvalidQueryError("the last message must come from the user")
    return tuple(messages), ("\n\n".join(systems) or None)


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


def query_text(messages: Sequence[Message], system: str | None = None) -> str:
    """All the text of a query, as routing rules and the judge see it."""
    if len(messages) == 1 and not system:
        return messages[0].content
    return "\n\n".join(m.content for m in messages if m.role == "user")


def estimate_input_tokens(messages: Sequence[Message], system: str | None) -> int:
    """An optimistic token count without a tokenizer, for context windows."""
    chars = sum(len(m.content) for m in messages) + len(system or "")
    return int(chars / CHARS_PER_TOKEN) + 1
