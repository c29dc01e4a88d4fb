"""Shadow sampling: a sample of live queries also runs through the stages it did not need, in the background.

A sampled query is queued once its answer is returned, and a worker thread runs `collect_flow` on it, the code
behind `cascade collect`: every stage answers and is judged, the last one too. The calls the live query made are
not made again: the completions it got are sent back to the flow in their place (`Replay`), so the row's first
stages are what production saw and only the missing calls reach a vendor. Each row is appended to the policy's
`monitor.traces` file in the trace format (docs/traces.md), with what the live cascade did under `live`, so
`cascade drift`, `eval` and `tune` read it as they read collected traces.

Shadow work never delays an answer: the queue is bounded and a query that finds it full is dropped and counted.
It has its own budget: `shadow_max_cost_usd` bounds what one shadowed query adds to what its live run paid (every
call reserved at its upper bound, as live calls are), and no query is sampled while the shadow calls of the last
hour cost `shadow_usd_per_hour` (the queries already queued may still spend up to their own limit). A vendor
fault is recorded in the row like any failed stage, and anything else a shadow run raises is counted as failed
and the worker carries on. Workers are daemon threads: `Cascade.aclose()` (or `Monitor.flush()`) waits for them.
"""

from __future__ import annotations

import math
import os
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from cascade.calls import Call, Outcome, Step, advance
from cascade.context import QueryContext, QuerySpec
from cascade.events import Events
from cascade.monitor.observer import watched
from cascade.prices import PriceTable, Usage
from cascade.providers.base import Completion
from cascade.query import messages_json
from cascade.result import CascadeResult
from cascade.tools import tool_choice_json, tools_json
from cascade.tuning.traces import collect_flow

if TYPE_CHECKING:
    from cascade.engine import Cascade
    from cascade.monitor.config import MonitorConfig
    from cascade.monitor.otel import Telemetry

T = TypeVar("T")
HOUR_S = 3600.0


@dataclass
class ShadowStats:
    """What a sampler has done: queries queued, rows written, and the queries it could not shadow, by reason."""

    sampled: int = 0
    written: int = 0
    dropped: int = 0  # the queue was full
    over_budget: int = 0  # the last hour's shadow calls had spent shadow_usd_per_hour
    failed: int = 0  # the shadow run or the write raised
    spent_usd: float = 0.0  # new calls only: the reused live ones cost nothing more


@dataclass(frozen=True)
class ShadowJob:
    router: Cascade
    spec: QuerySpec
    live: CascadeResult
    captured: tuple[tuple[Call, Completion], ...]
    live_span: Any


