"""One vendor call as steps of the sans-I/O flow: ask, retry retryable errors within the deadline, price, record.

A flow is a generator: it yields a `Call` (ask this provider this request) or a `Sleep` (wait before a retry);
the driver (`cascade.engine`) performs it and sends back a `Completion`, a `ProviderError`, or None after a sleep.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass, replace
from typing import Any

from cascade.budget import call_cost_bound, fits
from cascade.context import QueryContext
from cascade.errors import ProviderError, VendorHTTPError
from cascade.prices import Rates, Usage
from cascade.providers.base import Completion, CompletionRequest
from cascade.result import Attempt, AttemptError, AttemptRole


@dataclass(frozen=True, slots=True)
class Call:
    """Ask `provider` this request (on behalf of `stage`, as its `role`)."""

    stage: str
    role: AttemptRole
    provider: str
    request: CompletionRequest
    # Stream the reply (`Cascade.stream`): the driver hands its pieces to the query's `Showing` as they come.
    stream: bool = False


@dataclass(frozen=True, slots=True)
class Sleep:
    """Wait before a retry."""

    seconds: float


Step = Call | Sleep
Outcome = Completion | ProviderError | None
Steps = Generator[Step, Outcome, Any]


def advance(flow: Steps, outcome: Outcome) -> tuple[bool, Any]:
    """Send `outcome` into a flow: (True, its next step), or (False, what it returned) once it has ended.

    For code that relays a flow's steps (monitoring, shadow replays) without driving it."""
    try:
        return True, flow.send(outcome)
    except StopIteration as stop:
        return False, stop.value


@dataclass(frozen=True, slots=True)
class Reply:
    """A call that came back with a completion: the completion, its price (and the rates it was worked out at),
    and which try it was."""

    call: Call
    completion: Completion
    cost_usd: float
    retry: int
    rates: Rates | None = None

    def attempt(self, **fields: Any) -> Attempt:
        """The trace record of this call (the judge adds its verdict, a failed read its error)."""
        completion = self.completion
        return Attempt(
            stage=self.call.stage,
            role=self.call.role,
            provider=self.call.provider,
            model=self.call.request.model,
            served_by=completion.model,
            input_tokens=completion.input_tokens,
            output_tokens=completion.output_tokens,
            cached_input_tokens=completion.cached_input_tokens,
            cache_write_tokens=completion.cache_write_tokens,
            cache_write_1h_tokens=completion.cache_write_1h_tokens,
            reasoning_tokens=completion.reasoning_tokens,
            cost_usd=self.cost_usd,
            price=self.rates,
            latency_s=completion.latency_s,
            finish_reason=completion.finish_reason,
            request_id=completion.request_id,
            retry=self.retry,
            **fields,
        )


def vendor_call(ctx: QueryContext, call: Call, *, retries: int) -> Generator[Step, Outcome, Reply | None]:
    """Make a call, retrying retryable errors within the call's timeout and the query's deadline.

    Each failed try is recorded in the trace here; a reply is recorded by the caller once it has read it.
    None when no try succeeded, or when the call could take the query past its cost limit or the fleet past a
    spend limit (it is not sent, and `ctx.trace.budget_refused` says so). The fleet (`ctx.fleet`) is asked
    before each try whether it may go, and when (an open breaker, a rate limit), and told what came back.
    """
    request = call.request
    bound = call_cost_bound(ctx.spec.prices, request)
    if not fits(ctx, bound):
        ctx.trace.budget_refused = True
        ctx.event("cascade.budget", stage=call.stage, role=call.role, spent_usd=ctx.trace.spent_usd)
        return None
    hold = ctx.fleet.reserve(bound)
    if hold is False:  # a fleet spend limit: `ctx.fleet.spend_refused` says which
        ctx.trace.budget_refused = True
        return None
    call_deadline = min(ctx.clock() + request.timeout_s, ctx.deadline)
    for retry in range(retries + 1):
        remaining = call_deadline - ctx.clock()
        if remaining <= 0:
            break
        admitted = ctx.fleet.admit(call.provider, request, remaining)
        if isinstance(admitted, ProviderError):  # not sent: an open breaker, or no rate-limit turn in time
            error = attempt_error(admitted)
            where = {"stage": call.stage, "role": call.role, "provider": call.provider, "model": request.model}
            record_failure(ctx, Attempt(**where, retry=retry, error=error))
            break
        if admitted > 0:
            yield Sleep(admitted)
            remaining = call_deadline - ctx.clock()
        # A retry, or a deadline closer than the stage's timeout, gets what is left of the time; a first try with
        # time to spare is sent with the timeout the policy wrote.
        full_timeout = remaining > request.timeout_s - 0.001
        sent = call if full_timeout else replace(call, request=replace(request, timeout_s=remaining))
        outcome = yield sent
        ctx.fleet.observe(call.provider, request, outcome, full_timeout)
        if isinstance(outcome, Completion):
            # Every count the vendor reported, at the rates of the prompt's tier on today's prices.
            cost, rates = ctx.spec.prices.priced(request.model, Usage.of(outcome))
            ctx.fleet.settle(hold, cost)
            return Reply(call, outcome, cost, retry, rates)
        if not isinstance(outcome, ProviderError):
            raise TypeError(f"the driver sent {outcome!r} for a call")
        failed = Attempt(
            stage=call.stage,
            role=call.role,
            provider=call.provider,
            model=request.model,
            retry=retry,
            error=attempt_error(outcome),
        )
        record_failure(ctx, failed)
        if not outcome.retryable or retry == retries:
            break
        delay = _retry_delay(ctx, outcome, retry)
        if ctx.clock() + delay >= call_deadline:
            break  # waiting would eat the whole deadline: move on instead
        yield Sleep(delay)
    ctx.fleet.settle(hold, 0.0)
    return None


def _retry_delay(ctx: QueryContext, error: ProviderError, retry: int) -> float:
    hinted = error.retry_after if isinstance(error, VendorHTTPError) else None
    if hinted is not None:
        return float(hinted)
    return ctx.spec.backoff_base_s * float(2**retry) * (1 + 0.25 * ctx.rng.random())


def attempt_error(exc: Exception) -> AttemptError:
    """How a failed call (or an unreadable reply) is recorded in the trace."""
    return AttemptError(
        type=type(exc).__name__,
        message=str(exc),
        status_code=getattr(exc, "status_code", None),
        retry_after=getattr(exc, "retry_after", None),
    )


def record_success(ctx: QueryContext, event: str, attempt: Attempt, **fields: Any) -> Attempt:
    """Record a call that gave what was asked and emit its event (`cascade.answer`, `cascade.judge`)."""
    ctx.trace.record(attempt)
    ctx.event(event, **_call_fields(attempt), **fields)
    return attempt


def record_failure(ctx: QueryContext, attempt: Attempt) -> None:
    """Record a failed attempt and emit its `cascade.error` event."""
    assert attempt.error is not None
    ctx.trace.record(attempt)
    error = attempt.error
    ctx.event(
        "cascade.error",
        **_call_fields(attempt),
        role=attempt.role,
        error_type=error.type,
        error=error.message,
        status_code=error.status_code,
        retry=attempt.retry,
    )


def _call_fields(attempt: Attempt) -> dict[str, Any]:
    """The fields every call event carries."""
    return {
        "stage": attempt.stage,
        "provider": attempt.provider,
        "model": attempt.model,
        "input_tokens": attempt.input_tokens,
        "output_tokens": attempt.output_tokens,
        "cost_usd": attempt.cost_usd,
        "latency_s": attempt.latency_s,
    }
