"""The drivers of a streamed query: the same flow as `run` / `arun`, with answer calls streamed.

They perform the flow's steps as `Cascade.drive` / `adrive` do, except that a `Call` marked `stream` is read
piece by piece (`Provider.stream` / `astream`), each piece handed to the query's `Showing`, and whatever the
`Showing` lets out is yielded to the caller between steps. An answer call that is not streamed (`final` mode)
hands over its whole answer once it is back.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Generator, Iterator
from typing import TYPE_CHECKING

from cascade.calls import Call, Outcome, Sleep, Step
from cascade.errors import CascadeError, ProviderError, VendorTimeoutError
from cascade.providers.base import Completion, whole_pieces
from cascade.result import CascadeResult
from cascade.streaming import Final, Showing, StreamEvent

if TYPE_CHECKING:
    from cascade.engine import Cascade
    from cascade.policy import Policy

Flow = Generator[Step, Outcome, CascadeResult]


def drive_stream(router: Cascade, flow: Flow, policy: Policy, showing: Showing) -> Iterator[StreamEvent]:
    """Run the flow with the sync clients, yielding what may be shown as it may be shown; `Final` last."""
    outcome: Outcome = None
    try:
        while True:
            try:
                step = flow.send(outcome)
            except StopIteration as stop:
                result: CascadeResult = stop.value
                break
            except CascadeError:
                yield from showing.take()  # the reset of what was shown, before the error that ends the query
                raise
            yield from showing.take()
            if isinstance(step, Sleep):
                time.sleep(step.seconds)
                outcome = None
            elif step.stream:
                outcome = yield from _streamed(router, policy, step, showing)
            else:
                outcome = router._execute_sync(policy, step)
                _hand_over(showing, step, outcome)
        yield from showing.take()
        yield Final(result)
    finally:
        flow.close()


def _streamed(router: Cascade, policy: Policy, call: Call, showing: Showing) -> Generator[StreamEvent, None, Outcome]:
    provider = router._provider(policy, call.provider)
    completion: Completion | None = None
    try:
        for item in provider.stream(call.request):
            if isinstance(item, Completion):
                completion = item
            else:
                showing.piece(call.stage, item)
                yield from showing.take()
    except Exception as exc:
        error = _as_provider_error(exc, call)
        showing.failed(call.stage, f"{type(error).__name__}: {error}")
        return error
    assert completion is not None, "Provider.stream ends with the completion"
    return completion


async def adrive_stream(router: Cascade, flow: Flow, policy: Policy, showing: Showing) -> AsyncIterator[StreamEvent]:
    """The async twin of `drive_stream`, on the running loop with the async clients."""
    outcome: Outcome = None
    try:
        while True:
            try:
                step = flow.send(outcome)
            except StopIteration as stop:
                result: CascadeResult = stop.value
                break
            except CascadeError:
                for event in showing.take():
                    yield event
                raise
            for event in showing.take():
                yield event
            if isinstance(step, Sleep):
                await asyncio.sleep(step.seconds)
                outcome = None
            elif step.stream:
                outcome = None
                async for event_or_outcome in _astreamed(router, policy, step, showing):
                    if isinstance(event_or_outcome, _Outcome):
                        outcome = event_or_outcome.value
                    else:
                        yield event_or_outcome
            else:
                outcome = await router._execute_async(policy, step)
                _hand_over(showing, step, outcome)
        for event in showing.take():
            yield event
        yield Final(result)
    finally:
        flow.close()


class _Outcome:
    """The outcome of a streamed call, passed out of `_astreamed` after its events (an async generator returns
    no value)."""

    def __init__(self, value: Outcome) -> None:
        self.value = value


async def _astreamed(
    router: Cascade, policy: Policy, call: Call, showing: Showing
) -> AsyncIterator[StreamEvent | _Outcome]:
    from cascade.engine import _ASYNC_TIMEOUT_GRACE_S  # engine imports this module

    provider = router._provider(policy, call.provider)
    stream = aiter(provider.astream(call.request))
    # The whole stream is held to the call's timeout (plus the grace the SDK gets to report its own), each wait
    # for the next piece bounded by it: nothing is yielded inside a timeout scope, whose cancellation would land
    # in the caller's code.
    deadline = asyncio.get_running_loop().time() + call.request.timeout_s + _ASYNC_TIMEOUT_GRACE_S
    completion: Completion | None = None
    try:
        while completion is None:
            try:
                async with asyncio.timeout_at(deadline):
                    item = await anext(stream)
            except StopAsyncIteration:
                break
            if isinstance(item, Completion):
                completion = item
            else:
                showing.piece(call.stage, item)
                for event in showing.take():
                    yield event
    except TimeoutError:
        error: Exception = VendorTimeoutError(
            f"{call.provider} stream did not end within {call.request.timeout_s:.1f}s",
            provider=call.provider,
            model=call.request.model,
        )
        yield _failed(call, error, showing)
        return
    except Exception as exc:
        yield _failed(call, exc, showing)
        return
    finally:
        close = getattr(stream, "aclose", None)  # an async generator's: ends the vendor's stream with it
        if close is not None:
            await close()
    assert completion is not None, "Provider.astream ends with the completion"
    yield _Outcome(completion)


def _failed(call: Call, exc: Exception, showing: Showing) -> _Outcome:
    error = _as_provider_error(exc, call)
    showing.failed(call.stage, f"{type(error).__name__}: {error}")
    return _Outcome(error)


def _hand_over(showing: Showing, call: Call, outcome: Outcome) -> None:
    """An answer that came back whole (not streamed): its pieces, for the `Showing` to hold or show."""
    if call.role != "answer" or not isinstance(outcome, Completion):
        return
    for piece in whole_pieces(outcome):
        showing.piece(call.stage, piece)


def _as_provider_error(exc: Exception, call: Call) -> ProviderError:
    from cascade.engine import _as_provider_error as translate  # engine imports this module

    return translate(exc, call)
