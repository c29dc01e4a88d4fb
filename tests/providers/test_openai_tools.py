"""The openai adapter with structured output, tools and tool results: the parameters it builds, the replies it
parses (SDK objects made from wire bodies shaped after real recordings), and one conversation through the SDK."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from openai.types.chat import ChatCompletion

from cascade.errors import InvalidQueryError
from cascade.providers.base import (
    Completion,
    CompletionRequest,
    Message,
    OutputSchema,
    ProviderSettings,
    Tool,
    ToolCall,
    ToolChoice,
)
from cascade.providers.openai import OpenAIProvider
from cascade.testing import FakeReply, FakeVendorServer, wire

KEY = "sk-test-CANARY0123"
WEATHER = Tool(
    "get_weather",
    "The weather now in a city",
    {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)
ANSWER_SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}, "note": {"type": "string"}}}
STRICT_SCHEMA = {**ANSWER_SCHEMA, "required": ["city", "note"], "additionalProperties": False}
QUESTION = Message("user", "Weather in Oslo and Lima?")
# What the model asked for, and the results the caller sends back: one assistant turn, two parallel calls.
CALLS = (
    ToolCall("call_Oslo0000000000000000000a", "get_weather", {"city": "Oslo"}),
    ToolCall("call_Lima0000000000000000000b", "get_weather", {"city": "Lima"}),
)
CONVERSATION = (
    QUESTION,
    Message("assistant", "", tool_calls=CALLS),
    Message("tool", "4 C, snow", tool_call_id=CALLS[0].id, name="get_weather"),
    Message("tool", "19 C, fog", tool_call_id=CALLS[1].id, name="get_weather"),
)


def _request(**fields: Any) -> CompletionRequest:
    return CompletionRequest(**{"model": "gpt-4o-mini", "messages": (QUESTION,), "max_output_tokens": 64, **fields})


def _adapter(base_url: str | None = None) -> OpenAIProvider:
    return OpenAIProvider(ProviderSettings(api_key=KEY, base_url=base_url))


def _parse(reply: FakeReply, request: CompletionRequest | None = None) -> Completion:
    return _adapter().parse(ChatCompletion.model_validate(reply.body), request or _request(), 0.1)


# -- the parameters ---------------------------------------------------------------------------------------


def test_a_plain_request_asks_for_no_format_and_no_tools() -> None:
    arguments = _adapter()._arguments(_request())
    assert not {"response_format", "tools", "tool_choice"} & arguments.keys()
    assert arguments["messages"] == [{"role": "user", "content": QUESTION.content}]


@pytest.mark.parametrize(
    ("strict", "sent", "is_strict"), [(STRICT_SCHEMA, STRICT_SCHEMA, True), (None, ANSWER_SCHEMA, False)]
)
def test_structured_output_is_a_json_schema_response_format(
    strict: dict[str, Any] | None, sent: dict[str, Any], is_strict: bool
) -> None:
    arguments = _adapter()._arguments(_request(output=OutputSchema("city_note", ANSWER_SCHEMA, strict)))
    assert arguments["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "city_note", "schema": sent, "strict": is_strict},
    }


def test_tools_are_function_tools_and_a_missing_description_is_left_out() -> None:
    bare = Tool("now", None, {"type": "object", "properties": {}})
    arguments = _adapter()._arguments(_request(tools=(WEATHER, bare)))
    assert arguments["tools"] == [
        {
            "type": "function",
            "function": {"name": "get_weather", "description": WEATHER.description, "parameters": WEATHER.parameters},
        },
        {"type": "function", "function": {"name": "now", "parameters": bare.parameters}},
    ]
    assert "tool_choice" not in arguments  # the vendor's default


@pytest.mark.parametrize(
    ("choice", "sent"),
    [
        (ToolChoice("auto"), "auto"),
        (ToolChoice("required"), "required"),
        (ToolChoice("none"), "none"),
        (ToolChoice("tool", "get_weather"), {"type": "function", "function": {"name": "get_weather"}}),
    ],
)
def test_tool_choice(choice: ToolChoice, sent: Any) -> None:
    assert _adapter()._arguments(_request(tools=(WEATHER,), tool_choice=choice))["tool_choice"] == sent


def test_a_tool_result_conversation() -> None:
    arguments = _adapter()._arguments(_request(messages=CONVERSATION, system="Be brief."))
    assert arguments["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": QUESTION.content},
        {
            "role": "assistant",
            "content": None,  # the API's null, not "", beside calls without text
            "tool_calls": [
                {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": json.dumps(c.arguments)}}
                for c in CALLS
            ],
        },
        {"role": "tool", "tool_call_id": CALLS[0].id, "content": "4 C, snow"},
        {"role": "tool", "tool_call_id": CALLS[1].id, "content": "19 C, fog"},
    ]


def test_an_assistant_turn_keeps_its_text_and_raw_arguments_as_they_were() -> None:
    raw = ToolCall("call_raw", "get_weather", '{"city": "Oslo"')  # the model's own broken JSON
    turn = Message("assistant", "Checking.", tool_calls=(raw,))
    (sent,) = _adapter()._arguments(_request(messages=(turn,)))["messages"]
    assert sent["content"] == "Checking."
    assert sent["tool_calls"][0]["function"]["arguments"] == '{"city": "Oslo"'


def test_a_tool_turn_without_the_call_it_answers_is_refused() -> None:
    with pytest.raises(InvalidQueryError, match="tool_call_id"):
        _adapter()._arguments(_request(messages=(QUESTION, Message("tool", "4 C"))))


# -- the replies ------------------------------------------------------------------------------------------


def test_a_structured_answer_is_the_message_text() -> None:
    answer = '{"city":"Oslo","note":"snow"}'
    request = _request(output=OutputSchema("city_note", ANSWER_SCHEMA, STRICT_SCHEMA))
    completion = _parse(wire.openai_chat(answer, prompt_tokens=40, completion_tokens=9), request)
    assert (completion.text, completion.finish_reason, completion.tool_calls) == (answer, "stop", ())


def test_parallel_tool_calls() -> None:
    calls = [{"id": c.id, "name": c.name, "arguments": dict(c.arguments)} for c in CALLS]
    reply = wire.openai_chat(None, prompt_tokens=75, completion_tokens=51, tool_calls=calls)
    assert reply.body["choices"][0]["finish_reason"] == "tool_calls"
    completion = _parse(reply, _request(tools=(WEATHER,)))
    assert completion.tool_calls == CALLS
    assert completion.text is None and completion.finish_reason == "stop" and completion.usable
    assert completion.answer_text() == ""


@pytest.mark.parametrize("arguments", ['{"city": "Oslo"', '["Oslo"]', "null", ""])
def test_arguments_that_are_not_a_json_object_stay_raw_text(arguments: str) -> None:
    call = {"id": "call_x", "name": "get_weather", "arguments": arguments}
    completion = _parse(wire.openai_chat(None, prompt_tokens=20, completion_tokens=5, tool_calls=[call]))
    assert completion.tool_calls == (ToolCall("call_x", "get_weather", arguments),)
    assert completion.finish_reason == "stop"


def test_a_call_with_finish_reason_stop_counts_too() -> None:
    # A call forced by name comes back with finish_reason "stop".
    call = {"id": "call_y", "name": "get_weather", "arguments": {"city": "Lima"}}
    reply = wire.openai_chat("Looking.", prompt_tokens=20, completion_tokens=5, tool_calls=[call], finish_reason="stop")
    completion = _parse(reply)
    assert completion.tool_calls == (ToolCall("call_y", "get_weather", {"city": "Lima"}),)
    assert (completion.text, completion.finish_reason) == ("Looking.", "stop")


def _with_custom_call(reply: FakeReply) -> FakeReply:
    message = reply.body["choices"][0]["message"]
    custom = {"id": "call_custom", "type": "custom", "custom": {"name": "grammar", "input": "free text"}}
    message["tool_calls"] = [custom, *message.get("tool_calls", [])]
    return reply


def test_custom_tool_calls_are_skipped() -> None:
    call = {"id": "call_z", "name": "get_weather", "arguments": {"city": "Oslo"}}
    reply = _with_custom_call(wire.openai_chat(None, prompt_tokens=20, completion_tokens=5, tool_calls=[call]))
    completion = _parse(reply)
    assert completion.tool_calls == (ToolCall("call_z", "get_weather", {"city": "Oslo"}),)
    assert completion.finish_reason == "stop"


def test_a_turn_of_custom_calls_only_is_other() -> None:
    reply = _with_custom_call(wire.openai_chat(None, prompt_tokens=20, completion_tokens=5, finish_reason="tool_calls"))
    completion = _parse(reply)
    assert (completion.tool_calls, completion.finish_reason, completion.usable) == ((), "other", False)


# -- through the SDK --------------------------------------------------------------------------------------


@pytest.fixture
def server() -> Iterator[FakeVendorServer]:
    with FakeVendorServer() as running:
        yield running


def test_the_sdk_sends_the_conversation_tools_and_format(server: FakeVendorServer) -> None:
    server.script("openai", wire.openai_chat('{"city":"Oslo","note":"snow"}', prompt_tokens=99, completion_tokens=9))
    request = _request(
        messages=CONVERSATION,
        tools=(WEATHER,),
        tool_choice=ToolChoice("none"),
        output=OutputSchema("city_note", ANSWER_SCHEMA, STRICT_SCHEMA),
    )
    completion = _adapter(server.url + "/v1").complete(request)
    assert completion.text == '{"city":"Oslo","note":"snow"}'
    (sent,) = server.requests
    body = sent.body
    assert body["messages"][1] == {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": json.dumps(c.arguments)}}
            for c in CALLS
        ],
    }
    assert body["messages"][2:] == [
        {"role": "tool", "tool_call_id": CALLS[0].id, "content": "4 C, snow"},
        {"role": "tool", "tool_call_id": CALLS[1].id, "content": "19 C, fog"},
    ]
    assert body["tools"][0]["function"]["name"] == "get_weather" and body["tool_choice"] == "none"
    assert body["response_format"]["json_schema"] == {"name": "city_note", "schema": STRICT_SCHEMA, "strict": True}
