"""The one interface every vendor adapter implements, and the plain data it speaks.

An adapter turns a `CompletionRequest` into SDK parameters, sends them with the vendor's own SDK (sync or
async: the only part that differs), and turns the reply into a `Completion`. Building the parameters,
parsing the reply and translating SDK exceptions are written once per vendor and shared by both paths.

Retries are not left to the SDKs: adapters build their clients with `max_retries=0` and the engine retries
under the stage's own deadline, so every vendor gets the same bounded behaviour (the SDKs differ wildly:
see SDK-NOTES: anthropic sleeps any `Retry-After`, google-generativeai retries 503 for ten minutes).
"""

from __future__ import annotations

import os
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from cascade.errors import (
    ContentBlockedError,
    MissingAPIKeyError,
    ProviderError,
    TruncatedError,
    redact,
    register_secret,
)

FinishReason = Literal["stop", "length", "blocked", "refusal", "other"]
Role = Literal["user", "assistant"]


@dataclass(frozen=True, slots=True)
class Message:
    """One chat turn. System prompts travel apart, in `CompletionRequest.system`."""

    role: Role
    content: str


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
    # Top log-probabilities of the first output token: {token: logprob}. Empty when not asked for.
    first_token_logprobs: Mapping[str, float] = field(default_factory=dict)
    # The vendor's own words when it blocked or refused (a block reason, a refusal message).
    refusal: str | None = None

    @property
    def usable(self) -> bool:
        """True when this is a complete answer with text."""
        return self.finish_reason == "stop" and bool(self.text and self.text.strip())

    def answer_text(self) -> str:
        """The answer, or the error that says why there is none (blocked, refused, truncated)."""
        if self.usable:
            assert self.text is not None
            return self.text
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


@dataclass(frozen=True, slots=True)
class ProviderSettings:
    """How to reach one vendor: key (or the variables to read it from) and base URL."""

    api_key: str | None = None
    api_key_env: tuple[str, ...] = ()
    base_url: str | None = None
    base_url_env: str | None = None
    # google only: "genai" (google-genai, default) or "generativeai" (legacy, opt-in).
    backend: str | None = None
    # The HTTP library under the async SDK client: "httpx" (the SDKs' default) or "aiohttp" (the SDKs' own backend).
    async_http: str = "httpx"

    def __repr__(self) -> str:  # never show the key
        key = "***" if self.api_key else None
        return (
            f"ProviderSettings(api_key={key!r}, api_key_env={self.api_key_env!r}, "
            f"base_url={self.base_url!r}, base_url_env={self.base_url_env!r}, backend={self.backend!r}, "
            f"async_http={self.async_http!r})"
        )

    def resolve_key(self, provider: str) -> str:
        """The explicit key, else the first variable set; a missing key names the variables."""
        key = self.api_key
        if not key:
            key = next((os.environ[v] for v in self.api_key_env if os.environ.get(v)), None)
        if not key:
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
    """One vendor. Subclasses implement the four hooks below; `complete`/`acomplete` are shared.

    Clients are built lazily, once, on first use, so that constructing a `Cascade` costs nothing and a
    missing key surfaces on the first call that needs it.
    """

    name: str = ""

    def __init__(self, settings: ProviderSettings) -> None:
        self.settings = settings

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.settings!r})"

    # -- the hooks a vendor module implements -------------------------------------------------------

    @abstractmethod
    def _send(self, request: CompletionRequest) -> Any:
        """Send with the sync SDK client and return the SDK's response object."""

    @abstractmethod
    async def _asend(self, request: CompletionRequest) -> Any:
        """Send with the async SDK client and return the SDK's response object."""

    @abstractmethod
    def _parse(self, response: Any, request: CompletionRequest, latency_s: float) -> Completion:
        """Turn the SDK's response into a `Completion`, raising `MalformedResponseError` if unusable."""

    @abstractmethod
    def _translate(self, exc: Exception, request: CompletionRequest) -> ProviderError | None:
        """Map an SDK exception to cascade's tree, or None if it is not the SDK's."""

    async def aclose(self) -> None:  # noqa: B027 - optional hook: adapters without connections need nothing
        """Close the SDK clients' connections (the async ones belong to the running loop). Reconnects on use."""

    # -- the shared core ----------------------------------------------------------------------------

    def complete(self, request: CompletionRequest) -> Completion:
        """Send one request and return the normalized completion (blocked or truncated included)."""
        start = time.perf_counter()
        try:
            response = self._send(request)
            return self._parse(response, request, time.perf_counter() - start)
        except ProviderError:
            raise
        except Exception as exc:
            translated = self._translated(exc, request)
            if translated is None:
                raise
            raise translated from exc

    async def acomplete(self, request: CompletionRequest) -> Completion:
        """The async twin of `complete`: same parameters, parsing and errors."""
        start = time.perf_counter()
        try:
            response = await self._asend(request)
            return self._parse(response, request, time.perf_counter() - start)
        except ProviderError:
            raise
        except Exception as exc:
            translated = self._translated(exc, request)
            if translated is None:
                raise
            raise translated from exc

    def _translated(self, exc: Exception, request: CompletionRequest) -> ProviderError | None:
        """cascade's error for an SDK exception (`_translate`), or None to let it through unchanged.

        A plain try/except in `complete` rather than a context manager: it runs on every vendor call.
        """
        translated = self._translate(exc, request)
        if translated is not None:
            # The SDK's exception stays chained (for debugging, and so tests can spot a cassette miss), but a
            # vendor or gateway may echo the key in its message: mask it before a traceback prints it.
            exc.args = tuple(redact(a) if isinstance(a, str) else a for a in exc.args)
        return translated


def error_for_status(
    status: int,
    message: str,
    *,
    provider: str,
    model: str,
    body: Any = None,
    headers: Mapping[str, str] | None = None,
) -> ProviderError:
    """The cascade error for an HTTP status, shared by every adapter so that 529 means the same everywhere."""
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
        retry_after=parse_retry_after(headers or {}),
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
