"""The drift check on synthetic traffic, through its Python API and `cascade drift`, and on real shadow rows."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from cascade.cli import app
from cascade.monitor import Monitor
from cascade.monitor.drift import check_drift
from cascade.tuning.graders import exact_match
from cascade.tuning.traces import Trace, read_traces
from tests.monitor.conftest import DEFAULT, FLASH, MINI, ROOT, SONNET, Vendors, router

POLICY_FILE = str(ROOT / "policies" / "default.yaml")  # thresholds: mini 0.8, flash 0.7


@dataclass
class Traffic:
    """How a stream of yes/no queries behaves: each cheap stage's accuracy, the judge's scores for right and
    wrong answers (tenths), a shift added to every score, and whether rows carry labels."""

    mini_right: float = 0.9
    flash_right: float = 0.95
    right_scores: tuple[int, ...] = (8, 9, 10)
    wrong_scores: tuple[int, ...] = (2, 4, 6)
    shift: int = 0
    labelled: bool = True

    def traces(self, n: int, seed: int) -> list[Trace]:
        rng = random.Random(seed)
        rows = []
        for i in range(n):
            truth = rng.choice(["yes", "no"])
            stages: dict[str, Any] = {}
            for name, right in (("mini", self.mini_right), ("flash", self.flash_right), ("sonnet", 1.0)):
                ok = rng.random() < right
                score = rng.choice(self.right_scores if ok else self.wrong_scores) + self.shift
                stage = {
                    "answer": truth if ok else ("no" if truth == "yes" else "yes"),
                    "confidence": min(max(score, 0), 10) / 10,
                    "cost_usd": {"mini": 0.0001, "flash": 0.0003, "sonnet": 0.003}[name],
                }
                if self.labelled:
                    stage["correct"] = ok
                stages[name] = stage
            rows.append(Trace.model_validate({"id": f"{seed}-{i}", "query": f"q{i}", "stages": stages}))
        return rows


BASELINE = Traffic().traces(400, seed=1)


def test_the_same_traffic_holds() -> None:
    report = check_drift(DEFAULT, BASELINE, Traffic().traces(300, seed=2), agreement=exact_match)
    assert report.holds
    checks = {c.name: c for c in report.checks}
    assert checks["quality"].status == "holds" and checks["agreement with the last stage"].status == "holds"
    assert checks["quality"].method == "one-sided exact binomial" and checks["quality"].p_value is not None
    assert {checks[f"judge scores: {s}"].status for s in ("mini", "flash")} == {"steady"}


def test_a_cheap_stage_gone_wrong_under_a_fooled_judge_fails_on_quality_and_agreement() -> None:
    # mini is now right 60% of the time, and the judge scores its wrong answers as highly as its right ones.
    degraded = Traffic(mini_right=0.6, wrong_scores=(8, 9, 10))
    report = check_drift(DEFAULT, BASELINE, degraded.traces(300, seed=3), agreement=exact_match)
    checks = {c.name: c for c in report.checks}
    assert not report.holds
    assert checks["quality"].status == "drifted" and checks["quality"].failed
    assert checks["quality"].upper_bound is not None and checks["quality"].upper_bound < checks["quality"].promised
    assert checks["agreement with the last stage"].status == "drifted"


def test_without_labels_agreement_still_catches_it() -> None:
    degraded = Traffic(mini_right=0.6, wrong_scores=(8, 9, 10), labelled=False)
    report = check_drift(DEFAULT, BASELINE, degraded.traces(300, seed=3), agreement=exact_match)
    checks = {c.name: c for c in report.checks}
    assert checks["quality"].status == "not measured" and "labels" in checks["quality"].note
    assert checks["agreement with the last stage"].status == "drifted" and not report.holds


def test_shifted_scores_are_reported_and_fail_only_when_strict() -> None:
    # The judge got stricter (every score 2 lower): answers are as good, but far more queries escalate.
    harsher = Traffic(shift=-2).traces(300, seed=4)
    report = check_drift(DEFAULT, BASELINE, harsher, agreement=exact_match)
    checks = {c.name: c for c in report.checks}
    assert checks["judge scores: mini"].status == "shifted" and checks["escalation rate"].status == "shifted"
    assert checks["cost per query"].status == "shifted" and checks["quality"].status == "holds"
    assert report.holds
    assert not check_drift(DEFAULT, BASELINE, harsher, agreement=exact_match, strict=True).holds


def test_a_margin_tolerates_a_small_drop_and_too_few_rows_cannot_fail() -> None:
    slightly = Traffic(mini_right=0.8, wrong_scores=(8, 9, 10)).traces(300, seed=5)
    assert not check_drift(DEFAULT, BASELINE, slightly, agreement=exact_match).holds
    assert check_drift(DEFAULT, BASELINE, slightly, agreement=exact_match, margin=0.2).holds
    few = Traffic(mini_right=0.0, wrong_scores=(9,)).traces(10, seed=6)
    report = check_drift(DEFAULT, BASELINE, few, agreement=exact_match)
    assert report.holds and {c.status for c in report.checks} == {"too few rows"}


# -- the command line --------------------------------------------------------------------------------


def write(path: Path, traces: list[Trace]) -> Path:
    path.write_text("".join(t.to_json() + "\n" for t in traces))
    return path


def drift(*args: str) -> Any:
    return CliRunner().invoke(app, ["drift", "--policy", POLICY_FILE, *args], env={"COLUMNS": "200"})


def test_cascade_drift_exit_codes(tmp_path: Path) -> None:
    base = write(tmp_path / "base.jsonl", BASELINE)
    same = write(tmp_path / "same.jsonl", Traffic().traces(300, seed=2))
    bad = write(tmp_path / "bad.jsonl", Traffic(mini_right=0.6, wrong_scores=(8, 9, 10)).traces(300, seed=3))

    ok = drift("--baseline", str(base), "--live", str(same))
    assert ok.exit_code == 0, ok.output
    assert "the tuned quality holds" in ok.output

    failed = drift("--baseline", str(base), "--live", str(bad))
    assert failed.exit_code == 1 and "drift:" in failed.output and "quality" in failed.output

    as_json = drift("--baseline", str(base), "--live", str(bad), "--json")
    data = json.loads(as_json.output)
    assert as_json.exit_code == 1 and data["holds"] is False
    assert {c["name"]: c["status"] for c in data["checks"]}["quality"] == "drifted"

    missing = drift("--baseline", str(base), "--live", str(tmp_path / "nope.jsonl"))
    assert missing.exit_code == 2 and "cannot read" in missing.output


def test_cascade_drift_grades_live_rows_with_references_and_reads_several_files(tmp_path: Path) -> None:
    base = write(tmp_path / "base.jsonl", BASELINE)
    rows = Traffic(mini_right=0.6, wrong_scores=(8, 9, 10), labelled=False).traces(300, seed=3)
    truths = {t.id: t.stages["sonnet"].answer for t in rows}  # the last stage is always right here
    referenced = [t.model_copy(update={"reference": truths[t.id]}) for t in rows]
    one, two = write(tmp_path / "a.jsonl", referenced[:150]), write(tmp_path / "b.jsonl", referenced[150:])
    result = drift("--baseline", str(base), "--live", str(one), "--live", str(two), "--grader", "exact", "--json")
    checks = {c["name"]: c for c in json.loads(result.output)["checks"]}
    assert checks["quality"]["status"] == "drifted" and checks["quality"]["n_live"] == 300


# -- the loop: shadow rows from the live cascade feed the drift check -------------------------------------


def shadow_rows(tmp_path: Path, name: str, vendors: Vendors, n: int) -> Path:
    path = tmp_path / f"{name}.jsonl"
    r = router(vendors, Monitor(seed=0), monitor={"shadow_rate": 1.0, "traces": str(path)})
    for i in range(n):
        r.run(f"Is review {i} positive?")
    assert r.monitor.flush(60)
    return path


def test_shadow_rows_from_the_live_cascade_feed_the_drift_check(tmp_path: Path) -> None:
    healthy = Vendors(answers={MINI: "yes", FLASH: "yes", SONNET: "yes"})
    base = shadow_rows(tmp_path, "baseline", healthy, 40)
    # Later mini starts answering "no" where the flagship says "yes", and the judge does not notice.
    drifted = Vendors(answers={MINI: "no", FLASH: "yes", SONNET: "yes"})
    live = shadow_rows(tmp_path, "live", drifted, 40)
    assert len(read_traces(live)) == 40

    result = drift("--baseline", str(base), "--live", str(live), "--json")
    checks = {c["name"]: c for c in json.loads(result.output)["checks"]}
    assert result.exit_code == 1
    assert checks["agreement with the last stage"]["baseline"] == 1.0
    assert checks["agreement with the last stage"]["live"] == 0.0
    assert checks["quality"]["status"] == "not measured"  # shadow rows carry no labels
    same = drift("--baseline", str(base), "--live", str(shadow_rows(tmp_path, "again", healthy, 40)))
    assert same.exit_code == 0, same.output


@pytest.mark.parametrize("alpha", ["0", "0.9"])
def test_alpha_out_of_range_is_a_usage_error(tmp_path: Path, alpha: str) -> None:
    base = write(tmp_path / "base.jsonl", BASELINE[:50])
    assert drift("--baseline", str(base), "--live", str(base), "--alpha", alpha).exit_code == 2
