"""No key leaks. With a canary key per vendor, in the environment or given explicitly, a slice of the fault matrix
(vendors echoing the key back, as some gateways do) and a small load run leave the canary in no log event
(structlog's or the standard library's, at DEBUG, vcrpy's included), exception message, repr or traceback, trace,
result JSON, `repr(router)` or `repr(provider)`, nor in any attribute reachable from an error an adapter raises
(the SDK exceptions chained behind it hold the request's headers and the vendor's reply); and a cassette recorded
with cascade's vcr configuration does not hold it, in a body or in a header value.

The canaries are plain words, not key-shaped: only `register_secret` (called when a key is resolved) can mask them,
not `redact`'s key patterns.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
import traceback
import types
from collections.abc import Sequence
from typing import Any

import pytest
import yaml
from structlog.testing import capture_logs

from cascade import Cascade
from cascade.errors import AuthenticationError, CascadeExhausted, ProviderError, redact, register_secret
from cascade.policy import Policy
from cascade.providers import get_provider_class
from cascade.providers.base import CompletionRequest, Message, ProviderSettings
from cascade.result import CascadeResult
from cascade.testing import FakeReply, FakeVendorServer, RecordedRequest, wire
from cascade.testing.cassettes import vcr_instance
from tests.reliability import test_load as load

CANARIES = {
    "openai": "canary-openai-4f1e9b27c3d5",
    "anthropic": "canary-anthropic-8d2a6c0e51b7",
    "google": "canary-google-93b7e2a4f6c1",
}
ENV = {"OPENAI_API_KEY": "openai", "ANTHROPIC_API_KEY": "anthropic", "GEMINI_API_KEY": "google"}
MODELS = {"openai": "gpt-4.1-nano", "anthropic": "claude-haiku-4-5", "google": "gemini-2.0-flash"}
QUESTION = "What is the capital of Australia?"


@pytest.fixture(autouse=True)
def canary_env(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    for var, vendor in ENV.items():
        monkeypatch.setenv(var, CANARIES[vendor])
    for var in ("GOOGLE_API_KEY", "OPENAI_BASE_URL", "ANTHROPIC_BASE_URL", "GOOGLE_GEMINI_BASE_URL"):
        monkeypatch.delenv(var, raising=False)
    caplog.set_level(logging.DEBUG)  # the SDKs' and httpx2's own loggers too


def sent_key(request: RecordedRequest) -> str:
    headers = request.headers
    return headers.get("authorization") or headers.get("x-api-key") or headers.get("x-goog-api-key") or "?"


def echo(vendor: str, status: int, key: str) -> FakeReply:
    """An error whose message repeats the key the request carried."""
    message = f"Incorrect API key provided: {key}"
    if vendor == "openai":
        return wire.openai_error(status, message, type_="invalid_request_error", code="invalid_api_key")
    if vendor == "anthropic":
        return wire.anthropic_error(status, "authentication_error", message)
    return wire.gemini_error(status, "UNAUTHENTICATED", message)


def answer(vendor: str, text: str) -> FakeReply:
    return load.answer_reply(vendor, text, MODELS[vendor])


FAULTS = {
    "401 echoing the key": (lambda v, key: echo(v, 401, key), "AuthenticationError"),
    "500 echoing the key": (lambda v, key: echo(v, 500, key), "ServerError"),
    "proxy page echoing the key": (
        lambda v, key: FakeReply(200, f"<html>denied for {key}</html>", {"content-type": "text/html"}),
        "MalformedResponseError",
    ),
}

# google's adapter quotes no part of a body that is not JSON: nothing echoed to mask.
UNQUOTED = {("google", "proxy page echoing the key")}


def policy(url: str, first: str, second: str, on_error: str = "escalate") -> Policy:
    judge = "anthropic" if first == "openai" else "openai"
    return Policy.from_dict({
        "name": "secrets", "version": "1", "on_error": on_error,
        "stages": [
            {"name": "first", "provider": first, "model": MODELS[first], "threshold": 0.5, "retries": 1,
             "timeout_s": 5},
            {"name": "second", "provider": second, "model": MODELS[second]},
        ],
        "judge": {"provider": judge, "model": MODELS[judge], "retries": 0},
        "providers": {"openai": {"base_url": url + "/v1"}, "anthropic": {"base_url": url},
                      "google": {"base_url": url}},
    })  # fmt: skip


def leaks(*things: Any, router: Cascade | None = None, records: Sequence[logging.LogRecord] = ()) -> list[str]:
    """Where a canary shows: every rendering of every object, the router and its providers, and log records."""
    texts = [repr(router), *map(repr, router._providers.values())] if router else []
    for thing in things:
        if isinstance(thing, BaseException):
            texts += [str(thing), repr(thing), "".join(traceback.format_exception(thing))]
            if isinstance(thing, CascadeExhausted):
                thing = thing.result
        if isinstance(thing, CascadeResult):
            texts.append(thing.model_dump_json())
        texts.append(repr(thing))
    texts += [r.getMessage() for r in records]
    return [text for text in texts for canary in CANARIES.values() if canary in text]


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("fault", FAULTS)
@pytest.mark.parametrize("vendor", MODELS)
async def test_fault_matrix_slice_keeps_the_keys_out(
    vendor: str, fault: str, mode: str, caplog: pytest.LogCaptureFixture
) -> None:
    make_fault, error_type = FAULTS[fault]
    other = "anthropic" if vendor == "openai" else "openai"

    def responder(request: RecordedRequest) -> FakeReply:
        if request.model == MODELS[vendor]:
            return make_fault(vendor, sent_key(request))
        if "<<<ANSWER" in str(request.body):
            return answer(request.vendor, '{"score": 9, "reason": "ok"}')
        return answer(request.vendor, "Canberra.")

    with FakeVendorServer(responder=responder) as server, capture_logs() as events:
        router = Cascade(policy(server.url, vendor, other), retry_backoff_s=0.0)  # keys from the environment
        try:
            result = router.run(QUESTION) if mode == "sync" else await router.arun(QUESTION)
        finally:
            await router.aclose()
    errors = [a.error for a in result.attempts if a.error]
    assert errors and {e.type for e in errors} == {error_type}
    if (vendor, fault) not in UNQUOTED:
        assert all("***" in e.message for e in errors), "the key was echoed and masked"
    assert result.stage == "second"
    assert leaks(result, *events, router=router, records=caplog.records) == []


@pytest.mark.parametrize("vendor", MODELS)
def test_an_error_raised_to_the_caller_carries_no_key(vendor: str, caplog: pytest.LogCaptureFixture) -> None:
    other = "anthropic" if vendor == "openai" else "openai"
    with FakeVendorServer(responder=lambda r: echo(r.vendor, 401, sent_key(r))) as server, capture_logs() as events:
        router = Cascade(policy(server.url, vendor, other, on_error="raise"))
        try:
            with pytest.raises(CascadeExhausted) as info:
                router.run(QUESTION)
        finally:
            asyncio.run(router.aclose())
    assert "AuthenticationError" in str(info.value) and "***" in str(info.value)
    assert leaks(info.value, *events, router=router, records=caplog.records) == []


class EchoingFaults(load.FaultyVendors):
    """The load test's seeded faults, each error message repeating the key the request carried."""

    echoed = 0

    def __call__(self, request: RecordedRequest) -> FakeReply:
        reply = super().__call__(request)
        if reply.status >= 400:
            reply = copy.deepcopy(reply)
            reply.body["error"]["message"] += f" (key {sent_key(request)})"
            self.echoed += 1
        return reply


