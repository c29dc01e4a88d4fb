"""Streams that go wrong, on every adapter, through `Cascade.stream` / `astream` and the real SDKs.

The first stage's stream breaks (cut mid-body, stalls past the timeout, ends without its final event, carries an
error event); the fallback stage, on another vendor, streams a good answer. Each cell checks that the fault is a
recorded error (never a clean end), that anything the broken stream showed was withdrawn with a `Reset`, and that
what is on show at the end is the fallback's answer.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import pytest

from cascade import Cascade
from cascade.policy import Policy
from cascade.streaming import Final, Reset, StreamEvent, TextDelta
from cascade.testing import FakeVendorServer, wire
from cascade.testing.fake_server import RecordedRequest
from cascade.testing.wire import FakeReply

KEYS = {
    "OPENAI_API_KEY": "sk-CANARYstream0123",
    "ANTHROPIC_API_KEY": "sk-ant-CANARYstream01",
    "GEMINI_API_KEY": "CANARY",
}
DRAFT = ["Sydney ", "is the ", "capital."]
GOOD = ["Canberra ", "is the ", "capital."]


@dataclass(frozen=True)
class Vendor:
    key: str
    provider: str
    model: str
    backend: str | None = None

    @property
    def legacy(self) -> bool:
        return self.backend == "generativeai"


VENDORS = [
    Vendor("openai", "openai", "gpt-4.1-nano"),
    Vendor("anthropic", "anthropic", "claude-haiku-4-5"),
    Vendor("google", "google", "gemini-2.0-flash", "genai"),
    Vendor("google-legacy", "google", "gemini-2.0-flash", "generativeai"),
]


def stream_reply(provider: str, texts: list[str], model: str, legacy: bool = False, **kw: Any) -> FakeReply:
    if provider == "openai":
        return wire.openai_stream(texts, prompt_tokens=20, completion_tokens=6, model=model, **kw)
    if provider == "anthropic":
        return wire.anthropic_stream(texts, input_tokens=20, output_tokens=6, model=model, **kw)
    return wire.gemini_stream(texts, prompt_tokens=20, output_tokens=6, model=model, json_array=legacy, **kw)


def _body(reply: FakeReply) -> bytes:
    body = reply.body
    return body.encode() if isinstance(body, str) else body if isinstance(body, bytes) else json.dumps(body).encode()


def _final_event_at(vendor: Vendor, body: bytes) -> int:
    """Where the vendor's last word starts: what a stream that ends early leaves out."""
    if vendor.provider == "openai":
        return body.rindex(b'data: {"id"')  # the usage chunk
    if vendor.provider == "anthropic":
        return body.index(b"event: message_delta")
    if vendor.legacy:
        return body.rindex(b",")  # the last chunk of the JSON array, and the array's end
    return body.rindex(b"data: ")  # the chunk with finishReason


def cut(vendor: Vendor) -> FakeReply:
    """The connection drops partway through the body (after the first pieces), content-length promising more."""
    reply = stream_reply(vendor.provider, DRAFT, vendor.model, vendor.legacy)
    return replace(reply, cut_after=_final_event_at(vendor, _body(reply)) - 1)


def ends_early(vendor: Vendor) -> FakeReply:
    """The body ends cleanly, but before the vendor's final event (no finish reason, usage or message_stop)."""
    reply = stream_reply(vendor.provider, DRAFT, vendor.model, vendor.legacy)
    body = _body(reply)
    return replace(reply, body=body[: _final_event_at(vendor, body)])


def stalls(vendor: Vendor) -> FakeReply:
    """The stream starts, then trickles slower than the stage's timeout allows."""
    reply = stream_reply(vendor.provider, DRAFT, vendor.model, vendor.legacy)
    return replace(reply, trickle_s=0.05, trickle_headers=False)


