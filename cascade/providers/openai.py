"""OpenAI Chat Completions through the `openai` SDK."""

from __future__ import annotations

import json
from typing import Any

import openai  # first: the registry names the missing extra from the first failed import

from cascade.errors import MalformedResponseError, ProviderError, VendorConnectionError, VendorTimeoutError
from cascade.providers.base import (
    Completion,
    CompletionRequest,
    FinishReason,
    Provider,
    ProviderSettings,
    error_for_status,
)

_FINISH: dict[str, FinishReason] = {
    "stop": "stop",
    "length": "length",
    "content_filter": "blocked",
    "tool_calls": "other",
    "function_call": "other",
}
# The API caps top_logprobs at 20.
_MAX_TOP_LOGPROBS = 20


class OpenAIProvider(Provider):
    """Chat Completions: one sync and one async client per instance, built on first use, SDK retries off."""

    name = "openai"

    def __init__(self, settings: ProviderSettings) -> None:
        super().__init__(settings)
        self._sync: openai.OpenAI | None = None
        self._async: openai.AsyncOpenAI | None = None

    def _client_options(self) -> dict[str, Any]:
        # max_retries=0: the engine retries under the stage's deadline (the SDK would honour a Retry-After of
        # up to two minutes on its own).
        return {
            "api_key": self.settings.resolve_key(self.name),
            "base_url": self.settings.resolve_base_url(),
            "max_retries": 0,
        }

    def _sync_client(self) -> openai.OpenAI:
        if self._sync is None:
            self._sync = openai.OpenAI(**self._client_options())
        return self._sync

    def _async_client(self) -> openai.AsyncOpenAI:
        if self._async is None:
            self._async = openai.AsyncOpenAI(**self._client_options())
        return self._async

    async def aclose(self) -> None:
        sync_client, async_client = self._sync, self._async
        self._sync = self._async = None
        if sync_client is not None:
            sync_client.close()
        if async_client is not None:
            await async_client.close()

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
            arguments["top_logprobs"] = min(request.top_logprobs, _MAX_TOP_LOGPROBS)
        return arguments

    def _send(self, request: CompletionRequest) -> Any:
        return self._sync_client().chat.completions.create(**self._arguments(request))

    async def _asend(self, request: CompletionRequest) -> Any:
        return await self._async_client().chat.completions.create(**self._arguments(request))

    def _parse(self, response: Any, request: CompletionRequest, latency_s: float) -> Completion:
        def malformed(problem: str) -> MalformedResponseError:
            return MalformedResponseError(f"openai: {problem}", provider=self.name, model=request.model)

        # Given a 200 body that is not JSON with a non-JSON content type, the SDK returns the raw text.
        if isinstance(response, str) or not hasattr(response, "choices"):
            raise malformed("reply body is not a chat completion")
        if not response.choices:
            raise malformed("reply has no choices")
        usage = response.usage
        if usage is None or usage.prompt_tokens is None or usage.completion_tokens is None:
            raise malformed("reply has no usage")
        choice = response.choices[0]
        message = choice.message
        if message is None:
            raise malformed("reply choice has no message")
        refusal = getattr(message, "refusal", None)
        text = message.content
        finish: FinishReason = _FINISH.get(choice.finish_reason or "", "other")
        if refusal:
            finish, text = "refusal", None
        elif finish == "blocked":
            text = None
        elif text is None and finish == "stop":
            raise malformed("reply has neither text nor a refusal")
        details = getattr(usage, "prompt_tokens_details", None)
        return Completion(
            text=text,
            input_tokens=usage.prompt_tokens,
            output_tokens=usage.completion_tokens,
            cached_input_tokens=(getattr(details, "cached_tokens", None) or 0) if details else 0,
            model=response.model or request.model,
            finish_reason=finish,
            latency_s=latency_s,
            provider=self.name,
            request_id=getattr(response, "_request_id", None) or response.id,
            first_token_logprobs=_first_token_logprobs(choice),
            refusal=refusal or ("content filter" if finish == "blocked" else None),
        )

    def _translate(self, exc: Exception, request: CompletionRequest) -> ProviderError | None:
        where = {"provider": self.name, "model": request.model}
        if isinstance(exc, openai.APIStatusError):
            body = exc.body
            message = body.get("message") if isinstance(body, dict) else None
            return error_for_status(
                exc.status_code, str(message or exc.message), body=body, headers=dict(exc.response.headers), **where
            )
        if isinstance(exc, openai.APITimeoutError):  # before APIConnectionError, its parent
            return VendorTimeoutError(f"openai: no reply within {request.timeout_s:g} s", **where)
        if isinstance(exc, openai.APIConnectionError):
            return VendorConnectionError(f"openai: cannot reach the API ({exc.__cause__ or exc})", **where)
        if isinstance(exc, json.JSONDecodeError | openai.APIResponseValidationError):
            return MalformedResponseError(f"openai: reply body is not valid JSON ({exc})", **where)
        return None


def _first_token_logprobs(choice: Any) -> dict[str, float]:
    logprobs = getattr(choice, "logprobs", None)
    content = getattr(logprobs, "content", None) if logprobs else None
    if not content:
        return {}
    first = content[0]
    return {item.token: item.logprob for item in (first.top_logprobs or [])}
