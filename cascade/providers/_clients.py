"""How adapters hold their SDK clients: built on first use, once, under a lock; async ones per event loop.

The engine's sync batch calls one adapter from many threads, and a client built twice is not harmless: the loser
is garbage-collected, and some SDK clients close what they were built with when collected (google-genai closes
its HTTP clients). Async connections belong to the loop that opened them: reused from another loop (a second
`asyncio.run`) they fail with "Event loop is closed", which would pass for a connection error and escalate past
the vendor every time.

A client given to an adapter's constructor is used as it is, on every loop, and never closed by the adapter: it
is the caller's.

Also the two helpers behind the `async_http: aiohttp` provider setting, shared by the openai, anthropic and google
adapters.
"""

from __future__ import annotations

import asyncio
import sys
import threading
from collections.abc import Callable
from types import ModuleType
from typing import Generic, TypeVar

from cascade.errors import MissingDependencyError

T = TypeVar("T")


class Lazy(Generic[T]):
    """One object, built by `make` on first use (under a lock), or the one given."""

    def __init__(self, make: Callable[[], T], given: T | None = None) -> None:
        self._make = make
        self._value = given
        self._owned = given is None
        self._lock = threading.Lock()

    def get(self) -> T:
        with self._lock:
            if self._value is None:
                self._value = self._make()
            return self._value

    def take(self) -> T | None:
        """Forget the object if this holder built it, and return it for closing; the next `get` builds anew."""
        with self._lock:
            if not self._owned:
                return None
            value, self._value = self._value, None
            return value


class PerLoop(Generic[T]):
    """One object per running event loop, built by `make` on first use in that loop, or the one given for all."""

    def __init__(self, make: Callable[[], T], given: T | None = None) -> None:
        self._make = make
        self._given = given
        self._by_loop: dict[asyncio.AbstractEventLoop, T] = {}
        self._lock = threading.Lock()

    def get(self) -> T:
        if self._given is not None:
            return self._given
        loop = asyncio.get_running_loop()
        with self._lock:
            for closed in [other for other in self._by_loop if other.is_closed()]:
                del self._by_loop[closed]  # nothing left to close them with
            value = self._by_loop.get(loop)
            if value is None:
                value = self._by_loop[loop] = self._make()
            return value

    def take(self) -> T | None:
        """Forget the running loop's object, if this holder built it, and return it for closing."""
        with self._lock:
            return self._by_loop.pop(asyncio.get_running_loop(), None)


def require_aiohttp(provider: str) -> ModuleType:
    """`aiohttp`, for a provider whose policy sets `async_http: aiohttp`; if missing, the error names the extra."""
    try:
        import aiohttp
    except ModuleNotFoundError as exc:
        if exc.name == "aiohttp":
            raise MissingDependencyError(provider, "aiohttp", "aiohttp") from exc
        raise
    return aiohttp


def aiohttp_connection_failure(exc: BaseException) -> BaseException | None:
    """The aiohttp error behind an SDK exception when it is a refused or dropped connection, not a timeout.

    The openai SDK's aiohttp bridge (openai 3.57) maps every `aiohttp.ClientConnectionError`, a refused connection
    included, to `httpx2.ConnectTimeout`, so the SDK reports `APITimeoutError` for a vendor it never reached. The
    aiohttp timeouts are `ClientConnectionError`s too, but also `TimeoutError`s: those stay timeouts. An aiohttp
    error can only be there if aiohttp was imported (by the adapter, or by the caller for a client they built).
    """
    aiohttp = sys.modules.get("aiohttp")
    if aiohttp is None:
        return None
    cause = exc.__cause__
    for _ in range(8):  # a chain is SDK error <- httpx2 error <- aiohttp error <- OSError: never long
        if cause is None:
            return None
        if isinstance(cause, aiohttp.ClientConnectionError):
            return None if isinstance(cause, TimeoutError) else cause
        cause = cause.__cause__
    return None
