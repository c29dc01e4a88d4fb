"""`Cascade.stream` / `astream` with scripted vendors: what is shown, when, and what is withdrawn."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cascade import Cascade, CascadeExhausted
from cascade.errors import InvalidArgumentError, ServerError, VendorConnectionError
from cascade.policy import Policy
from cascade.providers.base import CompletionRequest, ToolCallPiece
from cascade.streaming import Final, Reset, StreamEvent, TextDelta, ToolCallDelta
from cascade.testing import ScriptedProvider, Streamed, completion, is_judge_request, judge_reply

MODELS = {"mini": "gpt-4o-mini", "flash": "gemini-2.5-flash", "sonnet": "claude-sonnet-4-5"}
VENDORS = {"mini": "openai", "flash": "google", "sonnet": "anthropic"}


def policy(**fields: Any) -> Policy:
    stages = [
        {"name": "mini", "provider": "openai", "model": MODELS["mini"], "threshold": 0.8, "retries": 0},
        {"name": "flash", "provider": "google", "model": MODELS["flash"], "threshold": 0.7, "retries": 0},
        {"name": "sonnet", "provider": "anthropic", "model": MODELS["sonnet"], "retries": 0},
    ]
    return Policy.from_dict({"name": "streamed", "version": "1", "stages": stages, **fields})


class Script:
    """Per stage: the pieces its answer streams in (or an error where it breaks) and its judge's score."""

    def __init__(self, answers: dict[str, Any], scores: dict[str, int]) -> None:
        self.answers, self.scores = answers, scores
        by_model = {model: stage for stage, model in MODELS.items()}
        self.by_model = by_model

    def reply(self, request: CompletionRequest) -> Any:
        if is_judge_request(request):
            prompt = request.messages[0].content
            stage = next((s for s in MODELS if f"[{s}]" in prompt), None)  # None: tool calls, scored 9
            return judge_reply(request, self.scores.get(stage, 9) if stage else 9)
        return self.answers[self.by_model[request.model]]

    def router(self, chosen: Policy | None = None) -> Cascade:
        providers = {v: ScriptedProvider(v, self.reply) for v in ("openai", "google", "anthropic")}
        return Cascade(chosen or policy(), providers=providers)


def pieces(stage: str, n: int = 3) -> Streamed:
    """An answer that names its stage (so the judge script knows whose it grades), in `n` pieces."""
    return Streamed([f"[{stage}]", *[f" part{i}" for i in range(1, n)]])


def text_of(stage: str, n: int = 3) -> str:
    return f"[{stage}]" + "".join(f" part{i}" for i in range(1, n))


def shown(events: list[StreamEvent]) -> str:
    """What the reader sees at the end: the text since the last reset."""
    text = ""
    for event in events:
        if isinstance(event, Reset):
            text = ""
        elif isinstance(event, TextDelta):
            text += event.text
    return text


def collect(router: Cascade, mode: str | None, query: Any = "q", **options: Any) -> list[StreamEvent]:
    return list(router.stream(query, mode=mode, **options))  # type: ignore[arg-type]


async def acollect(router: Cascade, mode: str | None, query: Any = "q", **options: Any) -> list[StreamEvent]:
    return [event async for event in router.astream(query, mode=mode, **options)]  # type: ignore[arg-type]


ESCALATING = Script({s: pieces(s) for s in MODELS}, {"mini": 3, "flash": 9})


def test_buffered_never_shows_a_rejected_answer_and_releases_the_accepted_one_whole() -> None:
    events = collect(ESCALATING.router(), "buffered")
    assert not any(isinstance(e, Reset) for e in events)  # nothing shown had to be withdrawn
    assert [e for e in events if isinstance(e, TextDelta)] == [TextDelta("flash", text_of("flash"))]
    final = events[-1]
    assert isinstance(final, Final) and final.result.stage == "flash" and final.result.answer == text_of("flash")


def test_buffered_streams_the_last_stage_straight_through() -> None:
    script = Script({s: pieces(s) for s in MODELS}, {"mini": 3, "flash": 2})
    events = collect(script.router(), None)  # the policy's mode: buffered by default
    deltas = [e for e in events if isinstance(e, TextDelta)]
    assert [d.text for d in deltas] == ["[sonnet]", " part1", " part2"]  # piece by piece, as they came
    assert {d.stage for d in deltas} == {"sonnet"}


def test_buffered_streams_a_rule_routed_stage_straight_through() -> None:
    routed = policy(routing={"rules": [{"name": "urgent", "stage": "flash", "keywords": ["urgent"]}]})
    script = Script({s: pieces(s) for s in MODELS}, {"flash": 9})
    events = collect(script.router(routed), "buffered", "urgent: q")
    assert [e.text for e in events if isinstance(e, TextDelta)] == ["[flash]", " part1", " part2"]
    assert events[-1].result.route == "rule:urgent"  # type: ignore[union-attr]


def test_speculative_shows_at_once_and_resets_on_rejection() -> None:
    events = collect(ESCALATING.router(), "speculative")
    kinds = [type(e).__name__ for e in events]
    assert kinds == ["TextDelta"] * 3 + ["Reset"] + ["TextDelta"] * 3 + ["Final"]
    reset = events[3]
    assert isinstance(reset, Reset) and reset.stage == "mini" and "0.30 below the threshold 0.8" in reset.reason
    assert shown(events) == text_of("flash") == events[-1].result.answer  # type: ignore[union-attr]


