"""What every adapter must do, checked on recorded traffic of each vendor, through `Cascade`, sync and async.

Cassettes live in `cassettes/<vendor>/`; see tests/recorded/conftest.py for how tests run and tests/conftest.py
for how cassettes are replayed and synthesized.
"""

from __future__ import annotations

import json

import pytest

from cascade import CascadeExhausted, CascadeResult
from cascade.errors import (
    ContentBlockedError,
    MalformedResponseError,
    MissingAPIKeyError,
    OverloadedError,
    ProviderError,
    RateLimitedError,
    ServerError,
    TruncatedError,
    VendorHTTPError,
)
from cascade.providers import DEFAULT_KEY_ENV
from cascade.providers.base import Completion
from cascade.testing.wire import FakeReply
from tests.recorded.harness import Replay, assert_recorded
from tests.recorded.vendors import ANTHROPIC, GOOGLE, GOOGLE_LEGACY, OPENAI, QUESTION, SCORE_LOGPROBS, usd

NOT_JSON = FakeReply(200, "<html><body>Service temporarily unavailable</body></html>", {"content-type": "text/html"})
CUT_OFF_JSON = FakeReply(
    200, '{"id": "chatcmpl-AbC123", "object": "chat.completion", "choi', {"content-type": "application/json"}
)


@pytest.mark.vcr
@pytest.mark.replies(lambda v: [v.answer("4", input_tokens=27, output_tokens=1)])
async def test_answer_with_usage_and_cost(replay: Replay) -> None:
    vendor = replay.vendor
    result = await replay.ask()
    (attempt,) = result.attempts
    (completion,) = replay.seen
    assert (result.answer, result.stage, result.accepted, result.confidence) == ("4", "only", True, None)
    assert (attempt.role, attempt.served_by, attempt.finish_reason) == ("answer", vendor.served_by, "stop")
    assert (attempt.input_tokens, attempt.output_tokens, attempt.cached_input_tokens) == (27, 1, 0)
    assert attempt.request_id in vendor.request_ids(replay.replies[0])
    assert attempt.cost_usd == result.cost_usd == pytest.approx(usd(vendor, 27, 1))
    assert isinstance(completion, Completion) and completion.usable
    assert completion.provider == vendor.provider
    assert completion.first_token_logprobs == {}  # none asked for


@pytest.mark.vcr
@pytest.mark.vendors(OPENAI, GOOGLE, GOOGLE_LEGACY)
@pytest.mark.replies(lambda v: [v.answer("4", input_tokens=27, output_tokens=1), v.scored(SCORE_LOGPROBS)])
async def test_judge_reads_first_token_logprobs(replay: Replay) -> None:
    result = await replay.ask(judge={"method": "logprobs", "max_output_tokens": 1})
    answered, judged = replay.seen
    assert isinstance(answered, Completion) and answered.first_token_logprobs == {}  # only the judge asks
    assert isinstance(judged, Completion) and judged.text == "8"
    assert judged.first_token_logprobs == pytest.approx(SCORE_LOGPROBS)
    assert result.confidence == pytest.approx((8 * 0.7 + 9 * 0.2 + 7 * 0.1) / 10)
    assert [a.role for a in result.attempts] == ["answer", "judge"]
    assert result.attempts[1].confidence == result.confidence


@pytest.mark.vcr
@pytest.mark.replies(lambda v: [v.rate_limited(retry_after=20)])
async def test_rate_limited_keeps_the_retry_hint(replay: Replay) -> None:
    error = await replay.failed_call()
    _assert_vendor_error(replay, error, replay.replies[0])
    assert isinstance(error, RateLimitedError) and error.retryable
    assert (error.status_code, error.retry_after) == (429, 20.0)


@pytest.mark.vcr
@pytest.mark.replies(lambda v: [v.overloaded()])
async def test_overloaded(replay: Replay) -> None:
    error = await replay.failed_call()
    _assert_vendor_error(replay, error, replay.replies[0])
    assert isinstance(error, OverloadedError) and error.retryable
    assert error.status_code == replay.vendor.overloaded_status


