"""Structured answers, tools, tool choice and tool-result conversations on both Google backends.

The requests are checked as each adapter builds them and, through the real SDKs, as they reach
`FakeVendorServer` (the JSON body on the wire); the replies are ours, shaped like real recordings of
`generateContent` (a JSON answer to a response schema; `functionCall` parts, without ids as Gemini 2.x sent them).
"""

from __future__ import annotations

import base64
import json
import warnings
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from google.genai import types as genai_types

from cascade.errors import BadRequestError, MalformedResponseError
from cascade.providers import _gemini_wire as gemini_wire
from cascade.providers._gemini_wire import parse_completion
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
from cascade.providers.google import GoogleProvider
from cascade.providers.google_legacy import GoogleLegacyProvider
from cascade.testing import FakeReply, FakeVendorServer, wire

with warnings.catch_warnings():
    warnings.simplefilter("ignore", FutureWarning)
    from google.generativeai import protos
    from google.protobuf import json_format

MODEL = "gemini-2.5-flash"
SETTINGS = ProviderSettings(api_key="test-google-CANARY0123")
BACKENDS = ["genai", "legacy"]

WEATHER = Tool(
    "get_weather",
    "The weather in a city",
    {"type": "object", "properties": {"city": {"type": "string", "description": "City name"}}, "required": ["city"]},
)
COUNTRY = Tool("get_user_country", None, {"type": "object", "properties": {}})
TASK = {
    "$defs": {"Priority": {"enum": [1, 2, 3], "title": "Priority", "type": "integer"}},
    "description": "A task with a priority level.",
    "properties": {"name": {"title": "Name", "type": "string"}, "priority": {"$ref": "#/$defs/Priority"}},
    "required": ["name", "priority"],
    "title": "Task",
    "type": "object",
}
# Two parallel calls answered together, one result an object and one plain text, after a text part.
CONVERSATION = (
    Message("user", "Weather in Paris and Rome?"),
    Message(
        "assistant",
        "Checking both.",
        tool_calls=(
            ToolCall("call_0_get_weather", "get_weather", {"city": "Paris"}),
            ToolCall("call_1_get_weather", "get_weather", {"city": "Rome"}),
        ),
    ),
    Message("tool", '{"sky": "clear", "celsius": 21}', tool_call_id="call_0_get_weather", name="get_weather"),
    Message("tool", "rain all day", tool_call_id="call_1_get_weather", name="get_weather"),
)
# The same conversation as Gemini's wire JSON (what both SDKs must send).
CONVERSATION_WIRE = [
    {"role": "user", "parts": [{"text": "Weather in Paris and Rome?"}]},
    {
        "role": "model",
        "parts": [
            {"text": "Checking both."},
            {"functionCall": {"id": "call_0_get_weather", "name": "get_weather", "args": {"city": "Paris"}}},
            {"functionCall": {"id": "call_1_get_weather", "name": "get_weather", "args": {"city": "Rome"}}},
        ],
    },
    {
        "role": "user",
        "parts": [
            {
                "functionResponse": {
                    "id": "call_0_get_weather",
                    "name": "get_weather",
                    "response": {"sky": "clear", "celsius": 21},
                }
            },
            {
                "functionResponse": {
                    "id": "call_1_get_weather",
                    "name": "get_weather",
                    "response": {"result": "rain all day"},
                }
            },
        ],
    },
]


def request(messages: tuple[Message, ...] = (Message("user", "Hi"),), **extra: Any) -> CompletionRequest:
    return CompletionRequest(MODEL, messages, max_output_tokens=64, timeout_s=5, **extra)


# -- the request each adapter builds -------------------------------------------------------------------------------


