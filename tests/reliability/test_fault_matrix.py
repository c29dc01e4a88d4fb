"""The fault matrix: every vendor x every fault, through the engine and the real SDKs, against a local server.

Each cell asserts the documented outcome (docs/reliability.md): which error the trace records, whether the
call was retried, and that the query still ends with an answer from the fallback stage. Every cell runs with
canary keys and checks that no key reaches the result, its JSON, an exception or a log event.
"""

from __future__ import annotations

import json
import socket
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from structlog.testing import capture_logs

from cascade import Cascade
from cascade.policy import Policy
from cascade.result import CascadeResult
from cascade.testing import FakeVendorServer, wire
from cascade.testing.fake_server import RecordedRequest
from cascade.testing.wire import FakeReply

CANARIES = {
    "openai": "sk-proj-CANARYopenai0123",
    "anthropic": "sk-ant-CANARYanthropic01",
    "google": "AIzaCANARYgoogle0123456789ab",
}


@dataclass(frozen=True)
class Vendor:
    key: str  # the matrix's name for it
    provider: str
    model: str
    backend: str | None = None


VENDORS = [
    Vendor("openai", "openai", "gpt-4.1-nano"),
    Vendor("anthropic", "anthropic", "claude-haiku-4-5"),
    Vendor("google", "google", "gemini-2.0-flash", "genai"),
    Vendor("google-legacy", "google", "gemini-2.0-flash", "generativeai"),
]


def _helpers_for(vendor: Vendor) -> tuple[str, str]:
    """(provider, model) of the judge and the fallback stage: never the vendor under test."""
    return ("anthropic", "claude-sonnet-4-6") if vendor.provider == "openai" else ("openai", "gpt-4.1-mini")


def ok(vendor: Vendor, text: str = "Canberra.") -> FakeReply:
    return _answer(vendor.provider, text, vendor.model, vendor.backend == "generativeai")


def _answer(provider: str, text: str, model: str, legacy: bool = False, **kw: Any) -> FakeReply:
    if provider == "openai":
        return wire.openai_chat(text, prompt_tokens=20, completion_tokens=4, model=model, **kw)
    if provider == "anthropic":
        return wire.anthropic_message(text, input_tokens=20, output_tokens=4, model=model, **kw)
    return wire.gemini_content(text, prompt_tokens=20, output_tokens=4, model=model, int_enums=legacy, **kw)


def _error(vendor: Vendor, status: int, retry_after: float | None = None) -> FakeReply:
    if vendor.provider == "openai":
        return wire.openai_error(
            status,
            f"error {status}",
            type_="server_error" if status >= 500 else "requests",
            code=None,
            retry_after=retry_after,
        )
    if vendor.provider == "anthropic":
        kind = {429: "rate_limit_error", 529: "overloaded_error"}.get(status, "api_error")
        return wire.anthropic_error(status, kind, f"error {status}", retry_after=retry_after)
    grpc = {429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 503: "UNAVAILABLE"}[status]
    return wire.gemini_error(status, grpc, f"error {status}")


def _no_text(vendor: Vendor) -> FakeReply:
    reply = ok(vendor)
    if vendor.provider == "openai":
        reply.body["choices"] = []
    elif vendor.provider == "anthropic":
        reply.body["content"] = []
    else:
        reply.body["candidates"] = []
    return reply


def _blocked(vendor: Vendor) -> FakeReply:
    legacy = vendor.backend == "generativeai"
    if vendor.provider == "openai":
        return _answer("openai", None, vendor.model, refusal="I can't help with that.")  # type: ignore[arg-type]
    if vendor.provider == "anthropic":
        return _answer("anthropic", None, vendor.model, stop_reason="refusal")  # type: ignore[arg-type]
    return _answer("google", None, vendor.model, legacy, finish_reason="SAFETY")  # type: ignore[arg-type]


def _truncated(vendor: Vendor) -> FakeReply:
    legacy = vendor.backend == "generativeai"
    if vendor.provider == "openai":
        return _answer("openai", "The capital of Austr", vendor.model, finish_reason="length")
    if vendor.provider == "anthropic":
        return _answer("anthropic", "The capital of Austr", vendor.model, stop_reason="max_tokens")
    return _answer("google", "The capital of Austr", vendor.model, legacy, finish_reason="MAX_TOKENS")


