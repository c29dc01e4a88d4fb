"""`cascade collect`, `eval` and `tune` through the real command line (Typer's runner, in process)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog
from typer.testing import CliRunner

from cascade.cli import app, common
from cascade.engine import Cascade
from cascade.policy import Policy
from cascade.providers.base import CompletionRequest
from cascade.testing import FakeVendorServer, ScriptedProvider, judge_json, wire
from cascade.testing.fake_server import RecordedRequest
from cascade.tuning.replay import evaluate, policy_thresholds, replay_data
from cascade.tuning.traces import read_traces

ROOT = Path(__file__).resolve().parents[2]
DEMO_TRACES = str(ROOT / "examples" / "traces" / "demo_traces.jsonl")
DEFAULT = str(ROOT / "policies" / "default.yaml")
WIDE = {"COLUMNS": "200"}


@pytest.fixture(autouse=True)
def _restore_structlog() -> Iterator[None]:
    yield
    structlog.reset_defaults()


def invoke(*args: str) -> Any:
    return CliRunner().invoke(app, list(args), env=WIDE)


def write_lines(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


ROWS = [
    {"id": "a", "query": "What is 6 x 7?", "reference": "42", "grader": "numeric"},
    {"id": "b", "query": "Capital of Australia?", "reference": "Canberra"},
    {"id": "c", "query": "Say hello", "note": "no reference"},
]


def openai_policy(tmp_path: Path, url: str) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(
        "# two OpenAI stages against the local fake server\n"
        "name: two\nversion: '1'\n"
        "stages:\n"
        "  - {name: mini, provider: openai, model: gpt-4o-mini, threshold: 0.8, retries: 0}\n"
        "  - {name: big, provider: openai, model: gpt-4o, retries: 0}\n"
        f"providers:\n  openai: {{base_url: '{url}/v1'}}\n"
    )
    return path


def fake_openai(request: RecordedRequest) -> wire.FakeReply:
    """Judge replies by answer, answers by model: the small model is right about arithmetic only."""
    text = request.body["messages"][-1]["content"]
    if "<<<ANSWER " in text:
        return wire.openai_chat(judge_json(9 if "42" in text else 5), prompt_tokens=300, completion_tokens=12)
    small = request.body["model"] == "gpt-4o-mini"
    answer = {"6 x 7": "42", "Australia": "Sydney" if small else "Canberra"}
    reply = next((v for k, v in answer.items() if k in text), "Hello!")
    return wire.openai_chat(reply, prompt_tokens=20, completion_tokens=3, model=request.body["model"])


def test_collect_against_a_fake_vendor_then_resume(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "local-test-key")
    queries, out = write_lines(tmp_path / "q.jsonl", ROWS), tmp_path / "traces.jsonl"
    with FakeVendorServer(responder=fake_openai) as server:
        policy = openai_policy(tmp_path, server.url)
        args = ["collect", "--policy", str(policy), "--input", str(queries), "--output", str(out)]
        result = invoke(*args, "--grader", "exact", "--concurrency", "3")
        assert result.exit_code == 0, result.output
        assert "3 traced, 0 failed" in result.output and len(server.requests) == 12  # 3 queries x 2 stages x 2
        traces = {t.id: t for t in read_traces(out)}
        assert traces["a"].stages["mini"].correct is True and traces["a"].stages["mini"].confidence == 0.9
        assert traces["b"].stages["mini"].correct is False and traces["b"].stages["big"].correct is True
        assert traces["c"].stages["big"].correct is None and traces["c"].model_extra == {"note": "no reference"}
        assert all(s.cost_usd > s.judge_cost_usd > 0 for t in traces.values() for s in t.stages.values())  # type: ignore[operator]

        # An interruption cut the output in the middle of its second line: the rerun redoes b and c only.
        lines = out.read_text().splitlines(keepends=True)
        out.write_text(lines[0] + lines[1][:25])
        done = {json.loads(lines[0])["id"]}
        result = invoke(*args, "--grader", "exact")
        assert result.exit_code == 0, result.output
        assert "resuming: 1 of 3" in result.output and len(server.requests) == 12 + 2 * 4
        ids = [json.loads(line)["id"] for line in out.read_text().splitlines()]
        assert sorted(ids) == ["a", "b", "c"] and ids[0] in done
        assert invoke(*args).exit_code == 0 and len(server.requests) == 20  # nothing left to do


def scripted_router(policy: Path, delay_s: float = 0.02) -> tuple[Cascade, dict[str, ScriptedProvider]]:
    def reply(request: CompletionRequest) -> Any:
        text = request.messages[-1].content
        return judge_json(7) if "<<<ANSWER " in text else f"{request.model} says hi"

    providers = {name: ScriptedProvider(name, reply, delay_s=delay_s) for name in ("openai", "google", "anthropic")}
    return Cascade(Policy.from_file(policy), providers=providers), providers


def test_collect_is_concurrent_and_a_failed_row_is_retried(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    routers: list[dict[str, ScriptedProvider]] = []

    def load(policy: Path) -> Cascade:
        router, providers = scripted_router(policy)
        routers.append(providers)
        return router

    monkeypatch.setattr(common, "load_router", load)
    for var in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY"):
        monkeypatch.setenv(var, "scripted-test-key")  # the vendors' check before the first query looks for them
    rows = [{"id": str(i), "query": f"question {i}"} for i in range(8)] + [{"id": "empty", "query": "   "}]
    queries, out = write_lines(tmp_path / "q.jsonl", rows), tmp_path / "t.jsonl"
    args = ["collect", "--policy", DEFAULT, "--input", str(queries), "--output", str(out), "-c", "4"]
    result = invoke(*args)
    assert result.exit_code == 1 and "empty: query is empty" in result.output
    traces = read_traces(out)
    assert len(traces) == 8 and set(traces[0].stages) == {"mini", "flash", "sonnet"}
    assert routers[0]["google"].max_in_flight > 1  # queries run concurrently
    assert invoke(*args).exit_code == 1 and len(read_traces(out)) == 8  # the failed row is tried again, alone
    assert sum(len(p.requests) for p in routers[1].values()) == 0


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--grader", "fuzzy"], "Invalid value for '--grader'"),
        (["--grader", "llm", "--grader-model", "nope-1"], "no price for grader model 'nope-1'"),
        (["--grader", "llm", "--grader-provider", "acme"], "unknown grader provider 'acme'"),
        ([], "row d: a reference is a string, a number or a list of strings"),
    ],
)
def test_collect_usage_errors_exit_2_before_any_call(tmp_path: Path, extra: list[str], message: str) -> None:
    queries = write_lines(tmp_path / "q.jsonl", ROWS)
    if not extra:
        queries = write_lines(tmp_path / "q.jsonl", [*ROWS, {"id": "d", "query": "q", "reference": {"a": 1}}])
    result = invoke("collect", "--policy", DEFAULT, "--input", str(queries), "--output", str(tmp_path / "o"), *extra)
    assert result.exit_code == 2 and message in result.output and "Traceback" not in result.output
    assert not (tmp_path / "o").exists()


def test_eval_replays_the_policy(tmp_path: Path) -> None:
    result = invoke("eval", "--policy", DEFAULT, "--traces", DEMO_TRACES)
    assert result.exit_code == 0, result.output
    for text in ("cascade", "mini alone", "sonnet alone", "oracle", "Answered at each stage", "37.7%", "60.0%"):
        assert text in result.output
    data = json.loads(invoke("eval", "--policy", DEFAULT, "--traces", DEMO_TRACES, "--json").stdout)
    policy = Policy.from_file(DEFAULT)
    expected = evaluate(replay_data(policy, read_traces(Path(DEMO_TRACES))), policy_thresholds(policy))
    assert data["cascade"]["cost_per_query"] == pytest.approx(expected.cascade.cost_per_query)
    assert data["cascade"]["shares"] == {"mini": 0.6, "flash": 0.2, "sonnet": 0.2}
    assert data["saving_against_last"] == pytest.approx(expected.saving_against(expected.last))


def test_eval_labels_from_a_file_or_a_grader(tmp_path: Path) -> None:
    stage = {"answer": "Canberra", "confidence": 0.9, "cost_usd": 0.001}
    row = {
        "id": "1",
        "query": "Capital?",
        "reference": "canberra",
        "stages": dict.fromkeys(("mini", "flash", "sonnet"), stage),
    }
    traces = write_lines(tmp_path / "t.jsonl", [row])
    result = invoke("eval", "--policy", DEFAULT, "--traces", str(traces))
    assert result.exit_code == 2 and "3 answers have no `correct` label" in result.output
    result = invoke("eval", "--policy", DEFAULT, "--traces", str(traces), "--grader", "exact", "--json")
    assert result.exit_code == 0 and json.loads(result.stdout)["cascade"]["quality"] == 1.0
    labels = write_lines(tmp_path / "l.jsonl", [{"id": "1", "correct": {"mini": False, "flash": False, "sonnet": 0.5}}])
    result = invoke("eval", "--policy", DEFAULT, "--traces", str(traces), "--labels", str(labels), "--json")
    assert result.exit_code == 0 and json.loads(result.stdout)["cascade"]["quality"] == 0.0
    assert json.loads(result.stdout)["oracle"]["quality"] == 0.5
    result = invoke("eval", "--policy", DEFAULT, "--traces", str(traces), "--grader", "llm")
    assert result.exit_code == 2 and "cascade collect --grader llm" in result.output


def test_eval_with_a_bad_policy_or_traces_exits_2_without_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(Path(DEFAULT).read_text().replace("threshold: 0.7", "threshold: 1.5"))
    result = invoke("eval", "--policy", str(bad), "--traces", DEMO_TRACES)
    assert result.exit_code == 2 and "stages[1].threshold" in result.output and "Traceback" not in result.output
    result = invoke("eval", "--policy", DEFAULT, "--traces", str(tmp_path / "none.jsonl"))
    assert result.exit_code == 2 and "cannot read" in result.output


def test_tune_writes_the_policy_with_its_evidence(tmp_path: Path) -> None:
    out, plot = tmp_path / "tuned.yaml", tmp_path / "frontier.png"
    args = ["tune", "--policy", DEFAULT, "--traces", DEMO_TRACES, "--target", "0.95", "--output", str(out)]
    result = invoke(*args, "--holdout", "0.25", "--plot", str(plot))
    assert result.exit_code == 0, result.output
    for text in ("Thresholds", "current policy", "guarantee:", "Held out: 5 queries held out: 25%, seed 0", "wrote"):
        assert text in result.output
    header = [line for line in out.read_text().splitlines() if line.startswith("# cascade tune:")]
    assert len(header) == 8
    assert "sha256" in header[1] and "quality >= 0.9500 = 0.95 x sonnet alone" in header[2]
    assert header[3].startswith("# cascade tune: method: learn-then-test at confidence 0.95")
    # the thresholds learn from every label; the held-out figures are reported beside them
    assert header[4].startswith("# cascade tune: tuned on all 20 queries: quality") and "lower bound" in header[4]
    assert "held out (5 queries held out: 25%, seed 0" in header[6]
    assert header[7].endswith(f"--confidence 0.95 --holdout 0.25 --output {out}")
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and plot.stat().st_size > 10_000
    tuned = Policy.from_file(out)
    assert tuned.routing == Policy.from_file(DEFAULT).routing  # everything but the thresholds is kept


def test_tune_json_and_cross_validation(tmp_path: Path) -> None:
    args = ["tune", "--policy", DEFAULT, "--traces", DEMO_TRACES, "--output", str(tmp_path / "t.yaml")]
    data = json.loads(invoke(*args, "--folds", "5", "--confidence", "0", "--json").stdout)
    assert data["method"] == "exact" and data["feasible"] and data["tuned_on"] == 20
    assert data["held_out"]["how"] == "5-fold cross-validation, seed 0" and data["held_out"]["met"] is True
    assert data["in_sample"]["cascade"]["quality"] >= data["need"] == pytest.approx(0.99)


@pytest.mark.parametrize(
    ("extra", "code", "message"),
    [
        (["--target", "1.01", "--relative-to", "absolute"], 2, "an absolute --target is a quality in [0, 1]"),
        (["--folds", "1"], 2, "--folds needs at least 2 folds"),
        (["--target", "1.5", "--holdout", "0"], 1, "no setting reaches quality 1.5000"),
    ],
)
def test_tune_failures(tmp_path: Path, extra: list[str], code: int, message: str) -> None:
    out = tmp_path / "t.yaml"
    result = invoke("tune", "--policy", DEFAULT, "--traces", DEMO_TRACES, "--output", str(out), *extra)
    assert result.exit_code == code and message in result.output and "Traceback" not in result.output
    assert not out.exists()


def test_help_lists_the_commands_and_imports_nothing_heavy() -> None:
    result = invoke("--help")
    assert all(name in result.output for name in ("collect", "eval", "tune"))
    code = (
        "import sys; from cascade.cli import app; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('numpy', 'matplotlib', 'ruamel') "
        "or m.startswith('cascade.tuning')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_eval_json_has_no_float_noise() -> None:
    result = invoke("eval", "--policy", DEFAULT, "--traces", DEMO_TRACES, "--json")
    assert result.exit_code == 0
    assert not re.search(r"\d\.\d{13,}", result.stdout)  # 0.000480105, not 0.00048010500000000004
    assert json.loads(result.stdout)["cascade"]["cost_per_query"] == pytest.approx(0.000480105)
