"""The one interface every vendor adapter implements (`Provider`), and the plain data it speaks.

An adapter turns a `CompletionRequest` into SDK parameters, sends them with the vendor's own SDK (`send`, and
`asend` for the async client: the only part that differs), turns the reply into a `Completion` (`parse`), and maps
its SDK's exceptions to cascade's (`translate`). `Provider.complete` / `acomplete` wrap those for the engine: timing,
a deadline for the whole call, and one error path. The `Provider` docstring is the full contract.

Retries are not left to the SDKs: adapters build their clients with `max_retries=0` and the engine retries
under the stage's own deadline, so every vendor gets the same bounded behaviour (the SDKs differ wildly:
see SDK-NOTES: anthropic sleeps any `Retry-After`, google-generativeai retries 503 for ten minutes).
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from cascade.errors import (
    CascadeError,
    ContentBlockedError,
    MalformedResponseError,
    MissingAPIKeyError,
    ProviderError,
    TruncatedError,
    register_secret,
)
from cascade.providers._deadline import deadline
from cascade.providers._scrub import scrub_exception

FinishReason = Literal["stop", "length", "blocked", "refusal", "other"]
MessageRole = Literal["user", "assistant", "tool"]


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A function call a model asked for: the vendor's id for it (made up for Gemini, which may give none), the
    tool's name and its arguments, parsed from JSON. `arguments` is the raw text when the model wrote something
    that is not a JSON object (OpenAI sends arguments as text): the engine reports that as a schema error."""

    id: str
    name: str
    arguments: Mapping[str, Any] | str
    # Gemini's thought signature for the call (base64): Gemini 3 wants it back beside the call in later turns.
    signature: str | None = None


@dataclass(frozen=True, slots=True)
class Message:
    """One chat turn. System prompts travel apart, in `CompletionRequest.system`.

    An assistant turn may carry `tool_calls` (its `content` may then be ""); a `tool` turn is the result of one of
    them: `tool_call_id` says which, `name` is the tool's (Gemini sends results by name), `content` the result.
    """

    role: MessageRole
    content: str
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None
    name: str | None = None


@dataclass(frozen=True, slots=True)
class Tool:
    """A function the model may call: its name, what it is for, and its parameters as a JSON Schema object."""

    name: str
    description: str | None
    parameters: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class ToolChoice:
    """Whether the model must call a tool: `auto` (it decides), `required` (some tool), `none` (no tool), or
    `tool` (the one named)."""

    mode: Literal["auto", "required", "none", "tool"]
    name: str | None = None


@dataclass(frozen=True, slots=True)
class OutputSchema:
    """A structured answer asked for: a JSON Schema the answer must fit, under a name (vendors want one).

    `strict` is the same schema in the form OpenAI's strict structured outputs accept (every object closed, every
    property required), or None when the schema cannot be put in that form (the adapter then sends it unstrict).
    """

    name: str
    schema: Mapping[str, Any]
    strict: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class CompletionRequest:
    """What the engine asks of a vendor, in vendor-neutral terms."""

    model: str
    messages: tuple[Message, ...]
    max_output_tokens: int
    # None: not sent, the model's own default (reasoning models reject any other value).
    temperature: float | None = None
    system: str | None = None
    timeout_s: float = 60.0
    # When set, ask for the top-N log-probabilities of each output token (judge method `logprobs`).
    top_logprobs: int | None = None
    # A structured answer: ask through the vendor's own feature (OpenAI json_schema, Anthropic output_config or a
    # forced tool, Gemini's response schema); the answer's text is then the JSON.
    output: OutputSchema | None = None
    tools: tuple[Tool, ...] = ()
    tool_choice: ToolChoice | None = None  # None: the vendor's default (auto when tools are given)


