"""Read a traces file straight into replay columns: a million traces in seconds, in a few hundred megabytes.

`read_traces` builds a pydantic `Trace` per line, answers included: right for `collect`, labels and graders,
too slow and too large for `eval` and `tune` on a million traces. `read_columns` streams the file a line at a
time and keeps only what the replay reads. It accepts exactly what `read_traces` accepts, with the same
errors, by construction: each line is validated strictly against the same fields and constraints (a JSON
number where a number is due, a string where a string is), which `Trace` would accept with the same values;
a line it is not sure of (a key possibly given twice, a value in a form the strict check leaves to the lax
one, a very long line) is parsed again as `read_traces` parses it; and at the first line, id, missing stage
or label that fails, the whole file is read by `read_traces` and `check_complete`, which raise their own
error (or, when the strict check was only stricter, return the traces, turned into columns the slow way).
"""

from __future__ import annotations

import json
from array import array
from pathlib import Path
from typing import Annotated, Any, NotRequired, cast

import numpy as np
from pydantic import ConfigDict, Field, StrictBool, TypeAdapter, ValidationError
from typing_extensions import TypedDict

from cascade.policy import Policy
from cascade.tuning.graders import Reference
from cascade.tuning.replay import ReplayData, TraceColumns, columns_of, entry_stage, replay_data_from_columns
from cascade.tuning.traces import check_complete, read_traces

_STRICT = ConfigDict(extra="allow", allow_inf_nan=False, strict=True)
_LONG_LINE = 4_000  # past this, a line may hold an integer too long for `json.loads`: parsed again its way


class _ToolCall(TypedDict):
    __pydantic_config__ = _STRICT  # type: ignore[misc]
    id: str
    name: str
    arguments: dict[str, Any]


class _Stage(TypedDict):
    __pydantic_config__ = _STRICT  # type: ignore[misc]
    answer: str | None
    confidence: Annotated[float, Field(ge=0, le=1)]
    cost_usd: Annotated[float, Field(ge=0)]
    judge_cost_usd: NotRequired[Annotated[float, Field(ge=0)] | None]
    correct: NotRequired[StrictBool | Annotated[float, Field(ge=0, le=1)] | None]
    error: NotRequired[str | None]
    output: NotRequired[Any]
    tool_calls: NotRequired[list[_ToolCall] | None]
    skipped: NotRequired[str | None]


class _Row(TypedDict):
    __pydantic_config__ = _STRICT  # type: ignore[misc]
    id: Annotated[str, Field(min_length=1)]
    query: NotRequired[str | None]
    reference: NotRequired[Reference | None]
    stages: dict[str, _Stage]


_ROW = TypeAdapter(_Row)


class _Fallback(Exception):
    """The strict path is not sure: `read_traces` decides."""


def read_replay_data(policy: Policy, path: Path) -> ReplayData:
    """`replay_data(policy, read_traces(path))`, the same figures and errors, streamed."""
    return replay_data_from_columns(policy, read_columns(policy, path))


def read_columns(policy: Policy, path: Path) -> TraceColumns:
    """The replay columns of a traces file (every policy stage traced, every answer labeled)."""
    try:
        return _stream(policy, path)
    except (_Fallback, OSError, UnicodeDecodeError):
        traces = read_traces(path)
        check_complete(traces, [s.name for s in policy.stages])
        return columns_of(policy, traces)


def _stream(policy: Policy, path: Path) -> TraceColumns:
    names = [s.name for s in policy.stages]
    routed = bool(policy.routing.rules)
    ids: list[str] = []
    seen: set[str] = set()
    entry = array("q")
    answered, error, skipped = array("b"), array("b"), array("b")
    confidence, cost, answer_cost, quality = array("d"), array("d"), array("d"), array("d")
    with path.open("rb") as file:
        for raw in file:
            line = raw.rstrip(b"\n")
            if not line.strip():
                continue
            row = _validated(line)
            if row["id"] in seen:
                raise _Fallback
            seen.add(row["id"])
            ids.append(row["id"])
            entry.append(entry_stage(policy, row.get("query")) if routed else 0)
            stages = row["stages"]
            for name in names:
                stage = stages.get(name)
                if stage is None:
                    raise _Fallback
                given = stage["answer"] is not None
                label = stage.get("correct")
                if given and label is None:
                    raise _Fallback
                spent = stage["cost_usd"]
                answered.append(given)
                error.append(stage.get("error") is not None)
                skipped.append(stage.get("skipped") is not None)
                confidence.append(stage["confidence"])
                cost.append(spent)
                answer_cost.append(max(spent - (stage.get("judge_cost_usd") or 0.0), 0.0))
                quality.append(float(label) if given and label is not None else 0.0)
    if not ids:
        raise _Fallback
    shape = (len(ids), len(names))

    def grid(values: array[Any], dtype: type) -> Any:
        return np.frombuffer(values, dtype=dtype).reshape(shape).copy()

    return TraceColumns(
        ids=tuple(ids),
        entry=np.frombuffer(entry, dtype=np.int64).copy(),
        answered=grid(answered, np.int8).astype(bool),
        confidence=grid(confidence, np.float64),
        cost_usd=grid(cost, np.float64),
        answer_cost=grid(answer_cost, np.float64),
        quality=grid(quality, np.float64),
        error=grid(error, np.int8).astype(bool),
        skipped=grid(skipped, np.int8).astype(bool),
    )


def _validated(line: bytes) -> dict[str, Any]:
    """One line, validated strictly; `_Fallback` when `read_traces` could read it otherwise."""
    if not line.lstrip().startswith(b"{"):
        raise _Fallback
    try:
        row = cast(dict[str, Any], _ROW.validate_json(line))
    except ValidationError:
        raise _Fallback from None
    if len(line) > _LONG_LINE or not _keys_once(line, row):
        try:
            json.loads(line, object_pairs_hook=_refuse_duplicates)
        except (ValueError, RecursionError):
            raise _Fallback from None
    return row


def _keys_once(line: bytes, row: dict[str, Any]) -> bool:
    """True when no key of the line can be given twice. Every key is written `"key":` (the line has no space,
    tab or carriage return after a quote), so the line holds at least as many `":` as keys at every level;
    exactly as many as the keys of the row, its stages and their fields only when none repeats (and no extra
    field nests objects)."""
    if b'" ' in line or b'"\t' in line or b'"\r' in line:
        return False
    stages = row["stages"]
    return line.count(b'":') == len(row) + len(stages) + sum(map(len, stages.values()))


def _refuse_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    row = dict(pairs)
    if len(row) != len(pairs):
        raise ValueError("a key is given twice")
    return row
