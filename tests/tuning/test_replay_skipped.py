"""A stage skipped for a query (its model cannot serve it) is no failure: the replay moves past it, as the live
cascade does, under `on_error: raise` too, and both replays (the fold and the vectorised one) agree."""

from __future__ import annotations

import pytest

from cascade.policy import Policy
from cascade.tuning.replay import fold_replay, replay, replay_data
from cascade.tuning.traces import Trace


def policy(on_error: str) -> Policy:
    stages = [
        {"name": "a", "provider": "openai", "model": "gpt-4o-mini", "threshold": 0.8},
        {"name": "b", "provider": "openai", "model": "gpt-4o"},
    ]
    return Policy.from_dict({"name": "p", "version": "1", "stages": stages, "on_error": on_error})


def trace(first: dict[str, object]) -> Trace:
    second = {"answer": "4", "confidence": 0.9, "cost_usd": 0.002, "correct": True}
    return Trace.model_validate({"id": "q", "stages": {"a": first, "b": second}})


@pytest.mark.parametrize("on_error", ["escalate", "raise"])
def test_a_skipped_stage_is_passed_over(on_error: str) -> None:
    skipped = {"answer": None, "confidence": 0.0, "cost_usd": 0.0, "skipped": "gpt-4o-mini cannot do tool calls"}
    data = replay_data(policy(on_error), [trace(skipped)])
    for outcome in (fold_replay(data, (0.8,)), replay(data, (0.8,))):
        assert (outcome.answerer.tolist(), outcome.quality.tolist()) == ([1], [1.0])


def test_a_failed_stage_still_ends_the_query_under_on_error_raise() -> None:
    failed = {"answer": None, "confidence": 0.0, "cost_usd": 0.0001, "error": "ServerError: HTTP 500"}
    data = replay_data(policy("raise"), [trace(failed)])
    for outcome in (fold_replay(data, (0.8,)), replay(data, (0.8,))):
        assert outcome.answerer.tolist() == [-1]
