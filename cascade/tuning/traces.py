"""Traces: what every stage of a policy answered for one query, what it cost, and whether it was right.

One JSON object a line (the format is documented in docs/traces.md):

    {"id": "q1", "query": "...", "reference": "...",
     "stages": {"mini": {"answer": "...", "confidence": 0.8, "cost_usd": 0.00012, "correct": true}, ...}}

`cost_usd` is the stage's answer plus its judge call; `correct` is a bool or a quality score in [0, 1]. A
structured answer also has its `output` (the JSON data), an answer made of tool calls its `tool_calls`, and a
stage whose model cannot serve the query (`cascade.capabilities`) has `answer: null` and the reason in `skipped`.
Fields this module does not know are kept (`extra="allow"`) and written back unchanged.

Files are read strictly, and every problem is a `TraceError` naming the file and the line: UTF-8 text, lines split
at line feeds only (a JSON string may hold U+2028 or U+0085, where `str.splitlines` would split), one JSON object a
line with no key given twice, and finite numbers (`tune` would write a policy from a `cost_usd` of `Infinity`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Generator, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool, ValidationError

from cascade.calls import Outcome, Step
from cascade.context import QueryContext
from cascade.errors import TraceError as TraceError  # re-exported: it lived here before cascade.errors
from cascade.flow import ShadowStage, shadow_flow
from cascade.tools import tool_calls_json
from cascade.tuning.graders import Grader, LLMGrader, Reference, llm_grade_flow

Correct = StrictBool | Annotated[float, Field(ge=0, le=1)]


class ToolCallTrace(BaseModel):
    """One tool call in a stage's answer: the vendor's id for it, the tool's name, its arguments (a JSON object)."""

    model_config = ConfigDict(extra="allow", allow_inf_nan=False)

    id: str
    name: str
    arguments: dict[str, Any]


class StageTrace(BaseModel):
    """One stage's answer to a query in shadow mode."""

    model_config = ConfigDict(extra="allow", allow_inf_nan=False)

    answer: str | None = Field(description="The stage's answer; null when the stage failed to answer.")
    confidence: float = Field(ge=0, le=1, description="The judge's confidence (score / 10), 0 when it failed.")
    cost_usd: float = Field(ge=0, description="The answer call plus its judge call, USD.")
    judge_cost_usd: float | None = Field(
        None, ge=0, description="The judge's part of cost_usd (lets replay drop it where no judge runs)."
    )
    correct: Correct | None = Field(None, description="true / false, or a quality score in [0, 1]; null: unlabeled.")
    error: str | None = Field(None, description="Why the answer or the judge call failed, if one did.")
    output: Any = Field(None, description="A structured answer as JSON data (the query asked for a schema).")
    tool_calls: list[ToolCallTrace] | None = Field(None, description="The tool calls the answer is made of.")
    skipped: str | None = Field(
        None, description="Why the stage was not asked: its model cannot do what the query needs (answer: null)."
    )

    @property
    def answered(self) -> bool:
        """True when the stage produced an answer."""
        return self.answer is not None

    def quality(self) -> float:
        """`correct` as a number in [0, 1]; an unanswered stage is worth 0. Raises ValueError if unlabeled."""
        if not self.answered:
            return 0.0
        if self.correct is None:
            raise ValueError("unlabeled")
        return float(self.correct)

    def answer_cost(self) -> float:
        """The answer call alone: cost_usd minus the judge's part when the trace records it."""
        return max(self.cost_usd - (self.judge_cost_usd or 0.0), 0.0)


class Trace(BaseModel):
    """One query: its id, optionally its text and reference answer, and every stage's outcome."""

    model_config = ConfigDict(extra="allow", allow_inf_nan=False)

    id: str = Field(min_length=1)
    query: str | None = Field(None, description="The query text as routing rules see it; lets eval route.")
    reference: Reference | None = Field(None, description="The expected answer, for the graders.")
    stages: dict[str, StageTrace]

    def to_json(self) -> str:
        """One line of JSON (no trailing newline), unknown fields included; optional fields left out when unset."""
        data = self.model_dump(mode="json")
        _drop_unset(data, ("query", "reference"))
        for stage in data["stages"].values():
            _drop_unset(stage, ("judge_cost_usd", "correct", "error", "output", "tool_calls", "skipped"))
        text = json.dumps(data, ensure_ascii=False)
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate (a vendor may send one) can only be written escaped
            text = json.dumps(data)
        return text


