"""The streamed reader gives `replay_data(read_traces(...))`'s data and errors, line for line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from cascade.errors import UsageError
from cascade.policy import Policy
from cascade.tuning import columns
from cascade.tuning.columns import read_replay_data
from cascade.tuning.replay import ReplayData, replay_data
from cascade.tuning.traces import read_traces

POLICY = Policy.from_dict(
    {
        "name": "c",
        "version": "1",
        "stages": [
            {"name": "mini", "provider": "openai", "model": "gpt-4o-mini", "threshold": 0.5},
            {"name": "flash", "provider": "google", "model": "gemini-2.0-flash", "threshold": 0.5},
            {"name": "big", "provider": "anthropic", "model": "claude-sonnet-4-5"},
        ],
        "routing": {"rules": [{"name": "hard", "stage": "big", "keywords": ["prove"]}]},
    }
)
FIELDS = ("answered", "score", "judge_failed", "entry", "confidence", "cost", "stop_quality", "stop_answerer")


def rows(n: int = 40) -> list[dict[str, Any]]:
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        stages = {}
        for name in ("mini", "flash", "big", "unused"):
            answered = rng.random() > 0.15
            stage: dict[str, Any] = {
                "answer": f'answer {i} said "yes": ok' if i % 7 == 0 else (f"answer {i}" if answered else None),
                "confidence": round(float(rng.random()), 3) if answered else 0,
                "cost_usd": round(float(rng.random()) / 1000, 7),
            }
            if i % 3:
                stage["judge_cost_usd"] = 0.00001
            if stage["answer"] is not None:
                stage["correct"] = bool(rng.random() < 0.7) if i % 5 else round(float(rng.random()), 2)
            elif i % 4 == 0:
                stage["error"] = "BadRequestError: no"
            if i % 6 == 0:
                stage["note"] = {"nested": [1, {"deep": True}]}
            stages[name] = stage
        row = {"id": f"q{i}", "stages": stages, "category": "x"}
        if i % 2:
            row["query"] = "please prove it" if i % 9 == 1 else f"question {i}"
        if i % 10 == 3:
            row["reference"] = ["a", "b"]
        out.append(row)
    return out


def write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def same(a: ReplayData, b: ReplayData) -> None:
    assert a.ids == b.ids and a.stages == b.stages and a.rules == b.rules
    for name in FIELDS:
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
    assert np.array_equal(a.alone_cost, b.alone_cost) and np.array_equal(a.alone_quality, b.alone_quality)


def slow(path: Path) -> ReplayData:
    return replay_data(POLICY, read_traces(path))


def test_the_streamed_columns_are_the_replay_data_of_the_traces(tmp_path: Path) -> None:
    lines = [json.dumps(r) for r in rows()]
    lines[4] = lines[4].replace('"id": ', '"id" : ')  # a space before a colon: read again the strict way
    path = write(tmp_path / "t.jsonl", [*lines[:10], "", "   ", *lines[10:]])
    same(read_replay_data(POLICY, path), slow(path))


def test_what_only_the_lax_check_accepts_is_read_the_slow_way(tmp_path: Path, monkeypatch: Any) -> None:
    lines = [json.dumps(r) for r in rows(6)]
    lines[2] = lines[2].replace('"confidence": ', '"confidence": "0.5", "x": ', 1)  # a number written as text
    path = write(tmp_path / "t.jsonl", lines)
    calls: list[Path] = []
    monkeypatch.setattr(columns, "read_traces", lambda p: calls.append(p) or read_traces(p))
    same(read_replay_data(POLICY, path), slow(path))
    assert calls == [path]


BAD = {
    "duplicate key": lambda ls: [ls[0].replace('"id": "q0"', '"id": "q0", "id": "q9"'), *ls[1:]],
    "duplicate key in a stage": lambda ls: [ls[0].replace('"cost_usd"', '"cost_usd": 1, "cost_usd"', 1), *ls[1:]],
    "duplicate id": lambda ls: [*ls, ls[0]],
    "not an object": lambda ls: [*ls[:2], "[1, 2]", *ls[2:]],
    "not JSON": lambda ls: [*ls[:2], '{"id": "x", ', *ls[2:]],
    "confidence above 1": lambda ls: [ls[0].replace('"confidence": ', '"confidence": 7, "y": ', 1), *ls[1:]],
    "infinite cost": lambda ls: [ls[0].replace('"cost_usd": ', '"cost_usd": Infinity, "z": ', 1), *ls[1:]],
    "missing stage": lambda ls: [ls[0].replace('"flash"', '"flish"'), *ls[1:]],
    "unlabeled": lambda ls: [ls[1].replace('"correct": ', '"was": '), *ls[1:]],
    "empty id": lambda ls: [ls[0].replace('"id": "q0"', '"id": ""'), *ls[1:]],
    "no traces": lambda ls: ["", " "],
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_a_bad_file_gets_the_error_the_slow_reader_gives(tmp_path: Path, case: str) -> None:
    path = write(tmp_path / "t.jsonl", BAD[case]([json.dumps(r) for r in rows(8)]))
    with pytest.raises(UsageError) as expected:
        slow(path)
    with pytest.raises(UsageError) as got:
        read_replay_data(POLICY, path)
    assert type(got.value) is type(expected.value) and str(got.value) == str(expected.value)


def test_a_file_that_is_not_utf8_or_missing(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    path.write_bytes(json.dumps(rows(2)[0]).encode() + b"\n" + b'{"id": "\xff"}\n')
    with pytest.raises(UsageError, match="not UTF-8"):
        read_replay_data(POLICY, path)
    with pytest.raises(UsageError, match="cannot read"):
        read_replay_data(POLICY, tmp_path / "none.jsonl")