async def test_a_load_run_keeps_the_keys_out(caplog: pytest.LogCaptureFixture) -> None:
    queries = [f"Q{i}: what is {i} plus {i}?" for i in range(40)]
    responder = EchoingFaults(seed=7, rate=0.3, kinds=("401", "429", "500", "503", "529", "drop"))
    with FakeVendorServer(responder=responder) as server, capture_logs() as events:
        router = Cascade(load.load_policy(server.url), api_keys=CANARIES, retry_backoff_s=0.0)
        try:
            outcomes = await router.arun_many(queries, concurrency=20, return_exceptions=True)
        finally:
            await router.aclose()
    messages = [a.error.message for o in outcomes for a in load.trace_of(o).attempts if a.error]
    assert sum("(key ***" in m for m in messages) == responder.echoed > 0, "every echoed key was masked"
    assert leaks(*outcomes, *events, router=router, records=caplog.records) == []


def ask_once(policy: Policy) -> CascadeResult:
    """`run` on a router of its own, closed afterwards (its connections would otherwise wait for the collector)."""
    router = Cascade(policy)
    try:
        return router.run(QUESTION)
    finally:
        asyncio.run(router.aclose())


def one_stage(url: str, vendor: str) -> Policy:
    return Policy.from_dict({
        "name": "record", "version": "1", "stages": [{"name": "only", "provider": vendor, "model": MODELS[vendor]}],
        "providers": {"openai": {"base_url": url + "/v1"}, "anthropic": {"base_url": url},
                      "google": {"base_url": url}},
    })  # fmt: skip


