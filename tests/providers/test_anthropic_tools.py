"""The anthropic adapter with structured output, tools and tool results: the parameters it builds (native
`output_config` or a forced tool, by model), the replies it parses (SDK objects made from wire bodies shaped after
real recordings), and one conversation through the SDK."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from anthropic.types import Message as SDKMessage

from cascade.errors import InvalidQueryError, MalformedResponseError
from cascade.providers.anthropic import AnthropicProvider, _arguments, _native_output
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
from cascade.testing import FakeReply, FakeVendorServer, wire

KEY = "sk-ant-test-CANARY0123"
NATIVE_MODEL, OLD_MODEL = "claude-sonnet-4-6", "claude-3-5-haiku-20241022"
WEATHER = Tool(
    "get_weather",
    "The weather now in a city",
    {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)
ANSWER_SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}, "country": {"type": "string"}}}
STRICT_SCHEMA = {**ANSWER_SCHEMA, "required": ["city", "country"], "additionalProperties": False}
OUTPUT = OutputSchema("final_result", ANSWER_SCHEMA, STRICT_SCHEMA)
QUESTION = Message("user", "Weather in Oslo and Lima?")
CALLS = (
    ToolCall("toolu_01Oslo000000000000000000", "get_weather", {"city": "Oslo"}),
    ToolCall("toolu_01Lima000000000000000000", "get_weather", {"city": "Lima"}),
)
RESULTS = (
    Message("tool", "4 C, snow", tool_call_id=CALLS[0].id, name="get_weather"),
    Message("tool", "19 C, fog", tool_call_id=CALLS[1].id, name="get_weather"),
)
CONVERSATION = (QUESTION, Message("assistant", "", tool_calls=CALLS), *RESULTS)


def _request(**fields: Any) -> CompletionRequest:
    return CompletionRequest(**{"model": NATIVE_MODEL, "messages": (QUESTION,), "max_output_tokens": 64, **fields})


def _parse(reply: FakeReply, request: CompletionRequest) -> Completion:
    adapter = AnthropicProvider(ProviderSettings(api_key=KEY))
    return adapter.parse(SDKMessage.model_validate(reply.body), request, 0.1)


def _results(*texts: str) -> list[dict[str, Any]]:
    return [
        {"type": "tool_result", "tool_use_id": call.id, "content": text}
        for call, text in zip(CALLS, texts, strict=False)
    ]


# -- which models answer natively ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "native"),
    [
        ("claude-instant-1.2", False),
        ("claude-2", False),
        ("claude-2.1", False),
        ("claude-3-haiku-20240307", False),
        ("claude-3-5-sonnet-latest", False),
        ("claude-3-7-sonnet-20250219", False),
        ("claude-sonnet-4-20250514", False),
        ("claude-opus-4-0", False),
        ("claude-opus-4-1-20250805", False),
        ("claude-opus-4-1", False),
        ("claude-sonnet-4-5", True),
        ("claude-sonnet-4-5-20250929", True),
        ("claude-opus-4-5-20251101", True),
        ("claude-haiku-4-5", True),
        ("claude-opus-4-6", True),
        ("claude-sonnet-4-6", True),
        ("claude-opus-5", True),
    ],
)
def test_which_models_take_output_config(model: str, native: bool) -> None:
    assert _native_output(model) is native


# -- the parameters ---------------------------------------------------------------------------------------


def test_a_plain_request_asks_for_no_format_and_no_tools() -> None:
    arguments = _arguments(_request())
    assert not {"output_config", "tools", "tool_choice"} & arguments.keys()
    assert arguments["messages"] == [{"role": "user", "content": QUESTION.content}]


@pytest.mark.parametrize(
    ("output", "sent"), [(OUTPUT, STRICT_SCHEMA), (OutputSchema("loose", ANSWER_SCHEMA), ANSWER_SCHEMA)]
)
def test_native_structured_output(output: OutputSchema, sent: dict[str, Any]) -> None:
    arguments = _arguments(_request(output=output))
    assert arguments["output_config"] == {"format": {"type": "json_schema", "schema": sent}}
    assert not {"tools", "tool_choice"} & arguments.keys()


def test_older_models_are_forced_to_call_a_tool_named_after_the_schema() -> None:
    arguments = _arguments(_request(model=OLD_MODEL, output=OUTPUT))
    assert "output_config" not in arguments
    (tool,) = arguments["tools"]
    assert (tool["name"], tool["input_schema"]) == ("final_result", ANSWER_SCHEMA)
    assert arguments["tool_choice"] == {"type": "tool", "name": "final_result"}


@pytest.mark.parametrize(
    ("asked", "forced"),
    [
        (None, {"type": "any"}),
        (ToolChoice("auto"), {"type": "any"}),
        (ToolChoice("required"), {"type": "any"}),
        (ToolChoice("none"), {"type": "tool", "name": "final_result"}),  # none of the caller's own tools
        (ToolChoice("tool", "get_weather"), {"type": "tool", "name": "get_weather"}),
    ],
)
def test_a_forced_output_tool_beside_tools_of_the_caller(asked: ToolChoice | None, forced: dict[str, Any]) -> None:
    arguments = _arguments(_request(model=OLD_MODEL, output=OUTPUT, tools=(WEATHER,), tool_choice=asked))
    assert [t["name"] for t in arguments["tools"]] == ["get_weather", "final_result"]
    assert arguments["tool_choice"] == forced


def test_tools_and_a_missing_description_left_out() -> None:
    bare = Tool("now", None, {"type": "object", "properties": {}})
    arguments = _arguments(_request(tools=(WEATHER, bare)))
    assert arguments["tools"] == [
        {"name": "get_weather", "description": WEATHER.description, "input_schema": WEATHER.parameters},
        {"name": "now", "input_schema": bare.parameters},
    ]
    assert "tool_choice" not in arguments


@pytest.mark.parametrize(
    ("choice", "sent"),
    [
        (ToolChoice("auto"), {"type": "auto"}),
        (ToolChoice("required"), {"type": "any"}),
        (ToolChoice("none"), {"type": "none"}),
        (ToolChoice("tool", "get_weather"), {"type": "tool", "name": "get_weather"}),
    ],
)
def test_tool_choice(choice: ToolChoice, sent: dict[str, Any]) -> None:
    assert _arguments(_request(tools=(WEATHER,), tool_choice=choice))["tool_choice"] == sent


def test_parallel_results_go_back_in_one_user_turn_with_the_text_after_them() -> None:
    follow_up = Message("user", "And tomorrow?")
    said = Message("assistant", "Let me look.", tool_calls=CALLS[:1])
    messages = (QUESTION, said, RESULTS[0], follow_up, Message("assistant", "", tool_calls=CALLS), *RESULTS)
    sent = _arguments(_request(messages=messages))["messages"]
    tool_use = [{"type": "tool_use", "id": c.id, "name": c.name, "input": dict(c.arguments)} for c in CALLS]
    assert sent == [
        {"role": "user", "content": QUESTION.content},
        {"role": "assistant", "content": [{"type": "text", "text": "Let me look."}, tool_use[0]]},
        {"role": "user", "content": [*_results("4 C, snow"), {"type": "text", "text": "And tomorrow?"}]},
        {"role": "assistant", "content": tool_use},  # no empty text block
        {"role": "user", "content": _results("4 C, snow", "19 C, fog")},
    ]


def test_a_result_after_text_still_goes_before_it() -> None:
    # The API rejects a tool_result that follows text in its turn.
    messages = (QUESTION, Message("assistant", "", tool_calls=CALLS), RESULTS[0], Message("user", "Hurry."), RESULTS[1])
    last = _arguments(_request(messages=messages))["messages"][-1]
    assert last == {
        "role": "user",
        "content": [*_results("4 C, snow", "19 C, fog"), {"type": "text", "text": "Hurry."}],
    }


def test_arguments_given_as_text_are_sent_as_the_object_they_hold() -> None:
    from_openai = ToolCall("call_abc", "get_weather", '{"city": "Oslo"}')
    sent = _arguments(_request(messages=(QUESTION, Message("assistant", "", tool_calls=(from_openai,)))))
    assert sent["messages"][1]["content"][0]["input"] == {"city": "Oslo"}


@pytest.mark.parametrize(
    "turn",
    [
        Message("assistant", "", tool_calls=(ToolCall("call_bad", "get_weather", '{"city": "Oslo"'),)),
        Message("tool", "4 C"),  # answers no call
    ],
)
def test_a_conversation_the_api_cannot_take_is_refused(turn: Message) -> None:
    with pytest.raises(InvalidQueryError):
        _arguments(_request(messages=(QUESTION, turn)))


# -- the replies ------------------------------------------------------------------------------------------


def test_a_native_structured_answer_is_the_text() -> None:
    answer = '{"city":"Paris","country":"France"}'
    completion = _parse(wire.anthropic_message(answer, input_tokens=60, output_tokens=12), _request(output=OUTPUT))
    assert (completion.text, completion.finish_reason, completion.tool_calls) == (answer, "stop", ())


def test_a_forced_tool_answer_is_the_text_and_not_a_call() -> None:
    use = {"id": "toolu_01Ntv7EChXSFhgkJcMTHdksQ", "name": "final_result", "input": {"city": "Paris", "country": "Fr"}}
    reply = wire.anthropic_message(None, input_tokens=671, output_tokens=55, model=OLD_MODEL, tool_uses=[use])
    assert reply.body["stop_reason"] == "tool_use"
    completion = _parse(reply, _request(model=OLD_MODEL, output=OUTPUT))
    assert completion.text == '{"city":"Paris","country":"Fr"}'
    assert (completion.tool_calls, completion.finish_reason, completion.usable) == ((), "stop", True)
    # A newer model answers in text: the same tool_use is then an ordinary call.
    assert _parse(reply, _request(output=OUTPUT)).tool_calls == (ToolCall(use["id"], "final_result", use["input"]),)


def test_beside_a_forced_output_tool_the_callers_own_calls_are_calls() -> None:
    uses = [{"name": "get_weather", "input": {"city": "Oslo"}}, {"name": "final_result", "input": {"city": "Oslo"}}]
    reply = wire.anthropic_message("Here:", input_tokens=90, output_tokens=40, model=OLD_MODEL, tool_uses=uses)
    completion = _parse(reply, _request(model=OLD_MODEL, output=OUTPUT, tools=(WEATHER,)))
    assert completion.text == '{"city":"Oslo"}'  # the preamble is not the answer
    assert [(c.name, c.arguments) for c in completion.tool_calls] == [("get_weather", {"city": "Oslo"})]
    assert completion.tool_calls[0].id.startswith("toolu_01")


def test_parallel_tool_calls() -> None:
    uses = [{"id": c.id, "name": c.name, "input": dict(c.arguments)} for c in CALLS]
    reply = wire.anthropic_message("I'll check both.", input_tokens=400, output_tokens=90, tool_uses=uses)
    completion = _parse(reply, _request(tools=(WEATHER,)))
    assert completion.tool_calls == CALLS
    assert (completion.text, completion.finish_reason, completion.usable) == ("I'll check both.", "stop", True)


def test_a_reply_of_tool_use_blocks_only_is_usable() -> None:
    uses = [{"id": CALLS[0].id, "name": "get_weather", "input": {"city": "Oslo"}}]
    completion = _parse(wire.anthropic_message(None, input_tokens=9, output_tokens=9, tool_uses=uses), _request())
    assert completion.text is None and completion.usable and completion.tool_calls == CALLS[:1]


def test_stop_reason_tool_use_without_a_call_is_not_an_answer() -> None:
    reply = wire.anthropic_message("Hm.", input_tokens=9, output_tokens=2, stop_reason="tool_use")
    completion = _parse(reply, _request())
    assert (completion.finish_reason, completion.usable) == ("other", False)


def test_a_tool_use_block_without_an_input_object_is_malformed() -> None:
    reply = wire.anthropic_message(None, input_tokens=9, output_tokens=9, tool_uses=[{"name": "t", "input": {}}])
    message = SDKMessage.model_validate(reply.body)
    object.__setattr__(message.content[0], "input", '{"city": "Oslo"}')  # as a body the SDK did not check
    with pytest.raises(MalformedResponseError, match="tool_use block"):
        AnthropicProvider(ProviderSettings(api_key=KEY)).parse(message, _request(), 0.1)


# -- through the SDK --------------------------------------------------------------------------------------


@pytest.fixture
def server() -> Iterator[FakeVendorServer]:
    with FakeVendorServer() as running:
        yield running


def test_the_sdk_sends_the_conversation_and_the_forced_tool(server: FakeVendorServer) -> None:
    use = {"name": "final_result", "input": {"city": "Lima", "country": "Peru"}}
    server.script("anthropic", wire.anthropic_message(None, input_tokens=120, output_tokens=30, tool_uses=[use]))
    request = _request(model=OLD_MODEL, messages=(*CONVERSATION, Message("user", "Which is warmer?")), output=OUTPUT)
    completion = AnthropicProvider(ProviderSettings(api_key=KEY, base_url=server.url)).complete(request)
    assert json.loads(completion.text or "") == use["input"]
    (sent,) = server.requests
    body = sent.body
    assert body["messages"][1:] == [
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": c.id, "name": c.name, "input": dict(c.arguments)} for c in CALLS],
        },
        {
            "role": "user",
            "content": [*_results("4 C, snow", "19 C, fog"), {"type": "text", "text": "Which is warmer?"}],
        },
    ]
    assert body["tool_choice"] == {"type": "tool", "name": "final_result"}
    assert [t["name"] for t in body["tools"]] == ["final_result"] and "output_config" not in body


def test_the_sdk_sends_output_config(server: FakeVendorServer) -> None:
    server.script("anthropic", wire.anthropic_message('{"city":"Lima"}', input_tokens=20, output_tokens=6))
    AnthropicProvider(ProviderSettings(api_key=KEY, base_url=server.url)).complete(_request(output=OUTPUT))
    (sent,) = server.requests
    assert sent.body["output_config"] == {"format": {"type": "json_schema", "schema": STRICT_SCHEMA}}
