"""The cascade as a sans-I/O step machine: one copy of the logic for the sync and the async driver.

`cascade_flow` routes the query, then runs one stage at a time and asks `cascade.decide` what happens next; it
adds only the guards that need the live world (a context window too small, the budget, the deadline).
`shadow_flow` runs every stage for `cascade collect`, recording the same `StageResult`s a trace row holds.
Both are generators of `cascade.calls` steps, performed by the drivers in `cascade.engine`.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any

from cascade.budget import fits
from cascade.calls import Outcome, Step, attempt_error
from cascade.capabilities import missing
from cascade.context import QueryContext
from cascade.decide import Done, Rules, StageResult, Try, decide, settle
from cascade.errors import BudgetExhaustedError, CascadeExhausted, SpendLimitError
from cascade.policy import Stage
from cascade.providers.base import ToolCall
from cascade.result import Attempt, CascadeResult, PolicyRef, SkippedStage, ToolCallResult
from cascade.stages import Answer, choose_entry, run_stage, stage_cost_bound

Flow = Generator[Step, Outcome, CascadeResult]


@dataclass
class _Progress:
    """How far a query has come: where it entered, what each stage produced, and what stopped it early."""

    entry: int
    entry_name: str
    route: str
    results: list[StageResult] = field(default_factory=list)
    answers: dict[int, Answer] = field(default_factory=dict)
    skipped: list[SkippedStage] = field(default_factory=list)
    escalations: int = 0  # every stage moved to after the entry counts, run or not (skipped, out of budget)
    budget_exhausted: bool = False


def cascade_flow(ctx: QueryContext) -> Flow:
    """Route, then answer, judge and escalate stage by stage until `decide` settles the query."""
    policy = ctx.policy
    rules = Rules.of(policy)
    entry_name, route = yield from choose_entry(ctx)
    run = _Progress(policy.stage_index(entry_name), entry_name, route)
    decision = decide(rules, run.entry, run.results)
    while isinstance(decision, Try):
        index = decision.stage
        stage = policy.stages[index]
        run.escalations += index > run.entry
        if (
            unable := missing(stage, ctx.spec.features, policy.provider_kind(stage.provider))
        ) is not None or _beyond_context_window(ctx, stage):
            reason = unable or "query exceeds context window"
            ctx.event("cascade.skip", stage=stage.name, model=stage.model, reason=reason)
            run.skipped.append(SkippedStage(stage=stage.name, reason=reason))
            run.results.append(StageResult(index, "skipped"))
        elif not fits(ctx, stage_cost_bound(ctx, stage, rules.judged[index])):
            ctx.event(
                "cascade.budget", stage=stage.name, spent_usd=ctx.trace.spent_usd, max_cost_usd=ctx.spec.cost_limit
            )
            decision, run.budget_exhausted = settle(run.results, "budget exhausted"), True
            break
        elif ctx.remaining() <= 0:
            decision = settle(run.results, "query deadline passed")
            break
        elif (breaker := ctx.fleet.refusal(stage.provider, stage.model, stage.timeout_s)) is not None:
            # The model keeps failing for the whole fleet: skip it now rather than wait out its timeout.
            where = {"stage": stage.name, "provider": stage.provider, "model": stage.model}
            ctx.trace.record(Attempt(**where, role="answer", error=attempt_error(breaker)))
            ctx.event("cascade.skip", stage=stage.name, model=stage.model, reason=str(breaker))
            run.results.append(StageResult(index, "skipped"))
        else:
            if ctx.showing is not None:
                routed = index == run.entry and run.route.startswith("rule:")
                ctx.showing.begin(stage.name, live=ctx.showing.live_for(judged=rules.judged[index], routed=routed))
            result, answered = yield from run_stage(ctx, index, rules.judged[index])
            run.results.append(result)
            if answered is not None:
                run.answers[index] = answered
            elif ctx.showing is not None:
                ctx.showing.failed(stage.name, _last_error(ctx))
            if ctx.trace.budget_refused:  # the judge call could not be afforded once the answer was in
                decision, run.budget_exhausted = settle(run.results, "budget exhausted"), True
                break
        decision = decide(rules, run.entry, run.results)
        if isinstance(decision, Try) and run.results[-1].answered:
            if ctx.showing is not None:
                why = f"confidence {run.results[-1].confidence or 0.0:.2f} below the threshold {stage.threshold:g}"
                ctx.showing.rejected(stage.name, why)
            ctx.event(
                "cascade.escalate",
                stage=stage.name,
                to_stage=policy.stages[decision.stage].name,
                confidence=run.results[-1].confidence,
                threshold=stage.threshold,
            )
    if ctx.showing is not None:
        ctx.showing.accepted(policy.stages[decision.stage].name if decision.stage is not None else None)
    return _settled(ctx, decision, _result(ctx, decision, run))


def _last_error(ctx: QueryContext) -> str:
    """Why the stage just tried has no answer, as its last attempt recorded it."""
    failed = next((a.error for a in reversed(ctx.attempts) if a.error is not None), None)
    return f"{failed.type}: {failed.message}" if failed is not None else "no answer"


def _beyond_context_window(ctx: QueryContext, stage: Stage) -> bool:
    price = ctx.spec.prices.find(stage.model)
    return price is not None and price.context_window is not None and ctx.input_tokens > price.context_window


def _settled(ctx: QueryContext, done: Done, result: CascadeResult) -> CascadeResult:
    """The query's result, or the error that carries it when there is no answer."""
    if done.stage is None:
        ctx.event("cascade.done", outcome=done.reason, cost_usd=result.cost_usd, latency_s=result.latency_s)
        message = f"query {ctx.spec.query_id}: no answer ({done.reason}); {len(ctx.attempts)} calls made"
        failed = next((a for a in reversed(ctx.attempts) if a.error is not None), None)
        if ctx.policy.on_error == "raise" and failed is not None and failed.error is not None:
            why = f"{failed.error.type}: {failed.error.message}"
            message = f"query {ctx.spec.query_id}: on_error=raise and stage {failed.stage} failed ({why})"
        if result.budget_exhausted and ctx.fleet.spend_refused is not None:
            refusal = ctx.fleet.spend_refused
            raise SpendLimitError(f"{message}: {refusal}", result, refusal)
        if result.budget_exhausted:
            raise BudgetExhaustedError(message, result)
        raise CascadeExhausted(message, result)
    ctx.event(
        "cascade.done",
        outcome="accepted" if done.accepted else "best-effort",
        stage=result.stage,
        model=result.model,
        confidence=result.confidence,
        cost_usd=result.cost_usd,
        flagship_cost_usd=result.flagship_cost_usd,
        latency_s=result.latency_s,
        escalations=result.escalations,
        budget_exhausted=result.budget_exhausted,
        **({"answer": result.answer} if ctx.policy.log_text else {}),
    )
    return result


