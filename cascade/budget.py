"""The per-query budget: a pessimistic price for a stage before it runs, and whether the query can afford it."""

from __future__ import annotations

from cascade.context import QueryContext
from cascade.policy import Stage

# Extra tokens the judge prompt adds around the query and the answer (instructions and markers).
JUDGE_PROMPT_OVERHEAD_TOKENS = 350


def estimate_stage_cost(ctx: QueryContext, stage: Stage, judged: bool) -> float:
    """A pessimistic price for a stage: the input, the stage's max output, and its judge call."""
    prices = ctx.spec.prices
    input_tokens = ctx.input_tokens
    cost = prices.cost(stage.model, input_tokens, stage.max_output_tokens)
    if judged:
        judge = ctx.policy.judge_for(stage)
        judge_input = input_tokens + stage.max_output_tokens + JUDGE_PROMPT_OVERHEAD_TOKENS
        cost += prices.cost(judge.model, judge_input, judge.max_output_tokens)
    return cost


def affordable(ctx: QueryContext, stage: Stage, judged: bool) -> bool:
    """True when the query can pay for the stage on its pessimistic estimate (or has no cost limit)."""
    limit = ctx.spec.cost_limit
    return limit is None or ctx.trace.spent_usd + estimate_stage_cost(ctx, stage, judged) <= limit
