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
from cascade.providers.base import Completion, CompletionRequest
from cascade.result import Attempt, AttemptError, AttemptRole


@dataclass(frozen=True, slots=True)
class Call:
    """Ask `provider` this request (on behalf of `stage`, as its `role`)."""

    stage: str
    role: AttemptRole
    provider: str
    request: CompletionRequest


@dataclass(frozen=True, slots=True)
class Sleep:
    """Wait before a retry."""

    seconds: float


Step = Call | Sleep
Outcome = Completion | ProviderError | None
Steps = Generator[Step, Outcome, Any]


@dataclass(frozen=True, slots=True)
class Reply:
    """A call that came back with a completion: the completion, its price, and which try it was."""

    call: Call
    completion: Completion
    cost_usd: float
    retry: int

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
            cost_usd=self.cost_usd,
            latency_s=completion.latency_s,
            finish_reason=completion.finish_reason,
            request_id=completion.request_id,
            retry=self.retry,
            **fields,
        )


def vendor_call(ctx: QueryContext, call: Call, *, retries: int) -> Generator[Step, Outcome, Reply | None]:
    """Make a call, retrying retryable errors within the call's timeout and the query's deadline.

    Each failed try is recorded in the trace here; a reply is recorded by the caller once it has read it.
    None when no try succeeded, or when the call could take the query past its cost limit (it is not sent, and
    `ctx.trace.budget_refused` says so).
    """
    request = call.request
    if not fits(ctx, call_cost_bound(ctx.spec.prices, request)):
        ctx.trace.budget_refused = True
        ctx.event("cascade.budget", stage=call.stage, role=call.role, spent_usd=ctx.trace.spent_usd)
        return None
    call_deadline = min(ctx.clock() + request.timeout_s, ctx.deadline)
    for retry in range(retries + 1):
        remaining = call_deadline - ctx.clock()
        if remaining <= 0:
            break
        # A retry, or a deadline closer than the stage's timeout, gets what is left of the time; a first try with
        # time to spare is sent with the timeout the policy wrote.
        full_timeout = remaining > request.timeout_s - 0.001
        sent = call if full_timeout else replace(call, request=replace(request, timeout_s=remaining))
        outcome = yield sent
        if isinstance(outcome, Completion):
            cost = ctx.spec.prices.cost(
                request.model, outcome.input_tokens, outcome.output_tokens, outcome.cached_input_tokens
            )
            return Reply(call, outcome, cost, retry)
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


def record_failure(ctx: QueryContext, attempt: Attempt) -> None:
    """Record a failed attempt and emit its `cascade.error` event."""
    assert attempt.error is not None
    ctx.trace.record(attempt)
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