def built(backend: str, req: CompletionRequest) -> dict[str, Any]:
    """The request as wire JSON: the legacy protos serialized, or google-genai's arguments through its own types."""
    if backend == "legacy":
        message = GoogleLegacyProvider(SETTINGS)._request(req)
        return json_format.MessageToDict(protos.GenerateContentRequest.pb(message))
    arguments = GoogleProvider(SETTINGS)._arguments(req)
    config: genai_types.GenerateContentConfig = arguments["config"]
    body = config.model_dump(mode="json", by_alias=True, exclude_none=True)
    contents = arguments["contents"]
    body["contents"] = contents if isinstance(contents, str) else [_camel(c) for c in contents]
    return body


def _camel(content: Any) -> Any:
    return genai_types.Content.model_validate(content).model_dump(mode="json", by_alias=True, exclude_none=True)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_plain_request_asks_for_no_structure_and_no_tools(backend: str) -> None:
    body = built(backend, request((Message("user", "Hi"), Message("assistant", "Hello"), Message("user", "Bye"))))
    assert not {"tools", "toolConfig", "responseMimeType", "responseJsonSchema", "responseSchema"} & set(body)
    config = body["generationConfig"] if backend == "legacy" else body
    assert "responseMimeType" not in config and "responseSchema" not in config
    assert body["contents"] == [
        {"role": "user", "parts": [{"text": "Hi"}]},
        {"role": "model", "parts": [{"text": "Hello"}]},
        {"role": "user", "parts": [{"text": "Bye"}]},
    ]


def test_genai_keeps_sending_a_lone_question_as_a_string() -> None:
    arguments = GoogleProvider(SETTINGS)._arguments(request(tools=(WEATHER,)))
    assert arguments["contents"] == "Hi"


def test_genai_sends_the_json_schema_as_it_is() -> None:
    body = built("genai", request(output=OutputSchema("task", TASK)))
    assert body["responseMimeType"] == "application/json"
    assert body["responseJsonSchema"] == TASK
    assert "responseSchema" not in body


def test_legacy_sends_the_schema_converted_to_the_openapi_subset() -> None:
    config = built("legacy", request(output=OutputSchema("task", TASK)))["generationConfig"]
    assert config["responseMimeType"] == "application/json"
    assert config["responseSchema"] == {
        "type": "OBJECT",
        "description": "A task with a priority level.",
        "properties": {"name": {"type": "STRING"}, "priority": {"type": "INTEGER", "description": "One of: 1, 2, 3."}},
        "required": ["name", "priority"],
    }


def test_tools_are_function_declarations_in_each_backends_schema_form() -> None:
    genai = built("genai", request(tools=(WEATHER, COUNTRY)))
    assert genai["tools"] == [
        {
            "functionDeclarations": [
                {
                    "name": "get_weather",
                    "description": "The weather in a city",
                    "parametersJsonSchema": WEATHER.parameters,
                },
                {"name": "get_user_country", "parametersJsonSchema": {"type": "object", "properties": {}}},
            ]
        }
    ]
    legacy = built("legacy", request(tools=(WEATHER, COUNTRY)))
    assert legacy["tools"] == [
        {
            "functionDeclarations": [
                {
                    "name": "get_weather",
                    "description": "The weather in a city",
                    "parameters": {
                        "type": "OBJECT",
                        "properties": {"city": {"type": "STRING", "description": "City name"}},
                        "required": ["city"],
                    },
                },
                # No parameters at all: the API rejects an OBJECT without properties.
                {"name": "get_user_country"},
            ]
        }
    ]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    ("choice", "config"),
    [
        (ToolChoice("auto"), {"mode": "AUTO"}),
        (ToolChoice("required"), {"mode": "ANY"}),
        (ToolChoice("none"), {"mode": "NONE"}),
        (ToolChoice("tool", "get_weather"), {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}),
    ],
)
def test_tool_choice_is_a_function_calling_mode(backend: str, choice: ToolChoice, config: dict[str, Any]) -> None:
    body = built(backend, request(tools=(WEATHER, COUNTRY), tool_choice=choice))
    assert body["toolConfig"] == {"functionCallingConfig": config}


@pytest.mark.parametrize("backend", BACKENDS)
def test_no_tool_choice_leaves_the_vendor_default(backend: str) -> None:
    assert "toolConfig" not in built(backend, request(tools=(WEATHER,)))


