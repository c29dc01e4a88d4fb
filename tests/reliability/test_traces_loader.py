"""Whatever a traces or labels file holds, reading it gives traces or a `TraceError` naming the file and the line;
what `Trace.to_json` writes (what `cascade collect` stores) reads back, whatever text a vendor returned."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cascade.errors import TraceError, UsageError
from cascade.tuning.traces import StageTrace, Trace, read_labels, read_traces

GOOD = '{"id": "q1", "stages": {"mini": {"answer": "4", "confidence": 0.9, "cost_usd": 0.0001, "correct": true}}}'


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_trace_error_is_in_the_error_tree_and_still_importable_from_traces() -> None:
    from cascade.tuning import TraceError as from_package
    from cascade.tuning.traces import TraceError as from_module

    assert from_module is from_package is TraceError
    assert issubclass(TraceError, UsageError)


def test_a_non_utf8_file_names_the_line(tmp_path: Path) -> None:
    path = _write(tmp_path / "t.jsonl", GOOD.encode() + b"\n" + GOOD.replace("q1", "q\xe92").encode("latin-1"))
    with pytest.raises(TraceError, match=r"t\.jsonl:2: not UTF-8 text \(byte 0xe9\)"):
        read_traces(path)
    with pytest.raises(TraceError, match=r"t\.jsonl:2: not UTF-8 text"):
        read_labels(path)


@pytest.mark.parametrize("number", ["Infinity", "-Infinity", "NaN", "1e999"])
def test_a_cost_that_is_not_finite_is_refused_with_its_line(tmp_path: Path, number: str) -> None:
    bad = GOOD.replace('"id": "q1"', '"id": "q2"').replace("0.0001", number)
    path = _write(tmp_path / "t.jsonl", f"{GOOD}\n{bad}\n".encode())
    with pytest.raises(TraceError, match=r"t\.jsonl:2: stages\.mini\.cost_usd: Input should be a finite number"):
        read_traces(path)


def test_a_label_that_is_not_finite_is_refused_with_its_line(tmp_path: Path) -> None:
    path = _write(tmp_path / "labels.jsonl", b'{"id": "q1", "correct": {"mini": NaN}}\n')
    with pytest.raises(TraceError, match=r"labels\.jsonl:1: correct\.mini"):
        read_labels(path)


@pytest.mark.parametrize("separator", ["\u2028", "\u2029", "\u0085"], ids=repr)
def test_lines_split_at_line_feeds_only(tmp_path: Path, separator: str) -> None:
    """Each is a line boundary for `str.splitlines`, and `json.dumps(ensure_ascii=False)` writes it raw."""
    answer = f"one{separator}two"
    line = GOOD.replace('"answer": "4"', f'"answer": "{answer}"')
    [trace] = read_traces(_write(tmp_path / "t.jsonl", (line + "\n").encode()))
    assert trace.stages["mini"].answer == answer


def test_crlf_line_ends_still_read(tmp_path: Path) -> None:
    second = GOOD.replace('"id": "q1"', '"id": "q2"')
    assert [t.id for t in read_traces(_write(tmp_path / "t.jsonl", f"{GOOD}\r\n{second}\r\n".encode()))] == ["q1", "q2"]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (GOOD.replace('"id": "q1"', '"id": "q1", "id": "q2"'), r":1: the key 'id' is given twice"),
        ('{"id": "q1", "stages": ' + "[" * 100_000 + "]" * 100_000 + "}", r":1: not JSON \(RecursionError"),
        ('{"id": "q1", "n": ' + "9" * 5000 + ', "stages": {}}', r":1: not JSON \(ValueError: Exceeds the limit"),
        ('{"id": "q1", "stages": {}', r":1: not JSON \(Expecting ',' delimiter, column 26\)"),
        ("[1, 2]", r":1: each line must be a JSON object"),
    ],
    ids=["duplicate key", "deep nesting", "5,000-digit int", "cut off", "a list"],
)
def test_lines_that_are_not_one_trace_name_the_line(tmp_path: Path, line: str, message: str) -> None:
    with pytest.raises(TraceError, match=message):
        read_traces(_write(tmp_path / "t.jsonl", line.encode()))


@pytest.mark.parametrize(
    "answer", ["line\u2028separator", "next\u0085line", "lone \ud800 surrogate", "nul \x00 and é 日本"], ids=repr
)
def test_what_to_json_writes_reads_back(tmp_path: Path, answer: str) -> None:
    """`cascade collect` writes `to_json()` lines as UTF-8; a vendor's answer may hold any of these."""
    trace = Trace(id="q1", stages={"mini": StageTrace(answer=answer, confidence=0.5, cost_usd=0.001)})
    path = tmp_path / "t.jsonl"
    path.write_text(trace.to_json() + "\n", encoding="utf-8")
    assert read_traces(path) == [trace]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=200) | st.text(max_size=200).map(lambda t: t.encode("utf-8", "surrogatepass")))
def test_any_file_reads_or_fails_with_a_trace_error(tmp_path: Path, data: bytes) -> None:
    path = _write(tmp_path / "t.jsonl", data)
    for read in (read_traces, read_labels):
        try:
            read(path)
        except TraceError as exc:
            assert str(exc).startswith(f"{path}")


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(max_size=40), st.floats(allow_nan=True, allow_infinity=True))
def test_any_trace_collect_could_write_reads_back(tmp_path: Path, answer: str, cost: float) -> None:
    try:
        stage = StageTrace(answer=answer, confidence=0.5, cost_usd=cost)
    except ValueError:  # a negative or non-finite cost is refused where the trace is built
        assert not cost >= 0 or cost == float("inf")
        return
    trace = Trace(id="q1", stages={"mini": stage})
    path = tmp_path / "t.jsonl"
    path.write_text(trace.to_json() + "\n", encoding="utf-8")
    assert read_traces(path) == [trace]
    assert json.loads(trace.to_json())["stages"]["mini"]["answer"] == answer
