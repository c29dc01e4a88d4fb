"""OpenAI Chat Completions through the `openai` SDK (`POST /v1/chat/completions`).

The request uses `max_completion_tokens` (`max_tokens` is deprecated and reasoning models reject it), sends the
system prompt as a first `system` message, and asks for log-probabilities only when the engine wants them.
A structured answer is asked for with `response_format` (`json_schema`, strict when the schema has a strict form)
and comes back as the message's text; tools are `function` tools, and their calls come back as `tool_calls` with
the arguments as JSON text.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import openai  # first: the registry names the missing extra from the first failed import
from openai.types.chat import ChatCompletion

from cascade.errors import InvalidQueryError, MalformedResponseError
from cascade.providers._stainless import StainlessProvider
from cascade.providers.base import Completion, CompletionRequest, FinishReason, Message, Tool, ToolCall, ToolChoice
from cascade.providers.usage import openai_detail

_FINISH_REASONS: dict[str, FinishReason] = {
    "stop": "stop",
    "length": "length",
    "content_filter": "blocked",
    # A turn that ends in calls is a finished turn (but "other" if none of its calls is one we can use).
    "tool_calls": "stop",
    "function_call": "stop",  # the legacy name, from before `tools`
    # Anything unknown is "other".
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
        messages: list[dict[str, Any]] = []
        if request.system:
            messages.append({"role": "system", "content": request.system})
        messages += [_message(m) for m in request.messages]
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
        if (output := request.output) is not None:
            arguments["response_format"] = {
                "type": "json_schema",
                "json_schema": {
                    "name": output.name,
                    "schema": dict(output.strict if output.strict is not None else output.schema),
                    "strict": output.strict is not None,
                },
            }
        if request.tools:
            arguments["tools"] = [_tool(t) for t in request.tools]
        if request.tool_choice is not None:
            arguments["tool_choice"] = _tool_choice(request.tool_choice)
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
        tool_calls = _tool_calls(getattr(message, "tool_calls", None), malformed)
        if reason in ("tool_calls", "function_call") and not tool_calls:
            finish = "other"  # it called only tools we cannot use (custom ones), or none at all
        if refusal:
            # A refusal comes with content null and finish_reason "stop".
            finish, text, tool_calls = "refusal", None, ()
        elif finish == "blocked":
            # content_filter may cut in after some text: none of it is an answer.
            text, refusal, tool_calls = None, "content filter", ()
        elif text is None and finish == "stop" and not tool_calls:
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
            tool_calls=tool_calls,
        )

    def _status_message(self, exc: Any) -> str:
        # The SDK unwraps `{"error": {...}}`: `body` is the inner object, or the raw text of a non-JSON body.
        body = exc.body
        message = body.get("message") if isinstance(body, dict) else None
        return str(message or exc.message)


def _message(message: Message) -> dict[str, Any]:
    if message.role == "tool":
        if message.tool_call_id is None:
            raise InvalidQueryError("openai: a tool turn needs the tool_call_id of the call it answers")
        return {"role": "tool", "tool_call_id": message.tool_call_id, "content": message.content}
    if message.role == "assistant" and message.tool_calls:
        # The API wants null content, not "", beside calls that came without text.
        return {
            "role": "assistant",
            "content": message.content or None,
            "tool_calls": [
                {
                    "id": call.id,
                    "type": "function",
                    # Raw text stays as the model wrote it (it was not JSON to begin with).
                    "function": {"name": call.name, "arguments": _json_text(call.arguments)},
                }
                for call in message.tool_calls
            ],
        }
    return {"role": message.role, "content": message.content}


def _json_text(arguments: Mapping[str, Any] | str) -> str:
    return arguments if isinstance(arguments, str) else json.dumps(arguments)


def _tool(tool: Tool) -> dict[str, Any]:
    function: dict[str, Any] = {"name": tool.name}
    if tool.description is not None:
        function["description"] = tool.description
    function["parameters"] = dict(tool.parameters)
    return {"type": "function", "function": function}


def _tool_choice(choice: ToolChoice) -> str | dict[str, Any]:
    if choice.mode == "tool":
        return {"type": "function", "function": {"name": choice.name}}
    return choice.mode  # "auto", "required" and "none" are the API's own words


def _tool_calls(calls: Any, malformed: Callable[[str], MalformedResponseError]) -> tuple[ToolCall, ...]:
    if calls is None:
        return ()
    if not isinstance(calls, list):
        raise malformed("has tool_calls that are not a list")
    found: list[ToolCall] = []
    for call in calls:
        if getattr(call, "type", None) != "function":
            continue  # a custom tool's call (free text, not a function): we never offer those
        function = getattr(call, "function", None)
        call_id, name = getattr(call, "id", None), getattr(function, "name", None)
        arguments = getattr(function, "arguments", None)
        if not (isinstance(call_id, str) and isinstance(name, str) and isinstance(arguments, str)):
            raise malformed("has a function call without an id, a name or arguments")
        found.append(ToolCall(id=call_id, name=name, arguments=_parsed_arguments(arguments)))
    return tuple(found)


def _parsed_arguments(arguments: str) -> Mapping[str, Any] | str:
    """The arguments as a JSON object, or the raw text when they are not one (the engine reports that)."""
    try:
        parsed = json.loads(arguments)
    except ValueError:
        return arguments
    return parsed if isinstance(parsed, dict) else arguments


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
