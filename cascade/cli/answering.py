"""What `cascade demo`, `ask` and `run` do once their options are read, and what they print."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

from rich.markup import escape
from rich.text import Text

from cascade.cli.common import (
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_QUERY_FAILED,
    EXIT_USAGE,
    console,
    fail,
)
from cascade.cli.preflight import check_vendors
from cascade.cli.render import Column, Sheet, attempts_sheet, route_line, show, totals_sheets
from cascade.cli.runner import Row, interrupted_note, query_options, run_rows
from cascade.engine import Cascade
from cascade.errors import BudgetExhaustedError, CascadeExhausted, InvalidArgumentError, UsageError, redact
from cascade.report import summarize
from cascade.result import CascadeResult


def show_demo() -> None:
    """Replay the demo's twenty queries, then print each route and the totals."""
    if importlib.util.find_spec("vcr") is None:  # the replay needs vcrpy, which the `demo` extra installs
        raise fail("cascade demo replays its cassette with vcrpy: pip install 'cascade-router[demo]'", EXIT_USAGE)
    from cascade.demo import CASSETTE, run_demo

    out = console()
    out.print(
        f"[bold]cascade demo[/]: vendor replies are [bold]replayed[/] from {CASSETTE} "
        "(synthesized in the vendors' wire formats; no key, no network).\n",
        highlight=False,
    )
    try:
        policy, answered = run_demo()
    except UsageError as exc:
        raise fail(str(exc), EXIT_USAGE) from None
    routes = Sheet("Routes", [Column("query"), Column("category"), Column("route", text=True), Column("cost", True)])
    for query, result in answered:
        routes.add(query.id, Text(query.category, style="cyan"), route_line(result), f"{result.cost_usd * 1e6:,.0f} µ$")
    show(out, routes)
    summary = summarize([r for _, r in answered], policy)
    show(out, *totals_sheets(summary, policy))
    out.print(
        f"\n[bold green]Saved {summary.saving:.1%}[/] against sending every query to "
        f"{policy.stages[-1].model} (judge calls included; the all-last-stage cost is an estimate "
        "from the same token counts)."
    )


def answer_one(router: Cascade, query: str, system: str | None, max_cost: float | None, as_json: bool) -> int:
    """`cascade ask`: the query checked, then the vendors, then the answer and its attempts; returns the exit code."""
    out = console()
    try:
        router.context(query, system=system, max_cost_usd=max_cost)  # an empty or oversized query: nothing else matters
    except (UsageError, ValueError) as exc:
        raise fail(str(exc), EXIT_USAGE) from None
    check_vendors(router)
    try:
        result = router.run(query, system=system, max_cost_usd=max_cost)
    except (CascadeExhausted, BudgetExhaustedError) as exc:
        if as_json:
            print(exc.result.model_dump_json(indent=2))
        else:
            show(out, attempts_sheet(exc.result))
        raise fail(str(exc), EXIT_QUERY_FAILED) from None
    if as_json:
        print(result.model_dump_json(indent=2))
        return EXIT_OK
    out.print(result.answer, markup=False, highlight=False)
    out.print()
    show(out, attempts_sheet(result))
    return EXIT_OK


def stream_one(router: Cascade, query: str, system: str | None, max_cost: float | None, mode: str | None) -> int:
    """`cascade ask --stream`: the answer printed as it arrives; a withdrawn part is marked as such (a terminal
    cannot take back what it printed), then the attempts."""
    from cascade.streaming import Final, Reset, TextDelta, ToolCallDelta

    out = console()
    try:
        router.context(query, system=system, max_cost_usd=max_cost)
    except (UsageError, ValueError) as exc:
        raise fail(str(exc), EXIT_USAGE) from None
    check_vendors(router)
    try:
        for event in router.stream(query, mode=mode, system=system, max_cost_usd=max_cost):  # type: ignore[arg-type]
            if isinstance(event, TextDelta):
                out.file.write(event.text)
                out.file.flush()
            elif isinstance(event, ToolCallDelta):
                out.file.write(f"\n[call {event.name}] " if event.name else "")
                out.file.write(event.arguments)
                out.file.flush()
            elif isinstance(event, Reset):
                out.print(f"\n[dim]-- withdrawn ({escape(event.stage)}: {escape(event.reason)}) --[/]", highlight=False)
            elif isinstance(event, Final):
                out.print("\n")
                show(out, attempts_sheet(event.result))
    except InvalidArgumentError as exc:
        raise fail(str(exc), EXIT_USAGE) from None
    except (CascadeExhausted, BudgetExhaustedError) as exc:
        out.print()
        show(out, attempts_sheet(exc.result))
        raise fail(str(exc), EXIT_QUERY_FAILED) from None
    return EXIT_OK


class AnswerJob:
    """`cascade run`'s job: answer a row's query; a line per row, `"ok": false` when it failed."""

    def __init__(self, router: Cascade) -> None:
        self.router = router

    async def __call__(self, row: Row) -> CascadeResult:
        return await self.router.arun(row["query"], **query_options(row))

    def line(self, row: Row, outcome: Any) -> str:
        return json.dumps(output_row(row["id"], outcome), ensure_ascii=False)

    def finished(self, line: Row) -> bool:
        return line.get("ok") is True


def output_row(row_id: str, outcome: CascadeResult | Exception) -> dict[str, Any]:
    """A result line: the result, or the error (with the trace of the calls made, when there is one)."""
    if isinstance(outcome, CascadeResult):
        return {"id": row_id, "ok": True, "result": outcome.model_dump(mode="json")}
    trace = _trace(outcome)
    return {
        "id": row_id,
        "ok": False,
        "error": {"type": type(outcome).__name__, "message": redact(str(outcome))},
        "result": trace.model_dump(mode="json") if trace else None,
    }


def _trace(outcome: Any) -> CascadeResult | None:
    if isinstance(outcome, CascadeResult):
        return outcome
    return outcome.result if isinstance(outcome, CascadeExhausted | BudgetExhaustedError) else None


def answer_rows(router: Cascade, rows: list[Row], output: Path, concurrency: int) -> int:
    """`cascade run`: answer the rows not done yet, then print the totals of this run; returns the exit code."""
    out, err = console(), console(stderr=True)
    report = run_rows(router, AnswerJob(router), rows, output, concurrency, err, "queries")
    if report.interrupted:
        err.print(interrupted_note(output, report), markup=False, highlight=False)
        return EXIT_INTERRUPTED
    traces = [trace for _, outcome in report.outcomes if (trace := _trace(outcome)) is not None]
    show(out, *totals_sheets(summarize(traces, router.default_policy), router.default_policy))
    failed = sum(1 for _, outcome in report.outcomes if not isinstance(outcome, CascadeResult))
    out.print(
        f"{len(report.outcomes) - failed} answered, {failed} failed in this run{report.earlier()}; results in {output}",
        markup=False,
        highlight=False,
    )
    return EXIT_QUERY_FAILED if failed else EXIT_OK
