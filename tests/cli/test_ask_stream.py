"""`cascade ask --stream`: the answer printed as it arrives, a withdrawn draft marked, then the attempts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cascade.cli import app
from cascade.testing import wire

ROOT = Path(__file__).resolve().parents[2]
DEFAULT = str(ROOT / "policies" / "default.yaml")


def verdict(score: int, reason: str) -> wire.FakeReply:
    return wire.openai_chat(json.dumps({"score": score, "reason": reason}), prompt_tokens=300, completion_tokens=12)


def invoke(*args: str) -> object:
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


@pytest.mark.vcr
@pytest.mark.fake_vendor(
    "openai",
    wire.openai_stream(["Sydney ", "is the capital."], prompt_tokens=14, completion_tokens=5),
    verdict(2, "Sydney is not the capital."),
    verdict(9, "Canberra is right."),
)
@pytest.mark.fake_vendor(
    "google", wire.gemini_stream(["Canberra ", "is the capital."], prompt_tokens=14, output_tokens=5)
)
def test_a_rejected_draft_is_marked_withdrawn_and_the_next_stage_streams() -> None:
    result = invoke(
        "ask", "What is the capital of Australia?", "--policy", DEFAULT, "--stream", "--mode", "speculative"
    )
    assert result.exit_code == 0, result.output  # type: ignore[attr-defined]
    out: str = result.output  # type: ignore[attr-defined]
    assert out.index("Sydney is the capital.") < out.index("withdrawn (mini") < out.index("Canberra is the capital.")
    assert "judge" in out and "9.0/10" in out  # the attempts follow


def test_mode_without_stream_is_a_usage_error() -> None:
    result = CliRunner().invoke(app, ["ask", "hi", "--policy", DEFAULT, "--mode", "final"])
    assert result.exit_code == 2 and "--mode goes with --stream" in result.output
