"""`cascade collect`, `cascade eval`, `cascade tune`: tune a policy offline from traces of your own traffic.

Only Typer is imported here; the engine, numpy, Rich and matplotlib are imported inside the commands
(`cascade.cli.collecting`, `cascade.cli.tuning_view`), so `cascade --help` stays fast.
Exit codes: 0 done, 1 failed (a query could not be traced, or the target cannot be met), 2 usage or policy.
"""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from cascade.cli import common
from cascade.cli.common import (
    DEFAULT_POLICY,
    EXIT_QUERY_FAILED,
    EXIT_USAGE,
    ConcurrencyOpt,
    PolicyOpt,
    Verbose,
    configure_logging,
    fail,
)


class GraderName(StrEnum):
    """The built-in graders (`llm` on `collect` only)."""

    exact = "exact"
    regex = "regex"
    numeric = "numeric"
    choice = "choice"
    json = "json"
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
    GraderName | None,
    typer.Option(
        "--grader",
        help="Label answers against each trace's `reference`. json: every field the reference (a JSON object or "
        "JSON text) gives must be equal in the answer's JSON (a structured answer, or its tool calls); "
        "other fields are ignored (docs/traces.md).",
    ),
]
ToleranceOpt = Annotated[float | None, typer.Option("--tolerance", help="Relative tolerance of the numeric grader.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the figures as JSON.")]


def collect(
    input_path: Annotated[
        Path,
        typer.Option(
            "--input",
            "-i",
            help='JSON lines: {"id", "query"[, "system", "tools", "tool_choice", "output_schema", "reference", '
            '"grader"]}.',
        ),
    ],
    output_path: Annotated[Path, typer.Option("--output", "-o", help="Traces, JSON lines, appended.")],
    policy: PolicyOpt = DEFAULT_POLICY,
    concurrency: ConcurrencyOpt = 8,
    grader: GraderOpt = None,
    tolerance: ToleranceOpt = None,
    grader_model: Annotated[
        str | None, typer.Option("--grader-model", help="LLM grader model (default: the policy's judge).")
    ] = None,
    grader_provider: Annotated[str | None, typer.Option("--grader-provider", help="LLM grader provider.")] = None,
    verbose: Verbose = False,
) -> None:
    """Shadow mode: every stage answers and is judged, for every query; traces appended, resumable like `run`."""
    configure_logging(verbose)
    from cascade.cli.collecting import row_graders, trace_rows
    from cascade.cli.preflight import check_vendors
    from cascade.cli.runner import read_rows
    from cascade.errors import UsageError
    from cascade.tuning.graders import LLMGrader

    router = common.load_router(policy)
    try:
        rows = read_rows(input_path)
        default = grader.value if grader else None
        graders = row_graders(router.default_policy, rows, default, tolerance, grader_model, grader_provider)
        llm_vendors = {g.provider for g in graders.values() if isinstance(g, LLMGrader)}
        check_vendors(router, also=llm_vendors)
        code = trace_rows(router, rows, graders, output_path, concurrency)
    except UsageError as exc:  # an input row, a grader, or the output cannot be used
        raise fail(str(exc), EXIT_USAGE) from None
    raise typer.Exit(code)


