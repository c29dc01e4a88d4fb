"""The cascade as a sans-I/O step machine: one copy of the logic for the sync and the async driver.

`cascade_flow` is a generator. It yields a `Call` (ask this provider this request) or a `Sleep` (wait before
a retry); the driver performs it and sends back a `Completion`, a `ProviderError`, or None after a sleep.
When the query is settled the generator returns a `CascadeResult`, or raises `CascadeExhausted` /
`BudgetExhaustedError` carrying the whole trace. Decisions (accept or escalate, budget, retries) live here,
over plain data; I/O lives in the drivers (`cascade.engine`).
"""

from __future__ import annotations

import logging
import os
import random
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass, field, replace
from typing import Any

import structlog

from cascade.errors import (
    BudgetExhaustedError,
    CascadeExhausted,
    JudgeError,
    ProviderError,
    UnusableAnswerError,
    VendorHTTPError,
)
from cascade.judge import Verdict, build_judge_prompt, parse_json_verdict, score_from_logprobs
from cascade.policy import JudgeConfig, Policy, Stage
from cascade.prices import PriceTable
from cascade.providers.base import Completion, CompletionRequest, Message
from cascade.query import estimate_input_tokens, query_text
from cascade.result import Attempt, AttemptError, CascadeResult, PolicyRef, Role
from cascade.routing import classifier_prompt, parse_label, route_by_rules

log = structlog.get_logger("cascade")

# Extra tokens the judge prompt adds around the query and the answer (instructions and markers).
JUDGE_PROMPT_OVERHEAD_TOKENS = 350
LOGPROBS_TOP_N = 20
# Backoff between retries when the vendor gives no Retry-After: 0.5 s doubling, jittered by up to 25%.
BACKOFF_BASE_S = 0.5
# Jitter for retry backoff, one generator per process (random() is one C call, safe across threads); reseeded in
# a forked child so that worker processes do not retry in step.
_JITTER = random.Random()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_JITTER.seed)


# Plain (not frozen) records: the flow makes five to ten per query, and a frozen dataclass's __init__ costs
# about twice as much. Nothing keeps them after the driver has performed the step.
@dataclass(slots=True)
class Call:
    """Ask `provider` (with `backend`, for google) this request."""

    stage: str
    role: Role
    provider: str
    request: CompletionRequest


@dataclass(slots=True)
class Sleep:
    seconds: float


Step = Call | Sleep
Outcome = Completion | ProviderError | None
Flow = Generator[Step, Outcome, CascadeResult]


@dataclass
class QueryContext:
    """Everything one query needs, and the trace it accumulates."""

    policy: Policy
    prices: PriceTable
    messages: tuple[Message, ...]
    system: str | None
    query_id: str
    max_cost_usd: float | None = None
    backoff_base_s: float = BACKOFF_BASE_S
    clock: Callable[[], float] = time.monotonic
    # Shared by default: seeding a Random of its own cost every query 8 us (os.urandom and a 2.5 KB state).
    rng: random.Random = _JITTER
    attempts: list[Attempt] = field(default_factory=list)
    spent: float = 0.0
    start: float = 0.0
    deadline: float = 0.0

    def __post_init__(self) -> None:
        self.start = self.clock()
        self.deadline = self.start + self.policy.budget.deadline_s
        if self.max_cost_usd is None:
            self.max_cost_usd = self.policy.budget.max_cost_usd
        self.text = query_text(self.messages, self.system)
        # Worked out once per query: the budget check prices every stage with them.
        self.input_tokens = estimate_input_tokens(self.messages, self.system)
        self.input_tokens_optimistic = estimate_input_tokens(self.messages, self.system, pessimistic=False)
        # When structlog would drop INFO events, none is built (eight per query, a tenth of the engine's own time),
        # and the query's logger is not even bound.
        self.events = _info_events_enabled()
        if self.events:
            self._log = log.bind(query_id=self.query_id, policy=self.policy.name, policy_version=self.policy.version)

    def remaining(self) -> float:
        return self.deadline - self.clock()

    def event(self, name: str, **fields: Any) -> None:
        """Emit an event. Call sites on the hot path test `ctx.events` first, so that not even the keyword
        arguments are built when the event would be dropped."""
        if self.events:
            self._log.info(name, **fields)


