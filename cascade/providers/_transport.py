"""`DeadlineTransport`: the httpx2 transport under the openai, anthropic and google-genai sync clients.

An SDK's timeout bounds each socket read, so a vendor that sends one byte at a time can hold a sync call for as
long as it likes; this transport holds every network operation to the deadline of the call in progress
(`_deadline`). Async calls need none of it: the engine bounds them with `asyncio.timeout`.
"""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import Iterable
from typing import Any

import httpcore2
import httpx2

from cascade.providers._deadline import bounded

# httpx2's own defaults.
DEFAULT_LIMITS = httpx2.Limits(max_connections=100, max_keepalive_connections=20)


class _Stream(httpcore2.NetworkStream):
    """A connection whose every read, write and TLS handshake ends by the deadline of the call using it."""

    def __init__(self, inner: httpcore2.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, bounded(timeout, httpcore2.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, bounded(timeout, httpcore2.WriteTimeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore2.NetworkStream:
        tls = self._inner.start_tls(ssl_context, server_hostname, bounded(timeout, httpcore2.ConnectTimeout))
        return _Stream(tls)

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _Backend(httpcore2.NetworkBackend):
    """httpcore's own sync backend, its connections wrapped in `_Stream`."""

    def __init__(self) -> None:
        self._inner = httpcore2.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore2.NetworkStream:
        limit = bounded(timeout, httpcore2.ConnectTimeout)
        return _Stream(self._inner.connect_tcp(host, port, limit, local_address, socket_options))

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore2.NetworkStream:
        limit = bounded(timeout, httpcore2.ConnectTimeout)
        return _Stream(self._inner.connect_unix_socket(path, limit, socket_options))

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


class DeadlineTransport(httpx2.HTTPTransport):
    """httpx2's sync transport, with every connect, read and write ending by the deadline of the call in progress.

    The SDKs' timeout goes to httpcore as a limit per network operation; here each operation gets at most what is
    left of the whole call, and none starts once it is gone (httpcore raises its `ReadTimeout`, which the SDK
    reports as its own timeout). httpx2 takes no network backend, so the connection pool it would build is built
    here, with one (`_pool` is the one attribute of `HTTPTransport` this relies on); requests and errors still
    go through `HTTPTransport.handle_request`, which is also what vcrpy patches to record and replay.
    Requests that httpx2 sends to a proxy from the environment use its own transports: per-operation limits only.
    """

    def __init__(self, limits: httpx2.Limits = DEFAULT_LIMITS) -> None:
        ssl_context = httpx2.create_ssl_context()
        super().__init__(verify=ssl_context, limits=limits)
        self._pool = httpcore2.ConnectionPool(
            ssl_context=ssl_context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=_Backend(),
        )

    def __del__(self) -> None:
        # Collected unclosed (a client dropped without `close`): close the connections, as the SDKs' own clients
        # do, rather than leave each socket to its finaliser (which warns).
        with contextlib.suppress(Exception):
            self._pool.close()
