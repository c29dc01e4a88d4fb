"""Totals over many results: calls and cost per model, savings against the last stage, escalation rates.

Shared by `cascade demo`, `cascade run` and anything that wants the same figures from its own results.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from cascade.policy import Policy
from cascade.result import CascadeResult


@dataclass
class ModelTotals:
    """Calls to one model over many results, failed ones included."""

    provider: str
    model: str
    calls: Counter[str] = field(default_factory=Counter)  # by attempt role: answer, judge, classify
    failed_calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0


@dataclass
class StageTotals:
    """What one stage did over many results."""

    name: str
    entered: int = 0  # queries that asked this stage for an answer
    answered: int = 0  # queries whose returned answer came from this stage (accepted or best effort)
    escalated: int = 0  # queries that moved on from this stage

    @property
    def escalation_rate(self) -> float:
        return self.escalated / self.entered if self.entered else 0.0


@dataclass
class Summary:
    """Totals over many results: `answered` counts queries that got an answer, `failed` those that got none."""

    queries: int = 0
    answered: int = 0
    failed: int = 0
    budget_exhausted: int = 0
    cost_usd: float = 0.0
    flagship_cost_usd: float = 0.0
    models: dict[tuple[str, str], ModelTotals] = field(default_factory=dict)
    stages: dict[str, StageTotals] = field(default_factory=dict)

    @property
    def saving(self) -> float:
        """The share of the all-last-stage cost saved (0.6 = 60%); an estimate, like flagship_cost_usd."""
        return 1 - self.cost_usd / self.flagship_cost_usd if self.flagship_cost_usd else 0.0


def summarize(results: Iterable[CascadeResult], policy: Policy) -> Summary:
    """Add up results (answered or not: a failed query's trace still cost money)."""
    summary = Summary(stages={s.name: StageTotals(s.name) for s in policy.stages})
    for result in results:
        summary.queries += 1
        summary.cost_usd += result.cost_usd
        summary.flagship_cost_usd += result.flagship_cost_usd
        summary.budget_exhausted += result.budget_exhausted
        if result.answer is None:
            summary.failed += 1
        else:
            summary.answered += 1
        for attempt in result.attempts:
            totals = summary.models.setdefault(
                (attempt.provider, attempt.model), ModelTotals(attempt.provider, attempt.model)
            )
            totals.calls[attempt.role] += 1
            totals.failed_calls += attempt.error is not None
            totals.input_tokens += attempt.input_tokens
            totals.output_tokens += attempt.output_tokens
            totals.cost_usd += attempt.cost_usd
        tried = result.stages_tried()
        for position, name in enumerate(tried):
            if name in summary.stages:
                summary.stages[name].entered += 1
                summary.stages[name].escalated += position < len(tried) - 1
        if result.answer is not None and result.stage in summary.stages:
            summary.stages[result.stage].answered += 1
    return summary
