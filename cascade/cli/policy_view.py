"""`cascade policy check`: validate policies and show what each stage costs for an average query."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.table import Table

from cascade.budget import JUDGE_PROMPT_OVERHEAD_TOKENS
from cascade.cli.render import usd
from cascade.errors import PolicyError
from cascade.policy import Policy

# An "average query" for the price column: a few paragraphs in, a few paragraphs out.
AVERAGE_INPUT_TOKENS = 500
AVERAGE_OUTPUT_TOKENS = 300
AVERAGE_JUDGE_OUTPUT_TOKENS = 30


def stage_prices(policy: Policy) -> list[tuple[str, float, float]]:
    """(stage, answer cost, judge cost) for an average query at each stage."""
    table = policy.price_table()
    rows = []
    for index, stage in enumerate(policy.stages):
        answer = table.cost(stage.model, AVERAGE_INPUT_TOKENS, AVERAGE_OUTPUT_TOKENS)
        judged = index < len(policy.stages) - 1 or policy.judge_last_stage
        judge = policy.judge_for(stage)
        judge_input = AVERAGE_INPUT_TOKENS + AVERAGE_OUTPUT_TOKENS + JUDGE_PROMPT_OVERHEAD_TOKENS
        judge_cost = table.cost(judge.model, judge_input, AVERAGE_JUDGE_OUTPUT_TOKENS) if judged else 0.0
        rows.append((stage.name, answer, judge_cost))
    return rows


def check_policies(files: list[Path], out: Console, err: Console) -> bool:
    ok = True
    for path in files:
        try:
            policy = Policy.from_file(path)
        except PolicyError as exc:
            err.print(f"[bold red]invalid[/] {exc}", highlight=False, markup=True)
            ok = False
            continue
        table = Table(title=f"{path}: {policy.name} v{policy.version} - valid")
        for column in ("stage", "provider", "model", "threshold", "judge", "answer", "+ judge"):
            table.add_column(column, justify="right" if column in ("threshold", "answer", "+ judge") else "left")
        for stage, (name, answer, judge_cost) in zip(policy.stages, stage_prices(policy), strict=True):
            judge = policy.judge_for(stage)
            judged = judge_cost > 0
            table.add_row(
                name,
                stage.provider,
                stage.model,
                f"{stage.threshold:.2f}" if stage.threshold is not None else "-",
                f"{judge.provider}/{judge.model} ({judge.method})" if judged else "-",
                usd(answer),
                usd(judge_cost) if judged else "-",
            )
        table.caption = (
            f"price of an average query ({AVERAGE_INPUT_TOKENS} tokens in, {AVERAGE_OUTPUT_TOKENS} out) at each stage; "
            f"{len(policy.routing.rules)} routing rule(s); budget "
            f"{usd(policy.budget.max_cost_usd) if policy.budget.max_cost_usd else 'none'} per query; "
            f"on_error={policy.on_error}"
        )
        out.print(table)
    return ok
