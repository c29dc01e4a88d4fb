"""OpenAI Chat Completions through the `openai` SDK (`POST /v1/chat/completions`).

The request uses `max_completion_tokens` (`max_tokens` is deprecated and reasoning models reject it), sends the
system prompt as a first `system` message, and asks for log-probabilities only when the engine wants them.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import openai  # first: the registry names the missing extra from the first failed import
from openai.types.chat import ChatCompletion

from cascade.errors import MalformedResponseError
from cascade.providers._stainless import StainlessProvider
from cascade.providers.base import Completion, CompletionRequest, FinishReason
from cascade.providers.usage import openai_detail

_FINISH_REASONS: dict[str, FinishReason] = {
    "stop": "stop",
    "length": "length",
    "content_filter": "blocked",
    # `tool_calls` / `function_call`: we send no tools. Anything unknown is "other" too.
}
# The API rejects top_logprobs above 20.
_MAX_TOP_LOGPROBS = 20


class OpenAIProvider(StainlessProvider[openai.OpenAI, openai.AsyncOpenAI]):
    """Chat Completions via one `openai.OpenAI` and one `openai.AsyncOpenAI` per event loop, no SDK retries.

    `OpenAIProvider(settings)` builds its clients from the settings on first use; `client=` / `async_client=`
    take clients you built (`OpenAIProvider(client=openai.OpenAI(...), async_client=openai.AsyncOpenAI(...))`).
    """

    name = "openai"
    returns_logprobs = True
    sdk: ClassVar[Any] = openai
    client_class = openai.OpenAI
    async_client_class = openai.AsyncOpenAI
    default_base_url = "https://api.openai.com/v1"

    def _arguments(self, request: CompletionRequest) -> dict[str, Any]:
        messages: list[dict[str, str]] = []
        if request.system:
            messages.append({"role": "system", "content": request.system})
        messages += [{"role": m.role, "content": m.content} for m in request.messages]
        arguments: dict[str, Any] = {
            "model": request.model,
            "messages": messages,
            "max_completion_tokens": request.max_output_tokens,
            "timeout": request.timeout_s,
        }
        if request.temperature is not None:
            arguments["temperature"] = request.temperature
        if request.top_logprobs is not None:
            arguments["logprobs"] = True
            arguments["top_logprobs"] = max(0, min(request.top_logprobs, _MAX_TOP_LOGPROBS))
        return arguments

    def send(self, request: CompletionRequest) -> Any:
        return self._sync.get().chat.completions.create(**self._arguments(request))

    async def asend(self, request: CompletionRequest) -> Any:
        return await self._async.get().chat.completions.create(**self._arguments(request))

    def parse(self, response: Any, request: CompletionRequest, latency_s: float) -> Completion:
        # The SDK checks nothing: a missing field is None, a wrong type passes through, and a 200 body whose
        # content type is not JSON comes back as a plain string. So every field used here is checked.
        def malformed(problem: str) -> MalformedResponseError:
            return MalformedResponseError(f"openai: chat completion {problem}", provider=self.name, model=request.model)

        if not isinstance(response, ChatCompletion):
            raise malformed(f"is not a completion object but {type(response).__name__}: {str(response)[:120]!r}")
        choices = response.choices
        if not isinstance(choices, list) or not choices:
            raise malformed("has no choices")
        usage = response.usage
        if usage is None or usage.prompt_tokens is None or usage.completion_tokens is None:
            raise malformed("has no usage")
        details = usage.prompt_tokens_details
        counts = (usage.prompt_tokens, usage.completion_tokens, (details.cached_tokens if details else None) or 0)
        if not all(type(n) is int and n >= 0 for n in counts):
            raise malformed(f"has unusable token counts (prompt, completion, cached): {counts!r}")
        input_tokens, output_tokens, cached = counts
        choice = choices[0]
        message = getattr(choice, "message", None)
        if message is None:
            raise malformed("has a choice without a message")
        text, refusal = getattr(message, "content", None), getattr(message, "refusal", None)
        if not (text is None or isinstance(text, str)) or not (refusal is None or isinstance(refusal, str)):
            raise malformed("has a message whose content is not text")
        reason = getattr(choice, "finish_reason", None)
        if not isinstance(reason, str):
            raise malformed("has no finish_reason")
        finish = _FINISH_REASONS.get(reason, "other")
        if refusal:
            # A refusal comes with content null and finish_reason "stop".
            finish, text = "refusal", None
        elif finish == "blocked":
            # content_filter may cut in after some text: none of it is an answer.
            text, refusal = None, "content filter"
        elif text is None and finish == "stop":
            raise malformed("has neither text nor a refusal")
        detail = openai_detail(usage)
        return Completion(
            text=text,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            # prompt_tokens include the cached ones (billed lower): prices.py bills them apart.
            cached_input_tokens=cached,
            cache_write_tokens=detail.cache_write_tokens,
            reasoning_tokens=detail.reasoning_tokens,
            model=response.model if isinstance(response.model, str) and response.model else request.model,
            finish_reason=finish,
            latency_s=latency_s,
            provider=self.name,
            # The SDK sets `_request_id` from the x-request-id header; the body id when the header is missing.
            request_id=getattr(response, "_request_id", None) or response.id or None,
            first_token_logprobs=_first_token_logprobs(choice),
            refusal=refusal,
        )

    def _status_message(self, exc: Any) -> str:
        # The SDK unwraps `{"error": {...}}`: `body` is the inner object, or the raw text of a non-JSON body.
        body = exc.body
        message = body.get("message") if isinstance(body, dict) else None
        return str(message or exc.message)


def _first_token_logprobs(choice: Any) -> dict[str, float]:
    content = getattr(getattr(choice, "logprobs", None), "content", None)
    if not isinstance(content, list) or not content:
        return {}
    top = getattr(content[0], "top_logprobs", None) or []
    result: dict[str, float] = {}
    for item in top:
        token, logprob = getattr(item, "token", None), getattr(item, "logprob", None)
        # Two entries can decode to the same text (tokens differing only in bytes): keep the likelier.
        if isinstance(token, str) and isinstance(logprob, int | float) and logprob > result.get(token, -math.inf):
            result[token] = float(logprob)
    return result
