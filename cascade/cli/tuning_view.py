"""What `cascade eval` and `cascade tune` read and print: traces as replay data, figures tables, JSON, and the
header a tuned policy is written under."""

from __future__ import annotations

import math
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console

from cascade._paths import find_policy
from cascade.cli.common import EXIT_USAGE, console, fail
from cascade.cli.render import Column, Sheet, money, show
from cascade.cli.tuning_commands import GraderName
from cascade.errors import PolicyError, UsageError
from cascade.policy import Policy, load_policy
from cascade.tuning.columns import read_replay_data
from cascade.tuning.graders import get_grader, grade_traces
from cascade.tuning.replay import EvalReport, Figures, ReplayData, evaluate, policy_thresholds, replay_data
from cascade.tuning.traces import merge_labels, read_labels, read_traces, traces_sha256
from cascade.tuning.tuner import TuneReport
from cascade.tuning.write import threshold_text, write_tuned_policy


def load(
    policy: str, traces: Path, labels: Path | None, grader: GraderName | None, tolerance: float | None
) -> tuple[Policy, ReplayData]:
    """The policy and the traces as replay arrays; usage errors exit 2 without a traceback."""
    err = console(stderr=True)
    try:
        loaded = load_policy(policy)
        if grader is None and labels is None:
            # Nothing to add to the rows: stream the file straight into replay columns (same figures and
            # errors as below, without a pydantic object per trace: what a million traces need).
            return loaded, read_replay_data(loaded, traces)
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
    caption = f"{tuned.method}; {tuned.result.settings:,} settings"
    columns = [Column("stage"), Column("now", True), Column("tuned", True)]
    if tuned.confidence > 0:
        columns.append(Column("in-sample optimum", True))
    thresholds = Sheet("Thresholds", columns, caption=caption)
    for stage in policy.stages[:-1]:
        row = [stage.name, threshold_text(stage.threshold or 0.0), threshold_text(tuned.thresholds[stage.name])]
        if tuned.confidence > 0:
            row.append(threshold_text(tuned.optimum.thresholds[policy.stage_index(stage.name)]))
        thresholds.add(*row)
    extra = [("current policy", current.cascade)]
    if tuned.confidence > 0:
        extra.insert(0, ("in-sample optimum (--confidence 0)", tuned.optimum_report.cascade))
    title = f"In-sample: all {tuned.tuned_on} labelled queries ({traces}), which the thresholds are tuned on"
    show(out, thresholds, figures_sheet(title, tuned.in_sample, "tuned", extra))
    for line in guarantee_lines(tuned):
        out.print(line, highlight=False)
    held = tuned.held_out
    if held is not None:
        held_current = evaluate(data.subset(held.rows), policy_thresholds(policy)).cascade
        show(out, figures_sheet(f"Held out: {held.how}", held.report, "tuned", [("current policy", held_current)]))
        verdict = "[green]met[/]" if held.met else "[bold yellow]NOT met[/]"
        out.print(f"held-out target: quality >= {held.need:.4f}: {verdict} (not what is written)", highlight=False)
    print_notes(out, policy)


def guarantee_lines(tuned: TuneReport) -> list[str]:
    """The target, the guarantee and what it cost, in words (the tune output and the policy header)."""
    lines = [f"target: quality >= {tuned.need:.4f}{_relative(tuned)}"]
    bound = f"{tuned.bound_confidence:.0%} lower bound"
    quality = f"quality {tuned.in_sample.cascade.quality:.4f} ({bound} {tuned.quality_lower:.4f}"
    quality += f", {tuned.ratio_lower:.4f} x {tuned.in_sample.last.name})" if tuned.ratio_lower is not None else ")"
    if tuned.confidence > 0:
        lines.append(
            f"guarantee: the target holds on new traffic like these traces with probability >= "
            f"{tuned.confidence:g} ({tuned.method})"
        )
    else:
        lines.append("no guarantee (--confidence 0): the in-sample optimum, which new traffic often falls short of")
    lines.append(f"expected saving {tuned.saving:.1%} against {tuned.in_sample.last.name}; {quality}")
    if tuned.confidence > 0:
        lines.append(
            f"the guarantee costs {tuned.guarantee_cost:.1%} of saving: the in-sample optimum saves "
            f"{tuned.optimum_saving:.1%}"
        )
    if tuned.more_labels is not None:
        more = tuned.more_labels
        lines.append(
            f"too few labels for this target: about {more.labels:,} ({max(more.labels - tuned.tuned_on, 0):,} more) "
            f"would certify a setting saving {more.saving:.1%}, if the traffic looks like these labels"
        )
    return lines


