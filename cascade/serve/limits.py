"""The server's two limits: how large a request may be, and how many may be answered at once.

Both refuse at once rather than queue: a request over the size limit gets 413 before its body is read (when it
declares its length) or as soon as it passes the limit, and a request over the concurrency limit gets 429 with a
`Retry-After`, which the OpenAI clients honour by waiting and retrying. So the memory a server can hold is bounded
by (concurrency limit) x (size limit) plus what the answers take.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from starlette.requests import Request

from cascade.errors import InvalidArgumentError
from cascade.serve.api_error import APIError

RETRY_AFTER_S = 1


async def read_body(request: Request, limit: int) -> bytes:
    """The request's body, at most `limit` bytes (413 beyond)."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise APIError(400, "the Content-Length header is not a number", code="invalid_request")
        if int(declared) > limit:
            raise _too_large(limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(limit: int) -> APIError:
    return APIError(413, f"the request body is larger than this server takes ({limit:,} bytes)", code="too_large")


class InFlightLimit:
    """At most `limit` requests in progress. The app runs on one event loop, so a plain counter is exact."""

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise InvalidArgumentError("the concurrency limit is at least 1")
        self.limit = limit
        self.in_flight = 0
        self.peak = 0

    @contextmanager
    def slot(self) -> Iterator[None]:
        """Hold one of the slots while the block runs; 429 when all are taken."""
        if self.in_flight >= self.limit:
            raise APIError(
                429,
                f"this server is answering its limit of {self.limit} requests at once: retry shortly",
                type_="rate_limit_error",
                code="concurrency_limit",
                headers={"retry-after": str(RETRY_AFTER_S)},
            )
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            yield
        finally:
            self.in_flight -= 1
