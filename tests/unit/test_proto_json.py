"""`message_to_dict` must return exactly what `json_format.MessageToDict` returns, fast path or not."""

from __future__ import annotations

import json
import math
import warnings
from typing import Any

import pytest
from google.protobuf import json_format, type_pb2

from cascade.providers._proto_json import message_to_dict
from cascade.testing import wire

with warnings.catch_warnings():
    warnings.simplefilter("ignore", FutureWarning)
    from google.generativeai import protos

RESPONSE = type(protos.GenerateContentResponse.pb(protos.GenerateContentResponse()))

RICH = {
    "candidates": [
        {
            "content": {"parts": [{"text": "Hi"}, {"text": " there", "thought": True}], "role": "model"},
            "finishReason": "MAX_TOKENS",
            "index": 1,
            "safetyRatings": [{"category": "HARM_CATEGORY_HARASSMENT", "probability": "NEGLIGIBLE", "blocked": True}],
            "citationMetadata": {"citationSources": [{"startIndex": 1, "endIndex": 9, "uri": "https://e.example"}]},
            "tokenCount": 7,
            "avgLogprobs": -0.123456789,
            "logprobsResult": {
                "topCandidates": [{"candidates": [{"token": "9", "logProbability": -0.01}, {"token": "8"}]}],
                "chosenCandidates": [{"token": "9", "logProbability": -0.0100000007}],
            },
        }
    ],
    "promptFeedback": {"blockReason": "OTHER", "safetyRatings": [{"category": 7, "probability": 2}]},
    "usageMetadata": {"promptTokenCount": 21, "candidatesTokenCount": 9, "totalTokenCount": 30},
    "modelVersion": "gemini-1.5-flash-002",
}


def _wire_bodies() -> list[dict[str, Any]]:
    replies = [
        wire.gemini_content("Canberra.", prompt_tokens=21, output_tokens=9),
        wire.gemini_content("Canberra.", prompt_tokens=21, output_tokens=9, int_enums=True, cached_tokens=5),
        wire.gemini_content("9", prompt_tokens=50, output_tokens=1, top_logprobs={"9": -0.1, "8": -2.5}),
        wire.gemini_content(None, prompt_tokens=12, output_tokens=0, block_reason="SAFETY"),
        wire.gemini_content("Half", prompt_tokens=12, output_tokens=64, finish_reason="MAX_TOKENS", thoughts_tokens=30),
    ]
    return [reply.body for reply in replies]


@pytest.mark.parametrize("body", [*_wire_bodies(), RICH, {}])
def test_same_as_message_to_dict(body: dict[str, Any]) -> None:
    message = json_format.ParseDict(json.loads(json.dumps(body)), RESPONSE(), ignore_unknown_fields=True)
    assert message_to_dict(message) == json_format.MessageToDict(message)


def test_unknown_enum_number_stays_a_number() -> None:
    message = RESPONSE()
    message.candidates.add().finish_reason = 999  # an open enum keeps values it has no name for
    assert message_to_dict(message) == json_format.MessageToDict(message) == {"candidates": [{"finishReason": 999}]}


def test_non_finite_floats_and_well_known_types_go_to_message_to_dict() -> None:
    message = RESPONSE()
    message.candidates.add().avg_logprobs = math.inf
    assert (
        message_to_dict(message) == json_format.MessageToDict(message) == {"candidates": [{"avgLogprobs": "Infinity"}]}
    )
    described = type_pb2.Type(name="t", options=[type_pb2.Option(name="o")], syntax=type_pb2.SYNTAX_PROTO3)
    described.options[0].value.Pack(type_pb2.Option(name="inner"))  # google.protobuf.Any: not on the fast path
    assert message_to_dict(described) == json_format.MessageToDict(described)
