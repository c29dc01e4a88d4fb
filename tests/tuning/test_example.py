"""The shipped example: demo traces, and the tuned policy that one documented command makes from them."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import structlog
from typer.testing import CliRunner

from cascade.cli import app
from cascade.demo import demo_queries
from cascade.policy import Policy
from cascade.tuning.traces import read_traces

ROOT = Path(__file__).resolve().parents[2]
TRACES = ROOT / "examples" / "traces" / "demo_traces.jsonl"
TUNED = ROOT / "policies" / "tuned-demo.yaml"


def test_the_demo_traces_cover_every_demo_query_and_stage() -> None:
    traces = read_traces(TRACES)
    assert [t.id for t in traces] == [q.id for q in demo_queries()]
    assert [t.query for t in traces] == [q.query for q in demo_queries()]
    for trace, query in zip(traces, demo_queries(), strict=True):
        assert set(trace.stages) == {"mini", "flash", "sonnet"}
        for name, reply in query.replies.items():  # the scripted answers are the demo's own
            assert trace.stages[name].answer == reply["answer"]
            if "score" in reply:
                assert trace.stages[name].confidence == reply["score"] / 10
        assert all(s.correct is not None for s in trace.stages.values())


def test_the_tuned_demo_policy_is_reproduced_by_its_documented_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(ROOT)  # the command names its files relative to the repository
    shipped = TUNED.read_text()
    command = re.search(r"^# cascade tune: reproduce: cascade (tune .*)$", shipped, re.MULTILINE)
    assert command is not None
    args = command.group(1).split()
    out = tmp_path / "tuned-demo.yaml"
    args[args.index("--output") + 1] = str(out)
    result = CliRunner().invoke(app, args, env={"COLUMNS": "200"})
    structlog.reset_defaults()
    assert result.exit_code == 0, result.output

    def stable(text: str) -> str:  # the date and the schema path depend on when and where it runs
        text = re.sub(r"on \d{4}-\d{2}-\d{2}", "on DATE", text)
        text = re.sub(r"--output \S+", "--output OUT", text)
        return re.sub(r"\$schema=\S+", "$schema=SCHEMA", text)

    assert stable(out.read_text()) == stable(shipped)
    assert Policy.from_file(TUNED).stage("flash").threshold == 0.5
    assert (ROOT / "docs" / "tuning.md").read_text().count(command.group(0).split("reproduce: ")[1]) == 1
