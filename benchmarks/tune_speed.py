"""How long `cascade tune` takes on 10,000 synthetic three-stage traces (median of 3 runs of the real command).

    python benchmarks/tune_speed.py [--queries 10000] [--runs 3]

The traces come from a fixed seed: judge confidences are continuous (about 10,000 distinct values per stage,
the worst case for an exact search over them) and correlated with correctness; about 1% of answers fail; 5% of
the queries match a routing rule of policies/default.yaml. Two labelings: correct / wrong (bool) and graded
quality in [0, 1], where fewer threshold candidates can be skipped. Each run is a fresh process, so the
figure includes Python start-up, imports, reading and validating the traces and the held-out replay.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
POLICY = ROOT / "policies" / "default.yaml"
STAGES = ("mini", "flash", "sonnet")
ACCURACY = (0.70, 0.82, 0.93)
COST = (0.00006, 0.00008, 0.0009)  # answer + judge, USD; the judge's part below
JUDGE_COST = 0.00005


def synthetic_traces(n: int, graded: bool, seed: int = 20241022) -> list[str]:
    """n JSON lines of three-stage traces."""
    rng = np.random.default_rng(seed)
    lines = []
    for i in range(n):
        stages = {}
        for name, accuracy, cost in zip(STAGES, ACCURACY, COST, strict=True):
            right = rng.random() < accuracy
            confidence = float(np.clip(rng.beta(6, 2) if right else rng.beta(2.5, 3), 0, 1))
            quality = float(np.clip(rng.normal(0.9 if right else 0.2, 0.1), 0, 1)) if graded else bool(right)
            failed = rng.random() < 0.01
            stages[name] = {
                "answer": None if failed else f"answer {i} from {name}",
                "confidence": 0.0 if failed else round(confidence, 6),
                "cost_usd": round(float(cost * rng.lognormal(0, 0.5)) + JUDGE_COST, 9),
                "judge_cost_usd": JUDGE_COST,
                **({} if failed else {"correct": quality}),
            }
        query = f"synthetic query {i}" + (" - prove it" if rng.random() < 0.05 else "")
        lines.append(json.dumps({"id": f"s{i}", "query": query, "stages": stages}))
    return lines


def time_tune(traces: Path, out: Path, runs: int, extra: list[str]) -> tuple[float, list[float], dict[str, object]]:
    """Median wall time of `cascade tune` (the console script's entry point) and its JSON report."""
    command = [sys.executable, "-c", "from cascade.cli import main; main()", "tune", "--policy", str(POLICY)]
    command += ["--traces", str(traces), "--target", "0.99", "--output", str(out), "--json", *extra]
    times, report = [], {}
    for _ in range(runs):
        start = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, check=True, cwd=ROOT)
        times.append(time.perf_counter() - start)
        report = json.loads(done.stdout)
    return statistics.median(times), times, report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    variants = [
        ("correct / wrong", False, []),
        ("quality in [0,1]", True, []),
        ("correct / wrong", False, ["--folds", "5"]),
    ]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for label, graded, extra in variants:
            traces = Path(tmp, f"traces-{graded}.jsonl")
            traces.write_text("\n".join(synthetic_traces(args.queries, graded)) + "\n")
            median, times, report = time_tune(traces, Path(tmp, "tuned.yaml"), args.runs, extra)
            rows.append((label, " ".join(extra) or "(default: 25% held out)", median, times, report))
    print(f"cascade tune on {args.queries:,} synthetic three-stage traces (median of {args.runs} runs)\n")
    print(f"machine: {platform.platform()}, {os.cpu_count()} CPUs, {platform.processor() or platform.machine()}")
    print(f"python {platform.python_version()}, numpy {np.__version__}\n")
    header = f"{'labels':<16} {'options':<24} {'median s':>8} {'runs s':>18} {'tuned on':>8} {'settings':>11} method"
    print(header)
    print("-" * len(header))
    for label, options, median, times, report in rows:
        runs = ", ".join(f"{t:.2f}" for t in times)
        settings = f"{report['settings']:,}"
        print(
            f"{label:<16} {options:<24} {median:>8.2f} {runs:>18} {report['tuned_on']:>8,} {settings:>11} "
            f"{report['method']}"
        )


if __name__ == "__main__":
    main()