@pytest.mark.parametrize("backend", BACKENDS)
def test_parallel_calls_and_their_results_go_back_as_two_turns(backend: str) -> None:
    assert built(backend, request(CONVERSATION, tools=(WEATHER,)))["contents"] == _as_sent(backend, CONVERSATION_WIRE)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_call_without_text_is_a_model_turn_of_calls_only_and_a_nameless_result_takes_the_calls_name(
    backend: str,
) -> None:
    messages = (
        Message("user", "Where am I?"),
        Message("assistant", "", tool_calls=(ToolCall("c-1", "get_user_country", {}),)),
        Message("tool", "[1, 2]", tool_call_id="c-1"),  # JSON, but not an object
        Message("user", "And the capital?"),
    )
    contents = built(backend, request(messages, tools=(COUNTRY,)))["contents"]
    assert contents[1:3] == _as_sent(
        backend,
        [
            {"role": "model", "parts": [{"functionCall": {"id": "c-1", "name": "get_user_country", "args": {}}}]},
            {
                "role": "user",
                "parts": [
                    {"functionResponse": {"id": "c-1", "name": "get_user_country", "response": {"result": "[1, 2]"}}}
                ],
            },
        ],
    )
    assert contents[3] == {"role": "user", "parts": [{"text": "And the capital?"}]}


def _as_sent(backend: str, contents: list[dict[str, Any]]) -> list[dict[str, Any]]:
    # A protobuf Struct holds numbers as doubles: the legacy SDK serializes 21 as 21.0 (the same JSON number).
    if backend == "legacy":
        return json.loads(json.dumps(contents).replace(": 21}", ": 21.0}"))
    return contents


# -- replies -------------------------------------------------------------------------------------------------------


def parsed(backend: str, reply: FakeReply) -> Completion:
    """A reply as each SDK hands it over (the legacy one asks for numbered enums), then through the adapter."""
    if backend == "legacy":
        message = json_format.Parse(json.dumps(reply.body), protos.GenerateContentResponse.pb()(), True)
        return GoogleLegacyProvider(SETTINGS).parse(protos.GenerateContentResponse.wrap(message), request(), 0.1)
    response = genai_types.GenerateContentResponse.model_validate(reply.body)
    return GoogleProvider(SETTINGS).parse(response, request(), 0.1)


def reply(backend: str, text: str | None, **extra: Any) -> FakeReply:
    return wire.gemini_content(
        text, prompt_tokens=33, output_tokens=8, model=MODEL, int_enums=backend == "legacy", **extra
    )


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_structured_answer_is_the_json_text(backend: str) -> None:
    completion = parsed(backend, reply(backend, '{"name": "Fix bug", "priority": 1}', thoughts_tokens=448))
    assert completion.text == '{"name": "Fix bug", "priority": 1}'
    assert completion.tool_calls == ()
    assert completion.usable and completion.finish_reason == "stop"
    assert (completion.output_tokens, completion.reasoning_tokens) == (8 + 448, 448)


@pytest.mark.parametrize("backend", BACKENDS)
def test_parallel_calls_without_ids_get_made_up_ids_in_order(backend: str) -> None:
    calls = [{"name": "get_weather", "args": {"city": "Paris"}}, {"name": "get_weather", "args": {"city": "Rome"}}]
    completion = parsed(backend, reply(backend, None, function_calls=calls))
    assert completion.tool_calls == (
        ToolCall("call_0_get_weather", "get_weather", {"city": "Paris"}),
        ToolCall("call_1_get_weather", "get_weather", {"city": "Rome"}),
    )
    # A turn of calls only is a finished, usable turn (its finish reason is STOP, as Gemini says).
    assert completion.text is None and completion.finish_reason == "stop" and completion.usable
    # The same reply always gets the same ids: the results sent back quote them.
    assert parsed(backend, reply(backend, None, function_calls=calls)).tool_calls == completion.tool_calls


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_call_keeps_its_own_id_beside_text_and_a_thought_signature(backend: str) -> None:
    calls = [{"name": "get_user_country", "id": "fc-7b1e", "thought_signature": "CiQBzS1ed3Rlc3Q="}]
    completion = parsed(backend, reply(backend, "Let me look.", function_calls=calls))
    assert completion.text == "Let me look."
    # google-genai keeps the signature (Gemini 3 wants it back with the call); the legacy protos have no field for it.
    signature = "CiQBzS1ed3Rlc3Q=" if backend == "genai" else None
    assert completion.tool_calls == (ToolCall("fc-7b1e", "get_user_country", {}, signature=signature),)