class ShadowSampler:
    """The shadow sampling of one policy `monitor:` block: a bounded queue, its workers, and the traces file."""

    def __init__(
        self,
        config: MonitorConfig,
        telemetry: Telemetry | None,
        rng: random.Random,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self._telemetry = telemetry
        self._rng = rng
        self._clock = clock
        self._writer = TraceWriter(str(config.traces))
        self._stats = ShadowStats()
        self._spend: deque[tuple[float, float]] = deque()  # (when, USD) of each shadow run in the last hour
        self._reset()

    def _reset(self) -> None:
        """Fresh queue and no workers (also after a fork: the parent's threads are not in the child)."""
        self._pid = os.getpid()
        self._cond = threading.Condition()
        self._queue: deque[ShadowJob] = deque()
        self._running = 0
        self._workers: list[threading.Thread] = []

    def sample(self) -> bool:
        """Whether the next query is shadowed (decided when it starts, so that its calls can be kept)."""
        return self._rng.random() < self.config.shadow_rate

    def stats(self) -> ShadowStats:
        with self._cond:
            return replace(self._stats)

    def submit(
        self,
        router: Cascade,
        ctx: QueryContext,
        live: CascadeResult,
        captured: tuple[tuple[Call, Completion], ...],
        live_span: Any = None,
    ) -> None:
        """Queue a shadow run of an answered query; a full queue or a spent budget drops it (counted)."""
        if os.getpid() != self._pid:
            self._reset()
        with self._cond:
            if self._over_budget():
                self._stats.over_budget += 1
                outcome = "over_budget"
            elif len(self._queue) >= self.config.queue_size:
                self._stats.dropped += 1
                outcome = "dropped"
            else:
                self._stats.sampled += 1
                self._queue.append(ShadowJob(router, ctx.spec, live, captured, live_span))
                if len(self._workers) < self.config.workers and self._running + len(self._queue) > len(self._workers):
                    self._start_worker()
                self._cond.notify()
                return
        ctx.event("cascade.shadow", outcome=outcome, traces=self.config.traces)
        if self._telemetry is not None:
            self._telemetry.shadow_outcome(ctx.policy.name, outcome)

    def flush(self, timeout_s: float | None = None) -> bool:
        """Wait until the queue is empty and no shadow run is in progress; False if `timeout_s` ran out first."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        with self._cond:
            while self._queue or self._running:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._cond.wait(left)
        return True

    def _over_budget(self) -> bool:
        cap = self.config.shadow_usd_per_hour
        if cap is None:
            return False
        now = self._clock()
        while self._spend and self._spend[0][0] <= now - HOUR_S:
            self._spend.popleft()
        return sum(usd for _, usd in self._spend) >= cap

    def _start_worker(self) -> None:
        worker = threading.Thread(target=self._work, name=f"cascade-shadow-{len(self._workers)}", daemon=True)
        self._workers.append(worker)
        worker.start()

    def _work(self) -> None:
        while True:
            with self._cond:
                while not self._queue:
                    self._cond.wait()
                job = self._queue.popleft()
                self._running += 1
            outcome, spent = "failed", 0.0
            try:
                outcome, spent = self.run(job)
            except Exception:  # counted as failed below: a worker outlives any one run (a telemetry bug included)
                pass
            finally:
                with self._cond:
                    self._running -= 1
                    self._spend.append((self._clock(), spent))
                    self._stats.spent_usd += spent
                    if outcome == "written":
                        self._stats.written += 1
                    else:
                        self._stats.failed += 1
                    self._cond.notify_all()

    def run(self, job: ShadowJob) -> tuple[str, float]:
        """Run one shadow query and append its row: the outcome (written, failed) and what its new calls cost."""
        spec = job.spec
        replay = Replay(job.captured, spec.prices)
        # The reused calls are priced again in the row (they are the stage's true cost): the limit is on top.
        limit = replay.cost_usd + (self.config.shadow_max_cost_usd or math.inf)
        ctx = QueryContext(replace(spec, max_cost_usd=limit))
        policy = spec.policy
        ctx.events = Events(query_id=spec.query_id, policy=policy.name, policy_version=policy.version, shadow=True)
        flow: Generator[Step, Outcome, Any] = replay.flow(collect_flow(ctx, shadow_row(spec, job.live)))
        telemetry = self._telemetry if spec.policy.monitor.otel else None
        span: Any = None
        token: object = None
        if telemetry is not None:
            span, token = telemetry.start_shadow(ctx, job.live_span)
            flow = watched(flow, ctx, telemetry)
        outcome, error = "failed", None
        try:
            trace = job.router.drive(flow, spec.policy)
            self._writer.write(trace.to_json())
            outcome = "written"
        except Exception as exc:  # a shadow run must never take the worker down
            error = exc
        spent = max(ctx.trace.spent_usd - replay.replayed_usd, 0.0)
        fields = {"error_type": type(error).__name__} if error is not None else {}
        ctx.event("cascade.shadow", outcome=outcome, spent_usd=spent, traces=self.config.traces, **fields)
        if telemetry is not None:
            telemetry.end_shadow(span, token, spec.policy.name, outcome, spent)
        return outcome, spent


def shadow_row(spec: QuerySpec, live: CascadeResult) -> dict[str, Any]:
    """The `collect` input row of a live query: its text (or messages), system prompt, and what the cascade did.

    The row id is the query id with a random suffix: an application may reuse its own ids, and a traces file
    holds each id once.
    """
    messages = spec.messages
    query: Any = messages[0].content if len(messages) == 1 else messages_json(messages)
    row: dict[str, Any] = {"id": f"{spec.query_id}-{os.urandom(3).hex()}", "query": query}
    if spec.system:
        row["system"] = spec.system
    # What the query asked beyond text, so that `cascade collect` can ask the row again as it was asked.
    if spec.tools:
        row["tools"] = tools_json(spec.tools)
    if spec.tool_choice is not None:
        row["tool_choice"] = tool_choice_json(spec.tool_choice)
    if spec.output is not None:
        row["output_schema"] = dict(spec.output.schema)
    row["live"] = {
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "query_id": spec.query_id,
        "policy": spec.policy.name,
        "version": spec.policy.version,
        "entry_stage": live.entry_stage,
        "stage": live.stage,
        "accepted": live.accepted,
        "cost_usd": live.cost_usd,
    }
    return row


class Replay:
    """The completions a live query got, sent back to a flow that asks the same calls again (no vendor call)."""

    def __init__(self, captured: Sequence[tuple[Call, Completion]], prices: PriceTable) -> None:
        self._prices = prices
        self._replies: dict[tuple[str, str, str, str], deque[Completion]] = {}
        self.cost_usd = 0.0  # what the kept completions cost live
        self.replayed_usd = 0.0  # what the ones sent back so far cost
        for call, completion in captured:
            if call.role != "classify":  # the shadow flow does not route
                self._replies.setdefault(_key(call), deque()).append(completion)
                self.cost_usd += self._price(call, completion)

    def _price(self, call: Call, completion: Completion) -> float:
        return self._prices.priced(call.request.model, Usage.of(completion))[0]

    def take(self, call: Call) -> Completion | None:
        """The live completion for this call, if the live query made it (each one sent back once)."""
        replies = self._replies.get(_key(call))
        if not replies:
            return None
        completion = replies.popleft()
        self.replayed_usd += self._price(call, completion)
        return completion

    def flow(self, inner: Generator[Step, Outcome, T]) -> Generator[Step, Outcome, T]:
        """`inner` with the calls the live query made answered from its completions; the rest reach the driver."""
        outcome: Outcome = None
        try:
            while True:
                going, step = advance(inner, outcome)
                if not going:
                    result: T = step
                    return result
                kept = self.take(step) if isinstance(step, Call) else None
                outcome = kept if kept is not None else (yield step)
        finally:
            inner.close()


def _key(call: Call) -> tuple[str, str, str, str]:
    # A retry is sent with what is left of the timeout: the request is the same call whatever its timeout. Its repr,
    # not the request: tools, schemas and tool calls hold dicts, which do not hash.
    return call.stage, call.role, call.provider, repr(replace(call.request, timeout_s=0.0))


class TraceWriter:
    """Appends rows to a JSON-lines file, one write per row under a lock; `{pid}` in the path is the process id."""

    def __init__(self, template: str) -> None:
        self.template = template
        self._lock = threading.Lock()

    def path(self) -> Path:
        return Path(self.template.replace("{pid}", str(os.getpid())))

    def write(self, line: str) -> None:
        path = self.path()
        with self._lock:
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("a", encoding="utf-8") as file:
                file.write(line + "\n")