@dataclass(frozen=True, slots=True)
class Completion:
    """One vendor reply, normalized. `text` is None when the vendor gave no answer (a block)."""

    text: str | None
    input_tokens: int
    output_tokens: int
    model: str
    finish_reason: FinishReason
    latency_s: float
    provider: str
    request_id: str | None = None
    cached_input_tokens: int = 0
    # Parts of the counts above billed at rates of their own (cascade/providers/usage.py reads them): cache
    # writes (part of the input; the 1-hour ones among them), and thinking (part of the output).
    cache_write_tokens: int = 0
    cache_write_1h_tokens: int = 0
    reasoning_tokens: int = 0
    # Top log-probabilities of the first output token: {token: logprob}. Empty when not asked for.
    first_token_logprobs: Mapping[str, float] = field(default_factory=dict)
    # The vendor's own words when it blocked or refused (a block reason, a refusal message).
    refusal: str | None = None
    # The tools the model called, in order (its finish reason is then "stop": a call is a finished turn).
    tool_calls: tuple[ToolCall, ...] = ()

    @property
    def usable(self) -> bool:
        """True when this is a complete answer: text, or tool calls."""
        return self.finish_reason == "stop" and (bool(self.tool_calls) or bool(self.text and self.text.strip()))

    def answer_text(self) -> str:
        """The answer, or the error that says why there is none (blocked, refused, truncated)."""
        if self.usable:
            return self.text or ""
        if self.finish_reason in ("blocked", "refusal"):
            why = self.refusal or self.finish_reason
            raise ContentBlockedError(
                f"{self.provider} {self.finish_reason}: {why}",
                provider=self.provider,
                model=self.model,
                completion=self,
            )
        if self.finish_reason == "length":
            raise TruncatedError(
                f"{self.provider} stopped at max output tokens ({self.output_tokens} tokens)",
                provider=self.provider,
                model=self.model,
                completion=self,
            )
        raise ContentBlockedError(
            f"{self.provider} returned no answer text (finish reason {self.finish_reason!r})",
            provider=self.provider,
            model=self.model,
            completion=self,
        )


# What the SDK is handed for an endpoint that takes no key (a self-hosted vLLM or Ollama): it is not a key. The
# openai SDK refuses to build a client without a credential (an empty key included) and to send a request without
# an Authorization header unless the request itself omits the header: the client is built with this, and the
# openai adapter omits the header from each request made with it. Never registered as a secret.
NO_KEY = "no-key"


@dataclass(frozen=True, slots=True)
class TextPiece:
    """A piece of a streamed answer's text, as it arrives."""

    text: str


@dataclass(frozen=True, slots=True)
class ToolCallPiece:
    """A piece of a streamed tool call: the call at `index` (in the answer's order) starts with its id and name,
    and its arguments arrive as fragments of their JSON text."""

    index: int
    id: str | None
    name: str | None
    arguments: str


StreamPiece = TextPiece | ToolCallPiece


class StreamReader(ABC):
    """Reads one streamed reply, event by event, the same way for the sync and the async SDK stream.

    `feed` takes one event of the SDK's stream and returns the pieces of answer it holds; `finish` returns the
    whole `Completion` (text, tool calls, usage and finish reason from the stream), or raises
    `StreamInterruptedError` when the stream ended before the vendor said the answer was complete.
    """

    @abstractmethod
    def feed(self, event: Any) -> list[StreamPiece]: ...

    @abstractmethod
    def finish(self, latency_s: float) -> Completion: ...


@dataclass(frozen=True, slots=True)
class ProviderSettings:
    """How to reach one provider: key (or the variables to read it from) and base URL.

    `key_required=False` is for an endpoint that takes no key: with none given or found, `resolve_key` returns
    `NO_KEY` instead of raising.
    """

    api_key: str | None = None
    api_key_env: tuple[str, ...] = ()
    base_url: str | None = None
    base_url_env: str | None = None
    # google only: "genai" (google-genai, default) or "generativeai" (legacy, opt-in).
    backend: str | None = None
    # The HTTP library under the async SDK client: "httpx" (the SDKs' default) or "aiohttp" (the SDKs' own backend).
    async_http: str = "httpx"
    key_required: bool = True

    def __repr__(self) -> str:  # never show the key
        key = "***" if self.api_key else None
        optional = "" if self.key_required else ", key_required=False"
        return (
            f"ProviderSettings(api_key={key!r}, api_key_env={self.api_key_env!r}, "
            f"base_url={self.base_url!r}, base_url_env={self.base_url_env!r}, backend={self.backend!r}, "
            f"async_http={self.async_http!r}{optional})"
        )

    def resolve_key(self, provider: str) -> str:
        """The explicit key, else the first variable set; a missing key names the variables (or, when no key is
        required, is `NO_KEY`)."""
        key = self.api_key
        if not key:
            key = next((os.environ[v] for v in self.api_key_env if os.environ.get(v)), None)
        if not key:
            if not self.key_required:
                return NO_KEY
            raise MissingAPIKeyError(provider, self.api_key_env)
        register_secret(key)
        return key

    def resolve_base_url(self) -> str | None:
        if self.base_url:
            return self.base_url
        if self.base_url_env:
            return os.environ.get(self.base_url_env) or None
        return None


