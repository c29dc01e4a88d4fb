"""The trace format: validation, unknown fields kept, labels merged, clear errors with line numbers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cascade.tuning.traces import (
    StageTrace,
    Trace,
    TraceError,
    check_complete,
    merge_labels,
    read_labels,
    read_traces,
    traces_sha256,
)

ROW = {
    "id": "q1",
    "query": "What is 2+2?",
    "team": "support",
    "stages": {
        "mini": {"answer": "4", "confidence": 0.9, "cost_usd": 0.0001, "correct": True, "latency_s": 0.4},
        "big": {"answer": None, "confidence": 0.0, "cost_usd": 0.0, "error": "ServerError: 500"},
    },
}


def write(path: Path, *rows: object) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def test_unknown_fields_are_kept_and_written_back(tmp_path: Path) -> None:
    trace = read_traces(write(tmp_path / "t.jsonl", ROW))[0]
    again = json.loads(trace.to_json())
    assert again["team"] == "support" and again["stages"]["mini"]["latency_s"] == 0.4
    assert again["stages"]["big"]["answer"] is None and "correct" not in again["stages"]["big"]
    assert Trace.model_validate_json(trace.to_json()) == trace


@pytest.mark.parametrize(("value", "quality"), [(True, 1.0), (False, 0.0), (0.25, 0.25), (1, 1.0)])
def test_correct_is_a_bool_or_a_score(value: object, quality: float) -> None:
    stage = StageTrace.model_validate({"answer": "x", "confidence": 1, "cost_usd": 0, "correct": value})
    assert stage.quality() == quality


@pytest.mark.parametrize("value", [1.5, -0.1, "yes"])
def test_a_bad_label_is_refused(value: object) -> None:
    with pytest.raises(ValueError, match="correct"):
        StageTrace.model_validate({"answer": "x", "confidence": 1, "cost_usd": 0, "correct": value})


def test_a_failed_stage_is_worth_nothing_and_needs_no_label() -> None:
    stage = StageTrace(answer=None, confidence=0.0, cost_usd=0.001, judge_cost_usd=0.0004)
    assert stage.quality() == 0.0 and stage.answer_cost() == pytest.approx(0.0006)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("not json", r"t.jsonl:2: each line must be a JSON object"),
        ('{"id": "x", "stages": {"mini": {"answer": "a", "confidence": 2, "cost_usd": 0}}}', r":2: stages.mini.conf"),
        ('{"id": "q1", "stages": {}}', r":2: duplicate id 'q1'"),
        ('{"id": "x", "stages": {"mini": {"answer": "a",', r":2: not JSON"),
    ],
)
def test_errors_name_the_line(tmp_path: Path, line: str, message: str) -> None:
    with pytest.raises(TraceError, match=message):
        read_traces(write(tmp_path / "t.jsonl", ROW, line))


def test_an_empty_or_missing_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(TraceError, match="no traces"):
        read_traces(write(tmp_path / "t.jsonl", ""))
    with pytest.raises(TraceError, match="cannot read"):
        read_traces(tmp_path / "missing.jsonl")


def test_labels_from_a_file_win_and_unknown_ids_are_counted(tmp_path: Path) -> None:
    traces = read_traces(write(tmp_path / "t.jsonl", ROW))
    labels = read_labels(
        write(tmp_path / "l.jsonl", {"id": "q1", "correct": {"mini": 0.5}}, {"id": "zz", "correct": {}})
    )
    merged, unknown = merge_labels(traces, labels)
    assert merged[0].stages["mini"].correct == 0.5 and unknown == 1
    with pytest.raises(TraceError, match="stages not in its trace: nope"):
        merge_labels(traces, {"q1": {"nope": True}})


def test_check_complete_lists_missing_stages_and_labels() -> None:
    trace = Trace.model_validate(ROW)
    check_complete([trace], ["mini", "big"])
    with pytest.raises(TraceError, match=r"1 stages missing from traces .*q1/other"):
        check_complete([trace], ["mini", "other"])
    unlabeled = trace.model_copy(update={"stages": {"mini": trace.stages["mini"].model_copy(update={"correct": None})}})
    with pytest.raises(TraceError, match=r"no `correct` label: q1/mini\. Label them with --grader"):
        check_complete([unlabeled], ["mini"])


def test_the_hash_is_of_the_file_bytes(tmp_path: Path) -> None:
    path = write(tmp_path / "t.jsonl", ROW)
    assert traces_sha256(path) == __import__("hashlib").sha256(path.read_bytes()).hexdigest()
