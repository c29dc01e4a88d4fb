"""OpenAI Chat Completions through the `openai` SDK (`POST /v1/chat/completions`).

The request uses `max_completion_tokens` (`max_tokens` is deprecated and reasoning models reject it), sends the
system prompt as a first `system` message, and asks for log-probabilities only when the engine wants them.
A structured answer is asked for with `response_format` (`json_schema`, strict when the schema has a strict form)
and comes back as the message's text; tools are `function` tools, and their calls come back as `tool_calls` with
the arguments as JSON text.

Streamed, the same request asks for `stream_options.include_usage`: the usage then comes in one last chunk with no
choices, after the chunk with the finish reason. The chunks are gathered into the `ChatCompletion` they stand for,
which `parse` reads as it reads an unstreamed one.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import openai  # first: the registry names the missing extra from the first failed import
from openai.types.chat import ChatCompletion, ChatCompletionChunk, ChatCompletionMessage
from openai.types.chat.chat_completion import Choice

from cascade.errors import InvalidQueryError, MalformedResponseError, StreamInterruptedError
from cascade.providers._stainless import StainlessProvider, StreamOpened
from cascade.providers.base import (
    NO_KEY,
    Completion,
    CompletionRequest,
    FinishReason,
    Message,
    StreamPiece,
    StreamReader,
    TextPiece,
    Tool,
    ToolCall,
    ToolCallPiece,
    ToolChoice,
)
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
# What an error sent inside a stream (`{"error": {...}}` after the 200) stands for, by its code, else its type.
# Anything else is the vendor failing after it took the request: a server error.
_STREAMED_ERROR_STATUS = {
    "rate_limit_exceeded": 429,
    "insufficient_quota": 429,
    "invalid_api_key": 401,
    "server_is_overloaded": 503,
    "invalid_request_error": 400,
    "authentication_error": 401,
    "permission_error": 403,
    "tokens": 429,  # the type of a rate limit on tokens
    "requests": 429,  # and on requests
    "server_error": 500,
}


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
    request_id_header = "x-request-id"
    streams = True

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
        if not self.settings.key_required and self.settings.resolve_key(self.name) == NO_KEY:
            # An endpoint that takes no key (a local vLLM or Ollama): the SDK will not build a client without some
            # key, but sends no Authorization header at all when a request omits it.
            arguments["extra_headers"] = {"Authorization": openai.Omit()}
        return arguments

    def send(self, request: CompletionRequest) -> Any:
        return self._sync.get().chat.completions.create(**self._arguments(request))

    async def asend(self, request: CompletionRequest) -> Any:
        return await self._async.get().chat.completions.create(**self._arguments(request))

    def send_stream(self, request: CompletionRequest) -> Any:
        stream = self._sync.get().chat.completions.create(**self._arguments(request), **_STREAMING)
        return self._events(stream)

    async def asend_stream(self, request: CompletionRequest) -> Any:
        stream = await self._async.get().chat.completions.create(**self._arguments(request), **_STREAMING)
        return self._async_events(stream)

    def stream_reader(self, request: CompletionRequest) -> StreamReader:
        return _ChunkReader(self, request)

    def parse(self, response: Any, request: CompletionRequest, latency_s: float) -> Completion:
        # The SDK checks nothing: a missing field is None, a wrong type passes through, and a 200 body whose
        # content type is not JSON comes back as a plain string. So every field used here is checked.
        def malformed(problem: str) -> MalformedResponseError:
            return MalformedResponseError(
                f"{self.name}: chat completion {problem}", provider=self.name, model=request.model
            )

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

    def _streamed_error_status(self, exc: Any) -> int | None:
        # The SDK raises its bare APIError for an `{"error": ...}` chunk (its subclasses are for the other cases).
        sdk = self.sdk
        if isinstance(exc, sdk.APIStatusError | sdk.APIConnectionError | sdk.APIResponseValidationError):
            return None
        body = exc.body if isinstance(exc.body, dict) else {}
        code, kind = str(body.get("code")), str(body.get("type"))
        return _STREAMED_ERROR_STATUS.get(code, _STREAMED_ERROR_STATUS.get(kind, 500))


_STREAMING: dict[str, Any] = {"stream": True, "stream_options": {"include_usage": True}}


class _ChunkReader(StreamReader):
    """One streamed reply, chunk by chunk: its pieces as they come, then the `ChatCompletion` they add up to."""

    def __init__(self, provider: OpenAIProvider, request: CompletionRequest) -> None:
        self._provider, self._request = provider, request
        self._request_id: str | None = None
        self._id: str | None = None
        self._model: str | None = None
        self._created: int = 0
        self._text: list[str] | None = None  # None: no content at all (null, as beside tool calls)
        self._refusal: list[str] | None = None
        self._calls: dict[int, dict[str, Any]] = {}  # by the vendor's index, in the order they started
        self._logprobs: Any = None  # the first chunk's that has any: it holds the first token's
        self._finish_reason: str | None = None
        self._usage: Any = None

    def _malformed(self, problem: str) -> MalformedResponseError:
        name = self._provider.name
        return MalformedResponseError(f"{name}: chat stream {problem}", provider=name, model=self._request.model)

    def _interrupted(self, problem: str) -> StreamInterruptedError:
        name = self._provider.name
        return StreamInterruptedError(f"{name}: chat stream {problem}", provider=name, model=self._request.model)

    def feed(self, event: Any) -> list[StreamPiece]:
        if isinstance(event, StreamOpened):
            self._request_id = event.request_id
            return []
        if not isinstance(event, ChatCompletionChunk):
            raise self._malformed(f"has an event that is not a chunk but {type(event).__name__}")
        self._id = event.id if isinstance(event.id, str) and event.id else self._id
        self._model = event.model if isinstance(event.model, str) and event.model else self._model
        self._created = event.created if isinstance(event.created, int) else self._created
        if event.usage is not None:
            self._usage = event.usage
        if not isinstance(event.choices, list):
            raise self._malformed("has a chunk whose choices are not a list")
        pieces: list[StreamPiece] = []
        for choice in event.choices:
            if getattr(choice, "index", 0) == 0:  # one choice asked for (n=1)
                pieces += self._choice(choice)
        return pieces

    def _choice(self, choice: Any) -> list[StreamPiece]:
        delta = getattr(choice, "delta", None)
        if delta is None:
            raise self._malformed("has a choice without a delta")
        pieces: list[StreamPiece] = []
        content, refusal = getattr(delta, "content", None), getattr(delta, "refusal", None)
        if not (content is None or isinstance(content, str)) or not (refusal is None or isinstance(refusal, str)):
            raise self._malformed("has a delta whose content is not text")
        if content is not None:
            self._text = self._text if self._text is not None else []
            self._text.append(content)
            if content:
                pieces.append(TextPiece(content))
        if refusal is not None:  # not an answer: kept for the completion, never streamed out as text
            self._refusal = self._refusal if self._refusal is not None else []
            self._refusal.append(refusal)
        calls = getattr(delta, "tool_calls", None)
        if calls is not None and not isinstance(calls, list):
            raise self._malformed("has tool_calls that are not a list")
        for call in calls or ():
            pieces += self._tool_call(call)
        logprobs = getattr(choice, "logprobs", None)
        if self._logprobs is None and getattr(logprobs, "content", None):
            self._logprobs = logprobs
        reason = getattr(choice, "finish_reason", None)
        if reason is not None:
            if not isinstance(reason, str):
                raise self._malformed(f"has a finish_reason that is not text: {reason!r}")
            self._finish_reason = reason
        return pieces

    def _tool_call(self, call: Any) -> list[StreamPiece]:
        index, function = getattr(call, "index", None), getattr(call, "function", None)
        fragment = getattr(function, "arguments", None) or ""
        if type(index) is not int or not isinstance(fragment, str):
            raise self._malformed("has a tool call delta without an index, or arguments that are not text")
        known = self._calls.get(index)
        if known is not None:
            known["arguments"].append(fragment)
            return [ToolCallPiece(known["ordinal"], None, None, fragment)] if fragment else []
        call_id, name = getattr(call, "id", None), getattr(function, "name", None)
        if not (isinstance(call_id, str) and call_id and isinstance(name, str) and name):
            raise self._malformed("starts a tool call without an id or a name")
        ordinal = len(self._calls)
        kind = getattr(call, "type", None) or "function"
        self._calls[index] = {"ordinal": ordinal, "id": call_id, "type": kind, "name": name, "arguments": [fragment]}
        return [ToolCallPiece(ordinal, call_id, name, fragment)]

    def finish(self, latency_s: float) -> Completion:
        if self._finish_reason is None:
            raise self._interrupted("ended before its finish reason")
        if self._usage is None:
            # Asked for with include_usage, the usage comes in the last chunk the vendor sends (then `[DONE]`):
            # a stream without it was cut after the finish reason, and a reply whose tokens are not known cannot
            # be priced. (An OpenAI-compatible server that ignores stream_options ends up here on every stream.)
            raise self._interrupted("ended without its usage chunk (the last one the vendor sends)")
        tool_calls = [
            {"id": c["id"], "type": c["type"], "function": {"name": c["name"], "arguments": "".join(c["arguments"])}}
            for c in self._calls.values()
        ]
        message = ChatCompletionMessage.construct(
            role="assistant",
            content=None if self._text is None else "".join(self._text),
            refusal=None if self._refusal is None else "".join(self._refusal),
            tool_calls=tool_calls or None,
        )
        choice = Choice.construct(index=0, message=message, finish_reason=self._finish_reason, logprobs=self._logprobs)
        completion = ChatCompletion.construct(
            id=self._id or "",
            object="chat.completion",
            created=self._created,
            model=self._model or "",
            choices=[choice],
            usage=self._usage,
        )
        completion._request_id = self._request_id
        return self._provider.parse(completion, self._request, latency_s)


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