# wrapper class -> whether it logs INFO, for structlog's own filtering classes only: each is made for one fixed
# level (`make_filtering_bound_logger`), so the answer never changes. Other wrapper classes (structlog's stdlib
# BoundLogger follows the `logging` level, which can change at any time) are asked on every query.
_INFO_ENABLED: dict[type, bool] = {}


def _info_events_enabled() -> bool:
    wrapper = structlog.get_config()["wrapper_class"]
    known = _INFO_ENABLED.get(wrapper)
    if known is not None:
        return known
    is_enabled_for = getattr(log.bind(), "is_enabled_for", None)
    enabled = is_enabled_for is None or bool(is_enabled_for(logging.INFO))
    if wrapper.__module__ == "structlog._native" and wrapper.__name__.startswith("BoundLoggerFilteringAt"):
        _INFO_ENABLED[wrapper] = enabled
    return enabled


def cascade_flow(ctx: QueryContext) -> Flow:
    """Route, then answer, judge and escalate stage by stage until an answer is accepted."""
    policy = ctx.policy
    entry, route = yield from _choose_entry(ctx)
    first = policy.stage_index(entry)
    best: tuple[Stage, Completion, float | None] | None = None
    accepted: tuple[Stage, Completion, float | None] | None = None
    escalations = 0
    budget_exhausted = False
    stop_reason = "every stage failed"

    for index in range(first, len(policy.stages)):
        stage = policy.stages[index]
        is_last = index == len(policy.stages) - 1
        if index > first:
            escalations += 1
        price = ctx.prices.find(stage.model)
        window = price.context_window if price is not None else None
        if window is not None and ctx.input_tokens_optimistic > window:
            ctx.event("cascade.skip", stage=stage.name, model=stage.model, reason="query exceeds context window")
            continue
        judged = not is_last or policy.judge_last_stage
        if not _affordable(ctx, stage, judged):
            budget_exhausted, stop_reason = True, "budget exhausted"
            ctx.event("cascade.budget", stage=stage.name, spent_usd=ctx.spent, max_cost_usd=ctx.max_cost_usd)
            break
        if ctx.remaining() <= 0:
            stop_reason = "query deadline passed"
            break

        completion = yield from _answer(ctx, stage)
        if completion is None:
            if policy.on_error == "raise":
                raise _raise_now(ctx, route, entry)
            continue
        if not judged:
            accepted = (stage, completion, None)
            break
        verdict = yield from _judge(ctx, stage, completion.text or "")
        if verdict is None and policy.on_error == "raise":
            raise _raise_now(ctx, route, entry)
        confidence = verdict.confidence if verdict else 0.0
        if best is None or confidence > (best[2] or 0.0):
            best = (stage, completion, confidence)
        threshold = stage.threshold if stage.threshold is not None else 0.0
        if accepts(threshold, confidence):
            accepted = (stage, completion, confidence)
            break
        if not is_last and ctx.events:
            ctx.event(
                "cascade.escalate",
                stage=stage.name,
                to_stage=policy.stages[index + 1].name,
                confidence=confidence,
                threshold=threshold,
            )

    chosen = accepted or best
    result = _result(ctx, chosen, accepted is not None, escalations, budget_exhausted, entry, route)
    if chosen is None:
        ctx.event("cascade.done", outcome=stop_reason, cost_usd=result.cost_usd, latency_s=result.latency_s)
        message = f"query {ctx.query_id}: no answer ({stop_reason}); {len(ctx.attempts)} calls made"
        if budget_exhausted:
            raise BudgetExhaustedError(message, result)
        raise CascadeExhausted(message, result)
    if not ctx.events:
        return result
    ctx.event(
        "cascade.done",
        outcome="accepted" if accepted else "best-effort",
        stage=result.stage,
        model=result.model,
        confidence=result.confidence,
        cost_usd=result.cost_usd,
        flagship_cost_usd=result.flagship_cost_usd,
        latency_s=result.latency_s,
        escalations=escalations,
        budget_exhausted=budget_exhausted,
        **({"answer": result.answer} if ctx.policy.log_text else {}),
    )
    return result


def accepts(threshold: float, confidence: float) -> bool:
    """The acceptance rule, shared with the offline replay of traces (`cascade eval`, `cascade tune`)."""
    return confidence >= threshold


# -- routing ---------------------------------------------------------------------------------------


