"""SDK clients for the openai and anthropic adapters: one sync client, one async client per event loop.

Async connections belong to the loop that opened them: reused from another loop (a second `asyncio.run`) they
fail with "Event loop is closed", which would pass for a connection error and escalate past the vendor every
time. The engine's sync batch calls from worker threads, so each client is built once, under a lock.

Also the two helpers behind the `async_http: aiohttp` provider setting, shared by the openai, anthropic and google
adapters.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from types import ModuleType
from typing import Any, Generic, TypeVar

from cascade.errors import MissingDependencyError

S = TypeVar("S")
A = TypeVar("A")


class LoopClients(Generic[S, A]):
    """Builds clients on first use from `make_sync` / `make_async`; `aclose` closes this loop's."""

    def __init__(self, make_sync: Callable[[], S], make_async: Callable[[], A]) -> None:
        self._make_sync = make_sync
        self._make_async = make_async
        self._sync: S | None = None
        self._async: dict[asyncio.AbstractEventLoop, A] = {}
        self._lock = threading.Lock()

    def sync(self) -> S:
        client = self._sync  # built already: no lock (every call comes here)
        if client is not None:
            return client
        with self._lock:
            if self._sync is None:
                self._sync = self._make_sync()
            return self._sync

    def async_(self) -> A:
        loop = asyncio.get_running_loop()
        client = self._async.get(loop)  # this loop's client, built already: no lock, no clean-up pass
        if client is not None:
            return client
        with self._lock:
            for closed in [other for other in self._async if other.is_closed()]:
                del self._async[closed]  # nothing left to close them with
            client = self._async.get(loop)
            if client is None:
                client = self._async[loop] = self._make_async()
            return client

    async def aclose(self) -> None:
        """Close the sync client and the running loop's async client. The next call reconnects."""
        with self._lock:
            sync, self._sync = self._sync, None
            async_ = self._async.pop(asyncio.get_running_loop(), None)
        if sync is not None:
            _close: Any = sync
            _close.close()
        if async_ is not None:
            _aclose: Any = async_
            await _aclose.close()


def require_aiohttp(provider: str) -> ModuleType:
    """`aiohttp`, for a provider whose policy sets `async_http: aiohttp`; if missing, the error names the extra."""
    try:
        import aiohttp
    except ModuleNotFoundError as exc:
        if exc.name == "aiohttp":
            raise MissingDependencyError(provider, "aiohttp", "aiohttp") from exc
        raise
    return aiohttp


def aiohttp_connection_failure(aiohttp: ModuleType | None, exc: BaseException) -> BaseException | None:
    """The aiohttp error behind an SDK exception when it is a refused or dropped connection, not a timeout.

    The openai SDK's aiohttp bridge (openai 3.57) maps every `aiohttp.ClientConnectionError`, a refused connection
    included, to `httpx2.ConnectTimeout`, so the SDK reports `APITimeoutError` for a vendor it never reached. The
    aiohttp timeouts are `ClientConnectionError`s too, but also `TimeoutError`s: those stay timeouts.
    """
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
