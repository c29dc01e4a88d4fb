"""Google Gemini through the deprecated `google-generativeai` SDK: opt-in (`backend: generativeai`).

Its support ended on 2025-11-30 (importing it says so with a FutureWarning); prefer the default `google-genai`
backend. It speaks the v1beta API over REST: gRPC cannot be recorded, and the REST transport accepts an
`http://` endpoint for local servers.

Structured answers and tools go through its protos, whose `Schema` is the OpenAPI subset: JSON Schemas are converted
(`_gemini_schema`), and one it cannot hold (a union of several types, a recursive model, a free-form object) fails
as a `BadRequestError` before it is sent. The google-genai backend sends such schemas as they are.

It streams: the REST transport's `stream_generate_content` asks for `:streamGenerateContent` as one JSON array
(`$alt=json;enum-encoding=int`, no SSE), reads the body as it arrives (`requests`, one byte at a time) and yields each
reply of the array once its closing brace is in. Each wait for the next one runs on this adapter's pool, held to the
call's deadline, as `complete` is. That byte-by-byte reading costs CPU: measured, 1.3 s for a 100 KB stream (500
chunks), where the same reply unstreamed takes 6 ms; a usual answer streams in a few KB. The SDK's reader has one blind
spot: it reads every object with unknown fields ignored, so an error object the API sends mid-stream (`{"error":
{"code": 503, ...}}`) arrives as an empty reply, its status gone. The adapter takes an empty reply for what it must be
and ends the stream with `StreamInterruptedError` (retryable: such errors are the server's, 5xx); the google-genai
backend reports the status itself.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ClassVar, TypeVar

with warnings.catch_warnings():
    # Two FutureWarnings at import, neither actionable once a policy chose this backend: the SDK's end of support
    # (already in our docs; it starts with blank lines and is attributed to the importer, so the pyproject filters
    # do not match it) and google.api_core's notice about Python versions it will drop.
    warnings.filterwarnings("ignore", r"\s*All support for the .google\.generativeai. package has ended", FutureWarning)
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"google\.api_core\.")
    import google.generativeai as legacy_genai  # first: the registry names the missing extra from it
    import requests
    from google.ai import generativelanguage as glm
    from google.api_core import exceptions as api_exceptions
    from google.api_core.client_options import ClientOptions
    from google.api_core.gapic_v1.client_info import ClientInfo
    from google.generativeai import protos
    from google.protobuf import json_format

from cascade.errors import (
    MalformedResponseError,
    ProviderError,
    StreamInterruptedError,
    VendorConnectionError,
    VendorTimeoutError,
)
from cascade.providers import _gemini_wire as gemini
from cascade.providers._clients import Lazy
from cascade.providers._deadline import remaining
from cascade.providers._gemini_schema import openapi_schema
from cascade.providers.base import Completion, CompletionRequest, Provider, ProviderSettings, StreamReader, Tool

THREAD_NAME_PREFIX = "cascade-gemini-legacy"
T = TypeVar("T")


class GoogleLegacyProvider(Provider):
    """Gemini via `google-generativeai` 0.8: one REST client per instance, no SDK retries.

    `genai.configure(api_key=...)` is process-global (one key, one endpoint for every model in the process) and
    `GenerativeModel` takes its client from there; the only per-model hook is the private `_client`. So this
    adapter builds the client `configure` would build (`GenerativeServiceClient`, REST, the SDK's user agent)
    with its own key and endpoint, and sends it the `GenerateContentRequest` that `GenerativeModel` would send:
    same wire request, no global state, no private attributes.

    The SDK has no working async call on REST, so `acomplete` runs the sync call on this adapter's own thread
    pool (`max_threads`, threads named `cascade-gemini-legacy_N`), not on the event loop's default executor:
    that one holds min(32, CPUs + 4) threads, which would cap the calls in flight whatever concurrency the caller
    asked for. `complete` runs it there too, so that the caller waits no longer than the call's deadline.
    """

    name = "google"
    returns_logprobs = True
    streams = True
    # The most legacy calls this adapter runs at once (more wait in the pool's queue, and that wait counts against the
    # stage's timeout). A call holds its thread for the whole round trip, so this is the adapter's concurrency ceiling:
    # it should be at least the `concurrency` given to `run_many` / `arun_many` (16 by default; a query makes one vendor
    # call at a time). Threads start only when calls need them, and idle ones stay until `aclose`; each costs a stack
    # (8 MB of address space, little of it resident). 128 covers the usual concurrencies with room to spare, while past
    # that the interpreter lock, not the pool, sets the pace when the vendor is fast (about 1.5 ms of CPU per call,
    # measured). For slow vendors at high concurrency, raise it on the class before the first call, or per
    # adapter: `GoogleLegacyProvider(settings, max_threads=...)` passed in `Cascade(providers=...)`.
    max_threads: ClassVar[int] = 128

    def __init__(
        self,
        settings: ProviderSettings | None = None,
        *,
        client: glm.GenerativeServiceClient | None = None,
        max_threads: int | None = None,
    ) -> None:
        super().__init__(settings)
        if max_threads is not None and max_threads < 1:
            raise ValueError("max_threads must be at least 1")
        self._max_threads = max_threads
        self._client = Lazy(self._new_client, client)
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()  # two loops in two threads may make the first async call at once

    def _new_client(self) -> glm.GenerativeServiceClient:
        options = ClientOptions(
            api_key=self.settings.resolve_key(self.name),
            # Keep the scheme: without `http://` the transport assumes TLS.
            api_endpoint=self.settings.resolve_base_url(),
        )
        return glm.GenerativeServiceClient(
            transport="rest",
            client_options=options,
            client_info=ClientInfo(user_agent=f"genai-py/{legacy_genai.__version__}"),  # type: ignore[no-untyped-call]
        )

    def _get_pool(self) -> ThreadPoolExecutor:
        pool = self._pool
        if pool is None:
            with self._pool_lock:
                pool = self._pool
                if pool is None:
                    pool = self._pool = ThreadPoolExecutor(
                        max_workers=self._max_threads or self.max_threads, thread_name_prefix=THREAD_NAME_PREFIX
                    )
        return pool

    async def aclose(self) -> None:
        """Close this provider's connections and its thread pool. The next call reconnects and starts a new pool.

        Does not wait for calls still running: their threads end when the SDK returns (within the request's
        timeout). Calls still queued for a thread are cancelled and fail with `VendorConnectionError`.
        """
        with self._pool_lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
        client = self._client.take()
        if client is not None:
            client.transport.close()  # type: ignore[no-untyped-call]

    def _request(self, request: CompletionRequest) -> protos.GenerateContentRequest:
        """The request `GenerativeModel` would send. Schemas become `protos.Schema` (`_gemini_schema`: the protos
        hold the OpenAPI subset only); what that subset cannot say raises `CannotExpress`, before anything is sent."""
        config = protos.GenerationConfig(max_output_tokens=request.max_output_tokens, temperature=request.temperature)
        if request.top_logprobs is not None:
            config.response_logprobs = True
            config.logprobs = request.top_logprobs
        if request.output is not None:
            config.response_mime_type = "application/json"
            config.response_schema = _schema(request.output.schema)
        contents = [protos.Content(turn) for turn in gemini.contents(request.messages)]
        system = protos.Content(parts=[protos.Part(text=request.system)]) if request.system else None
        model = request.model if "/" in request.model else f"models/{request.model}"
        generate = protos.GenerateContentRequest(
            model=model, contents=contents, system_instruction=system, generation_config=config
        )
        if request.tools:
            generate.tools = [protos.Tool(function_declarations=[_declaration(t) for t in request.tools])]
        if request.tool_choice is not None:
            generate.tool_config = protos.ToolConfig(
                function_calling_config=gemini.function_calling_config(request.tool_choice)
            )
        return generate

    def send(self, request: CompletionRequest) -> protos.GenerateContentResponse:
        return self._on_pool(request, self._end(request), self._generate, request)

    async def asend(self, request: CompletionRequest) -> protos.GenerateContentResponse:
        return await self._aon_pool(request, self._end(request), self._generate, request)

    def send_stream(self, request: CompletionRequest) -> _PooledStream:
        end = self._end(request)  # one deadline for the whole stream, whichever thread or task reads it
        return _PooledStream(self, request, end, self._on_pool(request, end, self._open_stream, request))

    async def asend_stream(self, request: CompletionRequest) -> _PooledStream:
        end = self._end(request)
        return _PooledStream(self, request, end, await self._aon_pool(request, end, self._open_stream, request))

    def stream_reader(self, request: CompletionRequest) -> StreamReader:
        return gemini.ChunkReader(
            lambda chunk: _stream_chunk(chunk, request.model), provider=self.name, requested_model=request.model
        )

    def _on_pool(self, request: CompletionRequest, end: float, call: Callable[..., T], *args: Any) -> T:
        # The SDK's timeout bounds each socket read, and nothing under `requests` can end a call at a deadline (a
        # vendor trickling bytes would hold the caller): the call runs on the pool, the caller waits no longer
        # than the call's deadline.
        future = self._get_pool().submit(contextvars.copy_context().run, call, *args)
        try:
            return future.result(timeout=max(0.0, end - time.monotonic()))
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise self._late(request) from None
        except concurrent.futures.CancelledError:
            raise self._closed(request) from None

    async def _aon_pool(self, request: CompletionRequest, end: float, call: Callable[..., T], *args: Any) -> T:
        # The SDK's async path is broken on REST (it awaits a plain response): the sync call on our pool, in a copy
        # of the caller's context as `asyncio.to_thread` does (structlog's contextvars reach the thread).
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self._get_pool(), contextvars.copy_context().run, call, *args)
        try:
            async with asyncio.timeout(max(0.0, end - time.monotonic())):
                return await future
        except TimeoutError:
            raise self._late(request) from None
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise  # our caller was cancelled
            raise self._closed(request) from None

    def _generate(self, request: CompletionRequest) -> protos.GenerateContentResponse:
        # retry=None: the SDK's default retries 503 for up to ten minutes, and `timeout` does not stop it.
        # A call the caller stopped waiting for (its deadline passed, or its task was cancelled) runs on until the
        # SDK returns: its thread is not the caller's. The pool's threads are joined at interpreter exit.
        return self._client.get().generate_content(
            request=self._request(request), retry=None, timeout=request.timeout_s
        )

    def _open_stream(self, request: CompletionRequest) -> Iterator[protos.GenerateContentResponse]:
        # Returns once the status and headers are in (an error status raises here); the replies follow.
        chunks = self._client.get().stream_generate_content(
            request=self._request(request), retry=None, timeout=request.timeout_s
        )
        return iter(chunks)

    def _end(self, request: CompletionRequest) -> float:
        """When the call must be over, on the `time.monotonic` clock."""
        left = remaining()  # set by `complete` / `acomplete` / `stream` / `astream`
        return time.monotonic() + (request.timeout_s if left is None else max(0.0, left))

    def _late(self, request: CompletionRequest) -> VendorTimeoutError:
        return VendorTimeoutError(
            f"google: no reply within {request.timeout_s:g} s", provider=self.name, model=request.model
        )

    def _closed(self, request: CompletionRequest) -> VendorConnectionError:
        # `aclose` cancelled the call before a thread took it: nothing was sent, so it may be tried again.
        return VendorConnectionError(
            "google: the adapter was closed before this call was sent", provider=self.name, model=request.model
        )

    def parse(self, response: Any, request: CompletionRequest, latency_s: float) -> Completion:
        return gemini.parse_completion(
            _wire_body(response), provider=self.name, requested_model=request.model, latency_s=latency_s
        )

    def translate(self, exc: Exception, request: CompletionRequest) -> ProviderError | None:
        where = {"provider": self.name, "model": request.model}
        if isinstance(exc, gemini.CannotExpress):
            return gemini.cannot_send(exc, **where)
        if isinstance(exc, api_exceptions.GoogleAPICallError) and isinstance(exc.code, int):
            response = exc.response if isinstance(exc.response, requests.Response) else None
            body: Any = None
            if response is not None:
                try:
                    body = response.json()
                except ValueError:
                    body = response.text
            # The SDK's own message starts with the method and URL; the body's message is the vendor's words.
            return gemini.http_error(
                exc.code,
                gemini.error_message(body, exc.message or type(exc).__name__),
                body=body,
                headers=dict(response.headers) if response is not None else None,
                **where,
            )
        if isinstance(exc, requests.Timeout):  # before ConnectionError: ConnectTimeout is both
            return VendorTimeoutError(
                f"google: no reply within {request.timeout_s:g} s ({type(exc).__name__})", **where
            )
        if isinstance(exc, requests.exceptions.ContentDecodingError):  # a body it read but could not decompress
            return MalformedResponseError(f"google: reply body cannot be decoded ({exc})", **where)
        if isinstance(exc, requests.ConnectionError | requests.exceptions.ChunkedEncodingError):
            return VendorConnectionError(f"google: {type(exc).__name__}: {exc}", **where)
        if isinstance(exc, json_format.ParseError):
            return MalformedResponseError(f"google: reply body does not fit generateContent: {exc}", **where)
        return None


class _PooledStream:
    """The SDK's stream of replies, each one read on the adapter's pool and waited for until the call's deadline at
    most (`requests` reads cannot be interrupted). Iterated by `Provider.stream`, or async by `astream`.

    Closing it closes the HTTP response, but never under a read still running on the pool (one the caller stopped
    waiting for): `requests` is not safe for that, and measured, the connection then went back to the pool with
    the rest of the reply still arriving on it. That read closes the response itself when it returns (with the
    next reply, or at the SDK's timeout between two bytes), as a call that `complete` stopped waiting for runs on.
    """

    def __init__(
        self,
        provider: GoogleLegacyProvider,
        request: CompletionRequest,
        end: float,
        chunks: Iterator[protos.GenerateContentResponse],
    ) -> None:
        self._provider = provider
        self._request = request
        self._end = end
        self._chunks = chunks
        self._lock = threading.Lock()
        self._reading = False  # a read is running on the pool
        self._closed = False

    def _next(self) -> protos.GenerateContentResponse | None:
        """The next reply, None at the end (a StopIteration cannot cross into an asyncio future)."""
        with self._lock:
            if self._closed:
                return None
            self._reading = True
        try:
            chunk: protos.GenerateContentResponse | None = next(self._chunks, None)
        except ValueError as exc:  # the SDK's array reader: the body is not a whole JSON array of objects
            where = {"provider": self._provider.name, "model": self._request.model}
            if str(exc).startswith("Unfinished stream"):  # the body ended inside the array
                raise StreamInterruptedError("google: the stream ended inside its JSON array", **where) from exc
            raise MalformedResponseError(f"google: stream body is not a JSON array ({exc})", **where) from exc
        finally:
            with self._lock:
                self._reading = False
                closed = self._closed
            if closed:  # closed while this read ran: the close is this thread's to do
                self._cancel()
        return chunk

    def __iter__(self) -> _PooledStream:
        return self

    def __next__(self) -> protos.GenerateContentResponse:
        chunk = self._provider._on_pool(self._request, self._end, self._next)
        if chunk is None:
            raise StopIteration
        return chunk

    def __aiter__(self) -> _PooledStream:
        return self

    async def __anext__(self) -> protos.GenerateContentResponse:
        chunk = await self._provider._aon_pool(self._request, self._end, self._next)
        if chunk is None:
            raise StopAsyncIteration
        return chunk

    def close(self) -> None:
        with self._lock:
            self._closed = True
            reading = self._reading
        if not reading:
            self._cancel()

    def _cancel(self) -> None:
        # Closes the HTTP response (a gRPC client given to the adapter streams through an iterator that cancels too).
        cancel = getattr(self._chunks, "cancel", None)
        if cancel is not None:
            cancel()

    async def aclose(self) -> None:
        self.close()


def _wire_body(response: protos.GenerateContentResponse) -> dict[str, Any]:
    """A reply back as wire JSON (camelCase, enum names, unset fields left out), for the shared reader."""
    body: dict[str, Any] = json_format.MessageToDict(protos.GenerateContentResponse.pb(response))
    for candidate in body.get("candidates") or ():
        for part in (candidate.get("content") or {}).get("parts") or ():
            if "args" in (call := part.get("functionCall") or {}):
                call["args"] = _whole_numbers(call["args"])
    return body


def _stream_chunk(response: protos.GenerateContentResponse, model: str) -> dict[str, Any]:
    """One streamed reply as wire JSON. Every chunk the API streams carries at least its usage and model; an empty
    one is what the SDK's reader makes of an object that is no reply: an error sent mid-stream (see above)."""
    body = _wire_body(response)
    if not body:
        raise StreamInterruptedError(
            "google: the stream broke off with an object that is not a reply (an error the SDK cannot read)",
            provider="google",
            model=model,
        )
    return body


def _schema(schema: Mapping[str, Any]) -> protos.Schema:
    converted: protos.Schema = protos.Schema.wrap(json_format.ParseDict(openapi_schema(schema), protos.Schema.pb()()))
    return converted


def _declaration(tool: Tool) -> protos.FunctionDeclaration:
    declaration = protos.FunctionDeclaration(name=tool.name, description=tool.description or "")
    # A function without parameters goes without `parameters`: the API rejects an OBJECT with no properties.
    if tool.parameters.get("properties"):
        declaration.parameters = _schema(tool.parameters)
    return declaration


def _whole_numbers(value: Any) -> Any:
    """A `Struct` holds every number as a double: the wire's `3` arrives as `3.0`. Whole numbers become ints again,
    as a JSON parser reads them (the tool's `integer` parameters, the arguments the application gets)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _whole_numbers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_whole_numbers(v) for v in value]
    return value
