"""`cascade collect`, `eval`, `tune` and `run` on structured answers and tool calls, with scripted vendors.

Seven queries through three stages: `PLAN` says what each stage answers and how the judge scores it. Some answers
do not fit what was asked (escalated, as the live cascade does), the middle stage cannot do tool calls (skipped),
references are JSON objects or JSON text, labels come from `--grader json`. The figures eval and tune report are
checked against what the plan implies, worked out here without the replay's code.
"""

from __future__ import annotations

import itertools
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from cascade.cli import common
from cascade.engine import Cascade
from cascade.policy import Policy
from cascade.providers.base import Completion, CompletionRequest
from cascade.testing import ScriptedProvider, completion, is_judge_request, judge_reply
from tests.cli.fakes import invoke, read_rows, write_rows

STAGES = [
    ("s0", "openai", "gpt-4o-mini"),
    ("s1", "google", "gemini-2.0-flash"),
    ("s2", "anthropic", "claude-sonnet-4-5"),
]
JUDGE = "gpt-4.1-mini"
THRESHOLDS = (0.8, 0.7)
# USD per million tokens (input, output), set in the policy; every answer and every judge call has the same counts.
PRICES = {
    "gpt-4o-mini": (1.0, 2.0),
    "gemini-2.0-flash": (3.0, 5.0),
    "claude-sonnet-4-5": (10.0, 30.0),
    JUDGE: (0.5, 1.0),
}
ANSWER_TOKENS, JUDGE_TOKENS = (1000, 100), (2000, 10)


def usd(model: str, tokens: tuple[int, int]) -> float:
    per_input, per_output = PRICES[model]
    return (tokens[0] * per_input + tokens[1] * per_output) / 1e6


def write_policy(path: Path) -> Path:
    lines = ["name: shaped", "version: '1'", f"judge: {{provider: openai, model: {JUDGE}, retries: 0}}", "stages:"]
    for (name, provider, model), threshold in itertools.zip_longest(STAGES, THRESHOLDS):
        cut = f", threshold: {threshold}" if threshold is not None else ""
        can = ", features: {tools: false}" if name == "s1" else ""  # the middle model cannot call tools
        lines.append(f"  - {{name: {name}, provider: {provider}, model: {model}, retries: 0{cut}{can}}}")
    lines.append("prices:")
    lines += [f"  {model}: {{input: {i}, output: {o}}}" for model, (i, o) in PRICES.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


@dataclass(frozen=True)
class Says:
    """What a stage answers: `data` (a structured answer), `call` (a tool's name and arguments) or `text`.
    `valid`: it fits what the query asks (else the engine refuses it); `score`: the judge's (0-10) for a valid
    answer; `right`: whether it matches the reference."""

    data: dict[str, Any] | None = None
    call: tuple[str, dict[str, Any]] | None = None
    text: str | None = None
    valid: bool = True
    score: int = 0
    right: bool = False


def refused(text: str | None = None, call: tuple[str, dict[str, Any]] | None = None) -> Says:
    """An answer that does not fit: text where a structure was asked, or a call of a tool not offered."""
    return Says(text=text, call=call, valid=False)


def city(name: str, population: int) -> dict[str, Any]:
    return {"city": name, "population": population}


SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "population": {"type": "integer"}, "by": {"type": "string"}},
    "required": ["city", "population"],
}


def tool(name: str, **properties: str) -> dict[str, Any]:
    params = {"type": "object", "properties": {p: {"type": kind} for p, kind in properties.items()}}
    return {"type": "function", "function": {"name": name, "description": f"{name} tool", "parameters": params}}


TOOLS = [tool("lookup_order", order_id="string"), tool("notify_customer", order_id="string", status="string")]


def calls(name: str, **arguments: Any) -> dict[str, Any]:
    return {"tool_calls": [{"name": name, "arguments": arguments}]}


