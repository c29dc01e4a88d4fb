"""Test doubles that ship with cascade, so that your tests need neither keys nor a network.

- `FakeVendorServer`: a local HTTP server speaking the OpenAI, Anthropic and Gemini wire formats.
- `wire`: builders for vendor-shaped reply bodies and errors.
- `ScriptedProvider`: an in-process provider answering from a script (no HTTP at all).
"""

from cascade.testing import wire
from cascade.testing.fake_server import FakeVendorServer, RecordedRequest
from cascade.testing.scripted import (
    ScriptedProvider,
    Streamed,
    completion,
    is_judge_request,
    judge_json,
    judge_reply,
)
from cascade.testing.wire import FakeReply

__all__ = [
    "FakeReply",
    "FakeVendorServer",
    "RecordedRequest",
    "ScriptedProvider",
    "Streamed",
    "completion",
    "is_judge_request",
    "judge_json",
    "judge_reply",
    "wire",
]
