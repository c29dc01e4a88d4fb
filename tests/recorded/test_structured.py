"""Structured answers, tool calls and tool results on every adapter's recorded traffic, sync and async.

Each vendor is asked through its own feature (OpenAI json_schema, Anthropic output_config, Gemini's response
schema; tools and tool results in each one's format): the cassettes hold the requests the SDKs really send, matched
on their bodies, and the replies in the vendors' wire formats, read by their SDKs.
"""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Any

import pytest
from pydantic import BaseModel

from cascade import CascadeExhausted
from cascade.providers.base import Completion
from tests.recorded.harness import Replay
from tests.recorded.vendors import Vendor, usd

TICKET = "I was charged twice for my subscription this month."
BILLING = {"category": "billing", "urgent": False}


class Category(StrEnum):
    billing = "billing"
    bug = "bug"


class Ticket(BaseModel):
    category: Category
    urgent: bool


LOOKUP = {
    "type": "function",
    "function": {
        "name": "lookup_order",
        "description": "Find an order by its id.",
        "parameters": {
            "type": "object",
            "properties": {"order_id": {"type": "string"}},
            "required": ["order_id"],
        },
    },
}
CALLS = [
    {"id": "call_a1", "name": "lookup_order", "arguments": {"order_id": "A1"}},
    {"id": "call_b2", "name": "lookup_order", "arguments": {"order_id": "B2"}},
]
WHERE = "Where are my orders A1 and B2?"
TOOL_CONVERSATION = [
    {"role": "user", "content": WHERE},
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": c["id"],
                "type": "function",
                "function": {"name": c["name"], "arguments": json.dumps(c["arguments"])},
            }
            for c in CALLS
        ],
    },
    {"role": "tool", "tool_call_id": "call_a1", "content": json.dumps({"status": "shipped"})},
    {"role": "tool", "tool_call_id": "call_b2", "content": json.dumps({"status": "packing"})},
]


@pytest.mark.vcr
@pytest.mark.replies(lambda v: [v.structured(BILLING, input_tokens=96, output_tokens=9)])
async def test_structured_answer_is_validated(replay: Replay, vcr: Any) -> None:
    result = await replay.ask(TICKET, options={"output_type": Ticket})
    (request,) = vcr.requests  # requests match on their bodies: this is the body the SDK sent
    assert asked_schema(replay.vendor, json.loads(request.body)) is not None
    assert result.output == Ticket(category=Category.billing, urgent=False)
    (completion,) = replay.seen
    assert isinstance(completion, Completion) and json.loads(completion.text or "") == BILLING
    assert result.cost_usd == pytest.approx(usd(replay.vendor, 96, 9))


def asked_schema(vendor: Vendor, body: dict[str, Any]) -> Any:
    """The schema a request asks the answer to fit, through the vendor's own feature."""
    if vendor.provider == "openai":
        form = body["response_format"]
        assert form["type"] == "json_schema" and form["json_schema"]["strict"] is True
        return form["json_schema"]["schema"]
    if vendor.provider == "anthropic":
        return body["output_config"]["format"]["schema"]
    config = body["generationConfig"]
    assert config["responseMimeType"] == "application/json"
    return config.get("responseJsonSchema") or config["responseSchema"]  # google-genai / the legacy protos


@pytest.mark.vcr
@pytest.mark.replies(lambda v: [v.structured(dict(BILLING, category="refund"), input_tokens=96, output_tokens=9)])
async def test_structured_answer_outside_the_schema_is_billed_and_fails(replay: Replay) -> None:
    with pytest.raises(CascadeExhausted) as caught:
        await replay.ask(TICKET, options={"output_type": Ticket})
    (attempt,) = caught.value.attempts
    assert attempt.error is not None and attempt.error.type == "OutputSchemaError"
    assert "category" in attempt.error.message
    assert attempt.cost_usd == pytest.approx(usd(replay.vendor, 96, 9))


@pytest.mark.vcr
@pytest.mark.replies(lambda v: [v.tool_calls(CALLS, input_tokens=120, output_tokens=40)])
async def test_parallel_tool_calls_come_back_parsed(replay: Replay) -> None:
    result = await replay.ask(WHERE, options={"tools": [LOOKUP], "tool_choice": "required"})
    assert [(c.name, c.arguments) for c in result.tool_calls] == [(c["name"], c["arguments"]) for c in CALLS]
    assert [c.id for c in result.tool_calls] == [c["id"] for c in CALLS]
    assert result.answer == "" and result.output is None
    (attempt,) = result.attempts
    assert (attempt.finish_reason, attempt.input_tokens, attempt.output_tokens) == ("stop", 120, 40)


@pytest.mark.vcr
@pytest.mark.replies(lambda v: [v.answer("A1 has shipped; B2 is being packed.", input_tokens=180, output_tokens=12)])
async def test_tool_results_are_sent_back(replay: Replay) -> None:
    result = await replay.ask(TOOL_CONVERSATION, options={"tools": [LOOKUP]})
    assert result.answer == "A1 has shipped; B2 is being packed." and result.tool_calls == []


@pytest.mark.vcr
@pytest.mark.replies(
    lambda v: [
        v.structured(BILLING, input_tokens=96, output_tokens=9),
        v.answer('{"score": 9, "reason": "A double charge is a billing matter."}', input_tokens=420, output_tokens=16),
    ]
)
async def test_the_judge_grades_the_structured_answer_against_the_schema(replay: Replay) -> None:
    result = await replay.ask(TICKET, judge={"method": "json"}, options={"output_type": Ticket})
    assert result.confidence == 0.9 and isinstance(result.output, Ticket)
    answer, judge = result.attempts
    assert (answer.role, judge.role) == ("answer", "judge")