def _choose_entry(ctx: QueryContext) -> Generator[Step, Outcome, tuple[str, str]]:
    policy = ctx.policy
    if (ruled := route_by_rules(policy, ctx.text)) is not None:
        ctx.event("cascade.route", entry_stage=ruled[0], route=ruled[1])
        return ruled
    classifier = policy.routing.classifier
    if classifier is None:
        return policy.stages[0].name, "default"
    request = CompletionRequest(
        model=classifier.model,
        messages=(Message("user", classifier_prompt(classifier, ctx.text)),),
        max_output_tokens=classifier.max_output_tokens,
        timeout_s=classifier.timeout_s,
    )
    called = yield from vendor_call(ctx, "classifier", "classify", classifier.provider, request, retries=0)
    if called is None:
        return policy.stages[0].name, "default (classifier failed)"
    completion, record = called
    label = parse_label(completion.text)
    if label is None:
        error = AttemptError(type="JudgeError", message=f"unreadable label: {completion.text!r}")
        ctx.attempts.append(Attempt(**record, label=None, error=error))
        return policy.stages[0].name, "default (classifier unreadable)"
    ctx.attempts.append(Attempt(**record, label=label))
    stage = classifier.labels.get(label, policy.stages[0].name)  # type: ignore[call-overload]
    ctx.event("cascade.route", entry_stage=stage, route=f"classifier:{label}")
    return stage, f"classifier:{label}"


# -- one stage -------------------------------------------------------------------------------------


def _answer(ctx: QueryContext, stage: Stage) -> Generator[Step, Outcome, Completion | None]:
    system = ctx.system
    if stage.system_prompt:
        system = f"{stage.system_prompt}\n\n{system}" if system else stage.system_prompt
    request = CompletionRequest(
        model=stage.model,
        messages=ctx.messages,
        max_output_tokens=stage.max_output_tokens,
        temperature=stage.temperature,
        system=system,
        timeout_s=stage.timeout_s,
    )
    called = yield from vendor_call(ctx, stage.name, "answer", stage.provider, request, retries=stage.retries)
    if called is None:
        return None
    completion, record = called
    if not completion.usable:
        try:
            completion.answer_text()  # raises the error that says why there is no answer
        except UnusableAnswerError as exc:
            attempt = Attempt(**record, error=_attempt_error(exc))
            ctx.attempts.append(attempt)
            _log_error(ctx, attempt)
            return None
    attempt = Attempt.model_validate(record)  # from the dict: a fifth cheaper than keyword arguments
    ctx.attempts.append(attempt)
    if not ctx.events:
        return completion
    ctx.event(
        "cascade.answer",
        stage=stage.name,
        provider=stage.provider,
        model=stage.model,
        input_tokens=attempt.input_tokens,
        output_tokens=attempt.output_tokens,
        cost_usd=attempt.cost_usd,
        latency_s=attempt.latency_s,
        **({"query": ctx.text, "answer": completion.text} if ctx.policy.log_text else {}),
    )
    return completion


def _judge(ctx: QueryContext, stage: Stage, answer: str) -> Generator[Step, Outcome, Verdict | None]:
    judge: JudgeConfig = ctx.policy.judge_for(stage)
    # Anthropic returns no log-probabilities: its judges always use the JSON method.
    method = "json" if judge.provider == "anthropic" else judge.method
    request = CompletionRequest(
        model=judge.model,
        messages=(Message("user", build_judge_prompt(ctx.text, answer, instructions=judge.prompt, method=method)),),
        max_output_tokens=judge.max_output_tokens,
        temperature=judge.temperature,
        timeout_s=judge.timeout_s,
        top_logprobs=LOGPROBS_TOP_N if method == "logprobs" else None,
    )
    called = yield from vendor_call(ctx, stage.name, "judge", judge.provider, request, retries=judge.retries)
    if called is None:
        return None
    completion, record = called
    threshold = stage.threshold
    try:
        if method == "logprobs":
            verdict = score_from_logprobs(completion.first_token_logprobs, completion.text)
        else:
            verdict = parse_json_verdict(completion.text)
    except JudgeError as exc:
        attempt = Attempt(**record, confidence=0.0, threshold=threshold, error=_attempt_error(exc))
        ctx.attempts.append(attempt)
        _log_error(ctx, attempt)
        return Verdict(confidence=0.0, reason="")  # an unreadable verdict escalates, like a low score
    record.update(confidence=verdict.confidence, threshold=threshold, judge_reason=verdict.reason)
    attempt = Attempt.model_validate(record)
    ctx.attempts.append(attempt)
    if not ctx.events:
        return verdict
    ctx.event(
        "cascade.judge",
        stage=stage.name,
        provider=judge.provider,
        model=judge.model,
        input_tokens=attempt.input_tokens,
        output_tokens=attempt.output_tokens,
        cost_usd=attempt.cost_usd,
        latency_s=attempt.latency_s,
        confidence=verdict.confidence,
        threshold=threshold,
    )
    return verdict