def test_a_thought_signature_goes_back_with_its_call_on_genai() -> None:
    call = ToolCall("fc-7b1e", "get_user_country", {}, signature="CiQBzS1ed3Rlc3Q=")
    turns = gemini_wire.contents(
        (Message("user", "Where am I?"), Message("assistant", "", tool_calls=(call,))), signatures=True
    )
    part = turns[1]["parts"][0]
    assert part["thought_signature"] == base64.b64decode("CiQBzS1ed3Rlc3Q=")
    sent = genai_types.Content.model_validate(turns[1]).model_dump(mode="json", by_alias=True, exclude_none=True)
    assert base64.urlsafe_b64decode(sent["parts"][0]["thoughtSignature"]) == base64.b64decode("CiQBzS1ed3Rlc3Q=")
    unsigned = gemini_wire.contents((Message("assistant", "", tool_calls=(call,)),))  # the legacy protos: no field
    assert "thought_signature" not in unsigned[0]["parts"][0]


@pytest.mark.parametrize("backend", BACKENDS)
def test_arguments_keep_their_json_numbers(backend: str) -> None:
    calls = [{"name": "book", "args": {"nights": 3, "budget": 99.5, "rooms": [{"beds": 2}], "late": True}}]
    (call,) = parsed(backend, reply(backend, None, function_calls=calls)).tool_calls
    assert call.arguments == {"nights": 3, "budget": 99.5, "rooms": [{"beds": 2}], "late": True}
    assert isinstance(call.arguments["nights"], int)  # the legacy protos had made it 3.0


@pytest.mark.parametrize(
    ("part", "problem"),
    [
        ({"functionCall": {"args": {"city": "Paris"}}}, "functionCall without a name"),
        ({"functionCall": {"name": "get_weather", "args": ["Paris"]}}, "args are not an object"),
    ],
)
def test_a_call_the_engine_cannot_use_is_a_malformed_reply(part: dict[str, Any], problem: str) -> None:
    # The shared reader, on the wire JSON both adapters hand it (neither SDK lets such args through).
    body = reply("genai", None).body
    body["candidates"][0]["content"] = {"role": "model", "parts": [part]}
    with pytest.raises(MalformedResponseError, match=problem):
        parse_completion(body, provider="google", requested_model=MODEL, latency_s=0.1)


@pytest.mark.parametrize("backend", BACKENDS)
def test_stop_with_neither_text_nor_calls_is_still_malformed(backend: str) -> None:
    with pytest.raises(MalformedResponseError, match="neither text nor function calls"):
        parsed(backend, reply(backend, None))


# -- through the real SDKs, to the fake server -----------------------------------------------------------------


@pytest.fixture
def server() -> Iterator[FakeVendorServer]:
    with FakeVendorServer() as running:
        yield running


@pytest.fixture(params=BACKENDS)
async def adapter(request: pytest.FixtureRequest, server: FakeVendorServer) -> AsyncIterator[Any]:
    settings = ProviderSettings(api_key="test-google-CANARY0123", base_url=server.url)
    provider = GoogleLegacyProvider(settings) if request.param == "legacy" else GoogleProvider(settings)
    try:
        yield provider
    finally:
        await provider.aclose()


def backend_of(adapter: Any) -> str:
    return "legacy" if isinstance(adapter, GoogleLegacyProvider) else "genai"


