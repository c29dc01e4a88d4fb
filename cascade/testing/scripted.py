"""A scripted provider: answers from a script instead of a vendor, so unit tests need no cassette or network.

judge = ScriptedProvider("openai", {"gpt-4o-mini": [judge_json(9)]})
router = Cascade(policy, providers={"openai": judge, ...})
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from cascade.errors import ProviderError
from cascade.providers.base import (
    Completion,
    CompletionRequest,
    Provider,
    StreamPiece,
    TextPiece,
    ToolCall,
    whole_pieces,
)
from cascade.testing._inflight import InFlight


@dataclass(frozen=True)
class Streamed:
    """A streamed reply for `ScriptedProvider.stream`: these pieces (text, or `TextPiece` / `ToolCallPiece`), then
    `then`: the whole completion (by default one made of the text pieces), or an error raised where the stream
    breaks off. Given to `complete`, it answers as the stream would have ended."""

    pieces: Sequence[str | StreamPiece]
    then: Completion | ProviderError | None = None
    delay_s: float = 0.0  # between pieces


Reply = Completion | ProviderError | str | Streamed
Script = Callable[[CompletionRequest], Reply]


def completion(
    text: str | None,
    *,
    model: str = "scripted-model",
    provider: str = "openai",
    input_tokens: int = 10,
    output_tokens: int | None = None,
    finish_reason: str = "stop",
    first_token_logprobs: Mapping[str, float] | None = None,
    tool_calls: Sequence[ToolCall | Mapping[str, Any]] = (),
) -> Completion:
    """A `Completion` as an adapter would return it; `tool_calls` as `ToolCall`s or `{"name", "arguments", "id"?}`."""
    calls = tuple(
        c if isinstance(c, ToolCall) else ToolCall(str(c.get("id") or f"call_{i}"), c["name"], c.get("arguments", {}))
        for i, c in enumerate(tool_calls)
    )
    return Completion(
        tool_calls=calls,
        text=text,
        input_tokens=input_tokens,
        output_tokens=output_tokens if output_tokens is not None else max(1, len(text or "") // 4),
        model=model,
        finish_reason=finish_reason,  # type: ignore[arg-type]
        latency_s=0.0,
        provider=provider,
        first_token_logprobs=dict(first_token_logprobs or {}),
    )


def judge_json(score: Any, reason: str = "scripted verdict") -> str:
    """The text of a well-formed judge reply."""
    return json.dumps({"score": score, "reason": reason})


def judge_reply(request: CompletionRequest, score: int, reason: str = "scripted verdict") -> str:
    """A well-formed reply to this judge request: the score token alone when the judge asked for
    log-probabilities (method `logprobs`), else the JSON verdict."""
    return str(score) if request.top_logprobs is not None else judge_json(score, reason)


def is_judge_request(request: CompletionRequest) -> bool:
    """True for a judge's request (its prompt fences the answer it grades)."""
    return any("<<<ANSWER " in m.content for m in request.messages)


class ScriptedProvider(Provider):
    """Answers each request from a script: a function of the request, or queues of replies per model.

    A reply may be a `Completion`, a `ProviderError` (raised, as a vendor failure would be) or plain text
    (a normal answer, token counts derived from the lengths). Thread- and task-safe; records every request
    and the highest number of calls that were in flight at once.
    """

    def __init__(
        self,
        name: str = "openai",
        script: Script | Mapping[str, Sequence[Reply]] | None = None,
        *,
        delay_s: float = 0.0,
    ) -> None:
        super().__init__()
        self.name = name
        self.delay_s = delay_s
        self.requests: list[CompletionRequest] = []
        self._in_flight = InFlight()
        self._lock = threading.Lock()
        if callable(script):
            self._script: Script = script
        else:
            queues = {model: deque(replies) for model, replies in (script or {}).items()}
            self._script = lambda request: self._next(queues, request)

    @property
    def max_in_flight(self) -> int:
        """The most calls that were in progress at once."""
        return self._in_flight.peak

    def _next(self, queues: Mapping[str, deque[Reply]], request: CompletionRequest) -> Reply:
        queue = queues.get(request.model)
        if not queue:
            raise AssertionError(f"ScriptedProvider({self.name}): nothing scripted for model {request.model!r}")
        return queue.popleft()

    @contextmanager
    def _calling(self, request: CompletionRequest) -> Iterator[None]:
        with self._lock:
            self.requests.append(request)
        with self._in_flight.track():
            yield

    def _reply(self, request: CompletionRequest) -> Reply:
        with self._lock:
            return self._script(request)

    def send(self, request: CompletionRequest) -> Reply:
        with self._calling(request):
            if self.delay_s:
                time.sleep(self.delay_s)
            return self._reply(request)

    async def asend(self, request: CompletionRequest) -> Reply:
        with self._calling(request):
            if self.delay_s:
                await asyncio.sleep(self.delay_s)
            return self._reply(request)

    def stream(self, request: CompletionRequest) -> Iterator[StreamPiece | Completion]:
        with self._calling(request):
            reply = self._reply(request)
            if not isinstance(reply, Streamed):
                yield from whole_pieces(completed := self.parse(reply, request, 0.0))
                yield completed
                return
            for piece in _pieces(reply):
                if reply.delay_s:
                    time.sleep(reply.delay_s)
                yield piece
            yield self.parse(reply, request, 0.0)

    async def astream(self, request: CompletionRequest) -> AsyncIterator[StreamPiece | Completion]:
        with self._calling(request):
            reply = self._reply(request)
            if not isinstance(reply, Streamed):
                completed = self.parse(reply, request, 0.0)
                for item in [*whole_pieces(completed), completed]:
                    yield item
                return
            for piece in _pieces(reply):
                if reply.delay_s:
                    await asyncio.sleep(reply.delay_s)
                yield piece
            yield self.parse(reply, request, 0.0)

    def parse(self, reply: Any, request: CompletionRequest, latency_s: float) -> Completion:
        if isinstance(reply, Streamed):
            if reply.then is not None:
                return self.parse(reply.then, request, latency_s)
            text = "".join(p.text for p in _pieces(reply) if isinstance(p, TextPiece))
            return completion(text, model=request.model, provider=self.name, input_tokens=_tokens(request))
        if isinstance(reply, ProviderError):
            raise reply
        if isinstance(reply, str):
            return completion(reply, model=request.model, provider=self.name, input_tokens=_tokens(request))
        assert isinstance(reply, Completion)
        return reply


def _pieces(reply: Streamed) -> list[StreamPiece]:
    return [TextPiece(p) if isinstance(p, str) else p for p in reply.pieces]


def _tokens(request: CompletionRequest) -> int:
    chars = sum(len(m.content) for m in request.messages) + len(request.system or "")
    return max(1, chars // 4)
