"""What `cascade collect` does once its options are read: grade-able rows traced through every stage."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape

from cascade.cli.common import EXIT_INTERRUPTED, EXIT_OK, EXIT_QUERY_FAILED, console, printable
from cascade.cli.render import money
from cascade.cli.runner import Row, interrupted_note, query_options, run_rows
from cascade.engine import Cascade
from cascade.errors import UsageError
from cascade.policy import Policy
from cascade.tuning.graders import Grader, LLMGrader, get_grader, json_references
from cascade.tuning.traces import Trace, collect_flow

RowGrader = Grader | LLMGrader | None


def row_graders(
    policy: Policy,
    rows: list[Row],
    default: str | None,
    tolerance: float | None,
    model: str | None,
    provider: str | None,
) -> dict[str, RowGrader]:
    """The grader of each row by id (a row's own `grader` field wins), checked before any vendor call.

    A reference is a string, a number or a list of strings; a JSON object too for the json and llm graders, and
    for the json grader the text of a reference must be JSON."""
    llm = LLMGrader(
        provider or policy.judge.provider, model or policy.judge.model, temperature=policy.judge.temperature
    )
    graders: dict[str, RowGrader] = {}
    for row in rows:
        reference = row.get("reference")
        name = row.get("grader", default)
        plain = reference is None or isinstance(reference, str | int | float) or _strings(reference)
        if not (plain or (isinstance(reference, dict) and name in ("json", "llm"))):
            raise UsageError(
                f"row {printable(row['id'])}: a reference is a string, a number or a list of strings "
                "(or a JSON object, with the json or llm grader)"
            )
        if name == "json" and reference is not None:
            try:
                json_references(reference)
            except ValueError as exc:
                raise UsageError(f"row {printable(row['id'])}: {exc}") from None
        if name is None or reference is None:
            graders[row["id"]] = None
        elif name == "llm":
            if llm.provider not in ("openai", "anthropic", "google"):
                raise UsageError(f"unknown grader provider {llm.provider!r}: use openai, anthropic or google")
            if policy.price_table().find(llm.model) is None:
                raise UsageError(f"no price for grader model {llm.model!r}: add it under `prices:` in the policy")
            graders[row["id"]] = llm
        else:
            try:
                graders[row["id"]] = get_grader(str(name), tolerance=tolerance)
            except KeyError as exc:
                raise UsageError(f"row {printable(row['id'])}: {exc.args[0]}") from None
    return graders


def _strings(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


class TraceJob:
    """`cascade collect`'s job: trace a row through every stage. A row that cannot be traced is reported and
    not written (a traces file holds traces only), so it runs again on a rerun; so does a trace in which a stage
    failed to answer or to be judged (an `error`). A stage skipped because its model cannot serve the query (no
    `error`, the reason in `skipped`) is not retried: it would be skipped again."""

    def __init__(self, router: Cascade, graders: dict[str, RowGrader], err: Console) -> None:
        self.router = router
        self.graders = graders
        self.err = err

    async def __call__(self, row: Row) -> Trace:
        ctx = self.router.context(row["query"], **query_options(row))
        return await self.router.adrive(collect_flow(ctx, row, self.graders[row["id"]]), ctx.policy)

    def line(self, row: Row, outcome: Any) -> str | None:
        if isinstance(outcome, Trace):
            return outcome.to_json()
        self.err.print(f"[red]{escape(printable(row['id']))}[/]: {escape(printable(str(outcome)))}", highlight=False)
        return None

    def finished(self, line: Row) -> bool:
        stages = line.get("stages")
        return isinstance(stages, dict) and not any(isinstance(s, dict) and s.get("error") for s in stages.values())


def trace_rows(router: Cascade, rows: list[Row], graders: dict[str, RowGrader], output: Path, concurrency: int) -> int:
    """Trace the rows not done yet and say what it cost; returns the exit code."""
    err = console(stderr=True)
    report = run_rows(router, TraceJob(router, graders, err), rows, output, concurrency, err, "tracing")
    if report.interrupted:
        err.print(interrupted_note(output, report), markup=False, highlight=False)
        return EXIT_INTERRUPTED
    traces = [outcome for _, outcome in report.outcomes if isinstance(outcome, Trace)]
    failed = len(report.outcomes) - len(traces)
    incomplete = report.written - report.finished  # traces in which a stage failed: a rerun retries them
    spent = sum(s.cost_usd for t in traces for s in t.stages.values())
    grading = sum(getattr(s, "grader_cost_usd", 0.0) or 0.0 for t in traces for s in t.stages.values())
    usd = money([spent, grading])
    grader_note = f" + {usd(grading)} for the LLM grader" if grading else ""
    partly = f" ({incomplete} with a stage that failed)" if incomplete else ""
    console().print(
        f"{len(traces)} traced{partly}, {failed} failed in this run{report.earlier()}; {usd(spent)} for answers "
        f"and judges{grader_note}; traces in {output}",
        markup=False,
        highlight=False,
    )
    return EXIT_QUERY_FAILED if failed or incomplete else EXIT_OK