def _drop_unset(data: dict[str, Any], keys: Sequence[str]) -> None:
    for key in keys:
        if data.get(key, 0) is None:
            del data[key]


def read_traces(path: Path) -> list[Trace]:
    """Read and validate a traces file; raises `TraceError` naming the line of the first problem."""
    traces: list[Trace] = []
    seen: set[str] = set()
    for number, row in _rows(path):
        try:
            trace = Trace.model_validate(row)
        except ValidationError as exc:
            raise TraceError(f"{path}:{number}: {_first_problem(exc)}") from None
        if trace.id in seen:
            raise TraceError(f"{path}:{number}: duplicate id {trace.id!r}")
        seen.add(trace.id)
        traces.append(trace)
    if not traces:
        raise TraceError(f"{path}: no traces")
    return traces


def traces_sha256(path: Path) -> str:
    """The hash of the traces file as stored, for the tuned policy's header."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def read_labels(path: Path) -> dict[str, dict[str, Correct]]:
    """A labels file: JSON lines `{"id": ..., "correct": {STAGE: true | false | 0.0-1.0}}`."""

    class _Row(BaseModel):
        model_config = ConfigDict(extra="allow", allow_inf_nan=False)
        id: str
        correct: dict[str, Correct]

    labels: dict[str, dict[str, Correct]] = {}
    for number, data in _rows(path):
        try:
            row = _Row.model_validate(data)
        except ValidationError as exc:
            raise TraceError(f"{path}:{number}: {_first_problem(exc)}") from None
        labels.setdefault(row.id, {}).update(row.correct)
    return labels


def merge_labels(traces: Sequence[Trace], labels: Mapping[str, Mapping[str, Correct]]) -> tuple[list[Trace], int]:
    """Traces with `labels` applied over their own (labels win); also how many label ids matched no trace."""
    by_id = {t.id for t in traces}
    out: list[Trace] = []
    for trace in traces:
        given = labels.get(trace.id, {})
        unknown = sorted(set(given) - set(trace.stages))
        if unknown:
            raise TraceError(f"labels for {trace.id!r} name stages not in its trace: {', '.join(unknown)}")
        stages = {
            name: stage.model_copy(update={"correct": given[name]}) if name in given else stage
            for name, stage in trace.stages.items()
        }
        out.append(trace.model_copy(update={"stages": stages}))
    return out, sum(1 for label_id in labels if label_id not in by_id)


def check_complete(traces: Iterable[Trace], stages: Sequence[str]) -> None:
    """Every trace has every stage, and every answered stage is labeled; else `TraceError` with examples."""
    missing: list[str] = []
    unlabeled: list[str] = []
    for trace in traces:
        for name in stages:
            stage = trace.stages.get(name)
            if stage is None:
                missing.append(f"{trace.id}/{name}")
            elif stage.answered and stage.correct is None:
                unlabeled.append(f"{trace.id}/{name}")
    if missing:
        raise TraceError(f"{len(missing)} stages missing from traces (every policy stage is needed): {_few(missing)}")
    if unlabeled:
        raise TraceError(
            f"{len(unlabeled)} answers have no `correct` label: {_few(unlabeled)}. Label them with --grader "
            "(the traces need a `reference`) or --labels FILE"
        )


def _rows(path: Path) -> Iterable[tuple[int, dict[str, Any]]]:
    """Each non-blank line's JSON object with its line number; `TraceError` at the first line that is not one."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise TraceError(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        where = data.count(b"\n", 0, exc.start) + 1
        raise TraceError(f"{path}:{where}: not UTF-8 text (byte 0x{data[exc.start]:02x})") from None
    for number, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        if not line.lstrip().startswith("{"):
            raise TraceError(f"{path}:{number}: each line must be a JSON object")
        try:
            row = json.loads(line, object_pairs_hook=_refuse_duplicate_keys)
        except _DuplicateKey as exc:
            raise TraceError(f"{path}:{number}: the key {exc.key!r} is given twice") from None
        except json.JSONDecodeError as exc:
            raise TraceError(f"{path}:{number}: not JSON ({exc.msg}, column {exc.colno})") from None
        except (ValueError, RecursionError) as exc:  # an int past 4,300 digits; nesting past the recursion limit
            raise TraceError(f"{path}:{number}: not JSON ({type(exc).__name__}: {str(exc)[:80]})") from None
        if not isinstance(row, dict):
            raise TraceError(f"{path}:{number}: each line must be a JSON object")
        yield number, row


