"""The step machine itself, driven by hand: what it asks for, in what order, and how long it waits."""

from __future__ import annotations

import random
from pathlib import Path

from cascade import load_policy
from cascade.errors import RateLimitedError, ServerError
from cascade.flow import Call, QueryContext, Sleep, cascade_flow
from cascade.providers.base import Message
from cascade.testing import completion, judge_json

POLICY = load_policy(Path(__file__).resolve().parents[2] / "policies" / "default.yaml")


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_backoff_doubles_with_jitter_and_retry_after_wins() -> None:
    clock = Clock()
    ctx = QueryContext(policy=POLICY, prices=POLICY.price_table(), messages=(Message("user", "q"),), system=None,
                       query_id="t", clock=clock, rng=random.Random(7))
    flow = cascade_flow(ctx)
    step = next(flow)
    assert isinstance(step, Call) and (step.stage, step.role) == ("mini", "answer")
    sleeps = []
    for outcome in (ServerError("500", status_code=500), ServerError("500", status_code=500)):
        step = flow.send(outcome)
        assert isinstance(step, Sleep)
        sleeps.append(step.seconds)
        clock.now += step.seconds
        step = flow.send(None)
        assert isinstance(step, Call) and step.stage == "mini"
    assert 0.5 <= sleeps[0] <= 0.625 and 1.0 <= sleeps[1] <= 1.25
    # the third failure exhausts retries=2 and the flow moves on to the next stage
    step = flow.send(RateLimitedError("429", status_code=429, retry_after=3.0))
    assert isinstance(step, Call) and step.stage == "flash"


def test_retry_after_is_used_and_timeouts_shrink_with_the_deadline() -> None:
    clock = Clock()
    ctx = QueryContext(policy=POLICY, prices=POLICY.price_table(), messages=(Message("user", "q"),), system=None,
                       query_id="t", clock=clock)
    flow = cascade_flow(ctx)
    first = next(flow)
    assert first.request.timeout_s == 30  # the stage's timeout_s
    clock.now += 10
    step = flow.send(RateLimitedError("429", status_code=429, retry_after=4.0))
    assert step == Sleep(4.0)
    clock.now += 4.0
    retry = flow.send(None)
    assert retry.request.timeout_s == 16  # what is left of the stage's 30 s
    judge = flow.send(completion("Positive.", model="gpt-4o-mini"))
    assert judge.role == "judge" and judge.request.temperature == 0.0
    try:
        flow.send(completion(judge_json(9), model="gpt-4o-mini"))
    except StopIteration as stop:
        assert stop.value.stage == "mini" and [a.retry for a in stop.value.attempts] == [0, 1, 0]
    else:
        raise AssertionError("the flow should have finished")