def _relative(tuned: TuneReport) -> str:
    last = tuned.in_sample.last
    return f" = {tuned.target:g} x {last.name} ({last.quality:.4f})" if tuned.relative_to == "last" else ""


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
        "thresholds": {name: _json_threshold(value) for name, value in tuned.thresholds.items()},
        "feasible": tuned.result.feasible,
        "method": tuned.method,
        "confidence": tuned.confidence,
        "settings": tuned.result.settings,
        "target": tuned.target,
        "relative_to": tuned.relative_to,
        "need": tuned.need,
        "tuned_on": tuned.tuned_on,
        "saving": tuned.saving,
        "quality": tuned.in_sample.cascade.quality,
        "quality_lower": tuned.quality_lower,
        "ratio_lower": tuned.ratio_lower,
        "bound_confidence": tuned.bound_confidence,
        "optimum": {
            "thresholds": dict(zip(tuned.thresholds, map(_json_threshold, tuned.optimum.thresholds), strict=True)),
            "saving": tuned.optimum_saving,
            **report_json(tuned.optimum_report),
        },
        "guarantee_cost": tuned.guarantee_cost,
        "more_labels": None if tuned.more_labels is None else asdict(tuned.more_labels),
        "current": report_json(current),
        "in_sample": report_json(tuned.in_sample),
        "held_out": None
        if held is None
        else {"how": held.how, "need": held.need, "met": held.met, **report_json(held.report)},
    }
    return dict(_plain(data))


def _json_threshold(value: float) -> float | str:
    return threshold_text(value) if math.isinf(value) else value


def write_tuned(policy: str, output: Path, traces: Path, tuned: TuneReport, command: str) -> None:
    """Write the tuned policy under a header: the traces' hash, the date, the method, the figures, the command."""
    sample, held = tuned.in_sample, tuned.held_out
    header = [
        f"thresholds tuned offline by `cascade tune` on {datetime.now(UTC).date().isoformat()}",
        f"traces: {traces} (sha256 {traces_sha256(traces)})",
        f"target: quality >= {tuned.need:.4f}{_relative(tuned)}",
        f"method: {tuned.method}" if tuned.confidence > 0 else "method: in-sample optimum, no guarantee",
        f"tuned on all {tuned.tuned_on} queries: {_line(sample)}; {tuned.bound_confidence:.0%} lower bound on "
        f"quality {tuned.quality_lower:.4f}",
    ]
    if tuned.confidence > 0:
        header.append(
            f"guarantee: target held with probability >= {tuned.confidence:g}; in-sample optimum saves "
            f"{tuned.optimum_saving:.1%} (the guarantee costs {tuned.guarantee_cost:.1%})"
        )
    if held is not None:
        status = "target met" if held.met else f"BELOW the held-out target {held.need:.4f}"
        header.append(f"held out ({held.how}): {_line(held.report)}; {status}")
    header.append(f"reproduce: {command}")
    try:
        write_tuned_policy(find_policy(policy), output, tuned.thresholds, header)
    except (PolicyError, OSError) as exc:
        raise fail(str(exc), EXIT_USAGE) from None


def _line(report: EvalReport) -> str:
    c = report.cascade
    saving = report.saving_against(report.last)
    than = f"{saving:.1%} cheaper than" if saving >= 0 else f"{-saving:.1%} dearer than"
    return f"quality {c.quality:.4f}, ${c.cost_per_query:.6f}/query, {than} {report.last.name}"
