"""What cannot be recorded, through `Cascade`: dropped connections and timeouts, and a second event loop.

These talk to `cascade.testing.FakeVendorServer` on 127.0.0.1, never to a vendor, and write no cassette.
"""

from __future__ import annotations

import asyncio
import gc

import pytest

from cascade import Cascade
from cascade.errors import VendorConnectionError, VendorTimeoutError
from cascade.testing import FakeVendorServer
from cascade.testing.wire import FakeReply
from tests.recorded.harness import Replay
from tests.recorded.vendors import ANTHROPIC, OPENAI, QUESTION, SYSTEM, Vendor


async def test_dropped_connection_and_timeout(server: FakeVendorServer, replay: Replay) -> None:
    vendor = replay.vendor
    late = FakeReply(200, {}, delay_s=1.0)
    server.script(vendor.provider, FakeReply(drop=True), late, vendor.answer("4", input_tokens=27, output_tokens=1))
    error = await replay.failed_call()
    assert isinstance(error, VendorConnectionError) and error.retryable

    replay.seen.clear()
    # The SDK client is built by now: the short timeout is all spent waiting for the reply.
    error = await replay.failed_call(timeout_s=0.2)
    assert isinstance(error, VendorTimeoutError) and error.retryable

    # The next call gets its own reply, not the late one of the call that timed out (on a connection kept open).
    assert (await replay.ask()).answer == "4"
    assert len(server.requests) == 3  # no SDK retries


# The first loop's connection is never closed (as when a caller forgets `aclose`): Python warns when it is collected.
# For the openai and anthropic adapters, which keep an SDK client per event loop.
@pytest.mark.vendors(OPENAI, ANTHROPIC)
@pytest.mark.filterwarnings("ignore::ResourceWarning")
def test_async_calls_from_a_second_event_loop(server: FakeVendorServer, vendor: Vendor) -> None:
    """A second `asyncio.run` must not reuse the first loop's connections (a bare "Event loop is closed")."""
    reply = vendor.answer("4", input_tokens=27, output_tokens=1)
    server.script(vendor.provider, reply, reply)
    gc.freeze()  # the collection at the end need only look at what this test made
    router = Cascade(vendor.policy())  # the adapter the policy names, built by the router

    async def ask(close: bool) -> str | None:
        try:
            return (await router.arun(QUESTION, system=SYSTEM)).answer
        finally:
            if close:
                await router.aclose()

    try:
        assert asyncio.run(ask(close=False)) == "4"
        assert asyncio.run(ask(close=True)) == "4"
        gc.collect()  # let the first loop's connection go now, under this test's warning filter
    finally:
        gc.unfreeze()
