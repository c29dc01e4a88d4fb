"""Tools and structured answers through `cascade serve`, with the real `openai` client (sync, async, streamed)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx2
import openai
import pydantic
import pytest

from cascade.providers.base import CompletionRequest, ToolCall, ToolCallPiece
from cascade.serve import create_app
from cascade.testing import Streamed, completion, judge_json
from tests.serve.conftest import Running, scripted, three_router

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city, now.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
            "additionalProperties": False,
        },
    },
}
ASK = [{"role": "user", "content": "What is the weather in Paris?"}]


def is_judge(request: CompletionRequest) -> bool:
    return "<<<ANSWER " in request.messages[-1].content


def weather_agent(request: CompletionRequest) -> Any:
    """Asked first, the model calls get_weather; given the tool's result, it answers with it. The judge trusts it."""
    if is_judge(request):
        return judge_json(9)
    last = request.messages[-1]
    if last.role == "tool":
        return f"In Paris it is {last.content}."
    call = ToolCall("call_7", "get_weather", {"city": "Paris"})
    return completion(None, model=request.model, provider="openai", tool_calls=[call])


def test_tool_calls_round_trip_through_the_sync_client() -> None:
    vendors = scripted(weather_agent)
    with Running(create_app(three_router(vendors))) as running:
        client = running.client()
        first = client.chat.completions.create(
            model="cascade/three", messages=ASK, tools=[WEATHER], tool_choice="auto", parallel_tool_calls=True
        )
        choice = first.choices[0]
        assert choice.finish_reason == "tool_calls" and choice.message.content is None
        assert choice.message.tool_calls is not None and len(choice.message.tool_calls) == 1
        call = choice.message.tool_calls[0]
        assert call.type == "function" and call.id == "call_7" and call.function.name == "get_weather"
        assert json.loads(call.function.arguments) == {"city": "Paris"}
        # The caller runs the tool and sends its result back with the assistant turn, as it came.
        follow_up = [*ASK, choice.message, {"role": "tool", "tool_call_id": call.id, "content": "sunny, 21 C"}]
        second = client.chat.completions.create(model="cascade/three", messages=follow_up, tools=[WEATHER])
    assert second.choices[0].message.content == "In Paris it is sunny, 21 C."
    assert second.choices[0].finish_reason == "stop" and second.choices[0].message.tool_calls is None
    sent = vendors["openai"].requests
    assert [t.name for t in sent[0].tools] == ["get_weather"] and sent[0].tool_choice is not None
    assert sent[0].tool_choice.mode == "auto"
    answer_turns = [r for r in sent if not is_judge(r)][-1].messages
    assert [m.role for m in answer_turns] == ["user", "assistant", "tool"]
    assert answer_turns[1].tool_calls == (ToolCall("call_7", "get_weather", {"city": "Paris"}),)
    assert answer_turns[2].tool_call_id == "call_7" and answer_turns[2].name == "get_weather"


def test_a_gemini_thought_signature_goes_out_and_comes_back_in_extra_content() -> None:
    def gemini_calls(request: CompletionRequest) -> Any:
        if is_judge(request):
            return judge_json(9)
        if request.messages[-1].role == "tool":
            return "done"
        if request.model == "gpt-4o-mini":  # mini fails: flash (Gemini) answers
            return completion(None, model=request.model, tool_calls=[ToolCall("c1", "no_such_tool", {})])
        return completion(
            None, model=request.model, tool_calls=[ToolCall("c2", "get_weather", {"city": "Oslo"}, "c2ln")]
        )

    vendors = scripted(gemini_calls)
    with Running(create_app(three_router(vendors))) as running:
        client = running.client()
        first = client.chat.completions.create(model="cascade/three", messages=ASK, tools=[WEATHER])
        assert first.model == "gemini-2.0-flash"
        message = first.choices[0].message
        assert message.tool_calls is not None
        assert message.tool_calls[0].model_extra == {"extra_content": {"google": {"thought_signature": "c2ln"}}}
        back = [*ASK, message, {"role": "tool", "tool_call_id": "c2", "content": "snow"}]
        client.chat.completions.create(model="cascade/three", messages=back, tools=[WEATHER])
    sent_back = [r for r in vendors["openai"].requests if not is_judge(r)][-1].messages[1]
    assert sent_back.tool_calls[0].signature == "c2ln"