# -- one vendor call, with retries under a deadline ----------------------------------------------


def vendor_call(
    ctx: QueryContext, stage: str, role: Role, provider: str, request: CompletionRequest, *, retries: int
) -> Generator[Step, Outcome, tuple[Completion, dict[str, Any]] | None]:
    """Make a call, retrying retryable errors within the call's timeout and the query's deadline.

    Failed tries are recorded in `ctx.attempts` here; None when no try succeeded. A completion comes back with
    the fields of its `Attempt`,
    which the caller records once it has read the reply (the judge adds its verdict): one pydantic model per
    call instead of one plus a copy.
    """
    call_deadline = min(ctx.clock() + request.timeout_s, ctx.deadline)
    for retry in range(retries + 1):
        remaining = call_deadline - ctx.clock()
        if remaining <= 0:
            break
        # Within a millisecond of the request's own timeout (a first try with the deadline far off), send the
        # request as it is rather than a copy.
        sent = request if remaining > request.timeout_s - 0.001 else _with_timeout(request, remaining)
        outcome = yield Call(stage, role, provider, sent)
        if isinstance(outcome, Completion):
            cost = ctx.prices.cost(
                request.model, outcome.input_tokens, outcome.output_tokens, outcome.cached_input_tokens
            )
            ctx.spent += cost
            record = {
                "stage": stage,
                "role": role,
                "provider": provider,
                "model": request.model,
                "served_by": outcome.model,
                "input_tokens": outcome.input_tokens,
                "output_tokens": outcome.output_tokens,
                "cached_input_tokens": outcome.cached_input_tokens,
                "cost_usd": cost,
                "latency_s": outcome.latency_s,
                "finish_reason": outcome.finish_reason,
                "request_id": outcome.request_id,
                "retry": retry,
            }
            return outcome, record
        assert isinstance(outcome, ProviderError), f"driver sent {outcome!r}"
        attempt = Attempt(
            stage=stage, role=role, provider=provider, model=request.model, retry=retry, error=_attempt_error(outcome)
        )
        ctx.attempts.append(attempt)
        _log_error(ctx, attempt)
        if not outcome.retryable or retry == retries:
            break
        delay = _retry_delay(ctx, outcome, retry)
        if ctx.clock() + delay >= call_deadline:
            break  # waiting would eat the whole deadline: move on instead
        yield Sleep(delay)
    return None


def _with_timeout(request: CompletionRequest, timeout_s: float) -> CompletionRequest:
    """The request with what is left of its timeout (a retry, or a deadline closer than the stage's timeout)."""
    return replace(request, timeout_s=timeout_s)


def _retry_delay(ctx: QueryContext, error: ProviderError, retry: int) -> float:
    hinted = error.retry_after if isinstance(error, VendorHTTPError) else None
    if hinted is not None:
        return float(hinted)
    return ctx.backoff_base_s * float(2**retry) * (1 + 0.25 * ctx.rng.random())


# -- budget ----------------------------------------------------------------------------------------


def estimate_stage_cost(ctx: QueryContext, stage: Stage, judged: bool) -> float:
    """A pessimistic price for a stage: the input, the stage's max output, and its judge call."""
    input_tokens = ctx.input_tokens
    cost = ctx.prices.cost(stage.model, input_tokens, stage.max_output_tokens)
    if judged:
        judge = ctx.policy.judge_for(stage)
        judge_input = input_tokens + stage.max_output_tokens + JUDGE_PROMPT_OVERHEAD_TOKENS
        cost += ctx.prices.cost(judge.model, judge_input, judge.max_output_tokens)
    return cost


def _affordable(ctx: QueryContext, stage: Stage, judged: bool) -> bool:
    if ctx.max_cost_usd is None:
        return True
    return ctx.spent + estimate_stage_cost(ctx, stage, judged) <= ctx.max_cost_usd


# -- results and errors ----------------------------------------------------------------------------


