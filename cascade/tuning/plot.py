"""`cascade tune --plot`: the cost-quality frontier as a PNG (matplotlib, Agg backend, no display needed).

Imported only when a plot is asked for, so matplotlib stays an optional extra (`cascade-router[plot]`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from cascade.tuning.replay import EvalReport, Figures, FloatArray
from cascade.tuning.search import pareto_rows
from cascade.tuning.tuner import TuneReport
from cascade.tuning.write import threshold_text

_STAGE_COLORS = ("tab:green", "tab:orange", "tab:purple", "tab:brown", "tab:pink", "tab:cyan")


def pareto_front(points: FloatArray) -> FloatArray:
    """The points no other point beats on both cost (lower) and quality (higher), by increasing cost."""
    return pareto_rows(points)


def plot_frontier(path: Path, tuned: TuneReport, current: EvalReport | None = None) -> None:
    """Every setting searched (a sample when there were many), its frontier, the chosen point, each stage
    alone, the oracle, the current policy and the target, all on the queries the thresholds were tuned on."""
    fig = Figure(figsize=(8.5, 5.5), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    points = tuned.result.points if tuned.result.points is not None else np.empty((0, 2))
    shown = f"{len(points):,}"
    if len(points) < tuned.result.settings:
        shown += f" of {tuned.result.settings:,}"
    ax.scatter(points[:, 0], points[:, 1], s=5, alpha=0.3, color="tab:blue", label=f"threshold settings ({shown})")
    front = pareto_front(points)
    ax.step(front[:, 0], front[:, 1], where="post", color="tab:blue", lw=1.2, label="frontier")
    ax.axhline(tuned.need, color="grey", ls="--", lw=1, label=f"target quality {tuned.need:.3f}")
    sample = tuned.in_sample

    def mark(fig_: Figures, style: str, color: str, label: str, size: float = 60) -> None:
        ax.scatter([fig_.cost_per_query], [fig_.quality], marker=style, s=size, color=color, label=label, zorder=3)

    for index, figures in enumerate(sample.alone):
        mark(figures, "s", _STAGE_COLORS[index % len(_STAGE_COLORS)], figures.name)
    mark(sample.oracle, "*", "gold", "oracle (cheapest best stage)", 160)
    if current is not None:
        mark(current.cascade, "D", "black", "current policy")
    chosen = ", ".join(f"{name} {threshold_text(value)}" for name, value in tuned.thresholds.items())
    mark(sample.cascade, "o", "red", f"chosen: {chosen}", 110)
    ax.set_xlabel("mean cost per query (USD)")
    ax.set_ylabel("quality (mean of correct)")
    ax.set_title(f"cost-quality frontier on {tuned.tuned_on:,} traced queries", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.savefig(path, dpi=120)