def test_a_recorded_cassette_holds_no_key(tmp_path: Any) -> None:
    cassette = tmp_path / "calls.yaml"
    with FakeVendorServer(responder=lambda r: answer(r.vendor, "Canberra.")) as server:
        with vcr_instance(record_mode="all").use_cassette(str(cassette)):
            for vendor in MODELS:
                assert ask_once(one_stage(server.url, vendor)).answer == "Canberra."
        text = cassette.read_text()
        assert server.url not in text  # rewritten to the vendors' hosts
    assert len(yaml.safe_load(text)["interactions"]) == 3
    assert [c for c in CANARIES.values() if c in text] == []


def test_a_cassette_of_an_echoed_key_holds_no_key(tmp_path: Any) -> None:
    cassette = tmp_path / "echo.yaml"
    with FakeVendorServer(responder=lambda r: echo(r.vendor, 401, sent_key(r))) as server:
        recording = vcr_instance(record_mode="all").use_cassette(str(cassette))
        with recording, pytest.raises(CascadeExhausted):  # the only stage fails
            ask_once(one_stage(server.url, "openai"))
        text = cassette.read_text()
    assert "Incorrect API key provided" in text
    assert [c for c in CANARIES.values() if c in text] == []


def provider_error(vendor: str) -> AuthenticationError:
    with FakeVendorServer(responder=lambda r: echo(r.vendor, 401, sent_key(r))) as server:
        url = server.url + ("/v1" if vendor == "openai" else "")
        provider = get_provider_class(vendor)(ProviderSettings(api_key=CANARIES[vendor], base_url=url))
        request = CompletionRequest(MODELS[vendor], (Message("user", QUESTION),), max_output_tokens=16, timeout_s=5)
        try:
            with pytest.raises(AuthenticationError) as info:
                provider.complete(request)
        finally:
            asyncio.run(provider.aclose())
    return info.value


@pytest.mark.parametrize("vendor", MODELS)
def test_a_provider_error_message_masks_an_echoed_key(vendor: str) -> None:
    error = provider_error(vendor)
    assert "***" in str(error)
    assert [c for c in CANARIES.values() if c in str(error) or c in repr(error)] == []


@pytest.mark.parametrize("vendor", MODELS)
def test_a_provider_error_traceback_and_body_mask_an_echoed_key(vendor: str) -> None:
    error = provider_error(vendor)
    assert leaks(error, error.body) == []


def reachable_strings(root: Any, depth: int = 12) -> list[tuple[str, str]]:
    """(path, text) for every string or bytes reachable from `root`: attributes, slots, mappings, sequences, and
    an exception's arguments and chained exceptions (not tracebacks: their frames hold everything in scope)."""
    skip = (types.ModuleType, types.FunctionType, types.BuiltinFunctionType, types.MethodType, type,
            types.TracebackType, types.FrameType, types.CodeType)  # fmt: skip
    seen: set[int] = set()
    found: list[tuple[str, str]] = []

    def walk(obj: Any, path: str, left: int) -> None:
        if left < 0 or id(obj) in seen or isinstance(obj, skip) or obj is None:
            return
        seen.add(id(obj))
        if isinstance(obj, str):
            found.append((path, obj))
            return
        if isinstance(obj, bytes | bytearray):
            found.append((path, bytes(obj).decode("utf-8", "replace")))
            return
        if isinstance(obj, int | float):
            return
        children: list[tuple[str, Any]] = []
        if isinstance(obj, BaseException):
            children += [(".args", obj.args), (".__cause__", obj.__cause__), (".__context__", obj.__context__)]
        items = getattr(obj, "items", None)
        if callable(items):
            with contextlib.suppress(Exception):
                children += [(f"[{k!r}]", v) for k, v in items()] + [("[key]", k) for k, _ in items()]
        if isinstance(obj, list | tuple | set | frozenset):
            children += [(f"[{i}]", v) for i, v in enumerate(obj)]
        with contextlib.suppress(TypeError):
            children += [(f".{k}", v) for k, v in vars(obj).items() if k != "__traceback__"]
        for cls in type(obj).__mro__:
            for slot in getattr(cls, "__slots__", ()):
                if isinstance(slot, str) and slot != "__weakref__":
                    with contextlib.suppress(Exception):
                        children.append((f".{slot}", getattr(obj, slot)))
        for step, child in children:
            walk(child, path + step, left - 1)

    walk(root, "error", depth)
    return found


