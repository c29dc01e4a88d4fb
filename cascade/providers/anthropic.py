"""Anthropic Claude through the `anthropic` SDK (the Messages API, `POST /v1/messages`).

What the request leaves out, on purpose:
- temperature: anthropic 1.0 removed `temperature`, `top_p` and `top_k` from `messages.create`, and 2.x sends
  `anthropic-version: 2026-10-21`, under which the API is reported to answer 400 to any sampling parameter (even
  1.0; newer models reject it on every version). Sent through `extra_body` it would fail every call: not sent.
- log-probabilities: the Messages API has none. `top_logprobs` is ignored and `first_token_logprobs` stays empty;
  the engine's judge falls back to a JSON score.

A structured answer is asked for with `output_config.format` where the model has it, and from older models as a
forced call of a tool named after the schema, whose input is then the answer's text (see `_native_output`).
Tool results go back as `tool_result` blocks in a user turn: all results of one assistant turn in one user turn,
as the API requires.

Streamed (`stream=True`), the reply comes as events: `message_start` (id, model, input and cache usage), per
content block a `content_block_start`, its deltas and a `content_block_stop`, then `message_delta` (stop reason,
the usage so far) and `message_stop`. They are gathered into the `Message` they stand for, which `parse` reads as
it reads an unstreamed one. The forced output tool's input streams out as the answer's text.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import anthropic  # first: the registry names the missing extra from the first failed import
from anthropic.types import (
    AssistantMessageParam,
    Message,
    MessageParam,
    TextBlockParam,
    ToolChoiceParam,
    ToolParam,
    ToolResultBlockParam,
    ToolUseBlockParam,
    UserMessageParam,
)

from cascade.errors import InvalidQueryError, MalformedResponseError, StreamInterruptedError
from cascade.providers._stainless import StainlessProvider, StreamOpened
from cascade.providers.base import (
    Completion,
    CompletionRequest,
    FinishReason,
    StreamPiece,
    StreamReader,
    TextPiece,
    Tool,
    ToolCall,
    ToolCallPiece,
    ToolChoice,
)
from cascade.providers.usage import anthropic_detail

_FINISH_REASONS: dict[str, FinishReason] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    # The context window filled up before the answer ended: as incomplete as a max_tokens stop.
    "model_context_window_exceeded": "length",
    "refusal": "refusal",
    # A turn that ends in calls is a finished turn (but "other" if it holds no call).
    "tool_use": "stop",
    # Anything else (`pause_turn`: a server tool paused) is "other".
}
# The HTTP status each error type stands for (the API's error docs), for an `error` event inside a stream: the
# reply's own status was 200. An unknown type is the vendor failing after it took the request: a server error.
_ERROR_TYPE_STATUS = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
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
    request_id_header = "request-id"
    streams = True

    def send(self, request: CompletionRequest) -> Any:
        return self._sync.get().messages.create(**_arguments(request))

    async def asend(self, request: CompletionRequest) -> Any:
        return await self._async.get().messages.create(**_arguments(request))

    def send_stream(self, request: CompletionRequest) -> Any:
        return self._events(self._sync.get().messages.create(**_arguments(request), stream=True))

    async def asend_stream(self, request: CompletionRequest) -> Any:
        return self._async_events(await self._async.get().messages.create(**_arguments(request), stream=True))

    def stream_reader(self, request: CompletionRequest) -> StreamReader:
        return _EventReader(self, request)

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
        output_tool = _output_tool_name(request)
        texts: list[str] = []
        tool_calls: list[ToolCall] = []
        structured: str | None = None  # the forced output tool's input, as the answer's text
        for block in content:
            kind = getattr(block, "type", None)
            if kind == "text":
                block_text = getattr(block, "text", None)
                if not isinstance(block_text, str):
                    raise self._malformed(request, "has a text block without text")
                texts.append(block_text)
            elif kind == "tool_use":
                call = self._tool_call(block, request)
                if call.name != output_tool:
                    tool_calls.append(call)
                elif structured is None:
                    structured = json.dumps(call.arguments, ensure_ascii=False, separators=(",", ":"))
        stop_reason = response.stop_reason
        if not isinstance(stop_reason, str):
            raise self._malformed(request, "has no stop_reason")
        finish = _FINISH_REASONS.get(stop_reason, "other")
        if stop_reason == "tool_use" and not tool_calls and structured is None:
            finish = "other"
        if finish == "stop" and not texts and not tool_calls and structured is None:
            # A finished answer must have text or calls; a refusal or a stop at max_tokens (spent on thinking)
            # may have neither.
            raise self._malformed(request, f"has no text content (stop_reason {stop_reason!r})")

        # Anthropic reports cache reads and cache writes apart from `input_tokens`; the prompt is all three.
        # input_tokens = uncached + cache reads + cache writes, and cached_input_tokens = cache reads, so that
        # cached tokens are part of the input as with OpenAI and prices.py bills the reads at the cached rate.
        # Cache writes are reported apart as well (5-minute writes bill at 1.25x the input rate, 1-hour ones at 2x).
        cache_read = cache_read_count or 0
        input_tokens = input_count + cache_read + (cache_write_count or 0)
        detail = anthropic_detail(usage)

        # A forced output tool's input is the answer; any text beside it is not (a preamble at most).
        text: str | None = structured if structured is not None else "".join(texts) if texts else None
        refusal = None
        if finish == "refusal":
            # A refusal can cut in after some text was streamed out: none of it is an answer.
            text, tool_calls = None, []
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
            tool_calls=tuple(tool_calls),
        )

    def _tool_call(self, block: Any, request: CompletionRequest) -> ToolCall:
        call_id, name, arguments = (getattr(block, key, None) for key in ("id", "name", "input"))
        if not (isinstance(call_id, str) and isinstance(name, str) and isinstance(arguments, Mapping)):
            raise self._malformed(request, "has a tool_use block without an id, a name or an input object")
        return ToolCall(id=call_id, name=name, arguments=arguments)

    def _malformed(self, request: CompletionRequest, problem: str) -> MalformedResponseError:
        return MalformedResponseError(f"anthropic: Messages reply {problem}", provider=self.name, model=request.model)

    def _status_message(self, exc: Any) -> str:
        message = exc.api_message or exc.message
        return f"{exc.type}: {message}" if exc.type else str(message)

    def _streamed_error_status(self, exc: Any) -> int | None:
        # The SDK raises an `error` event as an APIStatusError of the stream's own response: status 200.
        if not isinstance(exc, self.sdk.APIStatusError) or exc.status_code >= 400:
            return None
        return _ERROR_TYPE_STATUS.get(exc.type or "", 500)


# The deltas that carry a block's content: the field with the fragment, and the kind of block it belongs to.
_DELTAS = {
    "text_delta": ("text", "text"),
    "input_json_delta": ("partial_json", "tool_use"),
    "thinking_delta": ("thinking", "thinking"),
}


@dataclass
class _Block:
    """One content block of a streamed reply, as far as it has come."""

    start: Any  # the block as `content_block_start` gave it
    parts: list[str] = field(default_factory=list)  # its text, thinking or input JSON, in fragments
    signature: str | None = None  # a thinking block's
    call: int | None = None  # a tool call's place among the reply's calls
    answer: bool = False  # the forced output tool's input: the answer's text


class _EventReader(StreamReader):
    """One streamed reply, event by event: its pieces as they come, then the `Message` they add up to."""

    def __init__(self, provider: AnthropicProvider, request: CompletionRequest) -> None:
        self._provider, self._request = provider, request
        self._output_tool = _output_tool_name(request)
        self._request_id: str | None = None
        self._message: Any = None  # message_start's
        self._usage: dict[str, Any] = {}
        self._blocks: dict[int, _Block] = {}
        self._calls = 0
        self._answered = False  # an output tool block started (parse takes the first one only)
        self._stop: Any = None  # message_delta's delta: stop reason and details
        self._stopped = False

    def _malformed(self, problem: str) -> MalformedResponseError:
        name = self._provider.name
        return MalformedResponseError(f"{name}: Messages stream {problem}", provider=name, model=self._request.model)

    def feed(self, event: Any) -> list[StreamPiece]:
        if isinstance(event, StreamOpened):
            self._request_id = event.request_id
            return []
        kind = getattr(event, "type", None)
        if kind == "message_start":
            self._message = getattr(event, "message", None)
            usage = getattr(self._message, "usage", None)
            self._usage = usage.to_dict() if isinstance(usage, anthropic.BaseModel) else {}
            return []
        if kind in ("content_block_start", "content_block_delta", "message_delta") and self._message is None:
            raise self._malformed(f"has a {kind} event before message_start")
        if kind == "content_block_start":
            return self._start(event)
        if kind == "content_block_delta":
            return self._delta(event)
        if kind == "message_delta":
            self._stop = getattr(event, "delta", None)
            usage = getattr(event, "usage", None)
            # Its counts are totals so far, and the ones it leaves out keep message_start's value.
            if isinstance(usage, anthropic.BaseModel):
                self._usage.update(usage.to_dict(exclude_none=True))
        elif kind == "message_stop":
            self._stopped = True
        # content_block_stop and ping carry nothing more; event types added later are passed over, as the API's
        # versioning policy asks of clients.
        return []

    def _start(self, event: Any) -> list[StreamPiece]:
        index, start = getattr(event, "index", None), getattr(event, "content_block", None)
        if type(index) is not int or start is None:
            raise self._malformed("has a content_block_start without an index or a block")
        block = self._blocks[index] = _Block(start)
        kind = getattr(start, "type", None)
        if kind == "text":
            text = getattr(start, "text", None) or ""
            block.parts.append(text)
            return [TextPiece(text)] if text else []
        if kind == "thinking":
            block.parts.append(getattr(start, "thinking", None) or "")
            block.signature = getattr(start, "signature", None)
        elif kind == "tool_use":
            call_id, name = getattr(start, "id", None), getattr(start, "name", None)
            if not (isinstance(call_id, str) and call_id and isinstance(name, str) and name):
                raise self._malformed("has a tool_use block without an id or a name")
            if name != self._output_tool:
                block.call, self._calls = self._calls, self._calls + 1
                return [ToolCallPiece(block.call, call_id, name, "")]
            # The forced output tool's input is the answer's text; parse takes the first such call only.
            block.answer = not self._answered
            self._answered = True
        return []

    def _delta(self, event: Any) -> list[StreamPiece]:
        index, delta = getattr(event, "index", None), getattr(event, "delta", None)
        block = self._blocks.get(index) if type(index) is int else None
        if block is None:
            raise self._malformed("has a content_block_delta for a block that never started")
        kind, block_kind = getattr(delta, "type", None), getattr(block.start, "type", None)
        if kind == "signature_delta":
            block.signature = getattr(delta, "signature", None)
            return []
        if kind not in _DELTAS:
            return []  # citations_delta and later kinds: nothing the answer's text or calls hold
        fragment_field, expected = _DELTAS[kind]
        fragment = getattr(delta, fragment_field, None)
        if block_kind != expected or not isinstance(fragment, str):
            raise self._malformed(f"has a {kind} that does not fit its {block_kind} block")
        block.parts.append(fragment)
        if not fragment or kind == "thinking_delta":
            return []
        if kind == "text_delta" or block.answer:
            return [TextPiece(fragment)]
        return [ToolCallPiece(block.call, None, None, fragment)] if block.call is not None else []

    def finish(self, latency_s: float) -> Completion:
        name = self._provider.name
        if not self._stopped:
            raise StreamInterruptedError(
                f"{name}: Messages stream ended before message_stop", provider=name, model=self._request.model
            )
        if self._message is None:
            raise self._malformed("has no message_start")
        stop = self._stop
        message = Message.construct(
            id=getattr(self._message, "id", None),
            type="message",
            role="assistant",
            model=getattr(self._message, "model", None),
            content=[self._block(self._blocks[i]) for i in sorted(self._blocks)],
            stop_reason=getattr(stop, "stop_reason", None),
            stop_sequence=getattr(stop, "stop_sequence", None),
            stop_details=getattr(stop, "stop_details", None),
            usage=anthropic.types.Usage.construct(**self._usage),
        )
        message._request_id = self._request_id
        completion = self._provider.parse(message, self._request, latency_s)
        streamed = next(("".join(b.parts) for b in self._blocks.values() if b.answer), None)
        if streamed is not None and completion.text is not None:
            # The forced output tool's JSON as it streamed out (parse writes it compactly): what the reader was shown
            # is then the answer, byte for byte.
            completion = dataclasses.replace(completion, text=streamed)
        return completion

    def _block(self, block: _Block) -> Any:
        kind, text = getattr(block.start, "type", None), "".join(block.parts)
        if kind == "text":
            return {"type": "text", "text": text, "citations": getattr(block.start, "citations", None)}
        if kind == "thinking":
            return {"type": "thinking", "thinking": text, "signature": block.signature}
        if kind == "tool_use":
            try:
                # A call without arguments may stream no JSON at all: its input stays the start's `{}`.
                arguments = json.loads(text) if text.strip() else getattr(block.start, "input", None)
            except ValueError:
                raise self._malformed(f"has a tool_use block whose input is not JSON: {text[:120]!r}") from None
            return {"type": "tool_use", "id": block.start.id, "name": block.start.name, "input": arguments}
        return block.start  # a block parse passes over (redacted thinking, server tools)


def _arguments(request: CompletionRequest) -> dict[str, Any]:
    arguments: dict[str, Any] = {
        "model": request.model,
        "max_tokens": request.max_output_tokens,
        "messages": _messages(request),
        "system": request.system or anthropic.omit,
        "timeout": request.timeout_s,
    }
    tools = [_tool(t) for t in request.tools]
    choice = _tool_choice(request.tool_choice) if request.tool_choice is not None else None
    output = request.output
    if output is not None and _native_output(request.model):
        schema = output.strict if output.strict is not None else output.schema
        arguments["output_config"] = {"format": {"type": "json_schema", "schema": dict(schema)}}
    elif output is not None:
        # The answer is the input of a tool the model must call (or must pick among the caller's own tools).
        description = "Give your final answer through this tool, in the structure it asks for."
        tools.append(ToolParam(name=output.name, description=description, input_schema=dict(output.schema)))
        choice = _forced_output_choice(output.name, request)
    if tools:
        arguments["tools"] = tools
    if choice is not None:
        arguments["tool_choice"] = choice
    return arguments


# Anthropic's structured-outputs guide (platform.claude.com/docs/en/build-with-claude/structured-outputs, read
# November 2026) gives `output_config.format` to Claude Opus 4.5 and 4.6, Sonnet 4.5 and 4.6, Haiku 4.5 and the
# models since; its launch (in beta, behind a header we do not send) covered Sonnet 4.5 and Opus 4.1 only. So
# the models before 4.5 get the forced tool: Claude Instant, 2.x and 3.x (`claude-3-5-sonnet-...` and the
# like), Opus and Sonnet 4 (`claude-sonnet-4-20250514`, `claude-opus-4-0`) and Opus 4.1 (`claude-opus-4-1-...`).
# A name this does not match is taken to be a newer model.
_BEFORE_NATIVE_OUTPUT = re.compile(r"claude-(instant|2|3)([-.]|$)|claude-(opus|sonnet)-4(-[01])?(-\d{8})?$")


def _native_output(model: str) -> bool:
    """Whether the model takes a JSON schema in `output_config.format` (else: a forced tool)."""
    return _BEFORE_NATIVE_OUTPUT.match(model.lower()) is None


def _output_tool_name(request: CompletionRequest) -> str | None:
    """The name of the tool that carries the structured answer, when the request is sent with one."""
    output = request.output
    return output.name if output is not None and not _native_output(request.model) else None


def _forced_output_choice(output_tool: str, request: CompletionRequest) -> ToolChoiceParam:
    asked = request.tool_choice
    if asked is not None and asked.mode == "tool" and asked.name:
        return {"type": "tool", "name": asked.name}  # the caller wants that call first
    if request.tools and (asked is None or asked.mode != "none"):
        return {"type": "any"}  # one of its own tools, or the answer
    return {"type": "tool", "name": output_tool}


def _tool(tool: Tool) -> ToolParam:
    param = ToolParam(name=tool.name, input_schema=dict(tool.parameters))
    if tool.description is not None:
        param["description"] = tool.description
    return param


def _tool_choice(choice: ToolChoice) -> ToolChoiceParam:
    if choice.mode == "tool" and choice.name:
        return {"type": "tool", "name": choice.name}
    if choice.mode == "required":
        return {"type": "any"}
    if choice.mode == "none":
        return {"type": "none"}
    return {"type": "auto"}


def _messages(request: CompletionRequest) -> list[MessageParam]:
    """The turns as the API wants them: tool results (and text after them) in one user turn, results first."""
    messages: list[MessageParam] = []
    # The content of the user turn that holds tool results, while it is the last turn.
    results_turn: list[ToolResultBlockParam | TextBlockParam] | None = None
    results = 0
    for m in request.messages:
        if m.role == "tool":
            if results_turn is None:
                results_turn, results = [], 0
                messages.append(UserMessageParam(role="user", content=results_turn))
            if m.tool_call_id is None:
                raise InvalidQueryError("anthropic: a tool turn needs the tool_call_id of the call it answers")
            block = ToolResultBlockParam(type="tool_result", tool_use_id=m.tool_call_id, content=m.content)
            # The API wants every result before any text in the turn.
            results_turn.insert(results, block)
            results += 1
        elif m.role == "user" and results_turn is not None:
            results_turn.append(TextBlockParam(type="text", text=m.content))
        elif m.role == "user":
            messages.append(UserMessageParam(role="user", content=m.content))
        else:
            results_turn = None
            messages.append(_assistant(m.content, m.tool_calls))
    return messages


def _assistant(content: str, tool_calls: tuple[ToolCall, ...]) -> AssistantMessageParam:
    if not tool_calls:
        return AssistantMessageParam(role="assistant", content=content)
    blocks: list[TextBlockParam | ToolUseBlockParam] = [TextBlockParam(type="text", text=content)] if content else []
    blocks += [
        ToolUseBlockParam(type="tool_use", id=call.id, name=call.name, input=_input_object(call)) for call in tool_calls
    ]
    return AssistantMessageParam(role="assistant", content=blocks)


def _input_object(call: ToolCall) -> dict[str, object]:
    """A call's arguments as the JSON object `tool_use` needs (another vendor may have given them as text)."""
    arguments = call.arguments
    if isinstance(arguments, str):
        with contextlib.suppress(ValueError):  # not JSON: reported below as not an object
            arguments = json.loads(arguments)
    if not isinstance(arguments, Mapping):
        raise InvalidQueryError(f"anthropic: the arguments of tool call {call.id!r} are not a JSON object")
    return dict(arguments)
