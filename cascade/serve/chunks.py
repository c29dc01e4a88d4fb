"""A streamed reply in OpenAI's `chat.completion.chunk` format, made from `Cascade.astream`'s events.

    data: {..., "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, ...}]}   first
    data: {..., "choices": [{"index": 0, "delta": {"content": "Canb"}, ...}]}                   TextDelta
    data: {..., "choices": [{"index": 0, "delta": {"tool_calls": [{"index", "id", "type",
                                                   "function": {"name", "arguments"}}]}}]}      ToolCallDelta
    data: {..., "choices": [], "cascade": {"reset": {"stage", "reason"}}}                       Reset (extension)
    data: {..., "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}], "cascade": {summary}}   Final
    data: {..., "choices": [], "usage": {...}}                      with stream_options.include_usage
    data: [DONE]

Every chunk has the reply's id (`chatcmpl-<query id>`) and `created`. Its `model` is `cascade/<policy>` until the
end, and the model that answered in the finishing chunk and the usage chunk: which model answers is known only
once the judge has spoken, and in speculative mode what streams first may be withdrawn for another stage's answer,
so an earlier chunk cannot truthfully name it. A `Reset` has no word in OpenAI's format: it is a chunk with no
choices (which OpenAI clients read and pass over) and the extension field `cascade.reset`; a plain client keeps
what it was shown. A query that fails once the stream has started ends with OpenAI's error event,
`data: {"error": {...}}` (the same body as the 502 a request gets before anything is sent), and no `[DONE]`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from cascade.errors import redact
from cascade.serve.api_error import APIError
from cascade.serve.shapes import answered_by, finish_reason, model_id, summary_body, trace_body, usage
from cascade.streaming import Final, Reset, StreamEvent, TextDelta, ToolCallDelta

DONE = b"data: [DONE]\n\n"
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def sse(data: dict[str, Any]) -> bytes:
    """One server-sent event holding `data` as JSON (json.dumps escapes newlines, so it stays one `data:` line)."""
    return b"data: " + json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode() + b"\n\n"


def _text(value: str) -> str:
    """Streamed text as the result holds it: a lone surrogate (a vendor's stray JSON escape) becomes U+FFFD, as
    in `CascadeResult`, so that it can be written as UTF-8 and the streamed text equals the answer."""
    return _LONE_SURROGATE.sub("\ufffd", value)


@dataclass(frozen=True)
class ChunkWriter:
    """The chunks of one streamed reply, event by event."""

    query_id: str
    policy: str
    created: int
    include_usage: bool = False
    trace: bool = False

    def opening(self, first: StreamEvent) -> bytes:
        """The first chunk, `delta.role`; its content "" before text and null before tool calls, as OpenAI's."""
        content = None if isinstance(first, ToolCallDelta) else ""
        return sse(self._chunk([_choice({"role": "assistant", "content": content})]))

    def chunks(self, event: StreamEvent) -> list[bytes]:
        """What one event is on the wire (the last event, `Final`, ends the stream with `[DONE]`)."""
        if isinstance(event, TextDelta):
            return [sse(self._chunk([_choice({"content": _text(event.text)})]))]
        if isinstance(event, ToolCallDelta):
            return [sse(self._chunk([_choice({"tool_calls": [_tool_call_delta(event)]})]))]
        if isinstance(event, Reset):
            reset = {"stage": event.stage, "reason": redact(event.reason)}
            return [sse(self._chunk([], cascade={"reset": reset}))]
        return self._end(event)

    def error(self, error: APIError) -> bytes:
        """The event that ends a stream which failed after it started."""
        return sse(error.body())

    def _end(self, final: Final) -> list[bytes]:
        result = final.result
        model = answered_by(result)
        summary = trace_body(result) if self.trace else summary_body(result)
        ending = [_choice({}, finish_reason(result))]
        out = [sse(self._chunk(ending, model=model, cascade=summary))]
        if self.include_usage:
            out.append(sse(self._chunk([], model=model, usage=usage(result))))
        out.append(DONE)
        return out

    def _chunk(self, choices: list[dict[str, Any]], *, model: str | None = None, **extra: Any) -> dict[str, Any]:
        chunk: dict[str, Any] = {
            "id": f"chatcmpl-{self.query_id}",
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": model or model_id(self.policy),
            "system_fingerprint": None,
            "choices": choices,
        }
        if self.include_usage:
            chunk["usage"] = None  # OpenAI: null on every chunk but the usage chunk
        chunk.update(extra)
        return chunk


def _choice(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}


def _tool_call_delta(event: ToolCallDelta) -> dict[str, Any]:
    """A call's first piece carries its id, type and name; the pieces after it only more of its arguments."""
    function: dict[str, Any] = {"arguments": _text(event.arguments)}
    piece: dict[str, Any] = {"index": event.index}
    if event.id is not None:
        piece["id"] = event.id
        piece["type"] = "function"
    if event.name is not None:
        function = {"name": event.name, **function}
    piece["function"] = function
    return piece
