"""What a vendor can do to an adapter: trickle its reply, send bytes its headers misdescribe, and race a cold
adapter from many threads. The real SDKs of all four adapters against the local fake server on 127.0.0.1.

- A sync call ends by its `timeout_s` however slowly the vendor sends (the SDKs' own timeouts bound each read,
  and one byte every 0.2 s satisfies every read), and so does `Cascade.run`.
- A reply the SDK cannot decode (a latin-1 charset, bytes that are not UTF-8, a body declared gzip that is not)
  is a `MalformedResponseError` chained to what the SDK raised.
- Sixteen threads making the first calls of an adapter at once all get their answers.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from cascade import Cascade
from cascade.errors import CascadeExhausted, MalformedResponseError, VendorTimeoutError
from cascade.policy import Policy
from cascade.providers import get_provider_class
from cascade.providers.base import Completion, CompletionRequest, Message, Provider, ProviderSettings
from cascade.testing import FakeReply, FakeVendorServer, wire

ADAPTERS = ("openai", "anthropic", "google", "google-legacy")
MODELS = {"openai": "gpt-4.1-nano", "anthropic": "claude-haiku-4-5", "google": "gemini-2.0-flash"}
TIMEOUT_S = 0.6
TRICKLE_S = 0.2  # between bytes: the whole reply would take minutes
# How late a call may end past its timeout. Sync calls end within a few milliseconds of it; the async driver
# cancels a call 1 s after its timeout.
LATE_S = 1.5
TEXT = "Café au lait, s'il vous plaît."


def vendor_of(adapter: str) -> str:
    return "google" if adapter == "google-legacy" else adapter


def url_for(adapter: str, server: FakeVendorServer) -> str:
    return server.url + ("/v1" if adapter == "openai" else "")


def build(adapter: str, server: FakeVendorServer, async_http: str = "httpx") -> Provider:
    backend = "generativeai" if adapter == "google-legacy" else None
    settings = ProviderSettings(api_key="test-fault-key", base_url=url_for(adapter, server), async_http=async_http)
    return get_provider_class(vendor_of(adapter), backend)(settings)


def answer(adapter: str, text: str = TEXT) -> FakeReply:
    model = MODELS[vendor_of(adapter)]
    if adapter == "openai":
        return wire.openai_chat(text, prompt_tokens=12, completion_tokens=8, model=model)
    if adapter == "anthropic":
        return wire.anthropic_message(text, input_tokens=12, output_tokens=8, model=model)
    return wire.gemini_content(text, prompt_tokens=12, output_tokens=8, model=model, int_enums=adapter != "google")


def request(adapter: str, timeout_s: float = 5.0) -> CompletionRequest:
    model = MODELS[vendor_of(adapter)]
    return CompletionRequest(model, (Message("user", "Coffee?"),), max_output_tokens=32, timeout_s=timeout_s)


def close(adapter: Provider) -> None:
    asyncio.run(adapter.aclose())


@pytest.fixture
def server() -> Iterator[FakeVendorServer]:
    with FakeVendorServer() as running:
        yield running


def trickled(reply: FakeReply, *, headers: bool = True) -> FakeReply:
    reply.trickle_s, reply.trickle_headers = TRICKLE_S, headers
    return reply


# -- 12.1: a trickling vendor ------------------------------------------------------------------------------------


@pytest.mark.parametrize("headers", [True, False], ids=["whole reply trickles", "body trickles"])
@pytest.mark.parametrize("adapter", ADAPTERS)
def test_a_trickling_vendor_cannot_hold_a_sync_call(adapter: str, headers: bool, server: FakeVendorServer) -> None:
    server.script(vendor_of(adapter), trickled(answer(adapter), headers=headers))
    provider = build(adapter, server)
    start = time.perf_counter()
    try:
        with pytest.raises(VendorTimeoutError) as info:
            provider.complete(request(adapter, timeout_s=TIMEOUT_S))
        elapsed = time.perf_counter() - start
    finally:
        close(provider)
    assert TIMEOUT_S - 0.05 < elapsed < TIMEOUT_S + LATE_S
    assert info.value.retryable


def one_stage(adapter: str, server: FakeVendorServer) -> Policy:
    vendor = vendor_of(adapter)
    config: dict[str, Any] = {"base_url": url_for(adapter, server)}
    if adapter == "google-legacy":
        config["backend"] = "generativeai"
    stage = {"name": "only", "provider": vendor, "model": MODELS[vendor], "retries": 0, "timeout_s": TIMEOUT_S}
    return Policy.from_dict(
        {"name": f"trickle-{adapter}", "version": "1", "stages": [stage], "providers": {vendor: config}}
    )


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_a_trickling_vendor_cannot_hold_a_query(adapter: str, server: FakeVendorServer) -> None:
    server.script(vendor_of(adapter), trickled(answer(adapter)))
    router = Cascade(one_stage(adapter, server), api_keys={vendor_of(adapter): "test-fault-key"})
    start = time.perf_counter()
    try:
        with pytest.raises(CascadeExhausted) as info:
            router.run("Coffee?")
        elapsed = time.perf_counter() - start
    finally:
        asyncio.run(router.aclose())
    assert [a.error.type for a in info.value.attempts if a.error] == ["VendorTimeoutError"]
    assert elapsed < TIMEOUT_S + LATE_S


# -- 12.2: bytes the headers misdescribe ----------------------------------------------------------------------


def _body(adapter: str) -> str:
    return json.dumps(answer(adapter).body, ensure_ascii=False)


FAULTS = {
    "latin-1 charset": lambda a: FakeReply(
        200, _body(a).encode("latin-1"), {"content-type": "application/json; charset=latin-1"}
    ),
    "bytes that are not UTF-8": lambda a: FakeReply(
        200, _body(a).encode("latin-1"), {"content-type": "application/json"}
    ),
    "declared gzip, plain": lambda a: FakeReply(
        200, _body(a).encode(), {"content-type": "application/json", "content-encoding": "gzip"}
    ),
}
# aiohttp under the async clients (the `async_http: aiohttp` setting): openai, anthropic, google.
PATHS = [(a, "sync", "httpx") for a in ADAPTERS] + [(a, "async", "httpx") for a in ADAPTERS]
PATHS += [(a, "async", "aiohttp") for a in ADAPTERS if a != "google-legacy"]
# google-genai decodes a body by its declared charset, replacing what is not UTF-8: an answer, not a fault.
CASES = [
    (*path, fault)
    for path in PATHS
    for fault in FAULTS
    if not (path[0] == "google" and fault in ("latin-1 charset", "bytes that are not UTF-8"))
]


@pytest.mark.parametrize(("adapter", "mode", "async_http", "fault"), CASES)
async def test_an_undecodable_reply_is_a_malformed_response(
    adapter: str, mode: str, async_http: str, fault: str, server: FakeVendorServer
) -> None:
    server.script(vendor_of(adapter), FAULTS[fault](adapter))
    provider = build(adapter, server, async_http)
    try:
        if mode == "sync":
            outcome: Completion | Exception = provider.complete(request(adapter))
        else:
            outcome = await provider.acomplete(request(adapter))
    except Exception as exc:
        outcome = exc
    finally:
        await provider.aclose()
    assert isinstance(outcome, MalformedResponseError), f"{type(outcome).__name__}: {outcome}"
    assert outcome.provider == vendor_of(adapter) and outcome.__cause__ is not None
    assert "unexpected" not in str(outcome), "a failure the adapters know is named as such"


# -- 12.6: a cold adapter under threads and tasks ------------------------------------------------------------


THREADS = 16
TRIALS = 6


def first_calls_from_threads(provider: Provider, call: CompletionRequest) -> list[Any]:
    """`THREADS` threads making the adapter's first calls at the same moment: each one's answer or exception."""
    start = threading.Barrier(THREADS)
    outcomes: list[Any] = [None] * THREADS

    def one(i: int) -> None:
        start.wait()
        try:
            outcomes[i] = provider.complete(call).text
        except Exception as exc:
            outcomes[i] = exc

    threads = [threading.Thread(target=one, args=(i,)) for i in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return outcomes


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_threads_making_the_first_calls_of_an_adapter_all_get_answers(adapter: str, server: FakeVendorServer) -> None:
    server.responder = lambda r: answer(adapter, "ok")
    for _ in range(TRIALS):
        provider = build(adapter, server)  # cold: no client yet
        try:
            assert first_calls_from_threads(provider, request(adapter)) == ["ok"] * THREADS
        finally:
            close(provider)
