"""The deadline of the vendor call in progress, for the code under an SDK that must keep to it.

An SDK's timeout bounds each socket read, so a vendor that sends one byte at a time can hold a sync call for as
long as it likes. `Provider.complete` sets the call's deadline here (`deadline`), in the calling context, and the
code under the sync clients reads it (`bounded`): `_transport.DeadlineTransport` under the openai, anthropic and
google-genai sync clients, before every network operation.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

_DEADLINE: ContextVar[float | None] = ContextVar("cascade_call_deadline", default=None)


@contextmanager
def deadline(timeout_s: float) -> Iterator[None]:
    """Within this block, the call must end `timeout_s` from now (on the `time.monotonic` clock)."""
    token = _DEADLINE.set(time.monotonic() + timeout_s)
    try:
        yield
    finally:
        _DEADLINE.reset(token)


def remaining() -> float | None:
    """Seconds left before the current call's deadline (negative once it passed), or None outside a call."""
    end = _DEADLINE.get()
    return None if end is None else end - time.monotonic()


def bounded(timeout: float | None, error: type[Exception]) -> float | None:
    """A network operation's timeout, cut to what is left of the call's deadline; `error` once nothing is left."""
    left = remaining()
    if left is None:
        return timeout
    if left <= 0:
        raise error("the call's deadline passed")
    return left if timeout is None else min(timeout, left)
