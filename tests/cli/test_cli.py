"""The real `cascade` entry point, run in-process with Typer's runner against cassettes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cascade.cli import app
from cascade.policy import Policy
from cascade.testing import wire

ROOT = Path(__file__).resolve().parents[2]
DEFAULT = str(ROOT / "policies" / "default.yaml")
WIDE = {"COLUMNS": "200"}


def invoke(*args: str, input: str | None = None):
    return CliRunner().invoke(app, list(args), input=input, env=WIDE)


def verdict(score: int, reason: str) -> wire.FakeReply:
    return wire.openai_chat(json.dumps({"score": score, "reason": reason}), prompt_tokens=300, completion_tokens=16)


# The replies one Canberra question gets: the answer, then the judge's verdict.
CANBERRA = (
    wire.openai_chat("Canberra.", prompt_tokens=14, completion_tokens=3),
    verdict(10, "Canberra is the capital."),
)


def test_help_lists_every_command() -> None:
    result = invoke("--help")
    assert result.exit_code == 0
    for command in ("demo", "ask", "run", "policy"):
        assert command in result.output


def test_help_imports_no_engine_or_sdk() -> None:
    code = (
        "import sys; from cascade.cli import app; print(sorted(m for m in sys.modules if m in "
        "('cascade.engine', 'pydantic', 'openai', 'anthropic', 'google.genai', 'rich.table')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_demo_runs_offline_and_shows_routes_and_savings() -> None:
    result = invoke("demo")
    assert result.exit_code == 0, result.output
    assert "replayed" in result.output
    for i in range(1, 21):
        assert f"q{i:02d}" in result.output
    assert "Saved" in result.output and "%" in result.output
    assert "gemini-1.5-flash" in result.output and "claude-3-5-sonnet-20241022" in result.output
    assert "[rule:multi-file-coding]" in result.output and "escalation rate" in result.output


def test_policy_check_prints_stages_and_prices() -> None:
    files = sorted(str(p) for p in (ROOT / "policies").glob("*.yaml"))
    result = invoke("policy", "check", *files)
    assert result.exit_code == 0, result.output
    assert "gpt-4o-mini" in result.output and "valid" in result.output and "$" in result.output


def test_policy_check_reports_a_bad_policy_without_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text((ROOT / "policies" / "default.yaml").read_text().replace("threshold: 0.7", "threshold: 1.5"))
    result = invoke("policy", "check", str(bad))
    assert result.exit_code == 2
    assert "stages[1].threshold" in result.output and "Traceback" not in result.output


def test_policy_schema_is_the_committed_schema() -> None:
    result = invoke("policy", "schema")
    assert result.exit_code == 0
    assert json.loads(result.output) == Policy.model_json_schema()
    assert json.loads((ROOT / "policies" / "policy.schema.json").read_text()) == json.loads(result.output)


@pytest.mark.vcr
@pytest.mark.fake_vendor("openai", *CANBERRA)
def test_ask_prints_the_answer_and_the_attempts() -> None:
    result = invoke("ask", "What is the capital of Australia?", "--policy", DEFAULT)
    assert result.exit_code == 0, result.output
    assert result.output.startswith("Canberra.")
    assert "judge" in result.output and "10.0/10" in result.output and "Canberra is the capital." in result.output


@pytest.mark.vcr
@pytest.mark.fake_vendor("openai", *CANBERRA)
def test_ask_json_from_stdin() -> None:
    result = invoke("ask", "-", "--policy", DEFAULT, "--json", input="What is the capital of Australia?")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["answer"] == "Canberra." and data["confidence"] == 1.0 and len(data["attempts"]) == 2


def test_ask_without_a_key_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    result = invoke("ask", "hello", "--policy", DEFAULT)
    assert result.exit_code == 2
    assert "OPENAI_API_KEY" in result.output and "cascade demo" in result.output


def test_ask_with_a_bad_policy_exits_2_without_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nversion: 1\nstages: []\n")
    result = invoke("ask", "hello", "--policy", str(bad))
    assert result.exit_code == 2
    assert "stages" in result.output and "Traceback" not in result.output


def test_ask_with_an_empty_query_is_a_usage_error() -> None:
    result = invoke("ask", "   ", "--policy", DEFAULT)
    assert result.exit_code == 2 and "empty" in result.output


_DOWN = wire.openai_error(500, "The server had an error.", type_="server_error", code=None)
_GDOWN = wire.gemini_error(500, "INTERNAL", "An internal error has occurred.")
_ADOWN = wire.anthropic_error(529, "overloaded_error", "Overloaded")


@pytest.mark.vcr
@pytest.mark.fake_vendor("openai", _DOWN, _DOWN, _DOWN)
@pytest.mark.fake_vendor("google", _GDOWN, _GDOWN, _GDOWN)
@pytest.mark.fake_vendor("anthropic", _ADOWN, _ADOWN, _ADOWN)
def test_ask_when_every_tier_fails_prints_the_trace_and_exits_1(tmp_path: Path) -> None:
    fast = tmp_path / "fast.yaml"  # same cascade, no waiting between retries
    fast.write_text(Path(DEFAULT).read_text())
    result = invoke("ask", "What is the capital of Australia?", "--policy", str(fast))
    assert result.exit_code == 1
    assert result.output.count("ServerError") == 6 and result.output.count("OverloadedError") == 3
    assert "no answer" in result.output


QUERIES = [
    {"id": "a", "query": "What is the capital of Australia?"},
    {"id": "b", "query": "What is the default port for PostgreSQL?"},
    {"id": "c", "query": "Who wrote The Left Hand of Darkness?"},
]


def _batch_script() -> list[wire.FakeReply]:
    replies = []
    for answer in ("Canberra.", "5432.", "Ursula K. Le Guin."):
        replies += [wire.openai_chat(answer, prompt_tokens=14, completion_tokens=4), verdict(9, "Correct.")]
    return replies


@pytest.mark.vcr
@pytest.mark.fake_vendor("openai", *_batch_script())
def test_run_writes_every_result_and_a_summary(tmp_path: Path) -> None:
    source, out = tmp_path / "q.jsonl", tmp_path / "out" / "r.jsonl"
    source.write_text("".join(json.dumps(q) + "\n" for q in QUERIES))
    result = invoke("run", "--policy", DEFAULT, "--input", str(source), "--output", str(out), "--concurrency", "1")
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(r["id"] for r in rows) == ["a", "b", "c"] and all(r["ok"] for r in rows)
    assert {r["result"]["answer"] for r in rows} == {"Canberra.", "5432.", "Ursula K. Le Guin."}
    assert "saving" in result.output and "3 answered, 0 failed" in result.output


@pytest.mark.vcr
@pytest.mark.fake_vendor("openai", *_batch_script()[2:])
def test_an_interrupted_run_resumes_without_repeating_or_losing_rows(tmp_path: Path) -> None:
    source, out = tmp_path / "q.jsonl", tmp_path / "r.jsonl"
    source.write_text("".join(json.dumps(q) + "\n" for q in QUERIES))
    # What an interrupted run leaves: row "a" complete, row "b" cut off mid-write.
    out.write_text(json.dumps({"id": "a", "ok": True, "result": {"answer": "Canberra."}}) + "\n" + '{"id": "b", "ok"')
    result = invoke("run", "--policy", DEFAULT, "--input", str(source), "--output", str(out), "--concurrency", "2")
    assert result.exit_code == 0, result.output
    assert "resuming: 1 of 3" in result.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert next(r["id"] for r in rows) == "a" and sorted(r["id"] for r in rows) == ["a", "b", "c"]


def test_run_rejects_a_bad_input_line(tmp_path: Path) -> None:
    source = tmp_path / "q.jsonl"
    source.write_text('{"id": "a", "query": "hi"}\nnot json\n')
    result = invoke("run", "--policy", DEFAULT, "--input", str(source), "--output", str(tmp_path / "r.jsonl"))
    assert result.exit_code == 2 and "q.jsonl:2" in result.output


@pytest.mark.vcr
@pytest.mark.fake_vendor("openai", *CANBERRA)
def test_verbose_shows_structlog_events() -> None:
    result = invoke("ask", "What is the capital of Australia?", "--policy", DEFAULT, "--verbose")
    assert result.exit_code == 0
    assert "cascade.answer" in result.output and "cascade.done" in result.output