SKIP = None  # the stage cannot do what the query needs
PLAN: dict[str, tuple[dict[str, Any], list[Says | None]]] = {
    "A": (
        {"query": "[A] Capital of Australia?", "output_schema": SCHEMA, "reference": city("Canberra", 456000)},
        [Says(city("Sydney", 5300000), score=9), Says(city("Canberra", 456000), score=8, right=True),
         Says(city("Canberra", 456000), score=9, right=True)],
    ),
    "B": (  # the reference is JSON text; 2100000.0 equals 2100000
        {"query": "[B] Capital of France?", "output_schema": SCHEMA,
         "reference": '{"city": "Paris", "population": 2100000.0}'},
        [refused("Paris, about 2.1 million people"), Says(city("Paris", 2100000), score=8, right=True),
         Says(city("Paris", 2100000), score=9, right=True)],
    ),
    "C": (  # the first answer is JSON without the population the schema requires
        {"query": "[C] Capital of Switzerland?", "output_schema": SCHEMA, "reference": city("Bern", 134000)},
        [refused('{"city": "Bern"}'), Says(city("Zurich", 421000), score=5),
         Says(city("Bern", 134000), score=9, right=True)],
    ),
    "D": (
        {"query": "[D] Where is order A17?", "tools": TOOLS, "tool_choice": "required",
         "reference": calls("lookup_order", order_id="A17")},
        [Says(call=("lookup_order", {"order_id": "A17"}), score=9, right=True), SKIP,
         Says(call=("lookup_order", {"order_id": "A17"}), score=9, right=True)],
    ),
    "E": (  # the first answer calls a tool that is not offered
        {"query": "[E] Where is order B2?", "tools": TOOLS, "reference": calls("lookup_order", order_id="B2")},
        [refused(call=("find_order", {"order_id": "B2"})), SKIP,
         Says(call=("lookup_order", {"order_id": "B2"}), score=8, right=True)],
    ),
    "F": (  # a conversation with tool turns: the middle model, which cannot call tools, is skipped too
        {"query": [
            {"role": "user", "content": "[F] Tell the customer how order A17 is doing."},
            {"role": "assistant", "content": "", "tool_calls": [{"id": "call_1", "type": "function",
             "function": {"name": "lookup_order", "arguments": '{"order_id": "A17"}'}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": '{"status": "shipped"}'}],
         "tools": TOOLS,
         "reference": json.dumps(calls("notify_customer", order_id="A17", status="shipped"))},
        [Says(call=("notify_customer", {"order_id": "A17", "status": "pending"}), score=6), SKIP,
         Says(call=("notify_customer", {"order_id": "A17", "status": "shipped"}), score=9, right=True)],
    ),
    "G": (  # the last stage fails: the best-scored earlier answer is kept
        {"query": "[G] Capital of Norway?", "output_schema": SCHEMA, "reference": city("Oslo", 709000)},
        [Says(city("Bergen", 291000), score=7), Says(city("Oslo", 709000), score=6, right=True),
         refused("Oslo")],
    ),
}  # fmt: skip


def marker(row: str, stage: str) -> str:
    return f"@{row}.{stage}@"


def script(provider: str, request: CompletionRequest) -> Completion | str:
    """The answer `PLAN` gives (tagged with who gave it), or the judge's score for a tagged answer."""
    if is_judge_request(request):
        row, stage = re.findall(r"@(\w)\.(s\d)@", request.messages[-1].content)[-1]
        says = PLAN[row][1][int(stage[1])]
        assert says is not None and says.valid
        return completion(judge_reply(request, says.score), model=request.model, input_tokens=JUDGE_TOKENS[0],
                          output_tokens=JUDGE_TOKENS[1], provider=provider)  # fmt: skip
    row = re.match(r"\[(\w)\]", request.messages[0].content).group(1)  # type: ignore[union-attr]
    index = next(i for i, (_, _, model) in enumerate(STAGES) if model == request.model)
    says = PLAN[row][1][index]
    assert says is not None, f"stage {index} should have been skipped for {row}"
    tag = marker(row, f"s{index}")
    tokens = {"input_tokens": ANSWER_TOKENS[0], "output_tokens": ANSWER_TOKENS[1]}
    if says.data is not None:
        text: str | None = json.dumps({**says.data, "by": tag})  # a field no reference names
        return completion(text, model=request.model, provider=provider, **tokens)
    if says.call is not None:
        call = {"name": says.call[0], "arguments": says.call[1]}
        return completion(tag, model=request.model, provider=provider, tool_calls=[call], **tokens)
    return completion(says.text, model=request.model, provider=provider, **tokens)  # refused: no judge reads it


@pytest.fixture
def scripted(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, ScriptedProvider]]:
    """Every command's router answers from `script`; one dict of providers per command run."""
    runs: list[dict[str, ScriptedProvider]] = []

    def load(policy: str) -> Cascade:
        providers = {p: ScriptedProvider(p, lambda r, p=p: script(p, r)) for p in ("openai", "google", "anthropic")}
        runs.append(providers)
        return Cascade(Policy.from_file(policy), providers=providers)

    monkeypatch.setattr(common, "load_router", load)
    for var in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY"):
        monkeypatch.setenv(var, "sk-test-CANARY0123")
    return runs


def input_rows() -> list[dict[str, Any]]:
    return [{"id": row, **fields} for row, (fields, _) in PLAN.items()]


# -- what the plan implies, worked out by hand -----------------------------------------------------


def stage_costs(says: Says | None, index: int) -> tuple[float, float]:
    """(answer call, judge call) in USD: nothing for a skipped stage, no judge for an answer that fits nothing."""
    if says is None:
        return 0.0, 0.0
    answer = usd(STAGES[index][2], ANSWER_TOKENS)
    return answer, usd(JUDGE, JUDGE_TOKENS) if says.valid else 0.0


def cascade_outcome(plan: list[Says | None], thresholds: tuple[float, ...]) -> tuple[int | None, float]:
    """Which stage's answer the policy returns (None: none) and what the stages tried cost. The last stage is not
    judged in production; a stage without a valid answer escalates; when the last fails, the best score so far."""
    spent, last = 0.0, len(plan) - 1
    for index, says in enumerate(plan):
        answer, judge = stage_costs(says, index)
        spent += answer + (judge if index < last else 0.0)
        if says is None or not says.valid:
            continue
        if index == last or says.score / 10 >= thresholds[index]:
            return index, spent
    scored = [(says.score, -i) for i, says in enumerate(plan[:last]) if says is not None and says.valid]
    return (-max(scored)[1] if scored else None), spent


def figures(thresholds: tuple[float, ...]) -> tuple[float, float, dict[str, float]]:
    """Quality, cost per query and share answered at each stage."""
    quality = cost = 0.0
    shares = dict.fromkeys((name for name, _, _ in STAGES), 0.0)
    for _, plan in PLAN.values():
        answerer, spent = cascade_outcome(plan, thresholds)
        cost += spent
        if answerer is not None:
            shares[STAGES[answerer][0]] += 1 / len(PLAN)
            says = plan[answerer]
            quality += bool(says and says.right)
    return quality / len(PLAN), cost / len(PLAN), shares


def alone(index: int) -> tuple[float, float]:
    """Quality and cost per query of one stage answering everything (its answer call only)."""
    said = [plan[index] for _, plan in PLAN.values()]
    quality = sum(1 for says in said if says is not None and says.valid and says.right)
    return quality / len(said), sum(stage_costs(says, index)[0] for says in said) / len(said)


# -- the commands ----------------------------------------------------------------------------------


def test_collect_eval_and_tune_on_structured_answers_and_tool_calls(
    tmp_path: Path, scripted: list[dict[str, ScriptedProvider]]
) -> None:
    policy = write_policy(tmp_path / "policy.yaml")
    queries, traces = write_rows(tmp_path / "q.jsonl", input_rows()), tmp_path / "traces.jsonl"
    collect = ["collect", "--policy", str(policy), "--input", str(queries), "--output", str(traces)]
    result = invoke(*collect, "--grader", "json")
    failing = {row for row, (_, plan) in PLAN.items() if any(s is not None and not s.valid for s in plan)}
    assert result.exit_code == 1, result.output  # a stage that fits nothing is a failure a rerun retries
    assert f"{len(PLAN)} traced ({len(failing)} with a stage that failed), 0 failed in this run" in result.output

    written = {line["id"]: line for line in read_rows(traces)}
    assert set(written) == set(PLAN)
    for row, (fields, plan) in PLAN.items():
        for index, says in enumerate(plan):
            name, _, model = STAGES[index]
            stage = written[row]["stages"][name]
            answer, judge = stage_costs(says, index)
            assert stage["cost_usd"] == pytest.approx(answer + judge), (row, name)
            if says is None:
                assert stage["answer"] is None and "error" not in stage and "correct" not in stage
                assert stage["skipped"] == f"{model} cannot do tool calls"
            elif not says.valid:
                assert stage["answer"] is None and stage["error"].startswith("OutputSchemaError")
                assert "correct" not in stage and "output" not in stage and "tool_calls" not in stage
            else:
                assert stage["correct"] is says.right and stage["confidence"] == says.score / 10, (row, name)
                assert "error" not in stage and "skipped" not in stage
                if says.data is not None:
                    assert stage["output"] == {**says.data, "by": marker(row, name)} and "tool_calls" not in stage
                    assert json.loads(stage["answer"]) == stage["output"]
                else:
                    assert says.call is not None and "output" not in stage
                    assert [(c["name"], c["arguments"]) for c in stage["tool_calls"]] == [says.call]
                    assert stage["tool_calls"][0]["id"]
                    shown = {"content": marker(row, name), **calls(says.call[0], **says.call[1])}
                    assert json.loads(stage["answer"]) == shown
        assert written[row]["reference"] == fields["reference"]
    assert written["F"]["messages"] == PLAN["F"][0]["query"] and written["D"]["tool_choice"] == "required"

    # A rerun retries the rows with a failed stage, and only those: a skip is no failure.
    result = invoke(*collect, "--grader", "json")
    asked = {re.match(r"\[(\w)\]", r.messages[0].content) for p in scripted[1].values() for r in p.requests}
    assert result.exit_code == 1 and {m.group(1) for m in asked if m} == failing
    assert f"resuming: {len(PLAN) - len(failing)} of {len(PLAN)} rows already done" in result.output
    assert {line["id"]: line for line in read_rows(traces)} == written  # the same answers, one line per id

    quality, cost, shares = figures(THRESHOLDS)
    evaluated = invoke("eval", "--policy", str(policy), "--traces", str(traces), "--json")
    assert evaluated.exit_code == 0, evaluated.output
    report = json.loads(evaluated.stdout)
    assert report["cascade"]["quality"] == pytest.approx(quality)
    assert report["cascade"]["cost_per_query"] == pytest.approx(cost)
    assert report["cascade"]["shares"] == pytest.approx(shares) and report["cascade"]["unanswered"] == 0
    for index, figure in enumerate(report["alone"]):
        assert (figure["quality"], figure["cost_per_query"]) == pytest.approx(alone(index)), figure["name"]

    # The same labels from `eval --grader json` on traces collected without a grader.
    unlabeled = tmp_path / "unlabeled.jsonl"
    rows = read_rows(traces)
    for line in rows:
        for stage in line["stages"].values():
            stage.pop("correct", None)
    write_rows(unlabeled, rows)
    assert invoke("eval", "--policy", str(policy), "--traces", str(unlabeled)).exit_code == 2
    regraded = invoke("eval", "--policy", str(policy), "--traces", str(unlabeled), "--grader", "json", "--json")
    assert regraded.exit_code == 0, regraded.output
    assert json.loads(regraded.stdout)["cascade"] == report["cascade"]

    # tune: the cheapest thresholds whose quality reaches the last stage's own, searched here by brute force.
    need = alone(len(STAGES) - 1)[0]
    scores = [{s.score / 10 for _, plan in PLAN.values() if (s := plan[i]) is not None and s.valid} for i in range(2)]
    candidates = [sorted(traced | {0.0, 1.0, math.inf}) for traced in scores]
    settings = [figures(t) for t in itertools.product(*candidates)]
    best_cost = min(c for q, c, _ in settings if q >= need - 1e-9)
    assert best_cost < cost and quality < need  # the policy as written misses the target: tuning must move it
    out = tmp_path / "tuned.yaml"
    tune = ["tune", "--policy", str(policy), "--traces", str(unlabeled), "--grader", "json", "--target", "1"]
    tuned = invoke(*tune, "--confidence", "0", "--output", str(out), "--json")
    assert tuned.exit_code == 0, tuned.output
    data = json.loads(tuned.stdout)
    assert data["need"] == pytest.approx(need) and data["feasible"]
    assert data["in_sample"]["cascade"]["cost_per_query"] == pytest.approx(best_cost)
    assert data["quality"] >= need - 1e-9
    again = json.loads(invoke("eval", "--policy", str(out), "--traces", str(traces), "--json").stdout)
    assert again["cascade"]["cost_per_query"] == pytest.approx(best_cost)
    assert again["cascade"]["quality"] == pytest.approx(data["quality"])


def test_run_passes_tools_and_output_schema_on(tmp_path: Path, scripted: list[dict[str, ScriptedProvider]]) -> None:
    policy = write_policy(tmp_path / "policy.yaml")
    rows = [{"id": row, **{k: v for k, v in fields.items() if k != "reference"}} for row, (fields, _) in PLAN.items()]
    rows.append({"id": "bad", "query": "[A] again", "output_schema": "city.json"})
    queries, out = write_rows(tmp_path / "q.jsonl", rows), tmp_path / "results.jsonl"
    result = invoke("run", "--policy", str(policy), "--input", str(queries), "--output", str(out))
    assert result.exit_code == 1, result.output
    lines = {line["id"]: line for line in read_rows(out)}
    bad = lines["bad"]
    assert bad["ok"] is False and "output_schema must be a JSON Schema object" in bad["error"]["message"]
    for row, (_, plan) in PLAN.items():
        answerer, spent = cascade_outcome(plan, THRESHOLDS)
        assert answerer is not None
        line = lines[row]["result"]
        says, name = plan[answerer], STAGES[answerer][0]
        assert says is not None and line["stage"] == name, row
        accepted = answerer == len(STAGES) - 1 or says.score / 10 >= THRESHOLDS[answerer]
        assert line["cost_usd"] == pytest.approx(spent) and line["accepted"] is accepted, row
        if says.data is not None:
            assert line["output"] == {**says.data, "by": marker(row, name)} and line["tool_calls"] == []
        else:
            assert line["output"] is None and says.call is not None
            assert [(c["name"], c["arguments"]) for c in line["tool_calls"]] == [says.call]
        skipped = [s["stage"] for s in line["skipped"]]
        assert skipped == (["s1"] if "tools" in PLAN[row][0] and answerer == 2 else [])
