"""Anthropic Claude through the `anthropic` SDK (the Messages API, `POST /v1/messages`).

What the request leaves out, on purpose:
- temperature: anthropic 1.0 removed `temperature`, `top_p` and `top_k` from `messages.create`, and 2.x sends
  `anthropic-version: 2026-10-21`, under which the API is reported to answer 400 to any sampling parameter (even
  1.0; newer models reject it on every version). Sent through `extra_body` it would fail every call: not sent.
- log-probabilities: the Messages API has none. `top_logprobs` is ignored and `first_token_logprobs` stays empty;
  the engine's judge falls back to a JSON score.
"""

from __future__ import annotations

import json
from typing import Any

import anthropic  # first: the registry names the missing extra from the first failed import
from anthropic.types import AssistantMessageParam, Message, MessageParam, UserMessageParam

from cascade.errors import MalformedResponseError, ProviderError, VendorConnectionError, VendorTimeoutError
from cascade.providers._clients import LoopClients, aiohttp_connection_failure, require_aiohttp
from cascade.providers.base import (
    Completion,
    CompletionRequest,
    FinishReason,
    Provider,
    ProviderSettings,
    error_for_status,
)

# Passed explicitly: with `base_url=None` the SDK would read ANTHROPIC_BASE_URL or a profile on disk even when
# the settings name another variable.
_DEFAULT_BASE_URL = "https://api.anthropic.com"

_FINISH_REASONS: dict[str, FinishReason] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    # The context window filled up before the answer ended: as incomplete as a max_tokens stop.
    "model_context_window_exceeded": "length",
    "refusal": "refusal",
    # Anything else (`tool_use`: we send no tools; `pause_turn`: a server tool paused) is "other".
}


