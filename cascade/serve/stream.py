"""`stream: true`: one query answered as server-sent events, through `Cascade.astream`.

The reply's status and headers go out before its body, so the first event is awaited before anything is sent: a
query refused or failed on every tier by then gets the usual JSON error (400, 502), as an unstreamed request
would. After that the status is said: a failure is the stream's last event (`chunks.ChunkWriter.error`).

Which stage's text is shown when is `Cascade.astream`'s business (`cascade.streaming`): the mode is the request's
`cascade.stream_mode`, else the policy's `stream.mode` (`buffered` unless the policy says otherwise), the mode
that never shows an answer its judge rejected. The request holds its slot under the concurrency limit until the
stream ends, and a client that goes away ends the query (its vendor streams are closed).
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import ExitStack
from typing import cast

import anyio
from starlette.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from cascade.engine import Cascade
from cascade.errors import BudgetExhaustedError, CascadeExhausted, redact
from cascade.events import Events
from cascade.serve.api_error import APIError
from cascade.serve.chunks import ChunkWriter
from cascade.serve.shapes import ChatRequest, ascii_header, no_answer_error
from cascade.streaming import Final, StreamEvent


async def open_stream(router: Cascade, chat: ChatRequest, query_id: str, slot: ExitStack) -> Response:
    """The streamed reply, once the query has something to show. Raises what `Cascade.astream` raises before
    that (a bad query, a query no tier answered); `slot` (the request's place under the concurrency limit) is
    taken over by the reply, to be given back when it ends."""
    # `astream` is an async generator: `aclose` ends its vendor streams at once, whoever ends the reply.
    events = cast(
        AsyncGenerator[StreamEvent, None],
        router.astream(chat.messages, mode=chat.stream_mode, **chat.run_options(query_id)),
    )
    first = await anext(events)
    policy = router.policies[chat.policy]
    writer = ChunkWriter(query_id, chat.policy, int(time.time()), chat.include_usage, chat.trace)
    headers = {
        "cache-control": "no-cache",
        "x-accel-buffering": "no",  # a proxy (nginx) that buffers would hold a stream back until its end
        # What is known before the answer; the rest of the summary is in the last chunk.
        "x-cascade-query-id": query_id,
        "x-cascade-policy": ascii_header(f"{policy.name}@{policy.version}"),
    }
    return _EventStream(_body(first, events, writer, query_id), events, slot.pop_all(), headers)


async def _body(
    first: StreamEvent, events: AsyncIterator[StreamEvent], writer: ChunkWriter, query_id: str
) -> AsyncGenerator[bytes, None]:
    yield writer.opening(first)
    event = first
    try:
        while True:
            for data in writer.chunks(event):
                yield data
            if isinstance(event, Final):
                return
            event = await anext(events)
    except (CascadeExhausted, BudgetExhaustedError) as exc:
        # Whatever was shown has been withdrawn by a Reset already (its chunk went out before this).
        yield writer.error(no_answer_error(exc, writer.trace))
    except Exception as exc:  # a fault of the server: the caller gets the query id, the events get the rest
        Events(query_id=query_id).emit("cascade.serve.failed", error=type(exc).__name__, message=redact(str(exc)))
        yield writer.error(APIError(500, f"internal error (query id {query_id})", extra={"query_id": query_id}))


class _EventStream(StreamingResponse):
    """A `text/event-stream` reply, sent from the task that ran the route.

    Starlette's `StreamingResponse` sends from a task of its own, but the query's stream was opened in the route's
    task and holds context there (its monitoring span), so it is read to its end in that task too; a child task only
    watches for the client going away, which cancels the query. However the reply ends (done, failed, cut off), the
    query's stream is closed (its vendor streams with it) and the slot under the concurrency limit is given back.
    """

    media_type = "text/event-stream"

    def __init__(
        self,
        body: AsyncGenerator[bytes, None],
        events: AsyncGenerator[StreamEvent, None],
        slot: ExitStack,
        headers: dict[str, str],
    ) -> None:
        super().__init__(body, headers=headers)  # no content-length: the reply's length is not known
        self._body = body
        self._events = events
        self._slot = slot

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            async with anyio.create_task_group() as watch:
                watch.start_soon(_cancel_on_disconnect, receive, watch.cancel_scope)
                await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
                async for chunk in self._body:
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
                await send({"type": "http.response.body", "body": b"", "more_body": False})
                watch.cancel_scope.cancel()  # done: stop watching
        finally:
            self._slot.close()
            with anyio.CancelScope(shield=True):  # a cancelled reply must not skip closing the vendor streams
                await self._body.aclose()
                await self._events.aclose()


async def _cancel_on_disconnect(receive: Receive, scope: anyio.CancelScope) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
    scope.cancel()
