"""One query in flight: what is fixed for it (`QuerySpec`) and the trace it grows (`QueryTrace`)."""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cascade.capabilities import Feature
from cascade.events import Events
from cascade.fleet.guard import QueryFleet
from cascade.policy import Policy
from cascade.prices import PriceTable
from cascade.providers.base import Message, OutputSchema, Tool, ToolChoice
from cascade.query import estimate_input_tokens, query_text
from cascade.result import Attempt
from cascade.streaming import Showing
from cascade.structured import OutputType

# Backoff between retries when the vendor gives no Retry-After: 0.5 s doubling, jittered by up to 25%.
BACKOFF_BASE_S = 0.5
# One jitter source per process, reseeded in a forked child so that worker processes do not retry in step.
_JITTER = random.Random()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_JITTER.seed)


@dataclass(frozen=True)
class QuerySpec:
    """What is fixed for a query: its policy and prices, its messages, and its limits."""

    policy: Policy
    prices: PriceTable
    messages: tuple[Message, ...]
    system: str | None
    query_id: str
    max_cost_usd: float | None = None  # None: the policy's budget
    backoff_base_s: float = BACKOFF_BASE_S
    # A structured answer asked for (the call's `output_type=`, else the policy's `output:`), and its request form.
    output: OutputType | None = None
    output_schema: OutputSchema | None = None
    tools: tuple[Tool, ...] = ()
    tool_choice: ToolChoice | None = None

    @property
    def features(self) -> tuple[Feature, ...]:
        """What the query needs of a model beyond text."""
        wanted: list[Feature] = []
        if self.output is not None:
            wanted.append("structured_output")
        if self.tools or any(m.tool_calls or m.role == "tool" for m in self.messages):
            wanted.append("tools")
        return tuple(wanted)

    @property
    def text(self) -> str:
        """The query's text as routing rules and the judge see it."""
        return query_text(self.messages, self.system)

    @property
    def cost_limit(self) -> float | None:
        """The most this query may cost: the caller's limit, else the policy's."""
        return self.max_cost_usd if self.max_cost_usd is not None else self.policy.budget.max_cost_usd

    def input_tokens(self) -> int:
        """An optimistic input estimate, for context windows: a query is never refused that a model would take."""
        return estimate_input_tokens(self.messages, self.system)


@dataclass
class QueryTrace:
    """What a query has done so far: one `Attempt` per vendor call, and what they cost."""

    attempts: list[Attempt] = field(default_factory=list)
    spent_usd: float = 0.0
    budget_refused: bool = False  # a call was not sent because it could break the cost limit

    def record(self, attempt: Attempt) -> Attempt:
        self.attempts.append(attempt)
        self.spent_usd += attempt.cost_usd
        return attempt


@dataclass
class QueryContext:
    """A query in flight: its spec, its trace, its clock and deadline, and where its events go."""

    spec: QuerySpec
    trace: QueryTrace = field(default_factory=QueryTrace)
    clock: Callable[[], float] = time.monotonic
    rng: random.Random = _JITTER
    start: float = 0.0
    deadline: float = 0.0
    events: Events = field(init=False)
    # What the query asks of the state it shares with other queries and workers (cascade/fleet/): none by default.
    fleet: QueryFleet = field(default_factory=QueryFleet)
    # A streamed query (`Cascade.stream`): what it has shown and holds. None: not streamed.
    showing: Showing | None = None

    def __post_init__(self) -> None:
        self.start = self.clock()
        self.deadline = self.start + self.spec.policy.budget.deadline_s
        policy = self.spec.policy
        self.events = Events(query_id=self.spec.query_id, policy=policy.name, policy_version=policy.version)
        self.input_tokens = self.spec.input_tokens()
        self.text = self.spec.text

    @property
    def policy(self) -> Policy:
        return self.spec.policy

    @property
    def attempts(self) -> list[Attempt]:
        return self.trace.attempts

    def remaining(self) -> float:
        """Seconds left before the query's deadline."""
        return self.deadline - self.clock()

    def event(self, name: str, **fields: Any) -> None:
        self.events.emit(name, **fields)
