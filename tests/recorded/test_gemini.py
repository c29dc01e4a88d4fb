"""What only Gemini does, on both google backends (google-genai, and the legacy google-generativeai):
thinking billed as output, safety blocks of the answer or of the prompt, and retry hints in the error body."""

from __future__ import annotations

import pytest

from cascade.errors import ContentBlockedError, RateLimitedError
from cascade.result import Attempt
from cascade.testing.wire import FakeReply
from tests.recorded.harness import Replay
from tests.recorded.vendors import CONVERSATION, GOOGLE, GOOGLE_LEGACY

pytestmark = pytest.mark.vendors(GOOGLE, GOOGLE_LEGACY)


@pytest.mark.vcr
@pytest.mark.replies(lambda v: [v.reply(None, input_tokens=18, output_tokens=0, finish_reason="SAFETY")])
async def test_answer_blocked_for_safety(replay: Replay) -> None:
    attempt = await _blocked(replay, "answer blocked: SAFETY")
    assert (attempt.input_tokens, attempt.output_tokens) == (18, 0)


@pytest.mark.vcr
@pytest.mark.replies(lambda v: [v.reply(None, input_tokens=18, output_tokens=0, block_reason="PROHIBITED_CONTENT")])
async def test_prompt_blocked(replay: Replay) -> None:
    attempt = await _blocked(replay, "prompt blocked: PROHIBITED_CONTENT")
    assert attempt.input_tokens == 18


async def _blocked(replay: Replay, refusal: str) -> Attempt:
    completion, attempt, error = await replay.unusable_answer()
    assert isinstance(error, ContentBlockedError)
    assert (completion.text, completion.finish_reason, completion.refusal) == (None, "blocked", refusal)
    return attempt


def _with_retry_after_header(reply: FakeReply, seconds: str) -> FakeReply:
    return FakeReply(reply.status, reply.body, {**reply.headers, "retry-after": seconds})


@pytest.mark.vcr
@pytest.mark.replies(lambda v: [_with_retry_after_header(v.rate_limited(retry_after=37), "5")])
async def test_retry_after_header_wins_over_retry_info(replay: Replay) -> None:
    error = await replay.failed_call()
    assert isinstance(error, RateLimitedError)
    assert error.retry_after == 5.0  # not the body's 37 s


@pytest.mark.vcr
@pytest.mark.replies(lambda v: [v.reply("12", input_tokens=31, output_tokens=1, thoughts_tokens=24, cached_tokens=16)])
async def test_thinking_is_billed_as_output(replay: Replay) -> None:
    """The legacy SDK's protos predate `thoughtsTokenCount` and drop it: its adapter recovers it from the total."""
    result = await replay.ask(CONVERSATION)
    (attempt,) = result.attempts
    assert result.answer == "12"
    assert (attempt.input_tokens, attempt.cached_input_tokens, attempt.output_tokens) == (31, 16, 1 + 24)
    # Cache reads billed at the cached rate: 15 x $0.30 + 16 x $0.03 + 25 x $2.50 per million tokens.
    assert attempt.cost_usd == pytest.approx((15 * 0.30 + 16 * 0.03 + 25 * 2.50) / 1e6)