def dropped(vendor: str, key: str) -> FakeReply:
    return FakeReply(drop=True)


SDK_FAULTS = {"401 echoing the key": lambda v, key: echo(v, 401, key), "dropped connection": dropped}
ADAPTERS = [("openai", "httpx"), ("anthropic", "httpx"), ("google", "httpx"), ("google", "generativeai"),
            ("openai", "aiohttp"), ("anthropic", "aiohttp"), ("google", "aiohttp")]  # fmt: skip


# aiohttp serves async calls only; google-genai's aiohttp errors for a dropped connection hold no request.
CASES = [
    (vendor, how, mode, fault)
    for vendor, how in ADAPTERS
    for mode in ("sync", "async")
    for fault in SDK_FAULTS
    if not (how == "aiohttp" and (mode == "sync" or (vendor == "google" and fault == "dropped connection")))
]


@pytest.mark.parametrize(("vendor", "how", "mode", "fault"), CASES)
async def test_no_attribute_reachable_from_a_provider_error_holds_the_key(
    vendor: str, how: str, mode: str, fault: str
) -> None:
    with FakeVendorServer(responder=lambda r: SDK_FAULTS[fault](r.vendor, sent_key(r))) as server:
        url = server.url + ("/v1" if vendor == "openai" else "")
        backend = "generativeai" if how == "generativeai" else None
        async_http = "aiohttp" if how == "aiohttp" else "httpx"
        settings = ProviderSettings(api_key=CANARIES[vendor], base_url=url, backend=backend, async_http=async_http)
        provider = get_provider_class(vendor, backend)(settings)
        request = CompletionRequest(MODELS[vendor], (Message("user", QUESTION),), max_output_tokens=16, timeout_s=5)
        try:
            with pytest.raises(ProviderError) as info:
                provider.complete(request) if mode == "sync" else await provider.acomplete(request)
        finally:
            await provider.aclose()
    assert info.value.__cause__ is not None  # the SDK's exception is chained, for debugging
    texts = reachable_strings(info.value)
    assert any(path.startswith("error.__cause__.") for path, _ in texts), "the walk reached the chained exceptions"
    assert [path for path, text in texts if CANARIES[vendor] in text] == []


def test_a_cassette_of_a_key_in_a_response_header_holds_no_key(tmp_path: Any) -> None:
    cassette = tmp_path / "header.yaml"

    def responder(request: RecordedRequest) -> FakeReply:
        reply = answer(request.vendor, "Canberra.")
        reply.headers = {**reply.headers, "x-gateway-debug": f"authenticated with {sent_key(request)}"}
        return reply

    with FakeVendorServer(responder=responder) as server:
        with vcr_instance(record_mode="all").use_cassette(str(cassette)):
            for vendor in MODELS:
                assert ask_once(one_stage(server.url, vendor)).answer == "Canberra."
        text = cassette.read_text()
    assert text.count("x-gateway-debug") == 3
    assert [c for c in CANARIES.values() if c in text] == []


def test_vcrpy_logs_no_key_while_recording(tmp_path: Any, caplog: pytest.LogCaptureFixture) -> None:
    cassette = tmp_path / "logged.yaml"
    with FakeVendorServer(responder=lambda r: echo(r.vendor, 401, sent_key(r))) as server:
        recording = vcr_instance(record_mode="all").use_cassette(str(cassette))
        with recording, pytest.raises(CascadeExhausted):
            ask_once(one_stage(server.url, "openai"))
    appended = [r for r in caplog.records if r.name.startswith("vcr") and "Appending request" in r.getMessage()]
    assert appended and "Incorrect API key provided" in appended[0].getMessage()
    assert [r.getMessage() for r in caplog.records if CANARIES["openai"] in r.getMessage()] == []


def test_redact_masks_registered_keys_and_key_shapes() -> None:
    register_secret("plain-secret-value-123")
    register_secret("abc")  # too short to register: would mask ordinary words
    text = "a plain-secret-value-123 b sk-proj-ABCDEFGH12345678 c AIza" + "x" * 30 + " d Bearer tok.en e abc"
    assert redact(text) == "a *** b *** c *** d *** e abc"
