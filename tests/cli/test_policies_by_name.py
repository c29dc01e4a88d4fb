"""A new user's policies (issue 13): shipped ones found by name on every command, `policy list`, a path still a
path, commands that call vendors on the live policy by default, and install hints that work when pasted.

The vendor commands run against a local fake of all three vendors (`FakeVendorServer` on 127.0.0.1), reached
through the vendors' usual base-URL variables, as a user's own environment would point them.
"""

from __future__ import annotations

import json
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

from cascade.errors import MissingDependencyError
from cascade.policy import load_policy, shipped_policies
from cascade.testing import FakeVendorServer, wire
from cascade.testing.fake_server import RecordedRequest
from tests.cli.fakes import invoke, read_rows, write_rows

ROOT = Path(__file__).resolve().parents[2]
LIVE = load_policy("current-models")
QUERIES = [
    {"id": "a", "query": "What is 6 x 7?", "reference": "answer"},
    {"id": "b", "query": "Name the capital of Australia.", "reference": "answer"},
]


def three_vendors(request: RecordedRequest) -> wire.FakeReply:
    """Every vendor answers `answer`; the OpenAI judge is sure (a score token of 9, and its JSON verdict)."""
    if request.vendor == "openai" and "<<<ANSWER " in json.dumps(request.body):
        return wire.openai_chat("9", prompt_tokens=300, completion_tokens=1, top_logprobs={"9": 0.0})
    if request.vendor == "openai":
        return wire.openai_chat("answer", prompt_tokens=20, completion_tokens=2, model=request.body["model"])
    if request.vendor == "google":
        return wire.gemini_content("answer", prompt_tokens=20, output_tokens=2, model=request.model or "gemini")
    return wire.anthropic_message("answer", input_tokens=20, output_tokens=2, model=request.body["model"])


@pytest.fixture
def vendors(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeVendorServer]:
    with FakeVendorServer(responder=three_vendors) as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.url + "/v1")
        monkeypatch.setenv("ANTHROPIC_BASE_URL", server.url)
        monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", server.url)
        for var in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY"):
            monkeypatch.setenv(var, "local-test-key")
        yield server


def models_asked(server: FakeVendorServer) -> set[str]:
    return {r.body.get("model") or r.model or "" for r in server.requests}


def test_policy_list_shows_every_shipped_policy_on_one_line_each() -> None:
    result = invoke("policy", "list")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    shipped = shipped_policies()
    assert len(lines) == len(shipped) == len(list((ROOT / "policies").glob("*.yaml")))
    for line, (name, description) in zip(lines, shipped.items(), strict=True):
        assert line.split()[0] == name and line.endswith(description)
    assert any(line.startswith("current-models ") for line in lines)


def test_policy_check_takes_shipped_names_and_paths_together(tmp_path: Path) -> None:
    mine = tmp_path / "mine.yaml"
    mine.write_text("name: mine\nversion: '1'\nstages:\n  - {name: only, provider: openai, model: gpt-4o-mini}\n")
    result = invoke("policy", "check", "current-models", "support-bot", str(mine))
    assert result.exit_code == 0, result.output
    assert "current-models: current-models v2026.11 - valid" in result.output and "gpt-5.4-nano" in result.output
    assert "support-bot: support-bot" in result.output and "mine v1 - valid" in result.output


def test_a_path_is_a_path_and_a_missing_one_is_not_replaced_by_a_shipped_policy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    # A file in the working folder named like a shipped policy is the file, not the shipped policy.
    Path("default").write_text("name: here\nversion: '1'\nstages:\n  - {name: only, provider: openai, model: gpt-4o}\n")
    result = invoke("policy", "check", "default")
    assert result.exit_code == 0 and "default: here v1 - valid" in result.output
    missing = invoke("policy", "check", "default.yaml")
    assert missing.exit_code == 2 and "no such file" in missing.output and "loads as 'default'" in missing.output
    unknown = invoke("policy", "check", "no-such-policy")
    assert unknown.exit_code == 2 and "current-models" in unknown.output and "Traceback" not in unknown.output


def test_ask_defaults_to_the_live_policy(vendors: FakeVendorServer) -> None:
    result = invoke("ask", "What is 6 x 7?", "--json")
    assert result.exit_code == 0, result.output
    answered = json.loads(result.output)
    assert answered["policy"]["name"] == "current-models" and answered["model"] == LIVE.stages[0].model
    assert models_asked(vendors) == {LIVE.stages[0].model, LIVE.judge.model}


def test_run_defaults_to_the_live_policy(vendors: FakeVendorServer, tmp_path: Path) -> None:
    source, out = write_rows(tmp_path / "q.jsonl", QUERIES), tmp_path / "r.jsonl"
    result = invoke("run", "-i", str(source), "-o", str(out))
    assert result.exit_code == 0, result.output
    assert {row["result"]["policy"]["name"] for row in read_rows(out)} == {"current-models"}
    assert "gpt-4o-mini" not in models_asked(vendors)


def test_collect_defaults_to_the_live_policy_and_eval_and_tune_take_its_name(
    vendors: FakeVendorServer, tmp_path: Path
) -> None:
    source, traces = write_rows(tmp_path / "q.jsonl", QUERIES), tmp_path / "traces.jsonl"
    result = invoke("collect", "-i", str(source), "-o", str(traces), "--grader", "exact")
    assert result.exit_code == 0, result.output
    assert {stage.model for stage in LIVE.stages} <= models_asked(vendors)
    assert set(read_rows(traces)[0]["stages"]) == {stage.name for stage in LIVE.stages}
    calls = len(vendors.requests)
    evaluated = invoke("eval", "--traces", str(traces), "--policy", "current-models", "--json")
    assert evaluated.exit_code == 0, evaluated.output
    assert json.loads(evaluated.output)["cascade"]["quality"] == 1.0
    tuned = tmp_path / "tuned.yaml"
    result = invoke("tune", "--traces", str(traces), "--policy", "current-models", "--holdout", "0", "-o", str(tuned))
    assert result.exit_code == 0, result.output
    assert load_policy(tuned).name == "current-models" and "--policy current-models" in tuned.read_text()
    assert len(vendors.requests) == calls  # eval and tune replay: no vendor call


def test_the_demo_keeps_the_design_s_policy() -> None:
    from cascade.demo import demo_policy

    assert demo_policy().name == load_policy("default").name != LIVE.name


def test_the_demo_s_missing_vcrpy_hint_is_a_command_that_installs_it(monkeypatch: pytest.MonkeyPatch) -> None:
    from cascade.demo import run_demo

    monkeypatch.setitem(sys.modules, "vcr", None)  # as if vcrpy were not installed
    with pytest.raises(MissingDependencyError) as raised:
        run_demo()
    assert "pip install 'cascade-router[demo]'" in str(raised.value) and "'vcrpy'" in str(raised.value)
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert any(requirement.startswith("vcrpy") for requirement in extras[raised.value.extra])