@pytest.mark.vcr
@pytest.mark.replies(lambda v: [v.answer("4", input_tokens=27, output_tokens=1), v.server_error()])
async def test_server_error_fails_only_its_own_query(replay: Replay) -> None:
    """A batch (`run_many`, `arun_many`) keeps its order, a failed query's error in its place."""
    answered, failed = await replay.ask_many([QUESTION, "What is 3 + 3? Reply with the number only."])
    assert isinstance(answered, CascadeResult) and answered.answer == "4"
    assert isinstance(failed, CascadeExhausted) and failed.result.answer is None
    completion, error = replay.seen
    assert isinstance(completion, Completion) and completion.text == "4"
    assert isinstance(error, ServerError) and not isinstance(error, OverloadedError)
    assert error.status_code == 500 and error.retryable
    (attempt,) = failed.attempts
    assert_recorded(attempt, error)
    _assert_vendor_error(replay, error, replay.replies[1])


def _assert_vendor_error(replay: Replay, error: ProviderError, reply: FakeReply) -> None:
    """The adapter's error for an error reply keeps the vendor's body and quotes its words."""
    assert isinstance(error, VendorHTTPError)
    assert error.body == replay.vendor.error_body(reply)
    assert [words for words in replay.vendor.error_words(reply) if words not in str(error)] == []


@pytest.mark.vcr
@pytest.mark.vendors(OPENAI, ANTHROPIC)
@pytest.mark.replies(lambda v: [v.refusal(input_tokens=31, output_tokens=3)])
async def test_refusal_is_billed_and_not_an_answer(replay: Replay) -> None:
    refusal = replay.vendor.refusal_text
    completion, attempt, error = await replay.unusable_answer()
    assert isinstance(error, ContentBlockedError) and refusal in str(error)
    assert (completion.text, completion.finish_reason, completion.refusal) == (None, "refusal", refusal)
    assert (attempt.input_tokens, attempt.output_tokens) == (31, 3)
    assert attempt.cost_usd == pytest.approx(usd(replay.vendor, 31, 3))  # billed all the same


@pytest.mark.vcr
@pytest.mark.replies(lambda v: [v.answer("The capital of France is", input_tokens=15, output_tokens=5, truncated=True)])
async def test_truncated_at_max_output_tokens(replay: Replay) -> None:
    question = "What is the capital of France?"
    completion, attempt, error = await replay.unusable_answer(question, system=None, max_output_tokens=5)
    assert isinstance(error, TruncatedError)
    assert (completion.finish_reason, completion.text) == ("length", "The capital of France is")
    assert attempt.output_tokens == 5


@pytest.mark.vcr
@pytest.mark.replies(lambda v: [v.without_usage()])
async def test_reply_without_usage_is_malformed(replay: Replay) -> None:
    error = await replay.failed_call()
    assert isinstance(error, MalformedResponseError) and replay.vendor.no_usage_words in str(error)


@pytest.mark.vcr
@pytest.mark.replies(lambda v: [NOT_JSON])
async def test_reply_that_is_not_json_is_malformed(replay: Replay) -> None:
    error = await replay.failed_call()
    assert isinstance(error, MalformedResponseError) and replay.vendor.not_json_words in str(error)


# The SDK raises json.JSONDecodeError itself for a JSON content type over a body that is not JSON. (Both google
# backends read every body the same way, whatever its content type: `test_reply_that_is_not_json_is_malformed`.)
@pytest.mark.vcr
@pytest.mark.vendors(OPENAI, ANTHROPIC)
@pytest.mark.replies(lambda v: [CUT_OFF_JSON])
async def test_cut_off_json_is_malformed(replay: Replay) -> None:
    error = await replay.failed_call()
    assert isinstance(error, MalformedResponseError) and "reply body is not JSON" in str(error)
    assert isinstance(error.__cause__, json.JSONDecodeError)


async def test_missing_key_names_the_variables(replay: Replay, monkeypatch: pytest.MonkeyPatch) -> None:
    for var in DEFAULT_KEY_ENV[replay.vendor.provider]:
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(MissingAPIKeyError, match=replay.vendor.missing_key_words):
        await replay.ask()
