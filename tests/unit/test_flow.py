"""The step machine itself, driven by hand: what it asks for, in what order, and how long it waits."""

from __future__ import annotations

import logging
import random
from pathlib import Path
from typing import Any

import structlog
import structlog.testing

from cascade import load_policy
from cascade.calls import Call, Sleep
from cascade.context import QueryContext, QuerySpec
from cascade.errors import RateLimitedError, ServerError
from cascade.flow import cascade_flow
from cascade.providers.base import Message
from cascade.testing import completion, judge_json

POLICY = load_policy(Path(__file__).resolve().parents[2] / "policies" / "default.yaml")


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _context(clock: Clock, **options: Any) -> QueryContext:
    """A one-message query on the default policy, on a clock the test moves."""
    spec = QuerySpec(
        policy=POLICY, prices=POLICY.price_table(), messages=(Message("user", "q"),), system=None, query_id="t"
    )
    return QueryContext(spec, clock=clock, **options)


def test_backoff_doubles_with_jitter_and_retry_after_wins() -> None:
    clock = Clock()
    ctx = _context(clock, rng=random.Random(7))
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
    ctx = _context(clock)
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


def _answered_query() -> None:
    """One query through the flow, accepted at the first stage (route, answer, judge, done events)."""
    ctx = _context(Clock())
    flow = cascade_flow(ctx)
    next(flow)
    flow.send(completion("Positive.", model="gpt-4o-mini"))
    try:
        flow.send(completion(judge_json(9), model="gpt-4o-mini"))
    except StopIteration:
        return
    raise AssertionError("the flow should have finished")


def test_events_follow_the_structlog_level_as_it_changes() -> None:
    capture = structlog.testing.LogCapture()
    saved = structlog.get_config()
    try:
        # structlog's filtering wrapper classes: one class per level.
        for level, expected in ((logging.WARNING, []), (logging.INFO, ["cascade.answer", "cascade.judge"])):
            structlog.configure(processors=[capture], wrapper_class=structlog.make_filtering_bound_logger(level))
            capture.entries.clear()
            _answered_query()
            assert [e["event"] for e in capture.entries if e["event"] != "cascade.done"] == expected
        # The stdlib wrapper follows the `logging` level, which may change between two queries.
        stdlib_logger = logging.getLogger("cascade")
        structlog.configure(
            processors=[structlog.stdlib.filter_by_level, capture],
            wrapper_class=structlog.stdlib.BoundLogger,
            logger_factory=structlog.stdlib.LoggerFactory(),
        )
        for level, expect_events in ((logging.WARNING, False), (logging.INFO, True), (logging.WARNING, False)):
            stdlib_logger.setLevel(level)
            capture.entries.clear()
            _answered_query()
            assert bool(capture.entries) is expect_events
    finally:
        logging.getLogger("cascade").setLevel(logging.NOTSET)
        structlog.configure(**saved)