class _DuplicateKey(Exception):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _refuse_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    row: dict[str, Any] = {}
    for key, value in pairs:
        if key in row:
            raise _DuplicateKey(key)
        row[key] = value
    return row


def _first_problem(exc: ValidationError) -> str:
    err = exc.errors(include_url=False)[0]
    where = ".".join(str(part) for part in err["loc"])
    return f"{where}: {err['msg']}" if where else err["msg"]


def _few(items: Sequence[str], limit: int = 5) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


# -- collecting (shadow mode) ----------------------------------------------------------------------


def collect_flow(
    ctx: QueryContext, row: Mapping[str, Any], grader: Grader | LLMGrader | None = None
) -> Generator[Step, Outcome, Trace]:
    """Every stage answers and is judged (`shadow_flow`); with a grader and a `reference`, answers are labeled.

    A step machine: run it with `Cascade.drive` / `adrive`. The input row's other fields are kept in the trace.
    A stage whose model cannot serve the query is traced unanswered with the reason in `skipped` and no `error`:
    it is no failure (a rerun of `collect` would skip it again), and the replay escalates past it.
    """
    outcomes = yield from shadow_flow(ctx)
    judge_cost = {o.name: 0.0 for o in outcomes}
    for attempt in ctx.attempts:
        if attempt.role == "judge" and attempt.stage in judge_cost:
            judge_cost[attempt.stage] += attempt.cost_usd
    reference = row.get("reference")
    stages: dict[str, StageTrace] = {}
    for outcome in outcomes:
        fields = _stage_fields(outcome, judge_cost[outcome.name])
        if grader is not None and reference is not None and outcome.answer is not None:
            if isinstance(grader, LLMGrader):
                grade = yield from llm_grade_flow(ctx, grader, outcome.name, outcome.answer, reference)
                fields.update(correct=grade.correct, grader_cost_usd=grade.cost_usd, grade_reason=grade.reason)
            else:
                fields["correct"] = grader(outcome.answer, reference)
        stages[outcome.name] = StageTrace(**fields)
    extras = {k: v for k, v in row.items() if k not in ("id", "query", "stages")}
    query = row["query"]
    if not isinstance(query, str):
        extras["messages"] = query
        query = ctx.text
    return Trace(id=str(row["id"]), query=query, stages=stages, **extras)


def _stage_fields(outcome: ShadowStage, judge_cost: float) -> dict[str, Any]:
    """A shadow stage as trace fields: what it answered (text, structured output, tool calls) and cost."""
    skipped = outcome.result.outcome == "skipped"
    fields: dict[str, Any] = {
        "answer": outcome.answer,
        "confidence": outcome.result.confidence or 0.0,
        "cost_usd": outcome.result.cost_usd,
        "judge_cost_usd": judge_cost,
        "error": None if skipped else outcome.error,
        "skipped": (outcome.error or "the model cannot serve the query") if skipped else None,
        "output": outcome.output,
    }
    if outcome.tool_calls:
        fields["tool_calls"] = tool_calls_json(outcome.tool_calls)
    return fields
