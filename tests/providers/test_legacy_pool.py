"""The legacy Gemini adapter runs its sync SDK call on its own thread pool, not the loop's default executor.

The default executor holds min(32, CPUs + 4) threads, so it caps the calls in flight below the concurrency a
caller asks for. The server makes these tests deterministic rather than timed: a reply waits at a barrier until
the expected number of requests are in flight at once, and the server counts the most it held
(`FakeVendorServer.peak_in_flight`).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import requests
import structlog

from cascade import Cascade
from cascade.errors import VendorConnectionError
from cascade.policy import Policy
from cascade.providers.base import CompletionRequest, Message, ProviderSettings
from cascade.providers.google_legacy import THREAD_NAME_PREFIX, GoogleLegacyProvider
from cascade.testing import FakeReply, FakeVendorServer, RecordedRequest, wire

MODEL = "gemini-2.0-flash"
# More than any default executor holds (min(32, CPUs + 4) is at most 32), whatever the machine.
MANY = 40
BARRIER_TIMEOUT_S = 3.0  # only reached when the calls do not all arrive together (the fix is missing)


def answer(text: str = "ok") -> FakeReply:
    return wire.gemini_content(text, prompt_tokens=3, output_tokens=1, model=MODEL, int_enums=True)


class AtOnce:
    """A responder that answers only once `parties` requests are waiting together (a barrier), else a 500."""

    def __init__(self, parties: int) -> None:
        self.barrier = threading.Barrier(parties, timeout=BARRIER_TIMEOUT_S)

    def __call__(self, request: RecordedRequest) -> FakeReply:
        try:
            self.barrier.wait()
        except threading.BrokenBarrierError:
            return wire.gemini_error(500, "INTERNAL", "not enough requests in flight at once")
        return answer()


class Gate:
    """A responder that holds every request until `release()`."""

    def __init__(self) -> None:
        self.open = threading.Event()

    def release(self) -> None:
        self.open.set()

    def __call__(self, request: RecordedRequest) -> FakeReply:
        self.open.wait(timeout=5)
        return answer()


@pytest.fixture
def server() -> Iterator[FakeVendorServer]:
    with FakeVendorServer() as running:
        yield running


def adapter(server: FakeVendorServer, **kwargs: Any) -> GoogleLegacyProvider:
    return GoogleLegacyProvider(ProviderSettings(api_key="test-google-key", base_url=server.url), **kwargs)


def request(n: int = 0) -> CompletionRequest:
    return CompletionRequest(MODEL, (Message("user", f"question {n}"),), max_output_tokens=16, timeout_s=5)


def pool_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name.startswith(THREAD_NAME_PREFIX)}


async def wait_for(condition: Any, timeout_s: float = 3.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not condition():
            await asyncio.sleep(0.005)


def join_pool_threads(threads: set[threading.Thread]) -> None:
    for thread in threads:
        thread.join(timeout=3)
    assert not [t for t in threads if t.is_alive()]


async def test_more_calls_in_flight_than_the_default_executor_holds(server: FakeVendorServer) -> None:
    server.responder = AtOnce(MANY)
    policy = Policy.from_dict(
        {
            "name": "legacy-only",
            "version": "1",
            "stages": [{"name": "flash", "provider": "google", "model": MODEL, "retries": 0, "timeout_s": 10}],
            "providers": {"google": {"base_url": server.url, "backend": "generativeai"}},
        }
    )
    router = Cascade(policy, api_keys={"google": "test-google-key"})
    try:
        results = await router.arun_many([f"question {i}" for i in range(MANY)], concurrency=MANY)
    finally:
        await router.aclose()
    assert [r.answer for r in results] == ["ok"] * MANY
    assert server.peak_in_flight == MANY


async def test_calls_run_on_named_threads_in_the_callers_context(
    server: FakeVendorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    server.responder = lambda r: answer()
    seen: list[tuple[str, dict[str, Any]]] = []
    send = requests.Session.request  # what the SDK's REST transport calls, on the thread that makes the call

    def spy(self: requests.Session, *args: Any, **kwargs: Any) -> Any:
        seen.append((threading.current_thread().name, structlog.contextvars.get_contextvars()))
        return send(self, *args, **kwargs)

    monkeypatch.setattr(requests.Session, "request", spy)
    provider = adapter(server)

    async def one(n: int) -> str | None:
        structlog.contextvars.bind_contextvars(query_id=f"q{n}")  # this task's own copy of the context
        return (await provider.acomplete(request(n))).text

    try:
        assert await asyncio.gather(one(1), one(2)) == ["ok", "ok"]
        with structlog.contextvars.bound_contextvars(query_id="q3"):
            assert provider.complete(request(3)).text == "ok"  # the sync path too
    finally:
        await provider.aclose()
    assert all(name.startswith(f"{THREAD_NAME_PREFIX}_") for name, _ in seen)
    assert sorted(ctx["query_id"] for _, ctx in seen) == ["q1", "q2", "q3"]


async def test_threads_stay_within_the_bound(server: FakeVendorServer) -> None:
    # A barrier of 4: the server can only answer when 4 calls are in flight together; a bound of 4 lets no
    # more than that in, so 12 calls go through in rounds of exactly 4.
    server.responder = AtOnce(4)
    provider = adapter(server, max_threads=4)
    before = pool_threads()  # an earlier test's adapter may not be collected yet
    try:
        replies = await asyncio.gather(*(provider.acomplete(request(n)) for n in range(12)))
        threads = pool_threads() - before
    finally:
        await provider.aclose()
    assert [r.text for r in replies] == ["ok"] * 12
    assert server.peak_in_flight == 4
    assert len(threads) == 4
    join_pool_threads(threads)


def test_max_threads_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        GoogleLegacyProvider(ProviderSettings(api_key="k"), max_threads=0)


async def test_aclose_ends_the_pool_and_the_next_call_starts_a_new_one(server: FakeVendorServer) -> None:
    server.responder = lambda r: answer()
    provider = adapter(server)
    before = pool_threads()
    try:
        assert (await provider.acomplete(request())).text == "ok"
        first = pool_threads() - before
        assert len(first) == 1
        await provider.aclose()
        join_pool_threads(first)  # aclose did not wait for them, but they end
        assert (await provider.acomplete(request())).text == "ok"
        second = pool_threads() - before
        assert len(second) == 1 and not second & first
    finally:
        await provider.aclose()
    join_pool_threads(second)


async def test_aclose_fails_queued_calls_and_lets_the_running_one_finish(server: FakeVendorServer) -> None:
    gate = Gate()
    server.responder = gate
    provider = adapter(server, max_threads=1)
    running = asyncio.create_task(provider.acomplete(request(1)))
    await wait_for(lambda: server.in_flight == 1)
    queued = asyncio.create_task(provider.acomplete(request(2)))
    await asyncio.sleep(0)  # the queued call reaches the pool
    await provider.aclose()  # returns at once: the running call is still held by the server
    with pytest.raises(VendorConnectionError, match="closed before this call was sent"):
        await queued
    gate.release()
    assert (await running).text == "ok"
    try:
        assert (await provider.acomplete(request(3))).text == "ok"
    finally:
        await provider.aclose()
    assert len(server.requests) == 2  # the queued call was never sent


async def test_cancelling_the_caller_is_a_cancellation_not_a_vendor_error(server: FakeVendorServer) -> None:
    gate = Gate()
    server.responder = gate
    provider = adapter(server)
    try:
        task = asyncio.create_task(provider.acomplete(request()))
        await wait_for(lambda: server.in_flight == 1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        # The thread is still in the SDK call until the server answers (or the request's timeout fires).
        assert server.in_flight == 1
        gate.release()
        await wait_for(lambda: server.in_flight == 0)
    finally:
        await provider.aclose()