def eval_command(
    traces: TracesOpt,
    policy: PolicyOpt = DEFAULT_POLICY,
    labels: LabelsOpt = None,
    grader: GraderOpt = None,
    tolerance: ToleranceOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """Replay a policy on traces (no vendor call): quality, cost per query, savings, oracle, answer shares."""
    from cascade.cli import tuning_view as view
    from cascade.cli.render import show
    from cascade.tuning.replay import evaluate, policy_thresholds

    loaded, data = view.load(policy, traces, labels, grader, tolerance)
    result = evaluate(data, policy_thresholds(loaded))
    if json_output:
        print(json.dumps(view.report_json(result), indent=2))
        return
    out = common.console()
    title = f"policy {loaded.name} replayed on {traces} ({data.n} queries, no vendor call)"
    show(out, view.figures_sheet(title, result, "cascade"), view.shares_sheet(result))
    view.print_notes(out, loaded)


def tune(
    traces: TracesOpt,
    output: Annotated[Path, typer.Option("--output", "-o", help="Where to write the tuned policy.")],
    policy: PolicyOpt = DEFAULT_POLICY,
    target: Annotated[float, typer.Option("--target", min=0, help="Quality to keep (see --relative-to).")] = 0.99,
    relative_to: Annotated[
        RelativeTo, typer.Option("--relative-to", help="last: target x the last stage's own quality; absolute.")
    ] = RelativeTo.last,
    confidence: Annotated[
        float,
        typer.Option(
            "--confidence",
            min=0,
            max=0.999,
            help="Probability that the target holds on new traffic like the traces (0: the in-sample optimum).",
        ),
    ] = 0.95,
    plot: Annotated[Path | None, typer.Option("--plot", help="Draw the cost-quality frontier to this PNG.")] = None,
    holdout: Annotated[
        float,
        typer.Option("--holdout", min=0, max=0.9, help="Also report tuning on the rest replayed on this share."),
    ] = 0.0,
    folds: Annotated[
        int, typer.Option("--folds", min=0, help="Also report K-fold cross-validated figures (K >= 2).")
    ] = 0,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the splits (path, holdout, folds).")] = 0,
    labels: LabelsOpt = None,
    grader: GraderOpt = None,
    tolerance: ToleranceOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """Find the cheapest thresholds that keep the target on new traffic (at --confidence); write them into a copy
    of the policy. The thresholds learn from every label; --holdout and --folds only add figures."""
    if relative_to is RelativeTo.absolute and target > 1:
        raise fail("an absolute --target is a quality in [0, 1]", EXIT_USAGE)
    if folds == 1:
        raise fail("--folds needs at least 2 folds (or 0 for none)", EXIT_USAGE)
    if plot is not None:
        try:
            import matplotlib  # noqa: F401
        except ModuleNotFoundError:
            raise fail("--plot needs matplotlib: pip install 'cascade-router[plot]'", EXIT_USAGE) from None
    from cascade.cli import tuning_view as view
    from cascade.errors import UsageError
    from cascade.policy import load_policy
    from cascade.tuning.columns import read_replay_data
    from cascade.tuning.replay import evaluate, policy_thresholds
    from cascade.tuning.tuner import tune as run_tune

    if labels is None and grader is None:  # nothing to merge into the traces: read them straight into columns
        try:
            loaded = load_policy(policy)
            data = read_replay_data(loaded, traces)
        except UsageError as exc:
            raise fail(str(exc), EXIT_USAGE) from None
    else:
        loaded, data = view.load(policy, traces, labels, grader, tolerance)
    start = policy_thresholds(loaded)
    tuned = run_tune(
        data,
        target,
        relative_to.value,
        confidence=confidence,
        holdout=holdout,
        folds=folds,
        seed=seed,
        start=start,
        want_points=bool(plot),
    )
    current = evaluate(data, start)
    if json_output:
        print(json.dumps(view.tune_json(tuned, current), indent=2))
    else:
        view.print_tune(loaded, traces, data, tuned, current)
    if not tuned.result.feasible:
        best = f"best: {tuned.optimum.quality:.4f}"
        why = f"no setting reaches quality {tuned.need:.4f} on these traces ({best})"
        if confidence > 0 and tuned.optimum.feasible:
            why = f"no setting reaches quality {tuned.need:.4f} at confidence {confidence:g} ({best} in sample)"
        raise fail(f"{why}; nothing written", EXIT_QUERY_FAILED)
    parts = [f"--policy {policy}", f"--traces {traces}", f"--target {target:g}", f"--relative-to {relative_to.value}"]
    parts.append(f"--confidence {confidence:g}")
    parts += [f"--folds {folds}"] if folds >= 2 else [f"--holdout {holdout:g}"] if holdout > 0 else []
    parts += [f"--seed {seed}"] if seed else []
    parts += [f"--labels {labels}"] if labels else []
    parts += [f"--grader {grader.value}"] if grader else []
    parts += [f"--tolerance {tolerance:g}"] if tolerance is not None else []
    view.write_tuned(policy, output, traces, tuned, " ".join(["cascade tune", *parts, f"--output {output}"]))
    if plot is not None:
        from cascade.tuning.plot import plot_frontier

        plot_frontier(plot, tuned, current)
    if not json_output:
        common.console().print(f"wrote {output}" + (f" and {plot}" if plot else ""), highlight=False)


def register(app: typer.Typer) -> None:
    """Add `collect`, `eval` and `tune` to the `cascade` app."""
    app.command()(collect)
    app.command("eval")(eval_command)
    app.command()(tune)
