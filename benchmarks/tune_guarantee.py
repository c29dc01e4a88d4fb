"""Does `cascade tune` keep its promise on traffic it has not seen? Seeded random splits of labelled traces.

    python benchmarks/tune_guarantee.py [--splits 100] [--targets 0.9,0.95,0.99] [--only gsm8k,synthetic]

For each split, the thresholds are tuned (through `cascade.tuning.tuner.tune`, what the command runs) on a
random part of the traces, 200 or 500 of them or half, and replayed on the rest (the unseen part). Per target
and label count, for the default (`--confidence 0.95`) and for `--confidence 0` (the in-sample optimum):

- held: the share of splits where the quality on the unseen part met the target there (the target is relative
  to the last stage's quality on the same part);
- saving / optimum: the median, over splits where the unseen part's own optimum saves anything, of what the
  thresholds saved on the unseen part as a share of what the unseen part's own in-sample optimum saves (the
  best any thresholds could have done there, in hindsight);
- saving: the median saving against the last stage alone on the unseen part.

Data: ../shared/traces/routellm-gsm8k.jsonl (real GSM8K answers of Mixtral and GPT-4, a programmatic
confidence; skipped when absent), and synthetic traces with a noisy judge (benchmarks/tune_data.py): two
stages and three, 6,000 queries each, a 0-10 judge and a continuous one, a sharper judge and a weaker one.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import tune_data

from cascade.policy import Policy
from cascade.tuning.replay import (
    ReplayData,
    TraceColumns,
    replay,
    replay_data,
    replay_data_from_columns,
)
from cascade.tuning.search import needed_quality, search
from cascade.tuning.traces import read_traces
from cascade.tuning.tuner import tune

GSM8K = Path(__file__).resolve().parents[2] / "shared" / "traces" / "routellm-gsm8k.jsonl"


def gsm8k() -> ReplayData | None:
    if not GSM8K.exists():
        return None
    policy = Policy.from_dict(
        {
            "name": "gsm8k",
            "version": "1",
            "stages": [
                {"name": "mini", "provider": "openai", "model": "gpt-4o-mini", "threshold": 0.5},
                {"name": "sonnet", "provider": "anthropic", "model": "claude-sonnet-4-5"},
            ],
        }
    )
    return replay_data(policy, read_traces(GSM8K))


def synthetic(stages: int, levels: int, sharpness: float = 1.6, n: int = 6_000, seed: int = 7) -> ReplayData:
    policy = Policy.from_dict(tune_data.policy_dict(stages))
    data = tune_data.arrays(n, seed, stages=stages, levels=levels, sharpness=sharpness)
    k = data["confidence"].shape[0]
    cost = data["cost"].T + tune_data.JUDGE
    columns = TraceColumns(
        ids=tuple(f"q{i}" for i in range(n)),
        entry=np.zeros(n, dtype=np.int64),
        answered=np.ones((n, k), dtype=bool),
        confidence=data["confidence"].T.copy(),
        cost_usd=cost,
        answer_cost=cost - tune_data.JUDGE,
        quality=data["correct"].T.copy(),
        error=np.zeros((n, k), dtype=bool),
    )
    return replay_data_from_columns(policy, columns)


def saving(data: ReplayData, thresholds: tuple[float, ...]) -> float:
    last = float(data.alone_cost[:, -1].mean())
    return 1 - float(replay(data, thresholds).cost.mean()) / last


def run(data: ReplayData, target: float, train_size: int, splits: int) -> dict[str, tuple[float, float, float]]:
    """(held share, median saving / unseen optimum, median saving) per method."""
    figures: dict[str, list[tuple[bool, float, float]]] = {"0.95": [], "0": []}
    for split in range(splits):
        order = np.random.default_rng(split).permutation(data.n)
        train, test = data.subset(np.sort(order[:train_size])), data.subset(np.sort(order[train_size:]))
        need = needed_quality(test, target)
        optimum = saving(test, search(test, need).thresholds)
        for name, confidence in (("0.95", 0.95), ("0", 0.0)):
            chosen = tune(train, target, confidence=confidence, seed=split).result.thresholds
            held = float(replay(test, chosen).quality.mean()) >= need - 1e-9
            figures[name].append((held, saving(test, chosen), optimum))
    out = {}
    for name, rows in figures.items():
        shares = [s / o for _, s, o in rows if o > 1e-9]
        out[name] = (
            sum(h for h, _, _ in rows) / len(rows),
            statistics.median(shares) if shares else float("nan"),
            statistics.median(s for _, s, _ in rows),
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--splits", type=int, default=100)
    parser.add_argument("--targets", default="0.9,0.95,0.99")
    parser.add_argument("--only", default="gsm8k,synthetic")
    args = parser.parse_args()
    targets = [float(t) for t in args.targets.split(",")]
    sets: list[tuple[str, Callable[[], ReplayData | None]]] = []
    if "gsm8k" in args.only:
        sets.append(("GSM8K, Mixtral -> GPT-4, self-check confidence (1,307)", gsm8k))
    if "synthetic" in args.only:
        sets += [
            ("synthetic 2 stages, 0-10 judge, AUROC 0.93 (6,000)", lambda: synthetic(2, 11)),
            ("synthetic 2 stages, continuous judge, AUROC 0.93 (6,000)", lambda: synthetic(2, 0)),
            ("synthetic 2 stages, continuous judge, AUROC 0.81 (6,000)", lambda: synthetic(2, 0, 1.0)),
            ("synthetic 3 stages, 0-10 judge, AUROC 0.93 (6,000)", lambda: synthetic(3, 11)),
        ]
    print(f"cascade tune on unseen traffic: {args.splits} seeded splits per row")
    print(f"machine: {platform.platform()}, {os.cpu_count()} CPUs, python {platform.python_version()}\n")
    header = "| traces | target | labels | held (0.95) | saving / optimum (0.95) | held (0) | saving / optimum (0) |"
    for label, make in sets:
        data = make()
        if data is None:
            print(f"{label}: not available (no {GSM8K})\n")
            continue
        start = time.perf_counter()
        print(header)
        print("| --- | --- | --- | --- | --- | --- | --- |")
        for target in targets:
            for size in (200, 500, data.n // 2):
                row = run(data, target, size, args.splits)
                (h1, s1, m1), (h0, s0, m0) = row["0.95"], row["0"]
                print(
                    f"| {label} | {target:g} | {size:,} | {h1:.0%} | {s1:.2f} ({m1:.1%}) | {h0:.0%} | "
                    f"{s0:.2f} ({m0:.1%}) |",
                    flush=True,
                )
        print(f"({time.perf_counter() - start:.0f} s)\n")


if __name__ == "__main__":
    main()
