"""The anthropic adapter's reply checks, on SDK objects built without validation (as the SDK builds them)."""

from __future__ import annotations

from typing import Any

import pytest
from anthropic.types import Message, TextBlock, Usage

from cascade.errors import MalformedResponseError
from cascade.providers.anthropic import AnthropicProvider
from cascade.providers.base import CompletionRequest, ProviderSettings
from cascade.providers.base import Message as ChatMessage

REQUEST = CompletionRequest(model="claude-3-5-haiku-latest", messages=(ChatMessage("user", "q"),), max_output_tokens=64)


def _reply(usage: dict[str, Any], blocks: list[Any], stop_reason: Any = "end_turn") -> Message:
    return Message.model_construct(
        id="msg_1",
        type="message",
        role="assistant",
        model="claude-3-5-haiku-20241022",
        content=blocks,
        stop_reason=stop_reason,
        usage=Usage.model_construct(**usage),
    )


def _text(text: Any) -> TextBlock:
    return TextBlock.model_construct(type="text", text=text)


def _parse(reply: Message) -> Any:
    return AnthropicProvider(ProviderSettings(api_key="k")).parse(reply, REQUEST, 0.1)


def test_cache_reads_and_writes_count_as_input() -> None:
    usage = {"input_tokens": 10, "output_tokens": 3, "cache_read_input_tokens": 100, "cache_creation_input_tokens": 5}
    completion = _parse(_reply(usage, [_text("Hel"), _text("lo")]))
    assert (completion.text, completion.input_tokens, completion.cached_input_tokens) == ("Hello", 115, 100)
    assert completion.output_tokens == 3 and completion.finish_reason == "stop"


@pytest.mark.parametrize(
    ("usage", "blocks", "stop_reason", "problem"),
    [
        ({"input_tokens": -1, "output_tokens": 3}, [_text("a")], "end_turn", "unusable token counts"),
        ({"input_tokens": 1, "output_tokens": "3"}, [_text("a")], "end_turn", "unusable token counts"),
        (
            {"input_tokens": 1, "output_tokens": 3, "cache_read_input_tokens": 2.5},
            [_text("a")],
            "end_turn",
            "unusable token counts",
        ),
        ({"input_tokens": 1}, [_text("a")], "end_turn", "no usage"),
        ({"input_tokens": 1, "output_tokens": 3}, [_text(None)], "end_turn", "text block without text"),
        ({"input_tokens": 1, "output_tokens": 3}, [_text("a")], None, "no stop_reason"),
        ({"input_tokens": 1, "output_tokens": 3}, [], "end_turn", "no text content"),
    ],
)
def test_unusable_replies_are_malformed(
    usage: dict[str, Any], blocks: list[Any], stop_reason: Any, problem: str
) -> None:
    with pytest.raises(MalformedResponseError, match=problem):
        _parse(_reply(usage, blocks, stop_reason))
