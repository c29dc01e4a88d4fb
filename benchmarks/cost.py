"""Cost: what the cascade saves against sending every query to the last stage.

    python benchmarks/cost.py

1. `cascade demo`: twenty queries through policies/default.yaml, replayed from the shipped cassette; the saving is
   `cascade.report.summarize(...).saving` (the figure the demo prints). The all-last-stage cost is an estimate:
   the last stage's prices applied to the same token counts.
2. The tuned example policy (policies/tuned-demo.yaml) on examples/traces/: held out, by re-running the `cascade tune`
   command written in its header (5-fold cross-validation: each query replayed with thresholds tuned without
   it), into a temporary file; and in sample, by `cascade eval` of the written policy on the same traces.
No vendor is called: the demo replays a cassette, tune and eval replay traces.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import common

TUNED = common.ROOT / "policies" / "tuned-demo.yaml"
TRACES = common.ROOT / "examples" / "traces"


@dataclass
class Saving:
    what: str
    saving: float | None  # 0.40 = 40% cheaper than the last stage alone; None = not available
    detail: str


def demo_saving() -> Saving:
    common.quiet_logs()
    from cascade.demo import run_demo
    from cascade.report import summarize

    policy, answered = run_demo()
    summary = summarize([result for _, result in answered], policy)
    return Saving(
        "cascade demo vs always the last stage",
        summary.saving,
        f"{summary.queries} queries, ${summary.cost_usd:.6f} vs ${summary.flagship_cost_usd:.6f} "
        f"({policy.stages[-1].model} alone, estimated from the same tokens)",
    )


def _cli(*args: str) -> dict[str, object]:
    command = [sys.executable, "-c", "from cascade.cli import main; main()", *args, "--json"]
    done = subprocess.run(command, capture_output=True, text=True, cwd=common.ROOT, check=True)
    result: dict[str, object] = json.loads(done.stdout)
    return result


def tuned_savings() -> list[Saving]:
    traces = sorted(TRACES.glob("*.jsonl")) if TRACES.is_dir() else []
    if not TUNED.exists() or not traces:
        return [
            Saving(
                "tuned example policy, held out",
                None,
                "not available: no policies/tuned-demo.yaml or examples/traces/*.jsonl",
            )
        ]
    reproduce = next(
        (
            line.split("reproduce:", 1)[1].strip()
            for line in TUNED.read_text().splitlines()
            if line.startswith("# cascade tune: reproduce:")
        ),
        None,
    )
    results = []
    if reproduce:
        argv = shlex.split(reproduce)[1:]  # drop "cascade"
        with tempfile.TemporaryDirectory() as tmp:
            out = str(Path(tmp) / "tuned.yaml")
            argv = [
                out if previous == "--output" else arg for previous, arg in zip(["", *argv[:-1]], argv, strict=True)
            ]
            tuned = _cli(*argv)
        held = tuned["held_out"]
        assert isinstance(held, dict)
        results.append(
            Saving(
                "tuned example policy, held out",
                float(held["saving_against_last"]),
                f"{held['how']}, thresholds {tuned['thresholds']}, quality {held['cascade']['quality']:.3f}, "
                f"target {'met' if held['met'] else 'NOT met'}",
            )
        )
    else:
        results.append(Saving("tuned example policy, held out", None, "no reproduce line in its header"))
    trace_file = next((t for t in traces if t.name == "demo_traces.jsonl"), traces[0])
    evaluated = _cli("eval", "--policy", str(TUNED), "--traces", str(trace_file))
    cascade = evaluated["cascade"]
    assert isinstance(cascade, dict)
    results.append(
        Saving(
            "tuned example policy, in sample (cascade eval)",
            float(evaluated["saving_against_last"]),  # type: ignore[arg-type]
            f"{cascade['queries']} queries of {trace_file.relative_to(common.ROOT)}, quality {cascade['quality']:.3f}",
        )
    )
    return results


def measure() -> list[Saving]:
    return [demo_saving(), *tuned_savings()]


def main() -> None:
    for saving in measure():
        figure = f"{saving.saving:.1%}" if saving.saving is not None else "n/a"
        print(f"{saving.what:<48} {figure:>7}   {saving.detail}")


if __name__ == "__main__":
    main()