def _result(ctx: QueryContext, done: Done, run: _Progress) -> CascadeResult:
    policy = ctx.policy
    stage = policy.stages[done.stage] if done.stage is not None else None
    answered = run.answers.get(done.stage) if done.stage is not None else None
    completion = answered.completion if answered is not None else None
    chosen = next((r for r in run.results if r.stage == done.stage), None)
    flagship = 0.0
    if completion is not None:
        # An estimate: the last stage asked for the same input tokens and the same output length.
        flagship = ctx.spec.prices.cost(policy.stages[-1].model, completion.input_tokens, completion.output_tokens)
    return CascadeResult(
        query_id=ctx.spec.query_id,
        answer=(completion.text or "") if completion is not None else None,
        output=answered.output if answered is not None else None,
        tool_calls=_tool_call_results(completion.tool_calls) if completion is not None else [],
        stage=stage.name if stage is not None else None,
        provider=stage.provider if stage is not None else None,
        model=stage.model if stage is not None else None,
        confidence=chosen.confidence if chosen is not None else None,
        accepted=done.accepted,
        cost_usd=ctx.trace.spent_usd,
        flagship_cost_usd=flagship,
        latency_s=ctx.clock() - ctx.start,
        escalations=run.escalations,
        budget_exhausted=run.budget_exhausted,
        entry_stage=run.entry_name,
        route=run.route,
        policy=PolicyRef(name=policy.name, version=policy.version),
        skipped=run.skipped,
        attempts=ctx.attempts,
    )


def _tool_call_results(calls: tuple[ToolCall, ...]) -> list[ToolCallResult]:
    results = []
    for call in calls:
        # Checked against the tools' parameters before the answer was taken: the arguments are JSON objects.
        assert not isinstance(call.arguments, str)
        results.append(
            ToolCallResult(id=call.id, name=call.name, arguments=dict(call.arguments), signature=call.signature)
        )
    return results


# -- shadow mode (`cascade collect`) -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ShadowStage:
    """One stage in shadow mode: the decision's data (`result`), the answer (as the judge saw it: tool calls as
    JSON), the structured answer as JSON data and the tool calls, and why it failed, if it did."""

    name: str
    result: StageResult
    answer: str | None
    error: str | None
    output: Any = None
    tool_calls: tuple[ToolCall, ...] = ()


def shadow_flow(ctx: QueryContext) -> Generator[Step, Outcome, list[ShadowStage]]:
    """Every stage answers and is judged (the last one too), whatever the scores: the data `tune` learns from.

    Uses the same stage code as `cascade_flow`, so collected confidences are the ones the live cascade would
    compare with its thresholds.
    """
    stages: list[ShadowStage] = []
    for index, stage in enumerate(ctx.policy.stages):
        unable = missing(stage, ctx.spec.features, ctx.policy.provider_kind(stage.provider))
        if unable is not None:  # not asked, as in the live cascade: a stage that cannot answer
            stages.append(ShadowStage(stage.name, StageResult(index, "skipped"), None, unable))
            continue
        result, answered = yield from run_stage(ctx, index, judged=True)
        error = None
        if answered is None:
            last = ctx.attempts[-1] if ctx.attempts else None
            error = f"{last.error.type}: {last.error.message}" if last and last.error else "no answer"
        elif result.judge_failed:
            error = "judge call failed"
        if answered is None:
            stages.append(ShadowStage(stage.name, result, None, error))
            continue
        output = ctx.spec.output.as_json(answered.output) if ctx.spec.output and answered.output is not None else None
        shown = answered.shown()
        stages.append(ShadowStage(stage.name, result, shown, error, output, answered.completion.tool_calls))
    return stages
