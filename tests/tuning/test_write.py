"""Writing a tuned policy keeps the user's file as written, apart from the thresholds and a header."""

from __future__ import annotations

import difflib
from pathlib import Path

import pytest

from cascade.errors import PolicyError
from cascade.policy import Policy
from cascade.tuning.write import HEADER_MARK, format_threshold, tuned_policy_text, write_tuned_policy

ROOT = Path(__file__).resolve().parents[2]


def changed(before: str, after: str) -> list[str]:
    return [
        line
        for line in difflib.unified_diff(before.splitlines(), after.splitlines(), lineterm="", n=0)
        if line[:1] in "+-" and not line.startswith(("+++", "---"))
    ]


@pytest.mark.parametrize("name", ["default.yaml", "support-bot.yaml", "coding-assistant.yaml", "current-models.yaml"])
def test_only_the_threshold_values_change(name: str) -> None:
    source = (ROOT / "policies" / name).read_text()
    policy = Policy.from_yaml(source)
    wanted = {s.name: 0.35 for s in policy.stages[:-1]}
    out = tuned_policy_text(source, wanted, ["tuned for a test"])
    assert Policy.from_yaml(out).stages[0].threshold == 0.35
    diff = changed(source, out)
    assert diff[0] == f"+{HEADER_MARK} tuned for a test"
    removed = [line for line in diff if line.startswith("-")]
    added = [line for line in diff[1:] if line.startswith("+")]
    assert len(removed) == len(added) == len(wanted) and all("threshold: 0.35" in line for line in added)
    for old, new in zip(removed, added, strict=True):  # same indentation, same trailing comment
        assert old.split("threshold:")[0][1:] == new.split("threshold:")[0][1:]
        assert old.partition("#")[2] == new.partition("#")[2]


def test_the_schema_line_stays_first_and_a_new_header_replaces_the_old() -> None:
    source = (ROOT / "policies" / "default.yaml").read_text()
    once = tuned_policy_text(source, {"mini": 0.9}, ["first", "run"])
    twice = tuned_policy_text(once, {"mini": 0.7}, ["second"])
    lines = twice.splitlines()
    assert lines[0].startswith("# yaml-language-server:") and lines[1] == f"{HEADER_MARK} second"
    assert HEADER_MARK + " first" not in twice and "threshold: 0.7            # accept" in twice


def test_anchors_flow_mappings_and_merge_keys() -> None:
    source = """name: t
version: '1'
defaults: &d
  threshold: 0.5
stages:
  - {name: a, provider: openai, model: gpt-4o-mini, threshold: 0.1}   # flow style
  - name: b
    provider: openai
    model: gpt-4o-mini
    threshold: &t 0.2
  - name: c
    provider: openai
    model: gpt-4o
"""
    out = tuned_policy_text(source, {"a": 0.25, "b": 0.75})
    assert "threshold: 0.25}   # flow style" in out and "threshold: &t 0.75" in out
    merged = source.replace("    threshold: &t 0.2\n", "    <<: *d\n")
    out = tuned_policy_text(merged, {"b": 0.00001})
    assert "threshold: 0.00001" in out  # dumped whole (a merge key has no place of its own), never as 1e-05


@pytest.mark.parametrize("value", [0.0, 1.0, 0.8, 0.1 + 0.2, 1e-7, 0.123456789012345])
def test_thresholds_are_written_exactly_and_without_exponents(value: float) -> None:
    text = format_threshold(value)
    assert "e" not in text and float(text) == value


def test_write_validates_and_moves_a_relative_schema_line(tmp_path: Path) -> None:
    out = tmp_path / "nested" / "tuned.yaml"
    policy = write_tuned_policy(ROOT / "policies" / "default.yaml", out, {"mini": 0.6, "flash": 0.9}, ["x"])
    assert [s.threshold for s in policy.stages] == [0.6, 0.9, None]
    schema = out.read_text().splitlines()[0].split("$schema=")[1]
    assert (out.parent / schema).resolve() == (ROOT / "policies" / "policy.schema.json").resolve()
    with pytest.raises(PolicyError, match="threshold"):
        write_tuned_policy(ROOT / "policies" / "default.yaml", tmp_path / "bad.yaml", {"mini": 1.5}, [])
    assert not (tmp_path / "bad.yaml").exists()


def test_a_stage_switched_off_is_written_as_never_and_read_back() -> None:
    source = (ROOT / "policies" / "default.yaml").read_text()
    out = tuned_policy_text(source, {"mini": float("inf"), "flash": 0.5})
    assert "threshold: never" in out and Policy.from_yaml(out).stages[0].threshold == float("inf")
    merged = (
        "name: t\nversion: '1'\nd: &d {threshold: 0.5}\nstages:\n"
        "  - {name: a, provider: openai, model: gpt-4o-mini, <<: *d}\n  - {name: b, provider: openai, model: gpt-4o}\n"
    )
    assert "threshold: never" in tuned_policy_text(merged, {"a": float("inf")})  # dumped whole: never, not .inf
    assert format_threshold(float("inf")) == "never"
