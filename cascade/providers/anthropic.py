"""Anthropic Claude through the `anthropic` SDK (the Messages API, `POST /v1/messages`).

What the request leaves out, on purpose:
- temperature: anthropic 1.0 removed `temperature`, `top_p` and `top_k` from `messages.create`, and 2.x sends
  `anthropic-version: 2026-10-21`, under which the API is reported to answer 400 to any sampling parameter (even
  1.0; newer models reject it on every version). Sent through `extra_body` it would fail every call: not sent.
- log-probabilities: the Messages API has none. `top_logprobs` is ignored and `first_token_logprobs` stays empty;
  the engine's judge falls back to a JSON score.
"""

from __future__ import annotations

from typing import Any, ClassVar

import anthropic  # first: the registry names the missing extra from the first failed import
from anthropic.types import AssistantMessageParam, Message, MessageParam, UserMessageParam

from cascade.errors import MalformedResponseError
from cascade.providers._stainless import StainlessProvider
from cascade.providers.base import Completion, CompletionRequest, FinishReason
from cascade.providers.usage import anthropic_detail

_FINISH_REASONS: dict[str, FinishReason] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    # The context window filled up before the answer ended: as incomplete as a max_tokens stop.
    "model_context_window_exceeded": "length",
    "refusal": "refusal",
    # Anything else (`tool_use`: we send no tools; `pause_turn`: a server tool paused) is "other".
}


class AnthropicProvider(StainlessProvider[anthropic.Anthropic, anthropic.AsyncAnthropic]):
    """Claude via one `anthropic.Anthropic` and one `anthropic.AsyncAnthropic` per event loop, no SDK retries.

    `AnthropicProvider(settings)` builds its clients from the settings on first use; `client=` / `async_client=`
    take clients you built.
    """

    name = "anthropic"
    returns_logprobs = False  # the Messages API has none
    sdk: ClassVar[Any] = anthropic
    client_class = anthropic.Anthropic
    async_client_class = anthropic.AsyncAnthropic
    default_base_url = "https://api.anthropic.com"

    def send(self, request: CompletionRequest) -> Any:
        return self._sync.get().messages.create(**_arguments(request))

    async def asend(self, request: CompletionRequest) -> Any:
        return await self._async.get().messages.create(**_arguments(request))

    def parse(self, response: Any, request: CompletionRequest, latency_s: float) -> Completion:
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
        # Cache writes are reported apart as well (5-minute writes bill at 1.25x the input rate, 1-hour ones at 2x).
        cache_read = cache_read_count or 0
        input_tokens = input_count + cache_read + (cache_write_count or 0)
        detail = anthropic_detail(usage)

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
            cache_write_tokens=detail.cache_write_tokens,
            cache_write_1h_tokens=detail.cache_write_1h_tokens,
            reasoning_tokens=detail.reasoning_tokens,
            refusal=refusal,
        )

    def _malformed(self, request: CompletionRequest, problem: str) -> MalformedResponseError:
        return MalformedResponseError(f"anthropic: Messages reply {problem}", provider=self.name, model=request.model)

    def _status_message(self, exc: Any) -> str:
        message = exc.api_message or exc.message
        return f"{exc.type}: {message}" if exc.type else str(message)


def _arguments(request: CompletionRequest) -> dict[str, Any]:
    return {
        "model": request.model,
        "max_tokens": request.max_output_tokens,
        "messages": _messages(request),
        "system": request.system or anthropic.omit,
        "timeout": request.timeout_s,
    }


def _messages(request: CompletionRequest) -> list[MessageParam]:
    return [
        UserMessageParam(role="user", content=m.content)
        if m.role == "user"
        else AssistantMessageParam(role="assistant", content=m.content)
        for m in request.messages
    ]