def error_event(vendor: Vendor) -> FakeReply:
    if vendor.provider == "openai":
        error = {"message": "The server is overloaded.", "type": "server_error", "code": "server_is_overloaded"}
        return stream_reply("openai", DRAFT, vendor.model, error=error)
    if vendor.provider == "anthropic":
        return stream_reply("anthropic", DRAFT, vendor.model, error=("overloaded_error", "Overloaded"))
    return stream_reply("google", DRAFT, vendor.model, vendor.legacy, error=(503, "UNAVAILABLE", "overloaded"))


@dataclass(frozen=True)
class Fault:
    name: str
    reply: Callable[[Vendor], FakeReply]
    errors: tuple[str, ...]  # what the trace may record for it


FAULTS = [
    # A dropped connection: the SDKs report it as a broken stream, or (aiohttp, requests) as a lost connection.
    Fault("cut mid-stream", cut, ("StreamInterruptedError", "VendorConnectionError")),
    Fault("ends before its final event", ends_early, ("StreamInterruptedError",)),
    Fault("stalls past the timeout", stalls, ("VendorTimeoutError",)),
    # The legacy SDK's protos drop the error object of a stream: it reads as a stream that broke off.
    Fault("error event mid-stream", error_event, ("OverloadedError", "StreamInterruptedError")),
]


def policy(vendor: Vendor, url: str) -> Policy:
    helper, helper_model = (
        ("anthropic", "claude-haiku-4-5") if vendor.provider == "openai" else ("openai", "gpt-4.1-mini")
    )
    providers: dict[str, Any] = {
        "openai": {"base_url": url + "/v1"},
        "anthropic": {"base_url": url},
        "google": {"base_url": url},
    }
    if vendor.backend:
        providers["google"]["backend"] = vendor.backend
    stages = [
        {"name": "primary", "provider": vendor.provider, "model": vendor.model, "threshold": 0.5, "retries": 0,
         "timeout_s": 1.0},
        {"name": "fallback", "provider": helper, "model": helper_model, "retries": 0},
    ]  # fmt: skip
    judge = {"provider": helper, "model": helper_model, "retries": 0}
    return Policy.from_dict(
        {"name": "stream-faults", "version": "1", "stages": stages, "judge": judge, "providers": providers}
    )


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("fault", FAULTS, ids=lambda f: f.name)
@pytest.mark.parametrize("vendor", VENDORS, ids=lambda v: v.key)
def test_a_broken_stream_is_withdrawn_and_the_fallback_answers(
    vendor: Vendor, fault: Fault, mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in KEYS.items():
        monkeypatch.setenv(name, value)
    helper = "anthropic" if vendor.provider == "openai" else "openai"

    def respond(request: RecordedRequest) -> FakeReply:
        if request.vendor == vendor.provider:
            return fault.reply(vendor)
        return stream_reply(helper, GOOD, str(request.model))

    with FakeVendorServer(respond) as server:
        router = Cascade(policy(vendor, server.url))
        events = _stream(router, mode)
    final = events[-1]
    assert isinstance(final, Final), events
    result = final.result
    assert result.stage == "fallback" and result.answer == "".join(GOOD)
    failed = result.attempts[0]
    assert failed.stage == "primary" and failed.error is not None and failed.error.type in fault.errors, failed.error
    shown_primary = any(isinstance(e, TextDelta) and e.stage == "primary" for e in events)
    resets = [e for e in events if isinstance(e, Reset)]
    assert (not shown_primary and not resets) or (resets and resets[0].stage == "primary")
    text = ""
    for event in events:
        text = "" if isinstance(event, Reset) else text + (event.text if isinstance(event, TextDelta) else "")
    assert text == result.answer  # the broken draft is not left on show
    dumped = result.model_dump_json() + repr(events)
    assert not any(key in dumped for key in KEYS.values())


def _stream(router: Cascade, mode: str) -> list[StreamEvent]:
    query = "What is the capital of Australia?"
    if mode == "sync":
        return list(router.stream(query, mode="speculative"))

    async def collect() -> list[StreamEvent]:
        try:
            return [event async for event in router.astream(query, mode="speculative")]
        finally:
            await router.aclose()

    return asyncio.run(collect())
