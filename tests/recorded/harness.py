"""`Replay`: queries through `Cascade` with one vendor's adapter, watching what the adapter gives back.

The router gets the adapter through `Cascade(providers=...)`, and `Replay` wraps the adapter's public `complete`
and `acomplete` to keep each call's `Completion`, or the exception it raised: some facts, such as an error's
body or the completion a block carries, never reach a `CascadeResult`, and tests check them as well as the trace.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

import pytest

from cascade import Cascade, CascadeExhausted, CascadeResult
from cascade.errors import ProviderError, UnusableAnswerError
from cascade.providers.base import Completion, CompletionRequest, Provider
from cascade.result import Attempt, AttemptError
from cascade.testing.wire import FakeReply
from tests.recorded.vendors import QUESTION, SYSTEM, Vendor

Outcome = Completion | Exception


class Replay:
    """Queries through `Cascade` with one vendor's adapter, watched: `seen` holds what it gave back per call."""

    def __init__(self, vendor: Vendor, mode: str, replies: Sequence[FakeReply], monkeypatch: pytest.MonkeyPatch):
        self.vendor = vendor
        self.mode = mode
        self.replies = list(replies)
        self.adapter = vendor.adapter()
        self.seen: list[Outcome] = []
        complete, acomplete = self.adapter.complete, self.adapter.acomplete

        def watched(request: CompletionRequest) -> Completion:
            with self._noting_errors():
                return self._noted(complete(request))

        async def awatched(request: CompletionRequest) -> Completion:
            with self._noting_errors():
                return self._noted(await acomplete(request))

        monkeypatch.setattr(self.adapter, "complete", watched)
        monkeypatch.setattr(self.adapter, "acomplete", awatched)

    def _noted(self, completion: Completion) -> Completion:
        self.seen.append(completion)
        return completion

    @contextlib.contextmanager
    def _noting_errors(self) -> Iterator[None]:
        try:
            yield
        except Exception as exc:
            self.seen.append(exc)
            raise

    def cascade(self, *, judge: dict[str, Any] | None = None, **stage: Any) -> Cascade:
        """A router on `vendor.policy(...)` that uses the watched adapter."""
        providers: dict[str, Provider] = {self.vendor.provider: self.adapter}
        return Cascade(self.vendor.policy(judge=judge, **stage), providers=providers)

    async def ask(
        self,
        query: Any = QUESTION,
        *,
        system: str | None = SYSTEM,
        judge: dict[str, Any] | None = None,
        options: dict[str, Any] | None = None,
        **stage: Any,
    ) -> CascadeResult:
        """`run` or `arun` one query with `options` (`output_type=`, `tools=`...); `stage` and `judge` adjust the
        policy (see `Vendor.policy`)."""
        router = self.cascade(judge=judge, **stage)
        if self.mode == "sync":
            return router.run(query, system=system, **(options or {}))
        return await router.arun(query, system=system, **(options or {}))

    async def ask_many(self, queries: list[str], *, system: str | None = SYSTEM) -> list[Any]:
        """`run_many` or `arun_many`, failures in their place. One at a time, so that a synthesized cassette
        gives each query the reply scripted for it."""
        router = self.cascade()
        if self.mode == "sync":
            return router.run_many(queries, system=system, concurrency=1, return_exceptions=True)
        return await router.arun_many(queries, system=system, concurrency=1, return_exceptions=True)

    async def unanswered(self, query: Any = QUESTION, **settings: Any) -> Attempt:
        """Ask a query whose one call gives no answer; the attempt the trace records for it."""
        with pytest.raises(CascadeExhausted) as caught:
            await self.ask(query, **settings)
        assert caught.value.result.answer is None
        (attempt,) = caught.value.attempts
        return attempt

    async def failed_call(self, query: Any = QUESTION, **settings: Any) -> ProviderError:
        """Ask a query whose one call fails; the adapter's error, once checked against the trace's record of it."""
        attempt = await self.unanswered(query, **settings)
        (error,) = self.seen
        assert isinstance(error, ProviderError), error
        assert_recorded(attempt, error)
        return error

    async def unusable_answer(
        self, query: Any = QUESTION, **settings: Any
    ) -> tuple[Completion, Attempt, UnusableAnswerError]:
        """Ask a query whose one answer is not an answer (blocked, refused, cut off): the adapter's completion,
        the trace's attempt and the error `answer_text` gives, once checked that the trace records that error,
        the finish reason and the tokens billed."""
        attempt = await self.unanswered(query, **settings)
        (completion,) = self.seen
        assert isinstance(completion, Completion), completion
        with pytest.raises(UnusableAnswerError) as caught:
            completion.answer_text()
        assert caught.value.completion is completion
        assert attempt.error == AttemptError(type=type(caught.value).__name__, message=str(caught.value))
        billed = (attempt.finish_reason, attempt.input_tokens, attempt.output_tokens)
        assert billed == (completion.finish_reason, completion.input_tokens, completion.output_tokens)
        return completion, attempt, caught.value


def assert_recorded(attempt: Attempt, error: ProviderError) -> None:
    """The trace's attempt records the adapter's error: its type, message, status and retry hint."""
    assert attempt.error == AttemptError(
        type=type(error).__name__,
        message=str(error),
        status_code=getattr(error, "status_code", None),
        retry_after=getattr(error, "retry_after", None),
    )
