"""Google Gemini through `google-genai` (`generateContent` on the v1 API).

A structured answer is asked for with `responseMimeType: application/json` and the JSON Schema as it is
(`responseJsonSchema`); tools are function declarations with JSON Schema parameters, the tool choice a
`functionCallingConfig` mode. Calls come back as `functionCall` parts, answered with `functionResponse` parts.

Streams are `streamGenerateContent?alt=sse`: the SDK yields each SSE event as a reply of its own, raises an `error`
event as its `APIError` (so a 503 mid-stream is `OverloadedError`, as it is before the stream), and leaves breaks and
stalls to httpx2 (or aiohttp), whose exceptions `translate` knows; `_gemini_wire.ChunkReader` reads the events.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import urllib.request
import weakref
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any, cast

import google.genai as genai  # first: the registry names the missing extra from the first failed import
import httpx2
import pydantic
from google.genai import errors as genai_errors
from google.genai import types
from google.genai.models import AsyncModels

from cascade.errors import MalformedResponseError, ProviderError, VendorConnectionError, VendorTimeoutError
from cascade.providers import _gemini_wire as gemini
from cascade.providers._clients import Lazy, PerLoop, require_aiohttp
from cascade.providers._transport import DeadlineTransport
from cascade.providers.base import Completion, CompletionRequest, Provider, ProviderSettings, StreamReader

# Fields of the SDK's response object that are not part of the reply body.
_NOT_WIRE = {"sdk_http_response", "automatic_function_calling_history", "parsed"}


class GoogleProvider(Provider):
    """Gemini via `google-genai`: one `genai.Client` per instance, no SDK retries, httpx2 for sync calls and for
    async ones unless the policy sets `async_http: aiohttp` (the SDK's own aiohttp sessions, one per loop).

    `client=`: a `genai.Client` you built, used as it is for sync and async calls (and not closed by `aclose`).
    """

    name = "google"
    returns_logprobs = True
    streams = True

    def __init__(self, settings: ProviderSettings | None = None, *, client: genai.Client | None = None) -> None:
        super().__init__(settings)
        # `async_http: aiohttp`: checked here, so that a missing package is reported before any call.
        self._aiohttp = require_aiohttp(self.name) if self.settings.async_http == "aiohttp" else None
        self._given_client = client is not None
        # Kept for the adapter's lifetime: a dropped `genai.Client` closes its HTTP clients when collected.
        self._client = Lazy(self._default_client, client)
        # aiohttp sessions of our own, one per event loop (see `_OwnSession`).
        self._own_sessions = PerLoop(self._own_session)

    def _options(self, **extra: Any) -> types.HttpOptions:
        return types.HttpOptions(
            base_url=self.settings.resolve_base_url(),
            # Explicit, so that GOOGLE_GENAI_API_VERSION cannot move requests off the recorded paths.
            api_version="v1",
            **extra,
        )

    def _new_client(self, options: types.HttpOptions) -> genai.Client:
        # vertexai=False: GOOGLE_GENAI_USE_VERTEXAI must not send us to another API. No `retry_options` (or one
        # attempt): the SDK makes exactly one attempt, and the engine retries under its own deadline.
        return genai.Client(api_key=self.settings.resolve_key(self.name), vertexai=False, http_options=options)

    def _default_client(self) -> genai.Client:
        async_http: dict[str, Any]
        if self._aiohttp is None:
            # With aiohttp installed the SDK would switch to it: other exceptions, a hidden 1-10 s retry on
            # connection errors, and cassettes that differ. A transport of our own keeps it on httpx2.
            async_http = {"async_client_args": {"transport": _PerLoopTransport()}}
        else:
            # No transport: the SDK sends async calls through aiohttp. It skips its hidden retry of a failed
            # connection (a 1-10 s sleep, then once more) when retry options are set: one attempt.
            async_http = {"retry_options": types.HttpRetryOptions(attempts=1)}
        # Sync calls over a transport that holds each call to its deadline (the SDK's timeout bounds each read).
        return self._new_client(self._options(client_args={"transport": DeadlineTransport()}, **async_http))

    def _own_session(self) -> _OwnSession:
        assert self._aiohttp is not None
        return _OwnSession(self, self._aiohttp)

    def _async_models(self) -> AsyncModels:
        if self._aiohttp is not None and not self._given_client and not _environment_configures_http():
            models: AsyncModels = self._own_sessions.get().client.aio.models
            return models
        return self._client.get().aio.models

    async def aclose(self) -> None:
        """Close this provider's connections (async ones: the running loop's). The next call reconnects."""
        client, own = self._client.take(), self._own_sessions.take()
        if client is not None:
            client.close()
            await client.aio.aclose()
        if own is not None:
            await own.close()

    def _arguments(self, request: CompletionRequest) -> dict[str, Any]:
        logprobs = request.top_logprobs is not None
        config = types.GenerateContentConfig(
            system_instruction=request.system,
            max_output_tokens=request.max_output_tokens,
            temperature=request.temperature,
            response_logprobs=True if logprobs else None,
            logprobs=request.top_logprobs,
            http_options=types.HttpOptions(timeout=max(1, round(request.timeout_s * 1000))),  # milliseconds
            # One stage, one request: no client-side function calling loop, no automatic follow-up requests
            # after a CONTINUATION finish (each would get a fresh timeout past the stage's deadline).
            automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True),
            automatic_continuation=False,
            **_structure(request),
        )
        # The SDK accepts many forms of `contents` and sends the same body for each; it reads a lone string as one
        # user turn without the field-by-field inspection it gives `types.Content` objects (a large part of a
        # call's CPU), and dicts in a list nearly as cheaply.
        messages = request.messages
        contents: str | list[types.ContentDict]
        if len(messages) == 1 and messages[0].role == "user":
            contents = messages[0].content
        else:  # dicts keyed by the `Content` fields' own names
            contents = cast("list[types.ContentDict]", gemini.contents(messages, signatures=True))
        return {"model": request.model, "contents": contents, "config": config}

    def send(self, request: CompletionRequest) -> types.GenerateContentResponse:
        return self._client.get().models.generate_content(**self._arguments(request))

    async def asend(self, request: CompletionRequest) -> types.GenerateContentResponse:
        return await self._async_models().generate_content(**self._arguments(request))

    def send_stream(self, request: CompletionRequest) -> Iterator[types.GenerateContentResponse]:
        # A generator: the request goes out on the first `next`, inside the base's error handling and deadline.
        return self._client.get().models.generate_content_stream(**self._arguments(request))

    async def asend_stream(self, request: CompletionRequest) -> AsyncIterator[types.GenerateContentResponse]:
        return await self._async_models().generate_content_stream(**self._arguments(request))

    def stream_reader(self, request: CompletionRequest) -> StreamReader:
        return gemini.ChunkReader(_wire_body, provider=self.name, requested_model=request.model)

    def parse(self, response: Any, request: CompletionRequest, latency_s: float) -> Completion:
        return gemini.parse_completion(
            _wire_body(response), provider=self.name, requested_model=request.model, latency_s=latency_s
        )

    def translate(self, exc: Exception, request: CompletionRequest) -> ProviderError | None:
        where = {"provider": self.name, "model": request.model}
        if isinstance(exc, gemini.CannotExpress):
            return gemini.cannot_send(exc, **where)
        if isinstance(exc, genai_errors.APIError):
            headers = getattr(exc.response, "headers", None)
            return gemini.http_error(
                exc.code,
                exc.message or str(exc.status or "error"),
                body=exc.details,
                headers=dict(headers) if headers is not None else None,
                **where,
            )
        if isinstance(exc, httpx2.DecodingError):  # a body httpx2 read but could not decompress
            return MalformedResponseError(f"google: reply body cannot be decoded ({exc})", **where)
        if isinstance(exc, httpx2.TimeoutException):
            return VendorTimeoutError(
                f"google: no reply within {request.timeout_s:g} s ({type(exc).__name__})", **where
            )
        if isinstance(exc, httpx2.NetworkError | httpx2.RemoteProtocolError):
            return VendorConnectionError(f"google: {type(exc).__name__}: {exc}", **where)
        if (aiohttp := sys.modules.get("aiohttp")) is not None:
            # Through aiohttp (ours, or a given client's) the SDK lets aiohttp's exceptions through unwrapped. Its
            # timeouts are TimeoutErrors (a bare one for the request's total timeout), some of them also
            # ClientErrors: test them first.
            if isinstance(exc, TimeoutError):
                return VendorTimeoutError(
                    f"google: no reply within {request.timeout_s:g} s ({type(exc).__name__})", **where
                )
            broken_off = (aiohttp.http_exceptions.ContentLengthError, aiohttp.http_exceptions.TransferEncodingError)
            if isinstance(exc, aiohttp.ClientPayloadError) and isinstance(exc.__cause__, broken_off):
                # A body that ended short of its length or last chunk: the connection broke mid-reply.
                return VendorConnectionError(f"google: {type(exc).__name__}: {exc}", **where)
            if isinstance(exc, aiohttp.ClientPayloadError):  # a body it read but could not decompress
                return MalformedResponseError(f"google: reply body cannot be decoded ({exc})", **where)
            if isinstance(exc, aiohttp.ClientError):
                return VendorConnectionError(f"google: {type(exc).__name__}: {exc}", **where)
        if isinstance(exc, json.JSONDecodeError | genai_errors.UnknownApiResponseError):
            return MalformedResponseError(f"google: reply body is not JSON ({exc})", **where)
        if isinstance(exc, pydantic.ValidationError) and exc.title == types.GenerateContentResponse.__name__:
            # JSON of the wrong shape (a count that is not a number...): the SDK's response model rejects it.
            problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()[:3])
            return MalformedResponseError(f"google: reply body does not fit generateContent: {problems}", **where)
        return None


def _wire_body(response: types.GenerateContentResponse) -> dict[str, Any]:
    """The reply (or one chunk of a stream) as the wire JSON it was read from."""
    body: dict[str, Any] = response.model_dump(mode="json", by_alias=True, exclude_none=True, exclude=_NOT_WIRE)
    return body


def _structure(request: CompletionRequest) -> dict[str, Any]:
    """The config fields for a structured answer, tools and a tool choice (none for a plain request).

    Schemas go as JSON Schema (`responseJsonSchema`, `parametersJsonSchema`), unconverted, `$defs` and `$ref`
    included. On the v1 path the adapter pins: google-genai 3 made v1 its default for the Gemini API and documents
    `response_json_schema` and function declarations with that default client; the recordings we learn from
    (pydantic-ai's) send the same fields on v1beta. googleapis' published v1 protos lag behind the service (they lack
    `systemInstruction` too, which this adapter has always sent), so they are no argument either way. The OpenAPI
    subset (`responseSchema`, `parameters`) would need a conversion that loses unions and references; the legacy
    backend, whose protos know nothing else, does that conversion (`_gemini_schema`).
    """
    fields: dict[str, Any] = {}
    if (output := request.output) is not None:
        fields["response_mime_type"] = "application/json"
        fields["response_json_schema"] = dict(output.schema)
    if request.tools:
        declarations: list[dict[str, Any]] = []
        for tool in request.tools:
            declaration: dict[str, Any] = {"name": tool.name, "parameters_json_schema": dict(tool.parameters)}
            if tool.description is not None:
                declaration["description"] = tool.description
            declarations.append(declaration)
        fields["tools"] = [{"function_declarations": declarations}]
    if request.tool_choice is not None:
        fields["tool_config"] = {"function_calling_config": gemini.function_calling_config(request.tool_choice)}
    return fields


def _environment_configures_http() -> bool:
    """Whether aiohttp's `trust_env` would find anything: proxy settings or a netrc file.

    google-genai opens its aiohttp sessions with `trust_env=True`, and the key travels in a header, not as auth, so
    aiohttp looks for netrc credentials on the loop's default thread pool before every request: under concurrency
    that hop to the pool and back, not the CPU, sets the pace. When the environment holds nothing for `trust_env`
    to use, the adapter brings its own session without it (same behaviour, minus the lookups); otherwise it leaves
    google-genai's session alone.
    """
    if urllib.request.getproxies():
        return True
    if os.environ.get("NETRC"):
        return True
    try:
        home = Path.home()
    except RuntimeError:  # no home directory: aiohttp finds no netrc either
        return False
    return (home / ".netrc").is_file() or (home / "_netrc").is_file()


class _OwnSession:
    """A `genai.Client` whose async calls go through an aiohttp session made here, for one event loop.

    The session is google-genai's own (`TCPConnector(limit=0)`, 4 MiB read buffer) without `trust_env`; TLS
    settings still come from the SDK, with every request. google-genai shares a caller's session across loops, so
    there is one client per loop (`PerLoop`), and closing it closes the session, which the SDK leaves to us.
    """

    def __init__(self, provider: GoogleProvider, aiohttp: Any) -> None:
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0), trust_env=False, read_bufsize=2**22
        )
        options = provider._options(aiohttp_client=self.session, retry_options=types.HttpRetryOptions(attempts=1))
        self.client = provider._new_client(options)

    async def close(self) -> None:
        self.client.close()
        await self.client.aio.aclose()
        await self.session.close()


class _PerLoopTransport(httpx2.AsyncBaseTransport):
    """httpx2's async transport, one per event loop.

    A transport passed in `async_client_args` turns off the SDK's own per-loop pools, and a pooled connection from
    an earlier loop then fails with `RuntimeError: Event loop is closed` (measured: a second `asyncio.run` over
    the same provider). So each running loop gets its own pool here.
    """

    def __init__(self) -> None:
        self._by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, httpx2.AsyncHTTPTransport] = (
            weakref.WeakKeyDictionary()
        )

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        loop = asyncio.get_running_loop()
        transport = self._by_loop.get(loop)
        if transport is None:
            transport = self._by_loop[loop] = httpx2.AsyncHTTPTransport()
        return await transport.handle_async_request(request)

    async def aclose(self) -> None:
        transport = self._by_loop.pop(asyncio.get_running_loop(), None)
        if transport is not None:
            await transport.aclose()
