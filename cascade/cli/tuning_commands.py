"""`cascade collect`, `cascade eval`, `cascade tune`: tune a policy offline from traces of your own traffic.

Registered on the `cascade` app by the last line of `cascade.cli`. Only Typer is imported here; the engine,
numpy, Rich and matplotlib are imported inside the commands, so `cascade --help` stays fast.
Exit codes: 0 done, 1 failed (a query could not be traced, or the target cannot be met), 2 usage or policy.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from cascade.cli import (
    DEFAULT_POLICY,
    EXIT_QUERY_FAILED,
    EXIT_USAGE,
    PolicyOpt,
    Verbose,
    _configure_logging,
    _console,
    _fail,
    _load_router,
    app,
)

if TYPE_CHECKING:
    from cascade.engine import Cascade
    from cascade.policy import Policy
    from cascade.tuning.graders import Grader, LLMGrader
    from cascade.tuning.replay import EvalReport, Figures, ReplayData
    from cascade.tuning.search import TuneReport


class GraderName(StrEnum):
    """The built-in graders (`llm` on `collect` only)."""

    exact = "exact"
    regex = "regex"
    numeric = "numeric"
    choice = "choice"
    llm = "llm"


class RelativeTo(StrEnum):
    """What `--target` is relative to."""

    last = "last"
    absolute = "absolute"


TracesOpt = Annotated[Path, typer.Option("--traces", "-t", help="Traces, JSON lines (docs/traces.md).")]
LabelsOpt = Annotated[
    Path | None, typer.Option("--labels", help='JSON lines {"id", "correct": {STAGE: bool | 0-1}}; they win.')
]
GraderOpt = Annotated[
    GraderName | None, typer.Option("--grader", help="Label answers against each trace's `reference`.")
]
ToleranceOpt = Annotated[float | None, typer.Option("--tolerance", help="Relative tolerance of the numeric grader.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the figures as JSON.")]


# -- collect ---------------------------------------------------------------------------------------


@app.command()
def collect(
    input_path: Annotated[
        Path, typer.Option("--input", "-i", help='JSON lines: {"id", "query"[, "system", "reference", "grader"]}.')
    ],
    output_path: Annotated[Path, typer.Option("--output", "-o", help="Traces, JSON lines, appended.")],
    policy: PolicyOpt = Path(DEFAULT_POLICY),
    concurrency: Annotated[int, typer.Option("--concurrency", "-c", min=1, help="Queries in flight.")] = 8,
    grader: GraderOpt = None,
    tolerance: ToleranceOpt = None,
    grader_model: Annotated[
        str | None, typer.Option("--grader-model", help="LLM grader model (default: the policy's judge).")
    ] = None,
    grader_provider: Annotated[str | None, typer.Option("--grader-provider", help="LLM grader provider.")] = None,
    verbose: Verbose = False,
) -> None:
    """Shadow mode: every stage answers and is judged for every query; traces are appended, resumable by id."""
    _configure_logging(verbose)
    from cascade.cli.batch import BatchError, read_queries
    from cascade.errors import UsageError

    router = _load_router(policy)
    try:
        rows = read_queries(input_path)
        graders = _row_graders(router.default_policy, rows, grader, tolerance, grader_model, grader_provider)
        failed = _collect(router, rows, graders, output_path, concurrency)
    except (BatchError, UsageError) as exc:
        raise _fail(str(exc), EXIT_USAGE) from None
    if failed:
        raise typer.Exit(EXIT_QUERY_FAILED)


def _row_graders(
    policy: Policy,
    rows: list[dict[str, Any]],
    default: GraderName | None,
    tolerance: float | None,
    model: str | None,
    provider: str | None,
) -> list[Grader | LLMGrader | None]:
    """The grader of each row (a row's own `grader` field wins), checked before any vendor call."""
    from cascade.errors import UsageError
    from cascade.tuning.graders import LLMGrader, get_grader

    llm = LLMGrader(
        provider or policy.judge.provider, model or policy.judge.model, temperature=policy.judge.temperature
    )
    out: list[Grader | LLMGrader | None] = []
    for row in rows:
        reference = row.get("reference")
        if not (reference is None or isinstance(reference, str | int | float) or _strings(reference)):
            raise UsageError(f"row {row['id']}: a reference is a string, a number or a list of strings")
        name = row.get("grader", default.value if default else None)
        if name is None or row.get("reference") is None:
            out.append(None)
        elif name == "llm":
            if llm.provider not in ("openai", "anthropic", "google"):
                raise UsageError(f"unknown grader provider {llm.provider!r}: use openai, anthropic or google")
            if policy.price_table().find(llm.model) is None:
                raise UsageError(f"no price for grader model {llm.model!r}: add it under `prices:` in the policy")
            out.append(llm)
        else:
            try:
                out.append(get_grader(str(name), tolerance=tolerance))
            except KeyError as exc:
                raise UsageError(f"row {row['id']}: {exc.args[0]}") from None
    return out


def _strings(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


def _collect(router: Cascade, rows: list[dict[str, Any]], graders: list[Any], output: Path, concurrency: int) -> int:
    """Trace the rows not yet in `output`, appending each as it completes; returns how many failed."""
    import asyncio

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from cascade.cli.batch import finished_ids
    from cascade.errors import CascadeError
    from cascade.tuning.traces import collect_flow

    err, out = _console(stderr=True), _console()
    done = finished_ids(output)
    todo = [(row, g) for row, g in zip(rows, graders, strict=True) if row["id"] not in done]
    if done:
        err.print(f"resuming: {len(rows) - len(todo)} of {len(rows)} queries already in {output}")
    output.parent.mkdir(parents=True, exist_ok=True)
    failed, spent, grading = 0, 0.0, 0.0
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with output.open("a", encoding="utf-8") as sink, Progress(*columns, console=err) as progress:
        task = progress.add_task("tracing", total=len(todo))

        async def one(row: dict[str, Any], grader: Any, semaphore: asyncio.Semaphore) -> None:
            nonlocal failed, spent, grading
            async with semaphore:
                try:
                    ctx = router.context(row["query"], row.get("system"), None, None, row["id"])
                    trace = await router.adrive(collect_flow(ctx, row, grader), ctx.policy)
                except (CascadeError, ValueError) as exc:  # this row fails (it is retried on a rerun), not the run
                    failed += 1
                    err.print(f"[red]{row['id']}[/]: {exc}", highlight=False)
                    progress.advance(task)
                    return
            spent += sum(s.cost_usd for s in trace.stages.values())
            grading += sum(getattr(s, "grader_cost_usd", 0.0) or 0.0 for s in trace.stages.values())
            sink.write(trace.to_json() + "\n")
            sink.flush()
            progress.advance(task)

        async def all_rows() -> None:
            semaphore = asyncio.Semaphore(concurrency)
            try:
                await asyncio.gather(*(one(row, g, semaphore) for row, g in todo))
            finally:
                await router.aclose()  # on this loop, which owns the async connections

        asyncio.run(all_rows())
    grader_note = f" + ${grading:.6f} for the LLM grader" if grading else ""
    out.print(
        f"{len(todo) - failed} traced, {failed} failed in this run; ${spent:.6f} for answers and judges"
        f"{grader_note}; traces in {output}",
        highlight=False,
    )
    return failed


# -- loading traces for eval and tune -------------------------------------------------------------


def _load(
    policy_path: Path, traces: Path, labels: Path | None, grader: GraderName | None, tolerance: float | None
) -> tuple[Policy, ReplayData]:
    """The policy and the traces as replay arrays; usage errors exit 2 without a traceback."""
    try:
        import numpy  # noqa: F401
    except ModuleNotFoundError:
        raise _fail("eval and tune need numpy: pip install numpy", EXIT_USAGE) from None
    from cascade.errors import UsageError
    from cascade.policy import Policy
    from cascade.tuning.graders import get_grader, grade_traces
    from cascade.tuning.replay import replay_data
    from cascade.tuning.traces import merge_labels, read_labels, read_traces

    err = _console(stderr=True)
    try:
        loaded = Policy.from_file(policy_path)
        rows = read_traces(traces)
        if grader is GraderName.llm:
            raise UsageError("the llm grader calls a model: use it with `cascade collect --grader llm`")
        if grader is not None:
            rows, graded = grade_traces(rows, get_grader(grader.value, tolerance=tolerance))
            err.print(f"graded {graded} of {len(rows)} traces with the {grader.value} grader (those with a reference)")
        if labels is not None:
            rows, unknown = merge_labels(rows, read_labels(labels))
            if unknown:
                err.print(f"{unknown} labels name ids that are not in the traces; ignored")
        return loaded, replay_data(loaded, rows)
    except UsageError as exc:
        raise _fail(str(exc), EXIT_USAGE) from None


def _notes(policy: Policy) -> list[str]:
    notes = ["budgets, deadlines and context-window skips are not replayed"]
    if policy.routing.classifier is not None:
        notes.insert(0, "the routing classifier is not replayed: queries no rule matches start at the first stage")
    return notes


# -- eval ------------------------------------------------------------------------------------------


@app.command("eval")
def eval_command(
    traces: TracesOpt,
    policy: PolicyOpt = Path(DEFAULT_POLICY),
    labels: LabelsOpt = None,
    grader: GraderOpt = None,
    tolerance: ToleranceOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """Replay a policy on traces (no vendor call): quality, cost per query, savings, oracle, answer shares."""
    from cascade.tuning.replay import evaluate, policy_thresholds

    loaded, data = _load(policy, traces, labels, grader, tolerance)
    result = evaluate(data, policy_thresholds(loaded))
    if json_output:
        print(json.dumps(_report_json(result), indent=2))
        return
    out = _console()
    title = f"policy {loaded.name} replayed on {traces} ({data.n} queries, no vendor call)"
    out.print(_figures_table(title, result, "cascade"))
    out.print(_shares_table(result))
    for note in _notes(loaded):
        out.print(f"[dim]note: {note}[/]", highlight=False)


# -- tune ------------------------------------------------------------------------------------------


@app.command()
def tune(
    traces: TracesOpt,
    output: Annotated[Path, typer.Option("--output", "-o", help="Where to write the tuned policy.")],
    policy: PolicyOpt = Path(DEFAULT_POLICY),
    target: Annotated[float, typer.Option("--target", min=0, help="Quality to keep (see --relative-to).")] = 0.99,
    relative_to: Annotated[
        RelativeTo, typer.Option("--relative-to", help="last: target x the last stage's own quality; absolute.")
    ] = RelativeTo.last,
    plot: Annotated[Path | None, typer.Option("--plot", help="Draw the cost-quality frontier to this PNG.")] = None,
    holdout: Annotated[
        float, typer.Option("--holdout", min=0, max=0.9, help="Share of queries held out (0: none).")
    ] = 0.25,
    folds: Annotated[
        int, typer.Option("--folds", min=0, help="K-fold cross-validation instead of a holdout (K >= 2).")
    ] = 0,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the holdout or fold split.")] = 0,
    labels: LabelsOpt = None,
    grader: GraderOpt = None,
    tolerance: ToleranceOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """Find the cheapest thresholds whose replayed quality meets the target; write them into a copy of the policy."""
    if relative_to is RelativeTo.absolute and target > 1:
        raise _fail("an absolute --target is a quality in [0, 1]", EXIT_USAGE)
    if folds == 1:
        raise _fail("--folds needs at least 2 folds (or 0 for a holdout)", EXIT_USAGE)
    if plot is not None:
        try:
            import matplotlib  # noqa: F401
        except ModuleNotFoundError:
            raise _fail("--plot needs matplotlib: pip install 'cascade-router[plot]'", EXIT_USAGE) from None
    from cascade.tuning.replay import evaluate, policy_thresholds
    from cascade.tuning.search import tune as run_tune

    loaded, data = _load(policy, traces, labels, grader, tolerance)
    tuned = run_tune(
        data,
        target,
        relative_to.value,
        holdout=holdout,
        folds=folds,
        seed=seed,
        start=policy_thresholds(loaded),
        want_points=plot is not None,
    )
    current = evaluate(data.subset(tuned.rows), policy_thresholds(loaded))
    if json_output:
        print(json.dumps(_tune_json(tuned, current), indent=2))
    else:
        _print_tune(loaded, traces, data, tuned, current)
    if not tuned.result.feasible:
        raise _fail(
            f"no setting reaches quality {tuned.need:.4f} on these traces (best: {tuned.result.quality:.4f}); "
            "nothing written",
            EXIT_QUERY_FAILED,
        )
    command = _command(policy, traces, target, relative_to, output, holdout, folds, seed, labels, grader, tolerance)
    _write(policy, output, traces, tuned, command)
    if plot is not None:
        from cascade.tuning.plot import plot_frontier

        plot_frontier(plot, tuned, current)
    if not json_output:
        _console().print(f"wrote {output}" + (f" and {plot}" if plot else ""), highlight=False)


def _write(policy: Path, output: Path, traces: Path, tuned: TuneReport, command: str) -> None:
    from datetime import UTC, datetime

    from cascade.errors import PolicyError
    from cascade.tuning.traces import traces_sha256
    from cascade.tuning.write import write_tuned_policy

    sample, held = tuned.in_sample, tuned.held_out
    relative = (
        f" = {tuned.target:g} x {sample.last.name} ({sample.last.quality:.4f})" if tuned.relative_to == "last" else ""
    )
    header = [
        f"thresholds tuned offline by `cascade tune` on {datetime.now(UTC).date().isoformat()}",
        f"traces: {traces} (sha256 {traces_sha256(traces)})",
        f"target: quality >= {tuned.need:.4f}{relative}",
        f"in-sample ({tuned.tuned_on} queries): {_line(sample)}",
    ]
    if held is not None:
        status = "target met" if held.met else f"BELOW the held-out target {held.need:.4f}"
        header.append(f"held out ({held.how}): {_line(held.report)}; {status}")
    header.append(f"reproduce: {command}")
    try:
        write_tuned_policy(policy, output, tuned.thresholds, header)
    except (PolicyError, OSError) as exc:
        raise _fail(str(exc), EXIT_USAGE) from None


def _line(report: EvalReport) -> str:
    c = report.cascade
    return (
        f"quality {c.quality:.4f}, ${c.cost_per_query:.6f}/query, "
        f"{report.saving_against(report.last):.1%} cheaper than {report.last.name}"
    )


def _command(
    policy: Path,
    traces: Path,
    target: float,
    relative_to: RelativeTo,
    output: Path,
    holdout: float,
    folds: int,
    seed: int,
    labels: Path | None,
    grader: GraderName | None,
    tolerance: float | None,
) -> str:
    parts = ["cascade tune", f"--policy {policy}", f"--traces {traces}", f"--target {target:g}"]
    parts.append(f"--relative-to {relative_to.value}")
    parts.append(f"--folds {folds}" if folds >= 2 else f"--holdout {holdout:g}")
    parts += [f"--seed {seed}"] if seed else []
    parts += [f"--labels {labels}"] if labels else []
    parts += [f"--grader {grader.value}"] if grader else []
    parts += [f"--tolerance {tolerance:g}"] if tolerance is not None else []
    return " ".join([*parts, f"--output {output}"])


# -- rendering -------------------------------------------------------------------------------------


def _usd(value: float) -> str:
    return f"${value:.6f}" if value < 0.01 else f"${value:.4f}"


def _saving(report: EvalReport, other: Figures) -> str:
    saving = report.saving_against(other)
    return f"{saving:.1%}" if saving >= 0 else f"costs {1 - saving:.1f}x"


def _figures_table(title: str, report: EvalReport, name: str, extra: Sequence[tuple[str, Figures]] = ()) -> Any:
    """The cascade, then each stage alone and the oracle, with what the cascade saves against each."""
    from rich.table import Table

    table = Table(title=title)
    for column in ("", "quality", "cost / query", f"{name} saves"):
        table.add_column(column, justify="left" if not column else "right")
    table.add_row(name, f"{report.cascade.quality:.4f}", _usd(report.cascade.cost_per_query), "", style="bold")
    for label, f in [*extra, *((f.name, f) for f in report.alone), ("oracle: cheapest best stage", report.oracle)]:
        table.add_row(label, f"{f.quality:.4f}", _usd(f.cost_per_query), _saving(report, f))
    return table


def _shares_table(report: EvalReport) -> Any:
    from rich.table import Table

    table = Table(title="Answered at each stage")
    for column in ("stage", "threshold", "answered"):
        table.add_column(column, justify="left" if column == "stage" else "right")
    thresholds = report.thresholds or {}
    for stage, share in report.cascade.shares.items():
        table.add_row(stage, f"{thresholds[stage]:g}" if stage in thresholds else "-", f"{share:.1%}")
    if report.cascade.unanswered:
        table.add_row("(no answer)", "", f"{report.cascade.unanswered:.1%}")
    return table


def _print_tune(policy: Policy, traces: Path, data: ReplayData, tuned: TuneReport, current: EvalReport) -> None:
    from rich.table import Table

    from cascade.tuning.replay import evaluate, policy_thresholds

    out = _console()
    caption = f"{tuned.result.method} search over {tuned.result.settings:,} settings"
    thresholds = Table(title="Thresholds", caption=caption)
    for column in ("stage", "now", "tuned"):
        thresholds.add_column(column, justify="left" if column == "stage" else "right")
    for stage in policy.stages[:-1]:
        thresholds.add_row(stage.name, f"{stage.threshold:g}", f"{tuned.thresholds[stage.name]:g}")
    out.print(thresholds)
    title = f"In-sample: the {tuned.tuned_on} queries tuned on ({traces})"
    out.print(_figures_table(title, tuned.in_sample, "tuned", [("current policy", current.cascade)]))
    out.print(f"target: quality >= {tuned.need:.4f}", highlight=False)
    held = tuned.held_out
    if held is None:
        out.print("[yellow]no held-out figures (--holdout 0): the in-sample figures are optimistic[/]")
    else:
        held_current = evaluate(data.subset(held.rows), policy_thresholds(policy)).cascade
        out.print(_figures_table(f"Held out: {held.how}", held.report, "tuned", [("current policy", held_current)]))
        verdict = "[green]met[/]" if held.met else "[bold yellow]NOT met: the thresholds may overfit[/]"
        out.print(f"held-out target: quality >= {held.need:.4f}: {verdict}", highlight=False)
    for note in _notes(policy):
        out.print(f"[dim]note: {note}[/]", highlight=False)


def _report_json(report: EvalReport) -> dict[str, Any]:
    data = asdict(report)
    data["saving_against_last"] = report.saving_against(report.last)
    data["saving_against"] = {f.name: report.saving_against(f) for f in report.alone}
    return data


def _tune_json(tuned: TuneReport, current: EvalReport) -> dict[str, Any]:
    held = tuned.held_out
    return {
        "thresholds": tuned.thresholds,
        "feasible": tuned.result.feasible,
        "method": tuned.result.method,
        "settings": tuned.result.settings,
        "target": tuned.target,
        "relative_to": tuned.relative_to,
        "need": tuned.need,
        "tuned_on": tuned.tuned_on,
        "current": _report_json(current),
        "in_sample": _report_json(tuned.in_sample),
        "held_out": None
        if held is None
        else {"how": held.how, "need": held.need, "met": held.met, **_report_json(held.report)},
    }
