"""Streamed answers on every adapter's recorded traffic, through `Cascade.stream` and `astream`.

The cassettes hold each vendor's SSE stream (the legacy Gemini SDK's JSON-array stream), read by the SDKs' own
streaming code on replay. vcrpy replays a stream as one body, so these tests check what is read, not when.
"""

from __future__ import annotations

from typing import Any

import pytest

from cascade import CascadeExhausted
from cascade.streaming import Final, Reset, StreamEvent, TextDelta, ToolCallDelta
from tests.recorded.harness import Replay
from tests.recorded.vendors import GOOGLE_LEGACY, usd

TEXTS = ["The capital ", "of Australia ", "is Canberra."]
LOOKUP = {
    "type": "function",
    "function": {
        "name": "lookup_order",
        "parameters": {"type": "object", "properties": {"order_id": {"type": "string"}}, "required": ["order_id"]},
    },
}


async def stream(replay: Replay, query: str = "What is the capital of Australia?", **options: Any) -> list[StreamEvent]:
    router = replay.cascade()
    if replay.mode == "sync":
        return list(router.stream(query, **options))
    return [event async for event in router.astream(query, **options)]


@pytest.mark.vcr
@pytest.mark.replies(lambda v: [v.streamed(TEXTS, input_tokens=14, output_tokens=9)])
async def test_a_streamed_answer_arrives_in_its_pieces(replay: Replay) -> None:
    events = await stream(replay)
    deltas = [e.text for e in events if isinstance(e, TextDelta)]
    assert "".join(deltas) == "".join(TEXTS) and len(deltas) >= 2  # in pieces, not one block
    final = events[-1]
    assert isinstance(final, Final) and final.result.answer == "".join(TEXTS)
    (attempt,) = final.result.attempts
    # Usage comes from the stream itself.
    assert (attempt.input_tokens, attempt.output_tokens, attempt.finish_reason) == (14, 9, "stop")
    assert attempt.cost_usd == pytest.approx(usd(replay.vendor, 14, 9))


@pytest.mark.vcr
@pytest.mark.replies(
    lambda v: [
        v.streamed(
            [],
            input_tokens=40,
            output_tokens=18,
            tool_calls=[{"id": "call_s1", "name": "lookup_order", "arguments": {"order_id": "A1"}}],
        )
    ]
)
async def test_a_streamed_tool_call(replay: Replay) -> None:
    events = await stream(replay, "Where is order A1?", tools=[LOOKUP])
    deltas = [e for e in events if isinstance(e, ToolCallDelta)]
    assert deltas and deltas[0].name == "lookup_order"
    final = events[-1]
    assert isinstance(final, Final)
    assert [(c.name, c.arguments) for c in final.result.tool_calls] == [("lookup_order", {"order_id": "A1"})]


@pytest.mark.vcr
@pytest.mark.replies(lambda v: [v.overloaded_mid_stream(TEXTS[:2])])
async def test_an_error_inside_the_stream_is_no_answer(replay: Replay) -> None:
    events: list[StreamEvent] = []
    with pytest.raises(CascadeExhausted) as caught:
        router = replay.cascade()
        if replay.mode == "sync":
            for event in router.stream("What is the capital of Australia?"):
                events.append(event)
        else:
            async for event in router.astream("What is the capital of Australia?"):
                events.append(event)
    (attempt,) = caught.value.result.attempts
    assert attempt.error is not None
    # The legacy SDK's protos drop the error object of a stream: it reads as a stream that broke off.
    expected = "StreamInterruptedError" if replay.vendor is GOOGLE_LEGACY else "OverloadedError"
    assert attempt.error.type == expected
    shown = [e for e in events if isinstance(e, TextDelta)]
    if shown:  # what was shown of the broken stream is withdrawn
        assert isinstance(events[-1], Reset)
