"""What only OpenAI does: cached prompt tokens inside `prompt_tokens`, `content_filter`, and its request body.

The request body tests talk to a local fake server (nothing recorded), so that they see the very JSON sent.
"""

from __future__ import annotations

import pytest

from cascade.errors import ContentBlockedError
from cascade.providers.base import CompletionRequest, Message
from cascade.testing import FakeVendorServer
from tests.recorded.harness import Replay
from tests.recorded.vendors import OPENAI, SCORE_LOGPROBS, SYSTEM

pytestmark = pytest.mark.vendors(OPENAI)


@pytest.mark.vcr
@pytest.mark.replies(lambda v: [v.reply("12", input_tokens=1200, output_tokens=1, cached_tokens=1024)])
async def test_cached_prompt_tokens_are_billed_at_the_cached_rate(replay: Replay) -> None:
    result = await replay.ask()
    (attempt,) = result.attempts
    assert (attempt.input_tokens, attempt.cached_input_tokens) == (1200, 1024)  # prompt_tokens include them
    assert attempt.cost_usd == pytest.approx((176 * 0.15 + 1024 * 0.075 + 1 * 0.60) / 1e6)


@pytest.mark.vcr
@pytest.mark.replies(lambda v: [v.reply(None, input_tokens=30, output_tokens=0, finish_reason="content_filter")])
async def test_content_filter_is_a_block(replay: Replay) -> None:
    completion, attempt, error = await replay.unusable_answer()
    assert isinstance(error, ContentBlockedError)
    assert (completion.text, completion.finish_reason) == (None, "blocked")
    assert attempt.input_tokens == 30


async def test_request_body_and_request_id(server: FakeVendorServer, replay: Replay) -> None:
    answer = OPENAI.answer("4", input_tokens=27, output_tokens=1)
    server.script("openai", answer, answer, OPENAI.scored(SCORE_LOGPROBS))
    result = await replay.ask(max_output_tokens=64)
    assert result.attempts[0].request_id == answer.headers["x-request-id"]  # from the header, not the body id
    body = server.requests[0].body
    assert body["messages"][0] == {"role": "system", "content": SYSTEM}
    assert body["max_completion_tokens"] == 64 and "max_tokens" not in body
    assert not {"temperature", "logprobs", "top_logprobs"} & set(body)

    await replay.ask(system=None, temperature=0.0, judge={"method": "logprobs"})
    answered, judged = server.requests[1].body, server.requests[2].body
    assert [m["role"] for m in answered["messages"]] == ["user"]
    assert answered["temperature"] == 0.0 and not {"logprobs", "top_logprobs"} & set(answered)
    assert (judged["temperature"], judged["logprobs"], judged["top_logprobs"]) == (0.0, True, 20)


async def test_top_logprobs_are_capped_at_the_apis_limit(server: FakeVendorServer) -> None:
    """The API rejects more than 20. `Cascade`'s judge never asks for more, so this asks the adapter itself."""
    adapter = OPENAI.adapter()
    reply = OPENAI.scored(SCORE_LOGPROBS)
    server.script("openai", reply, reply)
    request = CompletionRequest(
        model=OPENAI.model, messages=(Message("user", "Score 0-10?"),), max_output_tokens=1, top_logprobs=50
    )
    adapter.complete(request)
    await adapter.acomplete(request)
    await adapter.aclose()
    assert [(r.body["logprobs"], r.body["top_logprobs"]) for r in server.requests] == [(True, 20), (True, 20)]
