"""`Monitor`: the one object the engine calls around each query (spans, metrics, shadow sampling).

    with monitor.query(router, ctx) as watch:
        return watch.done(router.drive(watch.flow(cascade_flow(ctx)), ctx.policy))

`watch.flow` wraps the query's step machine: each `Call` it yields gets a span, current while the driver performs
it, ended once the flow has read the reply (so the span carries the call's trace record: tokens, cost, the judge's
verdict); for a sampled query it also keeps every completion, so that its shadow run reuses them instead of asking
again. `watch.done` counts the result and hands a sampled query to its shadow sampler; leaving the block ends the
query's span. With no OpenTelemetry and no sampling, `watch.flow` returns the flow itself.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections.abc import Callable, Generator
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

from cascade.calls import Call, Outcome, Step, advance
from cascade.context import QueryContext
from cascade.providers.base import Completion
from cascade.result import CascadeResult

if TYPE_CHECKING:
    from cascade.engine import Cascade
    from cascade.monitor.config import MonitorConfig
    from cascade.monitor.otel import Telemetry
    from cascade.monitor.shadow import ShadowSampler, ShadowStats

T = TypeVar("T")
Captured = list[tuple[Call, Completion]]


class Monitor:
    """Spans, metrics and shadow sampling for the queries of one or more routers (`Cascade(monitor=...)`).

    `tracer_provider` / `meter_provider`: where spans and metrics go (default: the global providers the
    application set with `opentelemetry.trace.set_tracer_provider`, the API's no-op until then). `seed` makes the
    shadow sampling repeatable. Each policy's `monitor:` block says whether it is traced and how it is sampled.
    """

    def __init__(
        self,
        *,
        tracer_provider: Any = None,
        meter_provider: Any = None,
        seed: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._otel_providers = (tracer_provider, meter_provider)
        self._telemetry: Telemetry | None = None
        self._telemetry_loaded = False
        self._rng = random.Random(seed)
        self._clock = clock
        self._samplers: dict[MonitorConfig, ShadowSampler] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"Monitor(shadow={[c.traces for c in self._samplers]!r})"

    def query(self, router: Cascade, ctx: QueryContext) -> QueryWatch:
        """Watch one query of `router` (decides now whether it is shadowed)."""
        config = ctx.policy.monitor
        telemetry = self.telemetry() if config.otel else None
        sampler = self._sampler(config) if config.shadow_rate > 0 else None
        chosen = sampler if sampler is not None and sampler.sample() else None
        return QueryWatch(router, ctx, telemetry, chosen)

    def telemetry(self) -> Telemetry | None:
        """The OpenTelemetry side, or None when opentelemetry-api is not installed (imported on first use)."""
        if not self._telemetry_loaded:
            with self._lock:
                if not self._telemetry_loaded:
                    self._telemetry = _load_telemetry(*self._otel_providers)
                    self._telemetry_loaded = True
        return self._telemetry

    def _sampler(self, config: MonitorConfig) -> ShadowSampler:
        with self._lock:
            sampler = self._samplers.get(config)
            if sampler is None:
                from cascade.monitor.shadow import ShadowSampler

                sampler = ShadowSampler(config, self.telemetry(), self._rng, self._clock)
                self._samplers[config] = sampler
            return sampler

    def shadow_stats(self) -> dict[str, ShadowStats]:
        """What shadow sampling has done so far, by traces file (as the policy wrote it)."""
        with self._lock:
            samplers = list(self._samplers.items())
        return {str(config.traces): sampler.stats() for config, sampler in samplers}

    def flush(self, timeout_s: float | None = None) -> bool:
        """Wait until every queued shadow query has run and its row is written; False if `timeout_s` ran out."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        with self._lock:
            samplers = list(self._samplers.values())
        for sampler in samplers:
            left = None if deadline is None else max(deadline - time.monotonic(), 0.0)
            if not sampler.flush(left):
                return False
        return True

    async def aflush(self, timeout_s: float | None = None) -> bool:
        """`flush` without blocking the running loop."""
        with self._lock:
            idle = not self._samplers
        return True if idle else await asyncio.to_thread(self.flush, timeout_s)


class QueryWatch:
    """One query under watch: its span (if traced) and, if it was sampled, what its shadow run will reuse."""

    __slots__ = ("_result", "_router", "_span", "_token", "captured", "ctx", "sampler", "telemetry")

    def __init__(
        self, router: Cascade, ctx: QueryContext, telemetry: Telemetry | None, sampler: ShadowSampler | None
    ) -> None:
        self._router = router
        self.ctx = ctx
        self.telemetry = telemetry
        self.sampler = sampler
        self.captured: Captured | None = [] if sampler is not None else None
        self._span: Any = None
        self._token: object = None
        self._result: CascadeResult | None = None

    def __enter__(self) -> QueryWatch:
        if self.telemetry is not None:
            self._span, self._token = self.telemetry.start_query(self.ctx)
        return self

    def flow(self, inner: Generator[Step, Outcome, T]) -> Generator[Step, Outcome, T]:
        """The query's flow with a span per vendor call (and its completions kept, if it is shadowed)."""
        if self.telemetry is None and self.captured is None:
            return inner
        return watched(inner, self.ctx, self.telemetry, self.captured)

    def done(self, result: CascadeResult) -> CascadeResult:
        """The query answered: remember its result and, if it was sampled, queue its shadow run (never waits)."""
        self._result = result
        if self.sampler is not None and self.captured is not None:
            self.sampler.submit(self._router, self.ctx, result, tuple(self.captured), self._span)
        return result

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.telemetry is not None:
            # A query with no answer raises an error that carries its result (CascadeExhausted, BudgetExhausted).
            result = self._result if self._result is not None else getattr(exc, "result", None)
            result = result if isinstance(result, CascadeResult) else None
            self.telemetry.end_query(self._span, self._token, self.ctx, result, exc)


def watched(
    inner: Generator[Step, Outcome, T],
    ctx: QueryContext,
    telemetry: Telemetry | None,
    captured: Captured | None = None,
) -> Generator[Step, Outcome, T]:
    """`inner`, with each vendor call in a span of its own (current while the driver performs it) and, when
    `captured` is a list, every completion the driver sent back appended to it with its call."""
    outcome: Outcome = None
    open_call: tuple[Any, object, int] | None = None  # span, context token, attempts before the call
    try:
        while True:
            try:
                going, step = advance(inner, outcome)
            finally:
                if open_call is not None and telemetry is not None:
                    # The flow has now read the reply: its trace record (tokens, cost, verdict) is in ctx.attempts.
                    span, token, before = open_call
                    open_call = None
                    telemetry.end_call(span, token, ctx.attempts[before:], ctx.policy.log_text)
            if not going:
                result: T = step
                return result
            if isinstance(step, Call) and telemetry is not None:
                span, token = telemetry.start_call(step)
                open_call = (span, token, len(ctx.attempts))
            outcome = yield step
            if captured is not None and isinstance(step, Call) and isinstance(outcome, Completion):
                captured.append((step, outcome))
    finally:
        if open_call is not None and telemetry is not None:  # the driver gave up mid-call (cancelled, interrupted)
            telemetry.end_call(open_call[0], open_call[1], (), ctx.policy.log_text)
        inner.close()


def _load_telemetry(tracer_provider: Any, meter_provider: Any) -> Telemetry | None:
    try:
        from cascade.monitor.otel import Telemetry
    except ModuleNotFoundError as exc:
        if exc.name is not None and exc.name.split(".")[0] == "opentelemetry":
            return None  # the `otel` extra is not installed: no spans, no metrics
        raise
    return Telemetry(tracer_provider, meter_provider)
