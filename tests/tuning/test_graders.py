"""Graders: deterministic ones on their own, the LLM grader through the engine (priced and recorded)."""

from __future__ import annotations

from typing import Any

import pytest

from cascade.engine import Cascade
from cascade.policy import Policy
from cascade.providers.base import CompletionRequest
from cascade.testing import ScriptedProvider, judge_json
from cascade.tuning.graders import (
    LLMGrader,
    choice_letter,
    choice_match,
    exact_match,
    get_grader,
    grade_traces,
    last_number,
    numeric_match,
    regex_match,
)
from cascade.tuning.traces import StageTrace, Trace, collect_flow


@pytest.mark.parametrize(
    ("answer", "reference", "ok"),
    [
        ("The answer is: Canberra.", "canberra", False),
        ("Canberra.", "canberra", True),
        ("  the  Eiffel Tower ", "Eiffel tower", True),
        ("Paris", ["Lyon", "paris"], True),
        ("Paris, France", "Paris", False),
    ],
)
def test_exact_match_normalizes(answer: str, reference: Any, ok: bool) -> None:
    assert exact_match(answer, reference) is ok


def test_regex_match_searches_case_insensitively() -> None:
    assert regex_match("Ursula K. LE GUIN, 1969", r"le ?guin.*1969")
    assert not regex_match("Le Guin, 1970", r"le ?guin.*1969")


@pytest.mark.parametrize(
    ("answer", "reference", "ok"),
    [
        ("Net rate 1/3 of the tank per hour, so it fills in 3 hours.", 3, True),
        ("Net 1/3. So about 3.5 hours.", "3", False),
        ("The total is 1,234.50 dollars", 1234.5, True),
        ("roughly -2e-3", -0.002, True),
        ("no number here", 1, False),
        ("It is 100.0000001", 100, True),
    ],
)
def test_numeric_match_reads_the_last_number(answer: str, reference: Any, ok: bool) -> None:
    assert numeric_match(answer, reference) is ok


def test_numeric_tolerance_is_configurable() -> None:
    assert not get_grader("numeric")("99", 100)
    assert get_grader("numeric", tolerance=0.02)("99", 100)
    assert last_number("2024-03-03") == 3


@pytest.mark.parametrize(
    ("answer", "letter"),
    [
        ("B", "B"),
        ("(c)", None),
        ("(C)", "C"),
        ("The answer is D.", "D"),
        ("Answer: (A) because ...", "A"),
        ("B) Paris is the capital", "B"),
        ("I think (B) fits better than (C).", "C"),
        ("a bit of both", None),
    ],
)
def test_choice_letter(answer: str, letter: str | None) -> None:
    assert choice_letter(answer) == letter


def test_choice_match_accepts_several_spellings_of_the_reference() -> None:
    assert choice_match("The answer is B", "b") and choice_match("B", "(B) Paris") and not choice_match("C", "B")


def test_unknown_grader_names_the_built_in_ones() -> None:
    with pytest.raises(KeyError, match="exact, regex, numeric, choice, json, llm"):
        get_grader("fuzzy")


def test_grade_traces_labels_only_traces_with_a_reference() -> None:
    stages = {
        "a": StageTrace(answer="3 hours", confidence=1, cost_usd=0),
        "b": StageTrace(answer=None, confidence=0, cost_usd=0),
    }
    traces = [Trace(id="1", reference=3, stages=stages), Trace(id="2", stages=stages)]
    graded, count = grade_traces(traces, get_grader("numeric"))
    assert count == 1 and graded[0].stages["a"].correct is True and graded[0].stages["b"].correct is None
    assert graded[1].stages["a"].correct is None


POLICY = Policy.from_dict(
    {
        "name": "g",
        "version": "1",
        "stages": [
            {"name": "mini", "provider": "openai", "model": "gpt-4o-mini", "threshold": 0.8},
            {"name": "big", "provider": "openai", "model": "gpt-4o"},
        ],
    }
)


def test_the_llm_grader_runs_through_the_engine_priced_and_recorded() -> None:
    def reply(request: CompletionRequest) -> Any:
        text = request.messages[-1].content
        if "<<<REFERENCE " in text:  # the grader
            return judge_json(9, "matches") if "Canberra" in text.split("<<<ANSWER")[1] else "eh"
        if "<<<ANSWER " in text:  # the judge
            return judge_json(8)
        return "Canberra" if request.model == "gpt-4o" else "Sydney"

    provider = ScriptedProvider("openai", reply)
    router = Cascade(POLICY, providers={"openai": provider})
    ctx = router.context("Capital of Australia?", query_id="q1")
    row = {"id": "q1", "query": "Capital of Australia?", "reference": "Canberra", "topic": "geo"}
    trace = router.drive(collect_flow(ctx, row, LLMGrader("openai", "gpt-4o-mini")), POLICY)
    big, mini = trace.stages["big"], trace.stages["mini"]
    assert big.correct is True and big.grade_reason == "matches"  # type: ignore[attr-defined]
    assert mini.correct is None and "unreadable" in mini.grade_reason  # type: ignore[attr-defined]
    assert big.grader_cost_usd > 0  # type: ignore[attr-defined]
    graded = [a for a in ctx.attempts if a.role == "judge"]
    assert len(graded) == 4 and all(a.cost_usd > 0 for a in graded)  # two judge calls, two grader calls
    assert big.judge_cost_usd == pytest.approx(graded[1].cost_usd)  # the grader is not part of the stage's cost
    assert trace.reference == "Canberra" and trace.model_extra == {"topic": "geo"}
    assert mini.confidence == 0.8 and big.cost_usd > mini.cost_usd


def test_a_deterministic_grader_in_collect() -> None:
    provider = ScriptedProvider("openai", lambda r: judge_json(6) if "<<<ANSWER " in r.messages[-1].content else "42")
    router = Cascade(POLICY, providers={"openai": provider})
    ctx = router.context([{"role": "user", "content": "6 x 7?"}], system="be brief", query_id="q2")
    row = {"id": "q2", "query": [{"role": "user", "content": "6 x 7?"}], "reference": 42}
    trace = router.drive(collect_flow(ctx, row, get_grader("numeric")), POLICY)
    assert {s.correct for s in trace.stages.values()} == {True}
    assert trace.query == "6 x 7?" and trace.model_extra == {"messages": row["query"]}
