"""Whatever a judge replies, parsing gives a `Verdict` or a `JudgeError`, never another exception; through the
engine a `JudgeError` is confidence 0 and an escalation."""

from __future__ import annotations

import math
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cascade import Cascade
from cascade.errors import JudgeError
from cascade.judge import Verdict, parse_json_verdict, score_from_logprobs
from cascade.policy import Policy
from cascade.testing import ScriptedProvider
from cascade.testing.scripted import completion

CHEAP, STRONG, JUDGE = "gpt-4.1-nano", "claude-haiku-4-5", "gpt-4o-mini"


def _policy(method: str) -> Policy:
    return Policy.from_dict({
        "name": "judge-parse", "version": "1",
        "stages": [
            {"name": "cheap", "provider": "openai", "model": CHEAP, "threshold": 0.5},
            {"name": "strong", "provider": "anthropic", "model": STRONG},
        ],
        "judge": {"provider": "openai", "model": JUDGE, "method": method},
    })  # fmt: skip


def _checked(parse: object) -> Verdict | None:
    """The verdict, or None for a JudgeError; any other exception fails the test."""
    try:
        verdict = parse()  # type: ignore[operator]
    except JudgeError as exc:
        assert str(exc)
        return None
    assert isinstance(verdict, Verdict)
    assert math.isfinite(verdict.confidence) and 0 <= verdict.confidence <= 1
    return verdict


@pytest.mark.parametrize(
    ("logprobs", "reply"),
    [
        ({"²": -0.1}, "²"),  # str.isdigit() is True for "²"; int("²") raises ValueError
        ({"8": 1000.0}, "8"),  # math.exp(1000) raises OverflowError
        ({"8": float("nan")}, "8"),
        ({"8": 10**400}, "8"),  # float() of the int overflows
        ({"8": "-0.1"}, "8"),  # not a number at all
        ({"8": 0.0, "9": 0.0}, "8"),  # two certain tokens: not a distribution
        ({}, "²"),  # the text fallback has the same digit trap
        ({}, "1" * 5000),  # int() refuses strings of more than 4,300 digits
    ],
    ids=repr,
)
def test_bad_log_probabilities_are_judge_errors(logprobs: dict[str, object], reply: str) -> None:
    with pytest.raises(JudgeError):
        score_from_logprobs(logprobs, reply)  # type: ignore[arg-type]


def test_other_digit_characters_are_not_score_tokens() -> None:
    # "٣" is an Arabic-Indic 3, which int() reads; the judge was asked for 0-10 in ASCII digits.
    verdict = score_from_logprobs({"٣": math.log(0.9), "8": math.log(0.1)}, "٣")
    assert verdict.confidence == pytest.approx(0.8)


@pytest.mark.parametrize(
    "reply",
    [
        '{"score": 0, "score": 10}',  # json.loads keeps the last: it passed as a 10
        '{"score": 10, "reason": "a", "reason": "b"}',
        '{"score": 9, "reason": {"x": 1, "x": 2}}',
        '{"score": 1' + "0" * 400 + "}",  # float() of a 401-digit int raises OverflowError
        "[" * 100_000 + "]" * 100_000,  # json.loads raises RecursionError
        '{"score": ' + "9" * 5000 + "}",  # int() refuses more than 4,300 digits
        '{"score": NaN}',
        '{"score": Infinity}',
    ],
    ids=lambda r: r[:40],
)
def test_bad_json_verdicts_are_judge_errors(reply: str) -> None:
    with pytest.raises(JudgeError):
        parse_json_verdict(reply)


def test_an_unclosed_fence_of_whitespace_is_read_at_once() -> None:
    """The fence regex used to backtrack cubically: 2,000 spaces took 5 s, 8,000 about 5 minutes."""
    started = time.perf_counter()
    with pytest.raises(JudgeError):
        parse_json_verdict("```" + " " * 3000 + "x")
    assert time.perf_counter() - started < 2.0
    assert parse_json_verdict("```json\n" + " " * 3000 + '{"score": 7}\n```').confidence == 0.7


@settings(max_examples=500, deadline=None)
@given(st.text(max_size=300))
def test_any_json_reply_is_a_verdict_or_a_judge_error(reply: str) -> None:
    _checked(lambda: parse_json_verdict(reply))


verdict_like = st.builds(
    lambda score, reason, extra: f'{{"score": {score}, "reason": {reason}{extra}}}',
    st.one_of(st.integers(-(10**500), 10**500).map(str), st.floats().map(repr), st.sampled_from(["NaN", "true"])),
    st.one_of(st.just('"ok"'), st.integers().map(str), st.just("[1, [2]]")),
    st.sampled_from(["", ', "score": 3', ', "reason": "x"', "}", " {}"]),
)


@settings(max_examples=300, deadline=None)
@given(verdict_like)
def test_near_verdicts_are_a_verdict_or_a_judge_error(reply: str) -> None:
    _checked(lambda: parse_json_verdict(reply))


logprob_values = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-(10**400), 10**400),
    st.booleans(),
    st.none(),
    st.text(max_size=5),
)
tokens = st.one_of(st.text(max_size=4), st.sampled_from(["0", "7", " 8", "10", "11", "²", "٣", "08", "1" * 5000]))


@settings(max_examples=500, deadline=None)
@given(st.dictionaries(tokens, logprob_values, max_size=8), st.one_of(st.none(), tokens))
def test_any_log_probabilities_give_a_verdict_or_a_judge_error(logprobs: dict[str, object], reply: str | None) -> None:
    _checked(lambda: score_from_logprobs(logprobs, reply))  # type: ignore[arg-type]


def _router(method: str, judge_reply: object) -> tuple[Cascade, ScriptedProvider]:
    openai = ScriptedProvider("openai", {CHEAP: ["Canberra."], JUDGE: [judge_reply]})  # type: ignore[list-item]
    anthropic = ScriptedProvider("anthropic", {STRONG: ["Canberra, the capital."]})
    return Cascade(_policy(method), providers={"openai": openai, "anthropic": anthropic}), openai


@pytest.mark.parametrize(
    ("method", "judge_reply"),
    [
        ("logprobs", completion("²", model=JUDGE, first_token_logprobs={"²": -0.01})),
        ("logprobs", completion("9", model=JUDGE, first_token_logprobs={"9": 1000.0})),
        ("json", '{"score": 0, "score": 10}'),
    ],
    ids=["superscript token", "logprob 1000", "duplicate key"],
)
def test_through_the_engine_a_bad_verdict_is_confidence_0_and_escalates(method: str, judge_reply: object) -> None:
    router, _ = _router(method, judge_reply)
    result = router.run("What is the capital of Australia?")
    [judged] = [a for a in result.attempts if a.role == "judge"]
    assert judged.error is not None and judged.error.type == "JudgeError"
    assert judged.confidence == 0.0
    assert (result.stage, result.escalations) == ("strong", 1)
