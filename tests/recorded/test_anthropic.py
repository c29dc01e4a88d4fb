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
