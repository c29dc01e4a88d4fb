"""What the commands print: tables that never cut an id or a price, one money format per table, route lines.

A `Sheet` is a table whose columns say which cells may wrap (free text) and which may not (ids, numbers, money).
Shown where it fits, it is a Rich table; on a terminal too narrow for it, each row becomes one line of
`column: value` pairs that wraps between words. Piped output has no width limit (see `common.console`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from rich import box
from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

from cascade.policy import Policy
from cascade.report import Summary
from cascade.result import CascadeResult

Cell = str | Text
# Free-text columns keep at least this width in a table; below it the sheet is shown as a list.
TEXT_MIN_WIDTH = 30


def money(values: Iterable[float]) -> Callable[[float], str]:
    """One format for every price of a table: two significant digits of its smallest non-zero price (2 to 10
    decimals), so that a column lines up and no float noise shows."""
    smallest = min((abs(v) for v in values if v), default=1.0)
    decimals = min(max(2, 1 - math.floor(math.log10(smallest))), 10)
    return lambda value: f"${value:,.{decimals}f}"


@dataclass(frozen=True)
class Column:
    name: str
    numeric: bool = False  # right-aligned
    text: bool = False  # free text: the only kind of cell that may wrap


@dataclass
class Sheet:
    title: str
    columns: Sequence[Column]
    rows: list[tuple[list[Cell], str | None]] = field(default_factory=list)  # cells and a row style
    caption: str | None = None

    def add(self, *cells: Cell, style: str | None = None) -> None:
        self.rows.append((list(cells), style))

    def table(self, plain: bool = False) -> Table:
        """A Rich table; `plain` (piped output): Markdown-style rules, title and caption to the left."""
        table = Table(title=self.title, caption=self.caption)
        if plain:
            table.box, table.title_justify, table.caption_justify = box.MARKDOWN, "left", "left"
        for column in self.columns:
            table.add_column(
                column.name,
                justify="right" if column.numeric else "left",
                no_wrap=not column.text,
                overflow="fold",
                min_width=TEXT_MIN_WIDTH if column.text else None,
            )
        for cells, style in self.rows:
            table.add_row(*cells, style=style)
        return table

    def listing(self) -> Group:
        """Each row as one line: the first cell, then `column: value` for every other non-empty cell."""
        lines: list[RenderableType] = [Text(self.title, style="italic")]
        for cells, style in self.rows:
            line = Text("- ", style=style or "")
            line.append(cells[0] if isinstance(cells[0], Text) else Text(cells[0], style="bold"))
            for column, cell in zip(self.columns[1:], cells[1:], strict=True):
                if cell:
                    line.append(f"; {column.name}: " if column.name else "; ")
                    line.append(cell)
            lines.append(line)
        if self.caption:
            lines.append(Text(self.caption, style="dim"))
        return Group(*lines)


def show(console: Console, *sheets: Sheet) -> None:
    """Print each sheet as a table where it fits whole, else as a list."""
    for sheet in sheets:
        if not console.is_terminal:  # piped: the whole table as plain text, without the padding Rich adds
            with console.capture() as captured:
                console.print(sheet.table(plain=True))
            console.out("\n".join(line.rstrip() for line in captured.get().split("\n")), end="", highlight=False)
            continue
        table = sheet.table()
        needed = console.measure(table, options=console.options.update_width(1_000_000)).minimum
        console.print(table if needed <= console.width else sheet.listing())


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


def attempts_sheet(result: CascadeResult) -> Sheet:
    usd = money([a.cost_usd for a in result.attempts] + [result.cost_usd, result.flagship_cost_usd])
    numbers = [Column(n, numeric=True) for n in ("in", "out", "cost", "latency", "score")]
    sheet = Sheet(
        f"query {result.query_id} - policy {result.policy.name} v{result.policy.version}",
        [Column("stage"), Column("role"), Column("model"), *numbers, Column("note", text=True)],
        caption=f"total {usd(result.cost_usd)} in {result.latency_s:.2f}s; "
        f"the last stage alone: ~{usd(result.flagship_cost_usd)} (estimate)",
    )
    for a in result.attempts:
        sheet.add(
            a.stage,
            a.role,
            a.model,
            str(a.input_tokens),
            str(a.output_tokens),
            usd(a.cost_usd),
            f"{a.latency_s:.2f}s",
            f"{a.confidence * 10:.1f}/10" if a.confidence is not None else "",
            f"{a.error.type}: {a.error.message}" if a.error else (a.judge_reason or a.label or ""),
            style="red" if a.error else None,
        )
    return sheet


def totals_sheets(summary: Summary, policy: Policy) -> list[Sheet]:
    """Calls and cost per model, what each stage answered and passed on, and the cost against the last stage."""
    usd = money([m.cost_usd for m in summary.models.values()] + [summary.cost_usd, summary.flagship_cost_usd])
    classified = any(m.calls["classify"] for m in summary.models.values())  # a column only when a classifier ran
    roles = ["answer", "judge", *(["classify"] if classified else [])]
    counts = [*roles, "failed", "tokens in", "tokens out", "cost"]
    models = Sheet("Calls per model", [Column("provider"), Column("model"), *(Column(n, numeric=True) for n in counts)])
    for m in sorted(summary.models.values(), key=lambda m: m.cost_usd):
        calls = (*(m.calls[role] for role in roles), m.failed_calls, m.input_tokens, m.output_tokens)
        models.add(m.provider, m.model, *(str(n) for n in calls), usd(m.cost_usd))

    figures = ("threshold", "asked", "answered", "escalated", "escalation rate")
    stages = Sheet("Stages", [Column("stage"), Column("model"), *(Column(n, numeric=True) for n in figures)])
    for stage in policy.stages:
        s = summary.stages[stage.name]
        threshold = f"{stage.threshold:.2f}" if stage.threshold is not None else "-"
        tally = (s.entered, s.answered, s.escalated)
        stages.add(stage.name, stage.model, threshold, *(str(n) for n in tally), f"{s.escalation_rate:.0%}")

    cost = Sheet("Cost", [Column(""), Column("USD", numeric=True)])
    cost.add(f"cascade ({summary.answered}/{summary.queries} answered)", usd(summary.cost_usd))
    cost.add(f"everything to {policy.stages[-1].model} (estimate)", usd(summary.flagship_cost_usd))
    cost.add("saving", f"{summary.saving:.1%}", style="bold green")
    return [models, stages, cost]
