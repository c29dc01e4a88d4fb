"""Traces of structured answers and tool calls: what `collect_flow` records, the json grader, and reading them back."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from cascade.cli.collecting import row_graders
from cascade.engine import Cascade
from cascade.errors import TraceError, UsageError
from cascade.policy import Policy
from cascade.providers.base import CompletionRequest
from cascade.testing import ScriptedProvider, completion, is_judge_request, judge_reply
from cascade.tuning.columns import read_columns
from cascade.tuning.graders import GRADERS, LLMGrader, get_grader, grade_traces, json_match
from cascade.tuning.replay import columns_of
from cascade.tuning.traces import StageTrace, Trace, collect_flow, read_traces

# -- the json grader -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "reference", "right"),
    [
        ('{"city": "Bern", "population": 134000}', {"city": "Bern"}, True),  # fields it does not name: ignored
        ('{"n": 1.0}', {"n": 1}, True),  # numbers by value
        ('{"n": 1}', {"n": 1.0}, True),
        ('{"n": 2}', {"n": 1}, False),
        ('{"n": true}', {"n": 1}, False),  # a boolean is not a number
        ('{"n": 1}', {"n": True}, False),
        ('{"n": false}', {"n": False}, True),
        ('{"n": "1"}', {"n": 1}, False),  # a string is not a number
        ('{"city": "bern"}', {"city": "Bern"}, False),  # strings exactly
        ('{"city": "Bern "}', {"city": "Bern"}, False),
        ('{"a": {"b": 1, "c": 2}}', {"a": {"b": 1}}, True),  # recursive
        ('{"a": {"c": 2}}', {"a": {"b": 1}}, False),
        ('{"a": [1, 2]}', {"a": [1, 2.0]}, True),
        ('{"a": [1, 2]}', {"a": [1]}, False),  # lists: the same length
        ('{"a": [2, 1]}', {"a": [1, 2]}, False),  # element by element
        ('{"a": [{"b": 1, "x": 0}, {"b": 2}]}', {"a": [{"b": 1}, {"b": 2}]}, True),
        ('{"a": null}', {"a": None}, True),
        ("{}", {"a": None}, False),  # a field the reference names must be there
        ('{"a": 0}', {"a": None}, False),
        ('{"a": {}}', {"a": []}, False),
        ("{}", {}, True),
        ('["x"]', {}, False),  # not an object
        ("the city is Bern", {"city": "Bern"}, False),  # not JSON
        ('{"n": NaN}', {"n": 1}, False),  # NaN is not JSON
        ('```json\n{"city": "Bern"}\n```', {"city": "Bern"}, False),
        ('{"city": "Bern"}', '{"city": "Bern"}', True),  # the reference as JSON text
        ('{"n": 2}', ['{"n": 1}', '{"n": 2.0}'], True),  # a list of texts: any of them
        ('{"n": 3}', ['{"n": 1}', '{"n": 2}'], False),
        ("42", 42, True),
        ("42.5", 42, False),
    ],
)
def test_json_grader(answer: str, reference: Any, right: bool) -> None:
    assert json_match(answer, reference) is right


def test_the_json_grader_is_built_in_and_refuses_a_reference_that_is_not_json() -> None:
    assert GRADERS["json"] is json_match and get_grader("json") is json_match
    with pytest.raises(ValueError, match="JSON object or JSON text, not 'Bern'"):
        json_match('{"city": "Bern"}', "Bern")
    with pytest.raises(ValueError, match="needs the json grader"):
        get_grader("exact")("Bern", {"city": "Bern"})


def test_grade_traces_names_the_trace_whose_reference_cannot_be_used() -> None:
    stage = StageTrace(answer='{"city": "Bern"}', confidence=1, cost_usd=0)
    good = Trace(id="good", reference={"city": "Bern"}, stages={"a": stage})
    text = Trace(id="text", reference="Bern", stages={"a": stage})
    graded, count = grade_traces([good], json_match)
    assert count == 1 and graded[0].stages["a"].correct is True
    with pytest.raises(TraceError, match="trace 'text': the json grader's reference"):
        grade_traces([good, text], json_match)
    with pytest.raises(TraceError, match="trace 'good': a JSON object reference needs the json grader"):
        grade_traces([good], get_grader("exact"))


# -- the trace fields ------------------------------------------------------------------------------

CALL = {"id": "call_1", "name": "lookup_order", "arguments": {"order_id": "A17"}}


def test_output_tool_calls_and_skipped_are_written_only_when_set(tmp_path: Path) -> None:
    stages = {
        "plain": StageTrace(answer="hi", confidence=0.5, cost_usd=0.001),
        "shaped": StageTrace(answer='{"n": 1}', confidence=0.5, cost_usd=0.001, output={"n": 1}),
        "called": StageTrace(answer="{}", confidence=0.9, cost_usd=0.002, tool_calls=[CALL]),  # type: ignore[list-item]
        "unable": StageTrace(answer=None, confidence=0.0, cost_usd=0.0, skipped="m cannot do tool calls"),
    }
    line = Trace(id="q1", reference={"n": 1}, stages=stages).to_json()
    written = json.loads(line)["stages"]
    assert set(written["plain"]) == {"answer", "confidence", "cost_usd"}
    assert written["shaped"]["output"] == {"n": 1} and "tool_calls" not in written["shaped"]
    assert written["called"]["tool_calls"] == [CALL] and "output" not in written["called"]
    assert written["unable"] == {"answer": None, "confidence": 0, "cost_usd": 0, "skipped": "m cannot do tool calls"}
    path = tmp_path / "t.jsonl"
    path.write_text(line + "\n")
    (read,) = read_traces(path)
    assert read.to_json() == line and read.reference == {"n": 1}
    assert read.stages["called"].tool_calls is not None and read.stages["called"].tool_calls[0].name == "lookup_order"
    assert not read.stages["unable"].answered and read.stages["unable"].quality() == 0.0


def _stages(**fields: Any) -> dict[str, Any]:
    base = {"answer": '{"n": 1}', "confidence": 0.9, "cost_usd": 0.001, "judge_cost_usd": 0.0004, "correct": True}
    return {"a": {**base, **fields}, "b": {"answer": None, "confidence": 0.0, "cost_usd": 0.0, "skipped": "no tools"}}


TWO = Policy.from_dict(
    {
        "name": "two",
        "version": "1",
        "stages": [
            {"name": "a", "provider": "openai", "model": "gpt-4o-mini", "threshold": 0.8},
            {"name": "b", "provider": "openai", "model": "gpt-4o"},
        ],
    }
)


def test_the_streamed_columns_read_structured_traces_as_read_traces_does(tmp_path: Path) -> None:
    rows = [
        {"id": "1", "reference": {"n": 1}, "stages": _stages(output={"n": 1, "deep": {"x": [1, 2]}})},
        {"id": "2", "reference": '{"n": 1}', "stages": _stages(tool_calls=[CALL], confidence=0.5, correct=False)},
    ]
    path = tmp_path / "t.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    fast, slow = read_columns(TWO, path), columns_of(TWO, read_traces(path))
    for name in ("answered", "confidence", "cost_usd", "answer_cost", "quality", "error"):
        assert np.array_equal(getattr(fast, name), getattr(slow, name)), name
    assert fast.answered.tolist() == [[True, False], [True, False]] and fast.quality.tolist() == [[1, 0], [0, 0]]


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({"tool_calls": [{"id": "c", "name": "f", "arguments": "not an object"}]}, "tool_calls.0.arguments"),
        ({"tool_calls": [{"name": "f", "arguments": {}}]}, "tool_calls.0.id"),
        ({"skipped": 3}, "skipped"),
    ],
)
def test_a_bad_tool_call_or_skip_is_refused_by_both_readers(tmp_path: Path, fields: Any, problem: str) -> None:
    path = tmp_path / "t.jsonl"
    path.write_text(json.dumps({"id": "1", "stages": _stages(**fields)}) + "\n")
    with pytest.raises(TraceError, match=problem):
        read_traces(path)
    with pytest.raises(TraceError, match=problem):
        read_columns(TWO, path)


# -- collect_flow ----------------------------------------------------------------------------------

THREE = Policy.from_dict(
    {
        "name": "three",
        "version": "1",
        "judge": {"retries": 0},
        "stages": [
            {"name": "mini", "provider": "openai", "model": "gpt-4o-mini", "threshold": 0.8, "retries": 0},
            {"name": "old", "provider": "openai", "model": "gpt-4o-2024-05-13", "threshold": 0.8, "retries": 0,
             "features": {"tools": False, "structured_output": False}},
            {"name": "big", "provider": "openai", "model": "gpt-4o", "retries": 0},
        ],
    }
)  # fmt: skip
SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
TOOLS = [{"type": "function", "function": {"name": "lookup_order", "parameters": {"type": "object"}}}]


def vendor(answers: dict[str, Any], score: int = 8) -> ScriptedProvider:
    """Answers by model (a `Completion` or text); the judge scores every answer `score`."""

    def reply(request: CompletionRequest) -> Any:
        return judge_reply(request, score) if is_judge_request(request) else answers[request.model]

    return ScriptedProvider("openai", reply)


def test_collect_records_structured_answers_invalid_ones_and_skipped_stages() -> None:
    provider = vendor({"gpt-4o-mini": "Bern, I think", "gpt-4o": '{"city": "Bern", "canton": "BE"}'})
    router = Cascade(THREE, providers={"openai": provider})
    row = {"id": "s1", "query": "Capital of Switzerland?", "output_schema": SCHEMA, "reference": {"city": "Bern"}}
    ctx = router.context(row["query"], query_id="s1", output_type=SCHEMA)
    trace = router.drive(collect_flow(ctx, row, get_grader("json")), THREE)
    mini, old, big = (trace.stages[name] for name in ("mini", "old", "big"))
    assert mini.answer is None and mini.error is not None and mini.error.startswith("OutputSchemaError")
    assert mini.cost_usd > 0 and mini.skipped is None and mini.correct is None  # billed, not graded
    assert old.answer is None and old.error is None and old.cost_usd == 0 and old.confidence == 0
    assert old.skipped == "gpt-4o-2024-05-13 cannot do structured output"
    assert big.output == {"city": "Bern", "canton": "BE"} and json.loads(big.answer or "") == big.output
    assert big.correct is True and big.confidence == 0.8 and big.tool_calls is None
    assert {r.model for r in provider.requests} == {"gpt-4o-mini", "gpt-4o"}  # the skipped model was not asked
    assert trace.model_extra == {"output_schema": SCHEMA}  # the row's other fields are kept


def test_collect_records_tool_calls_and_grades_them_against_a_json_reference() -> None:
    calls = [{"id": "call_9", "name": "lookup_order", "arguments": {"order_id": "A17"}}]
    answers = {
        "gpt-4o-mini": completion("Let me look.", model="gpt-4o-mini", tool_calls=calls),
        "gpt-4o": completion(None, model="gpt-4o", tool_calls=[{**calls[0], "arguments": {"order_id": "A71"}}]),
    }
    router = Cascade(THREE, providers={"openai": vendor(answers)})
    query = [
        {"role": "user", "content": "Where is my order A17?"},
        {"role": "assistant", "content": "", "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "lookup_order", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "missing order_id"},
    ]  # fmt: skip
    reference = '{"tool_calls": [{"name": "lookup_order", "arguments": {"order_id": "A17"}}]}'
    row = {"id": "t1", "query": query, "tools": TOOLS, "reference": reference}
    ctx = router.context(query, query_id="t1", tools=TOOLS)
    trace = router.drive(collect_flow(ctx, row, get_grader("json")), THREE)
    mini, old, big = (trace.stages[name] for name in ("mini", "old", "big"))
    assert mini.tool_calls is not None and [c.model_dump() for c in mini.tool_calls] == calls
    assert json.loads(mini.answer or "") == {"content": "Let me look.", "tool_calls": [
        {"name": "lookup_order", "arguments": {"order_id": "A17"}}]}  # fmt: skip
    assert mini.correct is True and mini.output is None  # "content" is not named by the reference: ignored
    assert big.correct is False and big.tool_calls is not None and big.tool_calls[0].arguments == {"order_id": "A71"}
    assert old.skipped == "gpt-4o-2024-05-13 cannot do tool calls" and old.answer is None
    assert trace.model_extra is not None and trace.model_extra["messages"] == query
    assert json.loads(trace.to_json())["stages"]["mini"]["tool_calls"] == calls


def test_the_llm_grader_sees_a_json_object_reference_as_json() -> None:
    def reply(request: CompletionRequest) -> Any:
        text = request.messages[-1].content
        if "<<<REFERENCE " in text:
            return judge_reply(request, 9, "same city")
        return judge_reply(request, 8) if is_judge_request(request) else '{"city": "Bern"}'

    provider = ScriptedProvider("openai", reply)
    router = Cascade(THREE, providers={"openai": provider})
    row = {"id": "g1", "query": "Capital?", "reference": {"city": "Bern"}}
    ctx = router.context("Capital?", query_id="g1", output_type=SCHEMA)
    trace = router.drive(collect_flow(ctx, row, LLMGrader("openai", "gpt-4o-mini")), THREE)
    graded = [r.messages[-1].content for r in provider.requests if "<<<REFERENCE " in r.messages[-1].content]
    assert len(graded) == 2 and all('\n{"city": "Bern"}\n<<<END REFERENCE' in text for text in graded)
    assert trace.stages["mini"].correct is True and trace.stages["old"].correct is None


# -- which references `collect` accepts ------------------------------------------------------------


@pytest.mark.parametrize("grader", ["json", "llm"])
def test_a_json_object_reference_is_accepted_by_the_json_and_llm_graders(grader: str) -> None:
    rows = [{"id": "1", "query": "q", "reference": {"city": "Bern"}}, {"id": "2", "query": "q", "reference": 3}]
    graders = row_graders(THREE, rows, grader, None, None, None)
    assert isinstance(graders["1"], LLMGrader) if grader == "llm" else graders["1"] is json_match


@pytest.mark.parametrize(
    ("row", "default", "message"),
    [
        ({"reference": {"city": "Bern"}}, "exact", "row r: a reference is a string, a number or a list of strings"),
        ({"reference": {"city": "Bern"}}, None, "(or a JSON object, with the json or llm grader)"),
        ({"reference": {"city": "Bern"}, "grader": "regex"}, "json", "with the json or llm grader"),
        ({"reference": "Bern"}, "json", "row r: the json grader's reference is a JSON object or JSON text"),
        ({"reference": ['{"a": 1}', "{oops"]}, "json", "not '{oops'"),
        ({"reference": [{"a": 1}]}, "json", "a reference is a string, a number or a list of strings"),
    ],
)
def test_references_the_grader_cannot_use_are_usage_errors(row: dict[str, Any], default: Any, message: str) -> None:
    with pytest.raises(UsageError) as caught:
        row_graders(THREE, [{"id": "r", "query": "q", **row}], default, None, None, None)
    assert message in str(caught.value)


def test_a_row_s_own_json_grader_accepts_its_object_reference() -> None:
    rows = [{"id": "r", "query": "q", "reference": {"city": "Bern"}, "grader": "json"}, {"id": "s", "query": "q"}]
    assert row_graders(THREE, rows, "exact", None, None, None) == {"r": json_match, "s": None}
