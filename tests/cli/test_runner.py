"""`cascade run` and `cascade collect` through the real entry point against a local fake OpenAI: resume, retries,
unreadable lines, Unicode, and configuration checked before the first query."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from cascade.tuning.traces import read_traces
from tests.cli.fakes import Vendor, invoke, read_rows, write_rows

QUERIES = [{"id": name, "query": f"question {name}"} for name in ("a", "b", "c")]


def run(vendor: Vendor, source: Path, out: Path, command: str = "run") -> Any:
    """One query at a time, so that output lines come in input order."""
    return invoke(command, "--policy", str(vendor.policy), "-i", str(source), "-o", str(out), "--concurrency", "1")


def collect(vendor: Vendor, source: Path, out: Path) -> Any:
    return run(vendor, source, out, "collect")


def test_a_rerun_after_an_outage_retries_the_failed_rows_only(vendor: Vendor, tmp_path: Path) -> None:
    source, out = write_rows(tmp_path / "q.jsonl", QUERIES), tmp_path / "r.jsonl"
    vendor.down = {"question b"}
    first = run(vendor, source, out)
    assert first.exit_code == 1 and "2 answered, 1 failed in this run" in first.output
    assert {r["id"]: r["ok"] for r in read_rows(out)} == {"a": True, "b": False, "c": True}
    vendor.down = set()
    answers = vendor.answers()
    second = run(vendor, source, out)
    assert second.exit_code == 0, second.output
    assert "resuming: 2 of 3 rows already done" in second.output and "retrying 1 that failed" in second.output
    assert "1 answered, 0 failed in this run (2 done before, 1 retried)" in second.output
    assert vendor.answers() == answers + 1  # b only, and only once: it was accepted at the first stage
    rows = read_rows(out)
    assert [r["id"] for r in rows] == ["a", "c", "b"] and all(r["ok"] for r in rows)  # b's failed line replaced
    third = run(vendor, source, out)
    assert third.exit_code == 0 and vendor.answers() == answers + 1 and len(read_rows(out)) == 3


def test_a_corrupt_middle_line_keeps_every_readable_row(vendor: Vendor, tmp_path: Path) -> None:
    source = write_rows(tmp_path / "q.jsonl", [*QUERIES, {"id": "d", "query": "question d"}])
    out = tmp_path / "r.jsonl"
    assert run(vendor, source, out).exit_code == 0
    a, _, c, d = out.read_bytes().splitlines(keepends=True)
    out.write_bytes(a + b'{"id": "b", "ok": tr\n' + c + d[:20])  # b corrupted mid-file, d cut short by a kill
    answers = vendor.answers()
    result = run(vendor, source, out)
    assert result.exit_code == 0, result.output
    assert "1 line(s) cannot be read (line 2): kept as they are" in result.output
    assert "its last line was cut short" in result.output and "resuming: 2 of 4 rows already done" in result.output
    assert vendor.answers() == answers + 2  # b and d: a and c, behind the corrupt line, are not re-billed
    lines = out.read_bytes().split(b"\n")
    assert lines[0] == a.rstrip(b"\n") and lines[1] == b'{"id": "b", "ok": tr' and lines[2] == c.rstrip(b"\n")
    assert sorted(json.loads(line)["id"] for line in lines[3:] if line) == ["b", "d"]


def test_lines_split_on_newline_only_and_a_lone_surrogate_id_is_kept(vendor: Vendor, tmp_path: Path) -> None:
    rows = [
        {"id": "\ud800", "query": "question with a lone surrogate id"},
        {"id": "sep", "query": "line\u2028separator and next\u0085line, inside one JSON string"},
    ]
    source = tmp_path / "q.jsonl"
    source.write_text(json.dumps(rows[0]) + "\n" + json.dumps(rows[1], ensure_ascii=False) + "\n", encoding="utf-8")
    assert "\u2028" in source.read_text(encoding="utf-8")  # written raw, as many JSON writers do
    out = tmp_path / "r.jsonl"
    result = run(vendor, source, out)
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output and "2 answered, 0 failed" in result.output
    by_id = {r["id"]: r for r in read_rows(out)}
    assert set(by_id) == {"\ud800", "sep"}
    assert by_id["sep"]["result"]["answer"].startswith("answer to line\u2028separator and next\u0085line")
    answers = vendor.answers()
    again = run(vendor, source, out)  # the output, U+2028 in its answers included, reads back whole
    assert again.exit_code == 0 and vendor.answers() == answers and "resuming: 2 of 2" in again.output


def test_an_input_that_is_not_utf8_is_a_usage_error(vendor: Vendor, tmp_path: Path) -> None:
    source = tmp_path / "q.jsonl"
    source.write_bytes(b'{"id": "a", "query": "fine"}\n{"id": "b", "query": "caf\xe9"}\n')
    result = run(vendor, source, tmp_path / "r.jsonl")
    assert result.exit_code == 2 and "q.jsonl:2: not UTF-8 text" in result.output
    assert "Traceback" not in result.output and vendor.server.requests == []


def test_collect_retries_a_trace_whose_stage_failed_and_keeps_one_line_per_id(vendor: Vendor, tmp_path: Path) -> None:
    source, out = write_rows(tmp_path / "q.jsonl", QUERIES), tmp_path / "t.jsonl"
    vendor.down = {"question c"}
    first = collect(vendor, source, out)
    assert first.exit_code == 1 and "3 traced (1 with a stage that failed), 0 failed" in first.output
    assert read_traces(out)[2].stages["mini"].error is not None
    vendor.down = set()
    second = collect(vendor, source, out)
    assert second.exit_code == 0, second.output
    assert "resuming: 2 of 3 rows already done" in second.output and "retrying 1 that failed" in second.output
    traces = read_traces(out)  # a duplicate id would make this raise
    assert [t.id for t in traces] == ["a", "b", "c"] and traces[2].stages["mini"].error is None


@pytest.mark.parametrize("command", ["run", "collect", "ask"])
def test_a_missing_key_stops_the_command_before_the_first_query(
    vendor: Vendor, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: str
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY")
    source, out = write_rows(tmp_path / "q.jsonl", QUERIES), tmp_path / "r.jsonl"
    if command == "ask":
        result = invoke("ask", "question a", "--policy", str(vendor.policy))
    else:
        result = invoke(command, "--policy", str(vendor.policy), "--input", str(source), "--output", str(out))
    assert result.exit_code == 2, result.output
    assert "no API key for openai: set OPENAI_API_KEY" in result.output and "api_keys=" in result.output
    assert vendor.server.requests == [] and not out.exists()


def test_the_google_key_message_names_both_variables(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("GEMINI_API_KEY", "GOOGLE_API_KEY"):
        monkeypatch.delenv(var, raising=False)
    policy = tmp_path / "g.yaml"
    policy.write_text("name: g\nversion: '1'\nstages:\n  - {name: flash, provider: google, model: gemini-1.5-flash}\n")
    result = invoke("run", "--policy", str(policy), "-i", str(write_rows(tmp_path / "q.jsonl", QUERIES)), "-o", "o")
    assert result.exit_code == 2
    assert "set GEMINI_API_KEY or GOOGLE_API_KEY" in result.output and "api_keys={'google': " in result.output


def test_an_unreadable_policy_exits_2_before_anything_runs(vendor: Vendor, tmp_path: Path) -> None:
    source = write_rows(tmp_path / "q.jsonl", QUERIES)
    result = invoke("run", "--policy", str(tmp_path / "missing.yaml"), "-i", str(source), "-o", str(tmp_path / "o"))
    assert result.exit_code == 2 and "missing.yaml" in result.output and "Traceback" not in result.output


def test_an_output_that_cannot_be_used_is_a_usage_error(vendor: Vendor, tmp_path: Path) -> None:
    source = tmp_path / "q.jsonl"
    source.write_bytes(b'\xef\xbb\xbf{"id": "a", "query": "question a"}\n')  # a byte-order mark is fine
    (tmp_path / "dir").mkdir()
    result = run(vendor, source, tmp_path / "dir")
    assert result.exit_code == 2 and "cannot read" in result.output and "Traceback" not in result.output
    assert run(vendor, source, tmp_path / "r.jsonl").exit_code == 0