def test_streamed_tool_calls_arrive_as_openai_streams_them_sync_and_async() -> None:
    def streams_a_call(request: CompletionRequest) -> Any:
        if is_judge(request):
            return judge_json(9)
        call = ToolCall("call_9", "get_weather", {"city": "Paris"})
        pieces = [ToolCallPiece(0, "call_9", "get_weather", '{"ci'), ToolCallPiece(0, None, None, 'ty": "Paris"}')]
        return Streamed(pieces, then=completion(None, model=request.model, tool_calls=[call]))

    vendors = scripted(streams_a_call)
    extension = {"cascade": {"stream_mode": "speculative"}}  # pieces as they come, to see the fragments

    async def streamed_async(url: str) -> list[Any]:
        async with openai.AsyncOpenAI(api_key="none", base_url=url + "/v1", max_retries=0) as client:
            stream = await client.chat.completions.create(
                model="cascade/three", messages=ASK, tools=[WEATHER], stream=True, extra_body=extension
            )
            return [chunk async for chunk in stream]

    with Running(create_app(three_router(vendors))) as running:
        sync_chunks = list(
            running.client().chat.completions.create(
                model="cascade/three", messages=ASK, tools=[WEATHER], stream=True, extra_body=extension
            )
        )
        async_chunks = asyncio.run(streamed_async(running.url))
        with running.client().chat.completions.stream(
            model="cascade/three", messages=ASK, tools=[WEATHER], extra_body=extension
        ) as helper:
            final = helper.get_final_completion()
    for chunks in (sync_chunks, async_chunks):
        first, start, more, ending = chunks
        assert first.choices[0].delta.role == "assistant" and first.choices[0].delta.content is None
        (opened,) = start.choices[0].delta.tool_calls
        assert (opened.index, opened.id, opened.type, opened.function.name) == (0, "call_9", "function", "get_weather")
        (continued,) = more.choices[0].delta.tool_calls
        assert continued.id is None and continued.function.name is None
        assert json.loads(opened.function.arguments + continued.function.arguments) == {"city": "Paris"}
        assert ending.choices[0].finish_reason == "tool_calls"
    # The SDK's own accumulator puts the call together.
    calls = final.choices[0].message.tool_calls
    assert calls is not None and calls[0].function.name == "get_weather" and calls[0].id == "call_9"
    assert json.loads(calls[0].function.arguments) == {"city": "Paris"}


class Capital(pydantic.BaseModel):
    country: str
    capital: str
    population_millions: float


def test_response_format_json_schema_gives_json_content_that_fits() -> None:
    def structured(request: CompletionRequest) -> Any:
        if is_judge(request):
            return judge_json(9)
        if request.model == "gpt-4o-mini":  # does not fit: escalated without a judge
            return json.dumps({"country": "Australia"})
        return json.dumps({"country": "Australia", "capital": "Canberra", "population_millions": 0.46})

    vendors = scripted(structured)
    with Running(create_app(three_router(vendors))) as running:
        client = running.client()
        parsed = client.chat.completions.parse(model="cascade/three", messages=ASK, response_format=Capital)
        raw_schema = {
            "type": "json_schema",
            "json_schema": {"name": "capital", "schema": Capital.model_json_schema(), "strict": False},
        }
        plain = client.chat.completions.create(model="cascade/three", messages=ASK, response_format=raw_schema)
        with client.chat.completions.stream(model="cascade/three", messages=ASK, response_format=Capital) as stream:
            streamed = stream.get_final_completion()
    assert parsed.choices[0].message.parsed == Capital(
        country="Australia", capital="Canberra", population_millions=0.46
    )
    assert parsed.model == "gemini-2.0-flash"
    assert Capital.model_validate_json(plain.choices[0].message.content or "").capital == "Canberra"
    assert streamed.choices[0].message.parsed is not None and streamed.choices[0].message.parsed.capital == "Canberra"
    # Every stage was asked for the structure, under the name the request gave it.
    asked = [r.output for r in vendors["openai"].requests if not is_judge(r)]
    assert [o.name if o else None for o in asked] == ["Capital", "capital", "Capital"]
    assert all(o is not None and o.schema["required"] for o in asked)


