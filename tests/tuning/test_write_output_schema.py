"""A tuned policy written to another folder still finds its `output.schema_file`."""

from __future__ import annotations

import json
from pathlib import Path

from cascade.policy import load_policy
from cascade.tuning.write import write_tuned_policy

POLICY = """name: p
version: "1"
output:
  schema_file: schemas/answer.json   # next to the policy
stages:
  - {name: a, provider: openai, model: gpt-4o-mini, threshold: 0.8}
  - {name: b, provider: openai, model: gpt-4o}
"""
SCHEMA = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}


def test_a_relative_schema_file_is_rewritten_for_the_new_folder(tmp_path: Path) -> None:
    (tmp_path / "mine" / "schemas").mkdir(parents=True)
    (tmp_path / "mine" / "schemas" / "answer.json").write_text(json.dumps(SCHEMA))
    source = tmp_path / "mine" / "policy.yaml"
    source.write_text(POLICY)
    output = tmp_path / "tuned" / "deep" / "policy.yaml"
    write_tuned_policy(source, output, {"a": 0.6}, ["tuned"])
    tuned = load_policy(output)
    assert tuned.output is not None and tuned.output.json_schema == SCHEMA
    assert tuned.stage("a").threshold == 0.6
    assert "# next to the policy" in output.read_text()  # the rest of the line is kept
    # Written next to the source, the path stays as the user wrote it.
    beside = tmp_path / "mine" / "tuned.yaml"
    write_tuned_policy(source, beside, {"a": 0.7}, [])
    assert "schema_file: schemas/answer.json" in beside.read_text()