@dataclass(frozen=True)
class Fault:
    name: str
    replies: Callable[[Vendor], list[FakeReply]]  # what the stage under test gets, in order
    error: str  # the error type the trace records
    attempts: int  # calls made to the stage under test (retries=1: a retryable fault is tried twice)
    only: tuple[str, ...] = ()  # vendors this fault applies to (empty: all)


STALL = 3.0  # seconds the server waits; the stage's timeout is 0.5 s
FAULTS = [
    Fault("429 with retry-after", lambda v: [_error(v, 429, retry_after=0.05)] * 2, "RateLimitedError", 2),
    Fault("500", lambda v: [_error(v, 500)] * 2, "ServerError", 2),
    Fault("503", lambda v: [_error(v, 503)] * 2, "OverloadedError", 2),
    Fault("529 overloaded", lambda v: [_error(v, 529)] * 2, "OverloadedError", 2, only=("anthropic",)),
    Fault("connection refused", lambda v: [], "VendorConnectionError", 2),
    Fault("stall past the timeout", lambda v: [FakeReply(200, {}, delay_s=STALL)], "VendorTimeoutError", 1),
    Fault(
        "body not JSON",
        lambda v: [FakeReply(200, "<html>502 Bad Gateway</html>", {"content-type": "text/html"})],
        "MalformedResponseError",
        1,
    ),
    Fault("no answer text", lambda v: [_no_text(v)], "MalformedResponseError", 1),
    Fault("safety block or refusal", lambda v: [_blocked(v)], "ContentBlockedError", 1),
    Fault("truncated at max tokens", lambda v: [_truncated(v)], "TruncatedError", 1),
]
CELLS = [(v, f) for v in VENDORS for f in FAULTS if not f.only or v.key in f.only]


class Script:
    """Replies by model: the stage under test gets its fault, the others answer well."""

    def __init__(self) -> None:
        self.queues: dict[str, deque[FakeReply]] = {}
        self.default: dict[str, Callable[[RecordedRequest], FakeReply]] = {}

    def __call__(self, request: RecordedRequest) -> FakeReply:
        queue = self.queues.get(request.model or "")
        if queue:
            return queue.popleft()
        return self.default[request.model or ""](request)


def _closed_port() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


def _policy(vendor: Vendor, server_url: str, refused: bool, judge_timeout: float = 5.0) -> Policy:
    helper, helper_model = _helpers_for(vendor)
    urls = {"openai": server_url + "/v1", "anthropic": server_url, "google": server_url}
    if refused:
        urls[vendor.provider] = _closed_port() + ("/v1" if vendor.provider == "openai" else "")
    providers: dict[str, Any] = {name: {"base_url": url} for name, url in urls.items()}
    if vendor.backend:
        providers["google"]["backend"] = vendor.backend
    return Policy.from_dict(
        {
            "name": "fault-matrix",
            "version": "1",
            "stages": [
                {
                    "name": "primary",
                    "provider": vendor.provider,
                    "model": vendor.model,
                    "threshold": 0.5,
                    "retries": 1,
                    "timeout_s": 0.5,
                    "max_output_tokens": 64,
                },
                {"name": "fallback", "provider": helper, "model": helper_model, "max_output_tokens": 64},
            ],
            "judge": {
                "provider": helper,
                "model": "gpt-4o-mini" if helper == "openai" else "claude-haiku-4-5",
                "retries": 0,
                "timeout_s": judge_timeout,
            },
            "providers": providers,
            "budget": {"deadline_s": 30},
        }
    )


@pytest.fixture
def server() -> Iterator[tuple[FakeVendorServer, Script]]:
    script = Script()
    with FakeVendorServer(responder=script) as running:
        yield running, script


def _judge_model(policy: Policy) -> str:
    return policy.judge.model


def _serve_helpers(script: Script, policy: Policy, judge: Callable[[RecordedRequest], FakeReply] | None = None) -> None:
    fallback = policy.stages[1]
    script.default[fallback.model] = lambda r: _answer(fallback.provider, "Canberra is the capital.", fallback.model)
    verdict = json.dumps({"score": 9, "reason": "Correct."})
    judge_provider = policy.judge.provider
    script.default[policy.judge.model] = judge or (lambda r: _answer(judge_provider, verdict, policy.judge.model))


