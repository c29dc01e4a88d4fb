"""Cancelling a query mid-cascade (its second stage stalled at the vendor) leaves no task behind, and the router
answers the next query. Through the real SDK adapters against the local vendor server, for each vendor."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from cascade import Cascade
from cascade.policy import Policy
from cascade.testing import FakeReply, FakeVendorServer, RecordedRequest, wire

KEYS = {"openai": "cancel-openai-key", "anthropic": "cancel-anthropic-key", "google": "cancel-google-key"}
MODELS = {"openai": "gpt-4.1-nano", "anthropic": "claude-haiku-4-5", "google": "gemini-2.0-flash"}
JUDGE = "gpt-4o-mini"
STALL_S = 2.0  # shorter than the stage's timeout: only the cancellation can end the wait


class Vendors:
    """Stage one answers and its judge says 2/10, so the query escalates; stage two stalls while `stall` is set."""

    def __init__(self, second: str) -> None:
        self.second = MODELS[second]
        self.stall = True

    def __call__(self, request: RecordedRequest) -> FakeReply:
        if request.model == JUDGE:
            verdict = json.dumps({"score": 2, "reason": "Unsure."})
            return wire.openai_chat(verdict, prompt_tokens=300, completion_tokens=15, model=JUDGE)
        if request.model == self.second and self.stall:
            return FakeReply(200, {}, delay_s=STALL_S)
        if request.vendor == "openai":
            return wire.openai_chat("Canberra.", prompt_tokens=20, completion_tokens=4, model=request.model or "")
        if request.vendor == "anthropic":
            return wire.anthropic_message("Canberra.", input_tokens=20, output_tokens=4, model=request.model or "")
        return wire.gemini_content("Canberra.", prompt_tokens=20, output_tokens=4, model=request.model or "")


@pytest.fixture(params=["openai", "anthropic", "google"])
def setup(request: pytest.FixtureRequest) -> Iterator[tuple[Cascade, FakeVendorServer, Vendors]]:
    second: str = request.param
    first = "anthropic" if second == "openai" else "openai"
    vendors = Vendors(second)
    with FakeVendorServer(responder=vendors) as server:
        url = server.url
        policy = Policy.from_dict({
            "name": "cancel", "version": "1",
            "stages": [
                {"name": "first", "provider": first, "model": MODELS[first], "threshold": 0.7, "retries": 0},
                {"name": "second", "provider": second, "model": MODELS[second], "retries": 0, "timeout_s": 10},
            ],
            "judge": {"provider": "openai", "model": JUDGE, "retries": 0},
            "providers": {"openai": {"base_url": url + "/v1"}, "anthropic": {"base_url": url},
                          "google": {"base_url": url}},
        })  # fmt: skip
        yield Cascade(policy, api_keys=KEYS, retry_backoff_s=0.0), server, vendors


async def second_stage_reached(server: FakeVendorServer, vendors: Vendors, count: int = 1) -> None:
    end = time.monotonic() + 5
    while sum(r.model == vendors.second for r in server.requests) < count:
        assert time.monotonic() < end, "the second stage was never called"
        await asyncio.sleep(0.01)


async def no_task_left() -> set[asyncio.Task[Any]]:
    current = asyncio.current_task()
    end = time.monotonic() + 1
    while asyncio.all_tasks() - {current} and time.monotonic() < end:
        await asyncio.sleep(0.01)
    return asyncio.all_tasks() - {current}


async def still_answers(router: Cascade, vendors: Vendors) -> None:
    vendors.stall = False
    result = await router.arun("What is the capital of Australia?")
    assert (result.stage, result.answer) == ("second", "Canberra.")


async def test_cancelling_a_stalled_query_leaves_no_task(setup: Any) -> None:
    router, server, vendors = setup
    try:
        task = asyncio.create_task(router.arun("What is the capital of Australia?"))
        await second_stage_reached(server, vendors)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert await no_task_left() == set()
        await still_answers(router, vendors)
    finally:
        await router.aclose()
    assert await no_task_left() == set()


async def test_wait_for_expiring_leaves_no_task(setup: Any) -> None:
    router, _, vendors = setup
    try:
        start = time.monotonic()
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(router.arun("What is the capital of Australia?"), timeout=0.5)
        assert time.monotonic() - start < STALL_S  # ended by wait_for, not by the server
        assert await no_task_left() == set()
        await still_answers(router, vendors)
    finally:
        await router.aclose()


async def test_cancelling_a_batch_leaves_no_task(setup: Any) -> None:
    router, server, vendors = setup
    try:
        batch = asyncio.create_task(router.arun_many([f"Question {i}?" for i in range(8)], concurrency=4))
        await second_stage_reached(server, vendors, count=4)
        batch.cancel()
        with pytest.raises(asyncio.CancelledError):
            await batch
        assert await no_task_left() == set()
        await still_answers(router, vendors)
    finally:
        await router.aclose()