class Provider(ABC):
    """One vendor: what the engine calls, and the two or three methods an adapter implements.

    The engine calls `complete(request)` (sync), `await acomplete(request)` (async) and `await aclose()`.
    `get_provider_class(name, backend)(settings)` builds an adapter from the policy's settings; an adapter also
    takes SDK clients you built yourself (`OpenAIProvider(client=openai.OpenAI(...))`), to pass in
    `Cascade(providers=...)`.

    An adapter implements:
    - `send(request)`: the call with the vendor's sync SDK client; returns the SDK's reply object.
    - `parse(reply, request, latency_s)`: that reply as a `Completion`; `MalformedResponseError` when a field the
      engine relies on is missing (the SDKs do not check).
    and where it has them:
    - `asend(request)`: the same call with the SDK's async client (by default, `send` on a worker thread).
    - `translate(exc, request)`: its SDK's exceptions as cascade errors, the adapter's one place for that (None
      for an exception it does not know).
    - `aclose()`: close the connections it opened (the async ones: the running loop's); the next call reconnects.
    - `returns_logprobs`: whether its completions carry first-token log-probabilities when asked for.

    `complete` and `acomplete` do the rest: they time the call, set its deadline from `request.timeout_s` (an
    SDK's timeout bounds each socket read, not the call: the adapters' sync transports keep to the deadline, and
    the engine bounds async calls itself), and turn whatever the call raises into a `ProviderError` through
    `error_for`. Usage errors (a missing key or package, found when the first client is built) pass
    unchanged. Clients are built on first use (see `_clients.py`), so that building a `Cascade` costs nothing.
    """

    name: str = ""
    returns_logprobs: ClassVar[bool] = False

    def __init__(self, settings: ProviderSettings | None = None) -> None:
        self.settings = settings if settings is not None else ProviderSettings()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.settings!r})"

    # -- what an adapter implements ------------------------------------------------------------------

    @abstractmethod
    def send(self, request: CompletionRequest) -> Any:
        """Send with the sync SDK client and return the SDK's reply object."""

    async def asend(self, request: CompletionRequest) -> Any:
        """Send with the async SDK client and return the SDK's reply object. By default: `send` on a thread."""
        return await asyncio.to_thread(self.send, request)

    @abstractmethod
    def parse(self, reply: Any, request: CompletionRequest, latency_s: float) -> Completion:
        """Turn the SDK's reply into a `Completion`, raising `MalformedResponseError` if it is unusable."""

    def translate(self, exc: Exception, request: CompletionRequest) -> ProviderError | None:
        """Map an SDK exception to cascade's tree, or None if it is not one this adapter knows."""
        return None

    # Streaming, where an adapter has it: `send_stream` / `asend_stream` open the SDK's stream (sync and async),
    # `stream_reader` reads its events. An adapter without them streams its whole answer as one piece.
    streams: ClassVar[bool] = False

    def send_stream(self, request: CompletionRequest) -> Any:
        """Open a stream with the sync SDK client: an iterable of the SDK's events (closed after use if it can)."""
        raise NotImplementedError

    async def asend_stream(self, request: CompletionRequest) -> Any:
        """Open a stream with the async SDK client: an async iterable of the SDK's events."""
        raise NotImplementedError

    def stream_reader(self, request: CompletionRequest) -> StreamReader:
        """A reader for one reply to `request`."""
        raise NotImplementedError

    async def aclose(self) -> None:  # noqa: B027 - optional: adapters without connections need nothing
        """Close the SDK clients' connections (the async ones belong to the running loop). Reconnects on use."""

    # -- what the engine calls ------------------------------------------------------------------------

    def complete(self, request: CompletionRequest) -> Completion:
        """Send one request and return the normalized completion (blocked or truncated included)."""
        start = time.perf_counter()
        with self._vendor_call(request):
            reply = self.send(request)
            return self.parse(reply, request, time.perf_counter() - start)

    async def acomplete(self, request: CompletionRequest) -> Completion:
        """The async twin of `complete`: same parameters, parsing and errors."""
        start = time.perf_counter()
        with self._vendor_call(request):
            reply = await self.asend(request)
            return self.parse(reply, request, time.perf_counter() - start)

    def stream(self, request: CompletionRequest) -> Iterator[StreamPiece | Completion]:
        """Send one request and yield its answer as it arrives: pieces, then the whole `Completion` last.

        Errors are those of `complete`, raised where the stream breaks; the call's deadline holds for the whole
        stream. An adapter that does not stream yields its whole answer as one piece.
        """
        if not self.streams:
            completion = self.complete(request)
            yield from _whole(completion)
            return
        start = time.perf_counter()
        with self._vendor_call(request):
            events = self.send_stream(request)
            reader = self.stream_reader(request)
            try:
                for event in events:
                    yield from reader.feed(event)
            finally:
                close = getattr(events, "close", None)
                if close is not None:
                    close()
            yield reader.finish(time.perf_counter() - start)

    async def astream(self, request: CompletionRequest) -> AsyncIterator[StreamPiece | Completion]:
        """The async twin of `stream` (the engine bounds the whole stream with the call's timeout)."""
        if not self.streams:
            for item in _whole(await self.acomplete(request)):
                yield item
            return
        start = time.perf_counter()
        with self._vendor_call(request):
            events = await self.asend_stream(request)
            reader = self.stream_reader(request)
            try:
                async for event in events:
                    for piece in reader.feed(event):
                        yield piece
            finally:
                # An SDK's AsyncStream has `close`, an async generator `aclose`: either ends the connection.
                close = getattr(events, "aclose", None) or getattr(events, "close", None)
                if close is not None:
                    await close()
            yield reader.finish(time.perf_counter() - start)

    def error_for(self, exc: Exception, request: CompletionRequest) -> ProviderError:
        """cascade's error for an exception raised while sending or parsing (not one of cascade's own).

        `translate`'s answer, or for an exception the adapter does not know a `MalformedResponseError` naming it
        (a body that is not UTF-8, or an unexpected exception).
        The exception stays chained as the error's cause, so the keys it may hold are masked first.
        Every failed vendor call passes here once: wrap it to see SDK exceptions before they are translated (the
        test-suite fails a test on a cassette miss this way; the SDKs would report one as a connection error).
        """
        error = self.translate(exc, request)
        if error is None:
            # The openai and anthropic SDKs read a JSON body as UTF-8 whatever charset the reply declares.
            what = "reply body is not UTF-8" if isinstance(exc, UnicodeDecodeError) else "unexpected"
            error = MalformedResponseError(
                f"{self.name}: {what} ({type(exc).__name__}: {exc})", provider=self.name, model=request.model
            )
        scrub_exception(exc)
        return error

    @contextmanager
    def _vendor_call(self, request: CompletionRequest) -> Iterator[None]:
        try:
            with deadline(request.timeout_s):
                yield
        except CascadeError:
            raise
        except Exception as exc:
            raise self.error_for(exc, request) from exc


