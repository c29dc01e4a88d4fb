"""`cascade policy check` says which stage can serve structured output and tools, and how each judge is asked."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from cascade.cli import app

POLICY = """name: mixed
version: "1"
stages:
  - {name: local, provider: ollama, model: "llama3.2:3b", threshold: 0.8, features: {tools: false}}
  - {name: old, provider: openai, model: gpt-3.5-turbo, threshold: 0.8}
  - {name: claude, provider: anthropic, model: claude-sonnet-4-6}
judge: {provider: ollama, model: "llama3.2:3b", method: logprobs}
providers:
  ollama: {kind: openai-compatible, base_url: "http://127.0.0.1:11434/v1"}
prices:
  "llama3.2:3b": {input: 0, output: 0}
"""


def test_features_and_judge_methods_are_shown(tmp_path: Path) -> None:
    path = tmp_path / "mixed.yaml"
    path.write_text(POLICY)
    result = CliRunner().invoke(app, ["policy", "check", str(path)], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    rows = {line.split("|")[1].strip(): line for line in result.output.splitlines() if line.startswith("| ")}
    assert "no (policy)" in rows["local"] and "json: no log-probabilities there" in rows["local"]
    assert "no (gpt-3.5 has JSON mode, not schemas)" in rows["old"]
    assert rows["claude"].count("yes") == 2


def test_a_named_provider_of_a_vendor_kind_keeps_that_vendors_gaps(tmp_path: Path) -> None:
    text = POLICY.replace("provider: openai, model: gpt-3.5-turbo", "provider: gateway, model: gpt-3.5-turbo")
    gateway = '  gateway: {kind: openai, base_url: "https://gateway.example/v1"}\n'
    text = text.replace("providers:\n", "providers:\n" + gateway)
    path = tmp_path / "gateway.yaml"
    path.write_text(text)
    result = CliRunner().invoke(app, ["policy", "check", str(path)], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    row = next(line for line in result.output.splitlines() if line.startswith("| old "))
    assert "no (gpt-3.5 has JSON mode, not schemas)" in row
