"""`cascade tune` with the guarantee: its options, what it prints and the policy it writes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import structlog
from typer.testing import CliRunner

from cascade.cli import app
from cascade.policy import Policy
from cascade.tuning.replay import evaluate, policy_thresholds, replay_data
from cascade.tuning.search import needed_quality, search
from cascade.tuning.traces import read_traces

ROOT = Path(__file__).resolve().parents[2]
DEMO_TRACES = str(ROOT / "examples" / "traces" / "demo_traces.jsonl")
DEFAULT = str(ROOT / "policies" / "default.yaml")


@pytest.fixture(autouse=True)
def _restore_structlog() -> Iterator[None]:
    yield
    structlog.reset_defaults()


def invoke(*args: str) -> Any:
    return CliRunner().invoke(app, list(args), env={"COLUMNS": "200"})


def two_stage(tmp_path: Path, n: int, seed: int = 0, reference: float = 0.95) -> tuple[Path, Path]:
    """A two-stage policy and n traces whose cheap stage is right 85% of the time, its judge a fair guide."""
    policy = tmp_path / "p.yaml"
    policy.write_text(
        "name: two\nversion: '1'\nstages:\n"
        "  - {name: mini, provider: openai, model: gpt-4o-mini, threshold: 0.7}   # the cheap one\n"
        "  - {name: big, provider: anthropic, model: claude-sonnet-4-5}\n"
    )
    rng = np.random.default_rng(seed)
    lines = []
    for i in range(n):
        right = bool(rng.random() < 0.85)
        score = round(min(max(rng.normal(0.8 if right else 0.4, 0.2), 0), 1), 1)
        stages = {
            "mini": {"answer": "a", "confidence": score, "cost_usd": 0.0001, "correct": right},
            "big": {"answer": "b", "confidence": 0.0, "cost_usd": 0.002, "correct": bool(rng.random() < reference)},
        }
        lines.append(json.dumps({"id": f"q{i}", "stages": stages}))
    traces = tmp_path / "t.jsonl"
    traces.write_text("\n".join(lines) + "\n")
    return policy, traces


def test_by_default_the_thresholds_come_with_a_guarantee_and_its_price(tmp_path: Path) -> None:
    policy, traces = two_stage(tmp_path, 3_000)
    out = tmp_path / "tuned.yaml"
    result = invoke("tune", "--policy", str(policy), "--traces", str(traces), "--target", "0.95", "--output", str(out))
    assert result.exit_code == 0, result.output
    for text in ("probability >= 0.95", "learn-then-test", "expected saving", "95% lower bound", "guarantee costs"):
        assert text in result.output
    header = [line for line in out.read_text().splitlines() if line.startswith("# cascade tune:")]
    assert any(line.startswith("# cascade tune: method: learn-then-test at confidence 0.95") for line in header)
    assert any("tuned on all 3000 queries" in line for line in header)
    assert header[-1].endswith(f"--confidence 0.95 --output {out}")
    assert "# the cheap one" in out.read_text()  # the user's comment is kept
    data = json.loads(invoke("tune", "--policy", str(policy), "--traces", str(traces), "--target", "0.95",
                             "--output", str(out), "--json").stdout)  # fmt: skip
    assert data["confidence"] == 0.95 and data["tuned_on"] == 3000 and data["feasible"]
    assert data["quality_lower"] < data["quality"] and data["saving"] > 0.5
    assert data["guarantee_cost"] == pytest.approx(data["optimum"]["saving"] - data["saving"])


def test_confidence_0_writes_the_in_sample_optimum(tmp_path: Path) -> None:
    policy, traces = two_stage(tmp_path, 400)
    args = ["tune", "--policy", str(policy), "--traces", str(traces), "--target", "0.95", "--output"]
    data = json.loads(invoke(*args, str(tmp_path / "o.yaml"), "--confidence", "0", "--json").stdout)
    loaded = Policy.from_file(policy)
    replay = replay_data(loaded, read_traces(traces))
    expected = search(replay, needed_quality(replay, 0.95), policy_thresholds(loaded))
    assert data["method"] == "exact" and tuple(data["thresholds"].values()) == expected.thresholds
    tuned = Policy.from_file(tmp_path / "o.yaml")
    assert evaluate(replay, (tuned.stages[0].threshold or 0.0,)).cascade.quality >= needed_quality(replay, 0.95)


def test_too_few_labels_for_the_target_say_how_many_would_do(tmp_path: Path) -> None:
    policy, traces = two_stage(tmp_path, 120, reference=1.0)
    out = tmp_path / "tuned.yaml"
    result = invoke("tune", "--policy", str(policy), "--traces", str(traces), "--target", "0.99", "--output", str(out))
    assert result.exit_code == 0, result.output
    assert "too few labels for this target: about" in result.output
    tuned = Policy.from_file(out)
    assert tuned.stages[0].threshold == float("inf") and "threshold: never" in out.read_text()


def test_holdout_and_folds_only_add_figures(tmp_path: Path) -> None:
    policy, traces = two_stage(tmp_path, 600)
    base = ["tune", "--policy", str(policy), "--traces", str(traces), "--target", "0.95", "--json", "--output"]
    plain = json.loads(invoke(*base, str(tmp_path / "a.yaml")).stdout)
    held = json.loads(invoke(*base, str(tmp_path / "b.yaml"), "--holdout", "0.25").stdout)
    folded = json.loads(invoke(*base, str(tmp_path / "c.yaml"), "--folds", "3").stdout)
    assert plain["thresholds"] == held["thresholds"] == folded["thresholds"]
    assert plain["held_out"] is None and held["tuned_on"] == 600
    assert held["held_out"]["how"].startswith("150 queries held out: 25%, seed 0")
    assert folded["held_out"]["how"] == "3-fold cross-validation, seed 0"


def test_the_demo_traces_with_a_policy_that_switches_a_stage_off(tmp_path: Path) -> None:
    off = tmp_path / "off.yaml"
    off.write_text(Path(DEFAULT).read_text().replace("threshold: 0.7", "threshold: never"))
    assert Policy.from_file(off).stages[1].threshold == float("inf")
    result = invoke("eval", "--policy", str(off), "--traces", DEMO_TRACES, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["cascade"]["shares"]["flash"] == 0.0
    out = tmp_path / "t.yaml"
    result = invoke("tune", "--policy", str(off), "--traces", DEMO_TRACES, "--target", "0.8", "--relative-to",
                    "absolute", "--confidence", "0", "--output", str(out))  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "never" in result.output  # the policy's own threshold, as it was written


@pytest.mark.parametrize(("extra", "message"), [(["--confidence", "1"], "--confidence"), (["--folds", "1"], "--folds")])
def test_bad_options_exit_2(tmp_path: Path, extra: list[str], message: str) -> None:
    result = invoke("tune", "--policy", DEFAULT, "--traces", DEMO_TRACES, "--output", str(tmp_path / "o"), *extra)
    assert result.exit_code == 2 and message in result.output
