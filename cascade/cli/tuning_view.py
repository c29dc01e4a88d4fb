"""What `cascade eval` and `cascade tune` read and print: traces as replay data, figures tables, JSON, and the
header a tuned policy is written under."""

from __future__ import annotations

import math
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console

from cascade.cli.common import EXIT_USAGE, console, fail
from cascade.cli.render import Column, Sheet, money, show
from cascade.cli.tuning_commands import GraderName
from cascade.errors import PolicyError, UsageError
from cascade.policy import Policy
from cascade.tuning.graders import get_grader, grade_traces
from cascade.tuning.replay import EvalReport, Figures, ReplayData, evaluate, policy_thresholds, replay_data
from cascade.tuning.search import TuneReport
from cascade.tuning.traces import merge_labels, read_labels, read_traces, traces_sha256
from cascade.tuning.write import write_tuned_policy


def load(
    policy_path: Path, traces: Path, labels: Path | None, grader: GraderName | None, tolerance: float | None
) -> tuple[Policy, ReplayData]:
    """The policy and the traces as replay arrays; usage errors exit 2 without a traceback."""
    err = console(stderr=True)
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
        raise fail(str(exc), EXIT_USAGE) from None


def print_notes(out: Console, policy: Policy) -> None:
    """What the replay leaves out."""
    notes = ["budgets, deadlines and context-window skips are not replayed"]
    if policy.routing.classifier is not None:
        notes.insert(0, "the routing classifier is not replayed: queries no rule matches start at the first stage")
    for note in notes:
        out.print(f"[dim]note: {note}[/]", highlight=False)


def _saving(report: EvalReport, other: Figures) -> str:
    saving = report.saving_against(other)
    return f"{saving:.1%}" if saving >= 0 else f"costs {1 - saving:.1f}x"


def figures_sheet(title: str, report: EvalReport, name: str, extra: list[tuple[str, Figures]] | None = None) -> Sheet:
    """The cascade, then each stage alone and the oracle, with what the cascade saves against each."""
    others = [*(extra or []), *((f.name, f) for f in report.alone), ("oracle: cheapest best stage", report.oracle)]
    usd = money([report.cascade.cost_per_query, *(f.cost_per_query for _, f in others)])
    columns = [Column(""), *(Column(n, numeric=True) for n in ("quality", "cost / query", f"{name} saves"))]
    sheet = Sheet(title, columns)
    sheet.add(name, f"{report.cascade.quality:.4f}", usd(report.cascade.cost_per_query), "", style="bold")
    for label, f in others:
        sheet.add(label, f"{f.quality:.4f}", usd(f.cost_per_query), _saving(report, f))
    return sheet


def shares_sheet(report: EvalReport) -> Sheet:
    sheet = Sheet("Answered at each stage", [Column("stage"), Column("threshold", True), Column("answered", True)])
    thresholds = report.thresholds or {}
    for stage, share in report.cascade.shares.items():
        sheet.add(stage, f"{thresholds[stage]:g}" if stage in thresholds else "-", f"{share:.1%}")
    if report.cascade.unanswered:
        sheet.add("(no answer)", "", f"{report.cascade.unanswered:.1%}")
    return sheet


def print_tune(policy: Policy, traces: Path, data: ReplayData, tuned: TuneReport, current: EvalReport) -> None:
    out = console()
    caption = f"{tuned.result.method} search over {tuned.result.settings:,} settings"
    thresholds = Sheet("Thresholds", [Column("stage"), Column("now", True), Column("tuned", True)], caption=caption)
    for stage in policy.stages[:-1]:
        thresholds.add(stage.name, f"{stage.threshold:g}", f"{tuned.thresholds[stage.name]:g}")
    title = f"In-sample: the {tuned.tuned_on} queries tuned on ({traces})"
    show(out, thresholds, figures_sheet(title, tuned.in_sample, "tuned", [("current policy", current.cascade)]))
    out.print(f"target: quality >= {tuned.need:.4f}", highlight=False)
    held = tuned.held_out
    if held is None:
        out.print("[yellow]no held-out figures (--holdout 0): the in-sample figures are optimistic[/]")
    else:
        held_current = evaluate(data.subset(held.rows), policy_thresholds(policy)).cascade
        show(out, figures_sheet(f"Held out: {held.how}", held.report, "tuned", [("current policy", held_current)]))
        verdict = "[green]met[/]" if held.met else "[bold yellow]NOT met: the thresholds may overfit[/]"
        out.print(f"held-out target: quality >= {held.need:.4f}: {verdict}", highlight=False)
    print_notes(out, policy)


def _plain(value: Any) -> Any:
    """Floats to 12 significant digits (0.95, not 0.9500000000000001), through dicts and lists."""
    if isinstance(value, float) and math.isfinite(value):
        return float(f"{value:.12g}")
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def report_json(report: EvalReport) -> dict[str, Any]:
    data = asdict(report)
    data["saving_against_last"] = report.saving_against(report.last)
    data["saving_against"] = {f.name: report.saving_against(f) for f in report.alone}
    return dict(_plain(data))


def tune_json(tuned: TuneReport, current: EvalReport) -> dict[str, Any]:
    held = tuned.held_out
    data = {
        "thresholds": tuned.thresholds,
        "feasible": tuned.result.feasible,
        "method": tuned.result.method,
        "settings": tuned.result.settings,
        "target": tuned.target,
        "relative_to": tuned.relative_to,
        "need": tuned.need,
        "tuned_on": tuned.tuned_on,
        "current": report_json(current),
        "in_sample": report_json(tuned.in_sample),
        "held_out": None
        if held is None
        else {"how": held.how, "need": held.need, "met": held.met, **report_json(held.report)},
    }
    return dict(_plain(data))


def write_tuned(policy: Path, output: Path, traces: Path, tuned: TuneReport, command: str) -> None:
    """Write the tuned policy under a header: the traces' hash, the date, the target, the figures, the command."""
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
        raise fail(str(exc), EXIT_USAGE) from None


def _line(report: EvalReport) -> str:
    c = report.cascade
    return (
        f"quality {c.quality:.4f}, ${c.cost_per_query:.6f}/query, "
        f"{report.saving_against(report.last):.1%} cheaper than {report.last.name}"
    )
