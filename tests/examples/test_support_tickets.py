"""examples/support_tickets runs end to end, offline: collect, eval, tune, then the tuned policy from Python."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

from cascade.policy import load_policy

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "support_tickets"


def test_the_support_ticket_example(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = importlib.util.spec_from_file_location("support_tickets_run", EXAMPLE / "run.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    try:
        module.main(["--workdir", str(tmp_path)])
    finally:
        sys.path.remove(str(EXAMPLE))
    printed = capsys.readouterr().out
    tickets = [json.loads(line) for line in (EXAMPLE / "tickets.jsonl").read_text().splitlines()]
    traces = [json.loads(line) for line in (tmp_path / "traces.jsonl").read_text().splitlines()]
    assert sorted(t["id"] for t in traces) == sorted(t["id"] for t in tickets)
    by_id = {t["id"]: t["reference"] for t in tickets}
    for trace in traces:
        for stage in trace["stages"].values():
            if stage.get("output") is not None:  # a structured answer, graded field by field
                assert stage["correct"] == (stage["output"] == by_id[trace["id"]])
            else:  # an answer outside the schema: billed, escalated, not answered
                assert stage["answer"] is None and stage["error"].startswith("OutputSchemaError")
    assert any(s.get("output") is None for t in traces for s in t["stages"].values())
    tuned = load_policy(tmp_path / "tuned.yaml")
    assert tuned.output is not None and tuned.output.json_schema == json.loads(
        (EXAMPLE / "ticket.schema.json").read_text()
    )
    assert printed.count(" via nano") == 3  # three tickets classified with the tuned policy, all entering at nano


def test_the_committed_schema_is_the_models() -> None:
    sys.path.insert(0, str(EXAMPLE))
    try:
        from ticket import Ticket
    finally:
        sys.path.remove(str(EXAMPLE))
    assert json.loads((EXAMPLE / "ticket.schema.json").read_text()) == Ticket.model_json_schema()
