"""Synthetic traces for the tuning benchmarks: a noisy judge over models of growing strength and price.

Each query has a hidden difficulty; a stage answers it right with a probability that falls with difficulty (a
stronger stage has a higher bar), and the judge's confidence is a noisy reading of whether the answer is right
(its noise sets how well confidence separates right from wrong answers: AUROC about 0.8 at `noise` 1.5 and
`sharpness` 1.0, about 0.93 at `sharpness` 1.6). Confidences are the judge's 0-10 score / 10 (`levels=11`) or
continuous (`levels=0`, a logprobs judge). Costs are lognormal around each stage's price.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np

ACCURACY = (0.70, 0.80, 0.90)  # of each stage on an average query
PRICE = (0.0002, 0.0006, 0.004)  # USD per answer, judge included, of each stage
JUDGE = 0.00005
STAGES = ("mini", "flash", "sonnet")


def policy_dict(stages: int = 3, routing: bool = False) -> dict[str, object]:
    """A policy whose stages are named as the synthetic traces' (routing: one keyword rule to the last)."""
    models = [("openai", "gpt-4o-mini"), ("google", "gemini-2.0-flash"), ("anthropic", "claude-sonnet-4-5")]
    chosen = [*models[: stages - 1], models[-1]]
    names = [*STAGES[: stages - 1], STAGES[-1]]
    rules = [{"name": "proofs", "stage": names[-1], "keywords": ["prove"]}] if routing else []
    return {
        "name": "synthetic",
        "version": "1",
        "stages": [
            {"name": n, "provider": p, "model": m, **({"threshold": 0.7} if i < stages - 1 else {})}
            for i, (n, (p, m)) in enumerate(zip(names, chosen, strict=True))
        ],
        "routing": {"rules": rules},
    }


def arrays(
    n: int, seed: int, *, stages: int = 3, sharpness: float = 1.6, noise: float = 1.5, levels: int = 11
) -> dict[str, np.ndarray]:
    """Per stage (in policy order, the last stage last): confidence, correct (0/1) and cost, shape (stages, n)."""
    rng = np.random.default_rng(seed)
    difficulty = rng.normal(size=n)
    chosen = [*range(stages - 1), len(ACCURACY) - 1]
    confidence, correct, cost = [], [], []
    for j in chosen:
        odds = np.log(ACCURACY[j] / (1 - ACCURACY[j]))
        right = rng.random(n) < 1 / (1 + np.exp(-(odds - 1.5 * difficulty)))
        score = 1 / (1 + np.exp(-(sharpness * (2 * right - 1) + noise * rng.normal(size=n))))
        confidence.append(np.round(score * (levels - 1)) / (levels - 1) if levels else np.round(score, 6))
        correct.append(right.astype(float))
        cost.append(PRICE[j] * rng.lognormal(0, 0.3, n))
    return {"confidence": np.array(confidence), "correct": np.array(correct), "cost": np.array(cost)}


def lines(n: int, seed: int, *, stages: int = 3, levels: int = 11, routing: bool = False) -> Iterator[str]:
    """JSON lines of synthetic traces (as `cascade collect` writes them, with short answers)."""
    data = arrays(n, seed, stages=stages, levels=levels)
    names = [*STAGES[: stages - 1], STAGES[-1]]
    proof = np.random.default_rng(seed + 1).random(n) < (0.05 if routing else 0.0)
    for i in range(n):
        row = {
            "id": f"q{i}",
            "query": f"synthetic query {i}" + (" - prove it" if proof[i] else ""),
            "stages": {
                name: {
                    "answer": f"answer {i} from {name}",
                    "confidence": float(data["confidence"][j, i]),
                    "cost_usd": round(float(data["cost"][j, i]) + JUDGE, 9),
                    "judge_cost_usd": JUDGE,
                    "correct": bool(data["correct"][j, i]),
                }
                for j, name in enumerate(names)
            },
        }
        yield json.dumps(row)


def write(path: Path, n: int, seed: int, **options: object) -> Path:
    """Write n synthetic traces to `path`."""
    with path.open("w", encoding="utf-8") as file:
        for line in lines(n, seed, **options):  # type: ignore[arg-type]
            file.write(line + "\n")
    return path