def _assert_no_canary(result: CascadeResult | None, events: list[dict[str, Any]], *texts: str) -> None:
    blob = "\n".join([result.model_dump_json() if result else "", repr(result), repr(events), *texts])
    for canary in CANARIES.values():
        assert canary not in blob


async def _run(router: Cascade, mode: str) -> CascadeResult:
    if mode == "sync":
        return router.run("What is the capital of Australia?")
    return await router.arun("What is the capital of Australia?")


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize(("vendor", "fault"), CELLS, ids=[f"{v.key}:{f.name}" for v, f in CELLS])
async def test_fault_is_recorded_and_escalates(vendor: Vendor, fault: Fault, mode: str, server: Any) -> None:
    running, script = server
    policy = _policy(vendor, running.url, refused=fault.name == "connection refused")
    _serve_helpers(script, policy)
    script.queues[vendor.model] = deque(fault.replies(vendor))
    router = Cascade(policy, api_keys=CANARIES, retry_backoff_s=0.0)
    try:
        with capture_logs() as events:
            result = await _run(router, mode)
    finally:
        await router.aclose()
    primary = [a for a in result.attempts if a.stage == "primary" and a.role == "answer"]
    assert [a.error.type if a.error else None for a in primary] == [fault.error] * fault.attempts
    assert result.stage == "fallback" and result.answer == "Canberra is the capital."
    assert any(e["event"] == "cascade.error" and e["error_type"] == fault.error for e in events)
    _assert_no_canary(result, events)


JUDGE_FAULTS = {
    "not JSON": ("The answer is right.", "JudgeError"),
    "score out of range": (json.dumps({"score": 42, "reason": "great"}), "JudgeError"),
    "missing score": (json.dumps({"reason": "fine"}), "JudgeError"),
    "several JSON objects": ('{"score": 1, "reason": "no"} {"score": 10, "reason": "yes"}', "JudgeError"),
}


@pytest.mark.parametrize("name", [*JUDGE_FAULTS, "judge times out"])
@pytest.mark.parametrize("vendor", VENDORS[:3], ids=[v.key for v in VENDORS[:3]])
async def test_judge_fault_gives_zero_confidence_and_escalates(vendor: Vendor, name: str, server: Any) -> None:
    running, script = server
    policy = _policy(vendor, running.url, refused=False, judge_timeout=0.5)
    if name == "judge times out":
        judge = lambda r: FakeReply(200, {}, delay_s=STALL)  # noqa: E731
        expected = "VendorTimeoutError"
    else:
        text, expected = JUDGE_FAULTS[name]
        judge = lambda r: _answer(policy.judge.provider, text, policy.judge.model)  # noqa: E731
    _serve_helpers(script, policy, judge)
    script.queues[vendor.model] = deque([ok(vendor)])
    router = Cascade(policy, api_keys=CANARIES, retry_backoff_s=0.0)
    try:
        with capture_logs() as events:
            result = await router.arun("What is the capital of Australia?")
    finally:
        await router.aclose()
    verdict = next(a for a in result.attempts if a.role == "judge")
    assert verdict.error is not None and verdict.error.type == expected
    assert result.stage == "fallback"
    _assert_no_canary(result, events)


def test_every_tier_failing_raises_one_error_without_the_keys(server: Any) -> None:
    from cascade import CascadeExhausted

    running, script = server
    vendor = VENDORS[0]
    policy = _policy(vendor, running.url, refused=False)
    script.default[vendor.model] = lambda r: _error(vendor, 500)
    script.default[policy.stages[1].model] = lambda r: wire.anthropic_error(529, "overloaded_error", "Overloaded")
    router = Cascade(policy, api_keys=CANARIES, retry_backoff_s=0.0)
    with capture_logs() as events, pytest.raises(CascadeExhausted) as info:
        router.run("What is the capital of Australia?")
    assert [a.error.type for a in info.value.attempts] == ["ServerError"] * 2 + ["OverloadedError"] * 3
    _assert_no_canary(info.value.result, events, str(info.value), repr(info.value), repr(router))
