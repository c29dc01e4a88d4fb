"""`cascade drift`: does the quality a policy was tuned to still hold on the live (shadow) rows?

Only Typer is imported up front; the check (`cascade.monitor.drift`, numpy) and Rich load when it runs.
Exit codes: 0 the tuned quality holds (or could not be judged yet), 1 it no longer holds (re-tune), 2 usage.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from cascade.cli.common import DEFAULT_POLICY, EXIT_QUERY_FAILED, EXIT_USAGE, PolicyOpt, console, fail
from cascade.cli.tuning_commands import GraderOpt, JsonOpt, LabelsOpt, ToleranceOpt

if TYPE_CHECKING:
    from cascade.monitor.drift import DriftReport
    from cascade.tuning.traces import Trace


class AgreementGrader(StrEnum):
    """How a cheap answer is compared with the last stage's (the last answer taken as the reference)."""

    exact = "exact"
    numeric = "numeric"
    choice = "choice"


def drift(
    baseline: Annotated[Path, typer.Option("--baseline", "-b", help="The traces the policy was tuned on.")],
    live: Annotated[
        list[Path], typer.Option("--live", "-l", help="Shadow rows (the policy's monitor.traces); repeatable.")
    ],
    policy: PolicyOpt = DEFAULT_POLICY,
    labels: LabelsOpt = None,
    grader: GraderOpt = None,
    tolerance: ToleranceOpt = None,
    agreement: Annotated[
        AgreementGrader, typer.Option("--agreement", help="Grader of agreement with the last stage's answer.")
    ] = AgreementGrader.exact,
    alpha: Annotated[float, typer.Option("--alpha", min=0.0001, max=0.5, help="Significance level.")] = 0.05,
    margin: Annotated[
        float, typer.Option("--margin", min=0, max=1, help="Drop in quality or agreement tolerated.")
    ] = 0.0,
    min_rows: Annotated[int, typer.Option("--min-rows", min=1, help="Live rows a check needs to judge.")] = 30,
    strict: Annotated[
        bool, typer.Option("--strict", help="Also fail on shifted judge scores, escalation rate or cost.")
    ] = False,
    json_output: JsonOpt = False,
) -> None:
    """Test live rows against the traces a policy was tuned on; exit 1 when the tuned quality no longer holds."""
    from cascade.errors import UsageError
    from cascade.monitor.drift import check_drift
    from cascade.policy import load_policy
    from cascade.tuning.graders import get_grader

    if grader is not None and grader.value == "llm":
        raise fail("the llm grader calls a model: grade with `cascade collect --grader llm`", EXIT_USAGE)
    try:
        loaded = load_policy(policy)
        base_rows = _load(baseline, labels, grader.value if grader else None, tolerance)
        live_rows = [row for path in live for row in _load(path, labels, grader.value if grader else None, tolerance)]
        report = check_drift(
            loaded,
            base_rows,
            live_rows,
            agreement=get_grader(agreement.value, tolerance=tolerance),
            alpha=alpha,
            margin=margin,
            min_rows=min_rows,
            strict=strict,
        )
    except UsageError as exc:
        raise fail(str(exc), EXIT_USAGE) from None
    if json_output:
        print(json.dumps(report_json(report), indent=2))
    else:
        _print(report, baseline, live)
    if not report.holds:
        raise typer.Exit(EXIT_QUERY_FAILED)


def _load(path: Path, labels: Path | None, grader: str | None, tolerance: float | None) -> list[Trace]:
    """A traces file, graded where rows carry a reference, with the labels file applied (its other ids ignored)."""
    from cascade.tuning.graders import get_grader, grade_traces
    from cascade.tuning.traces import merge_labels, read_labels, read_traces

    rows = read_traces(path)
    if grader is not None:
        rows, _ = grade_traces(rows, get_grader(grader, tolerance=tolerance))
    if labels is not None:
        rows, _ = merge_labels(rows, read_labels(labels))
    return rows


def report_json(report: DriftReport) -> dict[str, Any]:
    """The report as plain data (`--json`)."""
    return {
        "policy": report.policy,
        "holds": report.holds,
        "alpha": report.alpha,
        "margin": report.margin,
        "checks": [{**asdict(check), "failed": check.failed} for check in report.checks],
        "notes": report.notes,
    }


def _figure(name: str, value: float | None) -> str:
    if value is None:
        return "-"
    return f"${value:.6f}" if name == "cost per query" else f"{value:.4f}"


def _print(report: DriftReport, baseline: Path, live: list[Path]) -> None:
    from cascade.cli.render import Column, Sheet, show

    out = console()
    where = ", ".join(str(p) for p in live)
    columns = [Column("check"), *(Column(n, numeric=True) for n in ("baseline", "live", "rows", "p-value"))]
    sheet = Sheet(f"policy {report.policy}: {baseline} (baseline) against {where} (live)", [*columns, Column("")])
    sheet.caption = f"alpha {report.alpha:g}, margin {report.margin:g}; * decides the exit code"
    for c in report.checks:
        verdict = c.status + (f" (live <= {c.upper_bound:.4f})" if c.upper_bound is not None else "")
        verdict += f"; {c.note}" if c.note else ""
        p = f"{c.p_value:.3g}" if c.p_value is not None else "-"
        style = "bold red" if c.failed else "yellow" if c.status == "shifted" else None
        name = f"{c.name}{' *' if c.gates else ''}"
        rows = f"{c.n_baseline} / {c.n_live}"
        sheet.add(name, _figure(c.name, c.baseline), _figure(c.name, c.live), rows, p, verdict, style=style)
    show(out, sheet)
    for note in report.notes:
        out.print(f"[dim]note: {note}[/]", highlight=False)
    if report.holds:
        out.print("the tuned quality holds on the live rows", highlight=False)
    else:
        failed = ", ".join(c.name for c in report.checks if c.failed)
        out.print(f"[bold red]drift:[/] {failed}; re-tune the policy on fresh traces (`cascade tune`)", highlight=False)


def register(app: typer.Typer) -> None:
    """Add `drift` to the `cascade` app."""
    app.command()(drift)