async def test_a_tool_result_conversation_on_the_wire(adapter: Any, server: FakeVendorServer) -> None:
    backend = backend_of(adapter)
    server.script("google", reply(backend, None, function_calls=[{"name": "get_weather", "args": {"city": "Oslo"}}]))
    req = request(CONVERSATION, tools=(WEATHER,), tool_choice=ToolChoice("tool", "get_weather"), system="Be brief.")
    completion = await adapter.acomplete(req) if backend == "genai" else adapter.complete(req)

    assert completion.tool_calls == (ToolCall("call_0_get_weather", "get_weather", {"city": "Oslo"}),)
    (sent,) = server.requests
    assert sent.path.split("?")[0] == f"/{'v1beta' if backend == 'legacy' else 'v1'}/models/{MODEL}:generateContent"
    body = sent.body
    assert body["contents"] == _as_sent(backend, CONVERSATION_WIRE)
    assert body["systemInstruction"]["parts"] == [{"text": "Be brief."}]
    (declaration,) = body["tools"][0]["functionDeclarations"]
    if backend == "legacy":
        # The REST transport numbers enums (`enum-encoding=int`): OBJECT is 6, STRING 1, ANY 2.
        assert body["toolConfig"] == {"functionCallingConfig": {"mode": 2, "allowedFunctionNames": ["get_weather"]}}
        assert declaration["parameters"] == {
            "type": 6,
            "properties": {"city": {"type": 1, "description": "City name"}},
            "required": ["city"],
        }
    else:
        assert body["toolConfig"] == {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}}
        # google-genai passes declarations through without camel-casing their fields; the API's JSON reader takes
        # a proto field's own name as well as its camelCase one.
        assert declaration["parameters_json_schema"] == WEATHER.parameters
    assert declaration["name"] == "get_weather" and declaration["description"] == "The weather in a city"


async def test_a_response_schema_on_the_wire(adapter: Any, server: FakeVendorServer) -> None:
    backend = backend_of(adapter)
    server.script("google", reply(backend, '{"name": "Fix bug", "priority": 1}'))
    completion = adapter.complete(
        request((Message("user", 'Create a task named "Fix bug"'),), output=OutputSchema("task", TASK))
    )

    assert completion.text == '{"name": "Fix bug", "priority": 1}'
    (sent,) = server.requests
    config = sent.body["generationConfig"]
    assert config["responseMimeType"] == "application/json"
    assert "tools" not in sent.body and "toolConfig" not in sent.body
    if backend == "legacy":
        assert "responseJsonSchema" not in config
        assert config["responseSchema"] == {
            "type": 6,
            "description": "A task with a priority level.",
            "properties": {"name": {"type": 1}, "priority": {"type": 3, "description": "One of: 1, 2, 3."}},
            "required": ["name", "priority"],
        }
    else:
        assert "responseSchema" not in config
        assert config["responseJsonSchema"] == TASK


async def test_a_request_that_cannot_be_expressed_fails_before_it_is_sent(
    adapter: Any, server: FakeVendorServer
) -> None:
    if backend_of(adapter) == "legacy":  # a union: the OpenAPI subset of the protos has none
        union = {"type": "object", "properties": {"id": {"anyOf": [{"type": "string"}, {"type": "integer"}]}}}
        req = request(output=OutputSchema("thing", union))
        problem = "union of several types"
    else:  # arguments another vendor's model wrote as text that is not an object
        messages = (
            Message("user", "Go"),
            Message("assistant", "", tool_calls=(ToolCall("c1", "get_weather", "{not json"),)),
            Message("tool", "ok", tool_call_id="c1", name="get_weather"),
        )
        req = request(messages, tools=(WEATHER,))
        problem = "arguments of tool call c1"
    with pytest.raises(BadRequestError, match=problem) as caught:
        adapter.complete(req)
    assert caught.value.status_code is None and caught.value.provider == "google"
    assert server.requests == []
