"""Rich tables for the command line: a query's attempts, a route line, totals over many queries."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table
from rich.text import Text

from cascade.policy import Policy
from cascade.report import Summary
from cascade.result import CascadeResult


def usd(value: float) -> str:
    return f"${value:.6f}" if value < 0.01 else f"${value:.4f}"


def route_line(result: CascadeResult) -> Text:
    """`mini (judge 4/10) -> flash (judge 9/10) => gemini-1.5-flash`, with errors shown where they happened."""
    parts: list[str] = []
    for stage in result.stages_tried():
        attempts = [a for a in result.attempts if a.stage == stage]
        notes = [f"{a.error.type}" for a in attempts if a.error and a.role == "answer"]
        judged = [a for a in attempts if a.role == "judge"]
        if judged:
            j = judged[-1]
            notes.append("judge unreadable" if j.error else f"judge {round((j.confidence or 0) * 10, 1):g}/10")
        parts.append(f"{stage}" + (f" ({', '.join(notes)})" if notes else ""))
    text = Text(" -> ".join(parts))
    if result.route.startswith("rule:"):
        text = Text(f"[{result.route}] ") + text
    if result.answer is not None:
        mark = "=>" if result.accepted else "=> (best effort)"
        text.append(f" {mark} {result.model}", style="bold green" if result.accepted else "yellow")
    else:
        text.append(" => no answer", style="bold red")
    return text


def attempts_table(result: CascadeResult) -> Table:
    table = Table(title=f"query {result.query_id} - policy {result.policy.name} v{result.policy.version}")
    for column in ("stage", "role", "model", "in", "out", "cost", "latency", "score", "note"):
        table.add_column(column, justify="right" if column in ("in", "out", "cost", "latency", "score") else "left")
    for a in result.attempts:
        score = f"{a.confidence * 10:.1f}/10" if a.confidence is not None else ""
        note = f"{a.error.type}: {a.error.message}" if a.error else (a.judge_reason or a.label or "")
        table.add_row(
            a.stage,
            a.role,
            a.model,
            str(a.input_tokens),
            str(a.output_tokens),
            usd(a.cost_usd),
            f"{a.latency_s:.2f}s",
            score,
            note,
            style="red" if a.error else None,
        )
    table.caption = (
        f"total {usd(result.cost_usd)} in {result.latency_s:.2f}s; "
        f"the last stage alone: ~{usd(result.flagship_cost_usd)} (estimate)"
    )
    return table


def totals_tables(summary: Summary, policy: Policy) -> list[Table]:
    models = Table(title="Calls per model")
    for column in ("provider", "model", "answers", "judge", "failed", "tokens in", "tokens out", "cost"):
        models.add_column(column, justify="left" if column in ("provider", "model") else "right")
    for m in sorted(summary.models.values(), key=lambda m: m.cost_usd):
        models.add_row(
            m.provider,
            m.model,
            str(m.answer_calls),
            str(m.judge_calls + m.other_calls),
            str(m.failed_calls),
            str(m.input_tokens),
            str(m.output_tokens),
            usd(m.cost_usd),
        )

    stages = Table(title="Stages")
    for column in ("stage", "model", "threshold", "asked", "answered", "escalated", "escalation rate"):
        stages.add_column(column, justify="left" if column in ("stage", "model") else "right")
    for stage in policy.stages:
        s = summary.stages[stage.name]
        threshold = f"{stage.threshold:.2f}" if stage.threshold is not None else "-"
        stages.add_row(
            stage.name,
            stage.model,
            threshold,
            str(s.entered),
            str(s.accepted),
            str(s.escalated),
            f"{s.escalation_rate:.0%}",
        )

    cost = Table(title="Cost")
    cost.add_column("")
    cost.add_column("USD", justify="right")
    cost.add_row(f"cascade ({summary.answered}/{summary.queries} answered)", usd(summary.cost_usd))
    cost.add_row(f"everything to {policy.stages[-1].model} (estimate)", usd(summary.flagship_cost_usd))
    cost.add_row("saving", f"{summary.saving:.1%}", style="bold green")
    return [models, stages, cost]


def print_tables(console: Console, tables: list[Table]) -> None:
    for table in tables:
        console.print(table)