def whole_pieces(completion: Completion) -> list[StreamPiece]:
    """A completion's answer as pieces: its text in one, each tool call in one (none when it is no answer)."""
    if not completion.usable:
        return []
    pieces: list[StreamPiece] = [TextPiece(completion.text)] if completion.text else []
    for i, call in enumerate(completion.tool_calls):
        arguments = call.arguments if isinstance(call.arguments, str) else json.dumps(call.arguments)
        pieces.append(ToolCallPiece(i, call.id, call.name, arguments))
    return pieces


def _whole(completion: Completion) -> Iterator[StreamPiece | Completion]:
    """A completion streamed as one piece (an adapter that does not stream)."""
    yield from whole_pieces(completion)
    yield completion


def error_for_status(
    status: int,
    message: str,
    *,
    provider: str,
    model: str,
    body: Any = None,
    headers: Mapping[str, str] | None = None,
    retry_after: float | None = None,
) -> ProviderError:
    """The cascade error for an HTTP status, shared by every adapter so that 529 means the same everywhere.

    The wait before a retry comes from the `retry-after` headers, else from `retry_after` (a vendor's own hint).
    """
    from cascade import errors

    cls: type[errors.VendorHTTPError]
    if status in (401, 403):
        cls = errors.AuthenticationError
    elif status == 429:
        cls = errors.RateLimitedError
    elif status in (503, 529):
        cls = errors.OverloadedError
    elif status >= 500:
        cls = errors.ServerError
    else:
        cls = errors.BadRequestError
    return cls(
        f"{provider} HTTP {status}: {message}",
        provider=provider,
        model=model,
        status_code=status,
        body=body,
        retry_after=hinted if (hinted := parse_retry_after(headers or {})) is not None else retry_after,
    )


def parse_retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds from `retry-after-ms` or `retry-after` (seconds or an HTTP date), else None."""
    lowered = {k.lower(): v for k, v in headers.items()}
    if ms := lowered.get("retry-after-ms"):
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass
    value = lowered.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        from email.utils import parsedate_to_datetime

        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        return max(0.0, when.timestamp() - time.time())