class AnthropicProvider(Provider):
    """Claude via one `anthropic.Anthropic` and one `anthropic.AsyncAnthropic` per event loop, no SDK retries."""

    name = "anthropic"

    def __init__(self, settings: ProviderSettings) -> None:
        super().__init__(settings)
        # `async_http: aiohttp`: checked here, so that a missing package is reported before any call.
        self._aiohttp = require_aiohttp(self.name) if settings.async_http == "aiohttp" else None
        # One sync client, one async client per event loop (see _clients.py), built on first use.
        self._clients = LoopClients(
            lambda: anthropic.Anthropic(**self._options()),
            lambda: anthropic.AsyncAnthropic(**self._options(), **self._async_http()),
        )

    def _options(self) -> dict[str, Any]:
        # An explicit key also stops the SDK from looking for ANTHROPIC_AUTH_TOKEN, profiles or federation.
        # max_retries=0: the engine retries under the stage's deadline (the SDK would sleep any Retry-After).
        return {
            "api_key": self.settings.resolve_key(self.name),
            "base_url": self.settings.resolve_base_url() or _DEFAULT_BASE_URL,
            "max_retries": 0,
        }

    def _async_http(self) -> dict[str, Any]:
        # The SDK's own aiohttp client keeps the SDK's default timeout and connection limits; closing the
        # AsyncAnthropic closes it and its aiohttp session.
        return {"http_client": anthropic.DefaultAioHttpClient()} if self._aiohttp is not None else {}

    async def aclose(self) -> None:
        await self._clients.aclose()

    def _send(self, request: CompletionRequest) -> Message:
        return self._clients.sync().messages.create(
            model=request.model,
            max_tokens=request.max_output_tokens,
            messages=_messages(request),
            system=request.system or anthropic.omit,
            timeout=request.timeout_s,
        )

    async def _asend(self, request: CompletionRequest) -> Message:
        return await self._clients.async_().messages.create(
            model=request.model,
            max_tokens=request.max_output_tokens,
            messages=_messages(request),
            system=request.system or anthropic.omit,
            timeout=request.timeout_s,
        )

    def _parse(self, response: Any, request: CompletionRequest, latency_s: float) -> Completion:
        # The SDK checks nothing: a missing field is None, a wrong type passes through, and a body that is not
        # JSON-typed comes back as a plain string. So every field used here is checked (with plain loops and
        # tests: this runs on every call).
        if not isinstance(response, Message):
            raise self._malformed(
                request, f"is not a message object but {type(response).__name__}: {str(response)[:120]!r}"
            )
        usage = response.usage
        input_count = getattr(usage, "input_tokens", None)
        output_count = getattr(usage, "output_tokens", None)
        cache_read_count = getattr(usage, "cache_read_input_tokens", None)
        cache_write_count = getattr(usage, "cache_creation_input_tokens", None)
        if usage is None or input_count is None or output_count is None:
            raise self._malformed(request, "has no usage")
        for n in (input_count, output_count, cache_read_count, cache_write_count):
            if n is not None and (type(n) is not int or n < 0):
                counts = (input_count, output_count, cache_read_count, cache_write_count)
                raise self._malformed(
                    request, f"has unusable token counts (input, output, cache read, cache write): {counts!r}"
                )
        content = response.content
        if not isinstance(content, list):
            raise self._malformed(request, "has no content")
        texts: list[str] = []
        for block in content:
            if getattr(block, "type", None) == "text":
                block_text = getattr(block, "text", None)
                if not isinstance(block_text, str):
                    raise self._malformed(request, "has a text block without text")
                texts.append(block_text)
        stop_reason = response.stop_reason
        if not isinstance(stop_reason, str):
            raise self._malformed(request, "has no stop_reason")
        finish = _FINISH_REASONS.get(stop_reason, "other")
        if finish == "stop" and not texts:
            # A finished answer must have text; a refusal or a stop at max_tokens (spent on thinking) may not.
            raise self._malformed(request, f"has no text content (stop_reason {stop_reason!r})")

        # Anthropic reports cache reads and cache writes apart from `input_tokens`; the prompt is all three.
        # input_tokens = uncached + cache reads + cache writes, and cached_input_tokens = cache reads, so that
        # cached tokens are part of the input as with OpenAI and prices.py bills the reads at the cached rate.
        # Cache writes (billed at 1.25x by Anthropic) are counted as plain input.
        cache_read = cache_read_count or 0
        input_tokens = input_count + cache_read + (cache_write_count or 0)

        text: str | None = "".join(texts) if texts else None
        refusal = None
        if finish == "refusal":
            # A refusal can cut in after some text was streamed out: none of it is an answer.
            text = None
            details = response.stop_details
            refusal = (
                getattr(details, "explanation", None)
                or (f"refusal ({details.category})" if details is not None and details.category else None)
                or "the model refused to answer"
            )
        model = response.model if isinstance(response.model, str) and response.model else request.model
        return Completion(
            text=text,
            input_tokens=input_tokens,
            output_tokens=output_count,
            model=model,
            finish_reason=finish,
            latency_s=latency_s,
            provider=self.name,
            request_id=getattr(response, "_request_id", None) or response.id or None,
            cached_input_tokens=cache_read,
            refusal=refusal,
        )

    def _malformed(self, request: CompletionRequest, problem: str) -> MalformedResponseError:
        return MalformedResponseError(f"anthropic: Messages reply {problem}", provider=self.name, model=request.model)

    def _translate(self, exc: Exception, request: CompletionRequest) -> ProviderError | None:
        where = {"provider": self.name, "model": request.model}
        if isinstance(exc, anthropic.APIStatusError):
            message = exc.api_message or exc.message
            if exc.type:
                message = f"{exc.type}: {message}"
            return error_for_status(
                exc.status_code, message, body=exc.body, headers=dict(exc.response.headers), **where
            )
        # APITimeoutError is a subclass of APIConnectionError: test it first.
        if isinstance(exc, anthropic.APITimeoutError):
            # An aiohttp bridge may call a refused connection a timeout (openai's does: see _clients.py).
            if (dropped := aiohttp_connection_failure(self._aiohttp, exc)) is not None:
                return VendorConnectionError(
                    f"anthropic: could not connect ({type(dropped).__name__}: {dropped})", **where
                )
            return VendorTimeoutError(f"anthropic: no reply within {request.timeout_s:g} s", **where)
        if isinstance(exc, anthropic.APIConnectionError):
            cause = exc.__cause__
            why = f"{type(cause).__name__}: {cause}" if cause is not None else exc.message
            return VendorConnectionError(f"anthropic: could not connect ({why})", **where)
        if isinstance(exc, json.JSONDecodeError | anthropic.APIResponseValidationError):
            # A JSON content type over a body that is not JSON (a proxy's error page, a cut-off reply).
            return MalformedResponseError(f"anthropic: reply body is not JSON ({exc})", **where)
        return None


def _messages(request: CompletionRequest) -> list[MessageParam]:
    return [
        UserMessageParam(role="user", content=m.content)
        if m.role == "user"
        else AssistantMessageParam(role="assistant", content=m.content)
        for m in request.messages
    ]