def test_final_mode_streams_only_the_last_stage() -> None:
    script = Script({s: pieces(s) for s in MODELS}, {"mini": 9})
    router = script.router()
    events = collect(router, "final")
    # The accepted first stage was not streamed: it is shown whole once accepted.
    assert [e for e in events if isinstance(e, TextDelta)] == [TextDelta("mini", text_of("mini"))]
    escalated = collect(Script({s: pieces(s) for s in MODELS}, {"mini": 1, "flash": 1}).router(), "final")
    assert [e.text for e in escalated if isinstance(e, TextDelta)] == ["[sonnet]", " part1", " part2"]


def test_a_broken_stream_is_withdrawn_recorded_and_escalated() -> None:
    broken = Streamed(["[mini]", " part1"], then=VendorConnectionError("connection reset", provider="openai"))
    script = Script({"mini": broken, "flash": pieces("flash"), "sonnet": pieces("sonnet")}, {"flash": 9})
    events = collect(script.router(), "speculative")
    reset = next(e for e in events if isinstance(e, Reset))
    assert reset.stage == "mini" and "VendorConnectionError" in reset.reason
    result = events[-1].result  # type: ignore[union-attr]
    assert result.stage == "flash" and shown(events) == result.answer
    failed = result.attempts[0]
    assert (failed.stage, failed.error.type) == ("mini", "VendorConnectionError")  # type: ignore[union-attr]


def test_a_truncated_stream_is_no_answer() -> None:
    cut = Streamed(["[mini] and then"], then=completion("[mini] and then", finish_reason="length"))
    script = Script({"mini": cut, "flash": pieces("flash"), "sonnet": pieces("sonnet")}, {"flash": 9})
    events = collect(script.router(), "speculative")
    assert next(e for e in events if isinstance(e, Reset)).reason.startswith("TruncatedError")
    assert events[-1].result.stage == "flash"  # type: ignore[union-attr]


def test_every_tier_failing_raises_after_withdrawing_what_was_shown() -> None:
    def broken(stage: str) -> Streamed:
        return Streamed([f"[{stage}]"], then=ServerError("HTTP 500", provider=VENDORS[stage]))

    script = Script({s: broken(s) for s in MODELS}, {})
    stream = script.router().stream("q", mode="speculative")
    events: list[StreamEvent] = []
    with pytest.raises(CascadeExhausted) as caught:
        for event in stream:
            events.append(event)
    assert shown(events) == ""  # every piece shown was withdrawn
    assert isinstance(events[-1], Reset) and len(caught.value.result.attempts) == 3


def test_tool_call_deltas_stream_and_the_final_result_has_the_parsed_calls() -> None:
    tools = [{"name": "lookup_order", "parameters": {"type": "object", "properties": {"order_id": {"type": "string"}}}}]
    call = completion(None, tool_calls=[{"id": "call_1", "name": "lookup_order", "arguments": {"order_id": "A1"}}])
    streamed = Streamed(
        [ToolCallPiece(0, "call_1", "lookup_order", '{"order_'), ToolCallPiece(0, None, None, 'id": "A1"}')],
        then=call,
    )
    script = Script({"mini": streamed, "flash": streamed, "sonnet": streamed}, {"mini": 9})
    events = collect(script.router(policy(judge_last_stage=False)), "speculative", tools=tools)
    deltas = [e for e in events if isinstance(e, ToolCallDelta)]
    assert "".join(d.arguments for d in deltas) == '{"order_id": "A1"}' and deltas[0].name == "lookup_order"
    assert events[-1].result.tool_calls[0].arguments == {"order_id": "A1"}  # type: ignore[union-attr]


def test_the_async_stream_shows_the_same() -> None:
    for mode in ("buffered", "speculative", "final"):
        sync = collect(ESCALATING.router(), mode)
        async_ = asyncio.run(acollect(ESCALATING.router(), mode))
        assert [e for e in sync if not isinstance(e, Final)] == [e for e in async_ if not isinstance(e, Final)]
        assert sync[-1].result.answer == async_[-1].result.answer  # type: ignore[union-attr]


def test_an_unknown_mode_is_refused() -> None:
    with pytest.raises(InvalidArgumentError, match="buffered, speculative, final"):
        collect(ESCALATING.router(), "eager")


def test_the_policy_sets_the_default_mode() -> None:
    events = collect(ESCALATING.router(policy(stream={"mode": "speculative"})), None)
    assert any(isinstance(e, Reset) for e in events)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    mode=st.sampled_from(["buffered", "speculative", "final"]),
    scores=st.fixed_dictionaries({"mini": st.integers(0, 10), "flash": st.integers(0, 10)}),
    breaks=st.fixed_dictionaries({s: st.booleans() for s in MODELS}),
)
def test_what_is_left_on_show_is_always_the_result(mode: str, scores: dict[str, int], breaks: dict[str, bool]) -> None:
    """Whatever the scores and broken streams: the text on show at the end is the result's answer (no rejected
    answer stays shown), and a failed query leaves nothing on show."""

    def answer(stage: str) -> Streamed:
        if breaks[stage]:
            return Streamed([f"[{stage}]"], then=VendorConnectionError("reset", provider=VENDORS[stage]))
        return pieces(stage)

    script = Script({s: answer(s) for s in MODELS}, scores)
    events: list[StreamEvent] = []
    try:
        for event in script.router().stream("q", mode=mode):  # type: ignore[arg-type]
            events.append(event)
    except CascadeExhausted:
        assert shown(events) == ""
        return
    final = events[-1]
    assert isinstance(final, Final) and shown(events) == final.result.answer
    assert sum(isinstance(e, Final) for e in events) == 1
