"""What only Anthropic does: cache reads and writes apart from `input_tokens`, content blocks, no log-probabilities,
and a request with the system prompt at the top level and no sampling parameters."""

from __future__ import annotations

import json
from typing import Any

import pytest

from cascade.errors import MalformedResponseError
from cascade.providers.base import Completion
from tests.recorded.harness import Replay
from tests.recorded.vendors import ANTHROPIC, CONVERSATION, SYSTEM

pytestmark = pytest.mark.vendors(ANTHROPIC)


def _sent_bodies(cassette: Any) -> list[dict[str, Any]]:
    """The JSON bodies of the cassette's requests: the very bodies sent, since requests match on body."""
    return [json.loads(request.body) for request in cassette.requests]


@pytest.mark.vcr
@pytest.mark.replies(
    lambda v: [
        v.reply("12", input_tokens=25, output_tokens=5, cache_read_input_tokens=2048, cache_creation_input_tokens=512)
    ]
)
async def test_cache_reads_and_writes_are_part_of_the_input(replay: Replay, vcr: Any) -> None:
    result = await replay.ask(CONVERSATION, temperature=0.3)
    (attempt,) = result.attempts
    assert result.answer == "12"
    # The prompt is uncached + cache reads + cache writes; cache reads are also reported on their own.
    assert (attempt.input_tokens, attempt.cached_input_tokens, attempt.output_tokens) == (25 + 2048 + 512, 2048, 5)
    # Each at its own rate: 25 x $1 + 2048 cache reads x $0.10 + 512 cache writes x $1.25 + 5 x $5 per million tokens.
    assert attempt.cost_usd == pytest.approx((25 * 1.00 + 2048 * 0.10 + 512 * 1.25 + 5 * 5.00) / 1e6)

    (sent,) = _sent_bodies(vcr)
    assert sent["system"] == SYSTEM  # top-level, not a message
    assert sent["max_tokens"] == 256
    assert [m["role"] for m in sent["messages"]] == ["user", "assistant", "user"]
    assert "temperature" not in sent  # the 2026-10-21 API version rejects sampling parameters


@pytest.mark.vcr
@pytest.mark.replies(
    lambda v: [v.reply(["The answer", " is 4."], input_tokens=40, output_tokens=96, thinking="2 + 2 is 4.")]
)
async def test_text_blocks_joined_and_thinking_left_out(replay: Replay) -> None:
    result = await replay.ask()
    assert result.answer == "The answer is 4."
    assert result.attempts[0].output_tokens == 96  # thinking is billed in output_tokens already


@pytest.mark.vcr
@pytest.mark.replies(
    lambda v: [
        v.answer("4", input_tokens=27, output_tokens=1),
        v.reply('{"score": 9, "reason": "Correct."}', input_tokens=330, output_tokens=12),
    ]
)
async def test_logprobs_are_not_asked_for(replay: Replay, vcr: Any) -> None:
    """The Messages API has no log-probabilities: a `logprobs` judge sends nothing for them and reads JSON."""
    result = await replay.ask(judge={"method": "logprobs"})
    _, judged = replay.seen
    assert isinstance(judged, Completion) and judged.first_token_logprobs == {}
    assert (result.confidence, result.attempts[1].judge_reason) == (0.9, "Correct.")
    _, judge_request = _sent_bodies(vcr)
    assert set(judge_request) == {"model", "max_tokens", "messages"}


@pytest.mark.vcr
@pytest.mark.replies(lambda v: [v.reply(None, input_tokens=18, output_tokens=2)])
async def test_finished_reply_without_text_is_malformed(replay: Replay) -> None:
    error = await replay.failed_call()
    assert isinstance(error, MalformedResponseError) and "no text content" in str(error)


TICKET_SCHEMA = {
    "type": "object",
    "title": "Ticket",
    "properties": {"category": {"enum": ["billing", "bug"]}, "urgent": {"type": "boolean"}},
    "required": ["category", "urgent"],
}


@pytest.mark.vcr
@pytest.mark.replies(
    lambda v: [
        v.reply(
            None,
            input_tokens=410,
            output_tokens=32,
            tool_uses=[{"id": "toolu_01Q8", "name": "Ticket", "input": {"category": "billing", "urgent": True}}],
        )
    ]
)
async def test_a_claude_3_model_answers_to_a_schema_through_a_forced_tool(replay: Replay, vcr: Any) -> None:
    result = await replay.ask(
        "I was charged twice, and rent is due today!",
        model="claude-3-5-haiku-20241022",
        options={"output_type": TICKET_SCHEMA},
    )
    assert result.output == {"category": "billing", "urgent": True}
    assert result.tool_calls == []  # the forced tool carries the answer: it is no call of the caller's
    (sent,) = _sent_bodies(vcr)
    assert "output_config" not in sent
    assert sent["tool_choice"] == {"type": "tool", "name": "Ticket"}
    assert [t["name"] for t in sent["tools"]] == ["Ticket"] and sent["tools"][0]["input_schema"] == TICKET_SCHEMA