def test_a_text_response_format_is_plain_text() -> None:
    vendors = scripted(lambda r: judge_json(9) if is_judge(r) else "plain words")
    with Running(create_app(three_router(vendors))) as running:
        reply = running.client().chat.completions.create(
            model="cascade/three", messages=ASK, response_format={"type": "text"}
        )
    assert reply.choices[0].message.content == "plain words" and vendors["openai"].requests[0].output is None


GOOD_CALL = {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Rome"}'}}


def called(*calls: Any, **fields: Any) -> dict[str, Any]:
    """The question, then an assistant turn with these tool calls."""
    return {"messages": [*ASK, {"role": "assistant", "content": None, "tool_calls": list(calls), **fields}]}


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"response_format": {"type": "json_object"}}, "response_format"),
        (
            {"response_format": {"type": "json_schema", "json_schema": {"name": "x y", "schema": {}}}},
            "response_format.json_schema.name",
        ),
        (
            {"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "string"}}}},
            "response_format.json_schema.schema",
        ),
        (
            {"response_format": {"type": "json_schema", "json_schema": {"name": "x"}}},
            "response_format.json_schema.schema",
        ),
        ({"tools": [WEATHER], "parallel_tool_calls": False}, "parallel_tool_calls"),
        ({"tools": []}, "tools"),
        ({"tools": [{"type": "custom", "custom": {"name": "x"}}]}, "tools[0]"),
        ({"tools": [{"type": "function", "function": {"name": "a b"}}]}, "tools"),
        ({"tools": [WEATHER], "tool_choice": {"type": "function", "function": {"name": "other"}}}, "tool_choice"),
        ({"tool_choice": "auto"}, "tool_choice"),
        ({"tools": [WEATHER], "tool_choice": "get_weather"}, "tool_choice"),
        # A tool call left unanswered: the engine's check of the conversation.
        ({"messages": [*called(GOOD_CALL)["messages"], {"role": "user", "content": "?"}]}, "messages"),
        ({"messages": [*ASK, {"role": "tool", "tool_call_id": "c1", "content": "x"}]}, "messages[1].tool_call_id"),
        (called({**GOOD_CALL, "type": "custom"}), "messages[1].tool_calls[0]"),
        (called({**WEATHER, "id": "c1"}), "messages[1].tool_calls[0].function.description"),  # a tool, not a call
        (
            called({**GOOD_CALL, "function": {"name": "get_weather", "arguments": "{"}}),
            "messages[1].tool_calls[0].function.arguments",
        ),
        (called({**GOOD_CALL, "extra_content": {"google": {}}}), "messages[1].tool_calls[0].extra_content"),
        ({"messages": [*ASK, {"role": "assistant", "content": "no", "refusal": "I won't"}]}, "messages[1].refusal"),
    ],
)
def test_tools_and_formats_that_cannot_be_served_are_a_400_naming_the_field(body: dict[str, Any], param: str) -> None:
    vendors = scripted()
    request = {"model": "cascade/three", "messages": ASK, **body}
    with Running(create_app(three_router(vendors))) as running:
        raw = httpx2.post(running.url + "/v1/chat/completions", json=request)
    assert raw.status_code == 400, raw.text
    assert raw.json()["error"]["param"] == param
    assert all(not v.requests for v in vendors.values())