def _result(
    ctx: QueryContext,
    chosen: tuple[Stage, Completion, float | None] | None,
    accepted: bool,
    escalations: int,
    budget_exhausted: bool,
    entry: str,
    route: str,
) -> CascadeResult:
    answer = stage = provider = model = None
    confidence: float | None = None
    flagship = 0.0
    if chosen is not None:
        chosen_stage, completion, confidence = chosen
        answer, stage, provider, model = completion.text, chosen_stage.name, chosen_stage.provider, chosen_stage.model
        last = ctx.policy.stages[-1]
        flagship = ctx.prices.cost(last.model, completion.input_tokens, completion.output_tokens)
    return CascadeResult.model_validate(
        {
            "query_id": ctx.query_id,
            "answer": answer,
            "stage": stage,
            "provider": provider,
            "model": model,
            "confidence": confidence,
            "accepted": accepted,
            "cost_usd": ctx.spent,  # the sum of the attempts' costs, added up as they came
            "flagship_cost_usd": flagship,
            "latency_s": ctx.clock() - ctx.start,
            "escalations": escalations,
            "budget_exhausted": budget_exhausted,
            "entry_stage": entry,
            "route": route,
            "policy": _policy_ref(ctx.policy),
            "attempts": ctx.attempts,  # validated into a list of its own
        }
    )


_POLICY_REFS: dict[int, tuple[Policy, PolicyRef]] = {}


def _policy_ref(policy: Policy) -> PolicyRef:
    """One frozen PolicyRef per policy object serves every result (policies are not hashable: keyed by id, the
    policy kept beside it so that a recycled id is noticed)."""
    cached = _POLICY_REFS.get(id(policy))
    if cached is not None and cached[0] is policy:
        return cached[1]
    if len(_POLICY_REFS) >= 64:
        _POLICY_REFS.clear()
    ref = PolicyRef(name=policy.name, version=policy.version)
    _POLICY_REFS[id(policy)] = (policy, ref)
    return ref


def _raise_now(ctx: QueryContext, route: str, entry: str) -> CascadeExhausted:
    """`on_error: raise`: stop at the first failure, with the trace so far."""
    result = _result(ctx, None, False, 0, False, entry, route)
    last = ctx.attempts[-1] if ctx.attempts else None
    why = f"{last.error.type}: {last.error.message}" if last and last.error else "call failed"
    return CascadeExhausted(
        f"query {ctx.query_id}: on_error=raise and stage {last and last.stage} failed ({why})", result
    )


def _attempt_error(exc: Exception) -> AttemptError:
    return AttemptError(
        type=type(exc).__name__,
        message=str(exc),
        status_code=getattr(exc, "status_code", None),
        retry_after=getattr(exc, "retry_after", None),
    )


def _log_error(ctx: QueryContext, attempt: Attempt) -> None:
    assert attempt.error is not None
    ctx.event(
        "cascade.error",
        stage=attempt.stage,
        role=attempt.role,
        provider=attempt.provider,
        model=attempt.model,
        error_type=attempt.error.type,
        error=attempt.error.message,
        status_code=attempt.error.status_code,
        retry=attempt.retry,
    )


# -- shadow mode (`cascade collect`) -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StageOutcome:
    """What one stage did for a query in shadow mode: its answer, the judge's confidence, and the cost."""

    stage: str
    answer: str | None
    confidence: float
    cost_usd: float
    error: str | None = None


def shadow_flow(ctx: QueryContext) -> Generator[Step, Outcome, list[StageOutcome]]:
    """Every stage answers and is judged (the last one too), whatever the scores: the data `tune` learns from.

    Uses the same answer, judge and retry code as `cascade_flow`, so collected confidences are the ones the
    live cascade would compare with its thresholds.
    """
    outcomes: list[StageOutcome] = []
    for stage in ctx.policy.stages:
        spent_before = ctx.spent
        completion = yield from _answer(ctx, stage)
        if completion is None:
            last = ctx.attempts[-1] if ctx.attempts else None
            error = f"{last.error.type}: {last.error.message}" if last and last.error else "no answer"
            outcomes.append(StageOutcome(stage.name, None, 0.0, ctx.spent - spent_before, error))
            continue
        verdict = yield from _judge(ctx, stage, completion.text or "")
        confidence = verdict.confidence if verdict else 0.0
        outcomes.append(
            StageOutcome(
                stage.name,
                completion.text,
                confidence,
                ctx.spent - spent_before,
                None if verdict else "judge call failed",
            )
        )
    return outcomes
