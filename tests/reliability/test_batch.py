"""One bad reply must not lose a batch (issue 12.3): `run_many` and `arun_many` return one outcome per query, in
input order, whatever one query raises, and leave no task or thread behind."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest

from cascade.batch import Batch
from cascade.engine import Cascade
from cascade.errors import BatchError, CascadeError, InvalidArgumentError
from cascade.policy import Policy
from cascade.providers.base import CompletionRequest
from cascade.result import CascadeResult
from cascade.testing import ScriptedProvider, judge_json

POLICY = Policy.from_dict(
    {
        "name": "two",
        "version": "1",
        "stages": [
            {"name": "mini", "provider": "openai", "model": "gpt-4o-mini", "threshold": 0.8, "retries": 0},
            {"name": "big", "provider": "openai", "model": "gpt-4o", "retries": 0},
        ],
    }
)
QUERIES = [f"question {i}" for i in range(50)]
POISONED = 17


def script(request: CompletionRequest) -> Any:
    text = request.messages[-1].content
    if "<<<ANSWER " in text:
        return judge_json(9)
    if text == QUERIES[POISONED]:  # a reply the SDK cannot decode: not a CascadeError
        raise UnicodeDecodeError("utf-8", b"\xff\xfe", 0, 1, "invalid start byte")
    return f"answer to {text}"


def router(delay_s: float = 0.005) -> Cascade:
    return Cascade(POLICY, providers={"openai": ScriptedProvider("openai", script, delay_s=delay_s)})


class OneRaises(Cascade):
    """A query that raises something no adapter or driver ever sees (here: inside `arun` / `run` itself)."""

    def run(self, query: Any, **kwargs: Any) -> CascadeResult:
        if query == QUERIES[3]:
            raise RuntimeError("not a cascade error")
        return super().run(query, **kwargs)

    async def arun(self, query: Any, **kwargs: Any) -> CascadeResult:
        if query == QUERIES[3]:
            raise RuntimeError("not a cascade error")
        return await super().arun(query, **kwargs)


def check_outcomes(outcomes: list[Any], failed: int, error: type[BaseException]) -> None:
    assert len(outcomes) == len(QUERIES)
    for index, (query, outcome) in enumerate(zip(QUERIES, outcomes, strict=True)):
        if index == failed:
            assert isinstance(outcome, error), outcome
        else:
            assert isinstance(outcome, CascadeResult) and outcome.answer == f"answer to {query}"


def batch_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("cascade-batch")]


async def test_arun_many_keeps_every_outcome_and_leaves_no_task() -> None:
    r = router()
    outcomes = await r.arun_many(QUERIES, concurrency=20, return_exceptions=True)
    check_outcomes(outcomes, POISONED, CascadeError)
    assert asyncio.all_tasks() == {asyncio.current_task()}
    with pytest.raises(BatchError) as raised:
        await r.arun_many(QUERIES, concurrency=20)
    assert asyncio.all_tasks() == {asyncio.current_task()}
    check_outcomes(raised.value.outcomes, POISONED, CascadeError)
    assert list(raised.value.errors) == [POISONED] and "1 of 50 queries failed" in str(raised.value)


def test_run_many_keeps_every_outcome_and_leaves_no_thread() -> None:
    r = router()
    check_outcomes(r.run_many(QUERIES, concurrency=8, return_exceptions=True), POISONED, CascadeError)
    with pytest.raises(BatchError) as raised:
        r.run_many(QUERIES, concurrency=8)
    check_outcomes(raised.value.outcomes, POISONED, CascadeError)
    assert batch_threads() == []


async def test_any_exception_stays_with_its_query() -> None:
    r = OneRaises(POLICY, providers={"openai": ScriptedProvider("openai", script)})
    queries = [q for i, q in enumerate(QUERIES) if i != POISONED]
    outcomes = await r.arun_many(queries, concurrency=10, return_exceptions=True)
    assert isinstance(outcomes[3], RuntimeError) and sum(isinstance(o, CascadeResult) for o in outcomes) == 48
    assert asyncio.all_tasks() == {asyncio.current_task()}
    with pytest.raises(BatchError) as raised:
        r.run_many(queries, concurrency=10)
    assert isinstance(raised.value.errors[3], RuntimeError) and isinstance(raised.value.__cause__, RuntimeError)


async def test_on_result_sees_each_outcome_as_it_ends_in_the_callers_loop() -> None:
    seen: list[tuple[int, Any]] = []
    loop = asyncio.get_running_loop()

    def save(index: int, outcome: Any) -> None:
        assert asyncio.get_running_loop() is loop
        seen.append((index, outcome))

    r = router()
    outcomes = await Batch(10, on_result=save).amap(r.arun, QUERIES)
    assert sorted(index for index, _ in seen) == list(range(50))
    assert all(outcomes[index] is outcome for index, outcome in seen)


async def test_a_failing_callback_stops_the_batch_and_leaves_no_task() -> None:
    started: list[int] = []

    async def job(item: int) -> int:
        started.append(item)
        await asyncio.sleep(0.01 if item else 0)
        return item

    def save(index: int, outcome: Any) -> None:
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        await Batch(4, on_result=save).amap(job, list(range(100)))
    assert asyncio.all_tasks() == {asyncio.current_task()} and len(started) < 10


async def test_cancelling_a_batch_cancels_its_jobs_and_leaves_no_task() -> None:
    r = router(delay_s=0.5)
    batch = asyncio.create_task(r.arun_many(QUERIES, concurrency=5))
    await asyncio.sleep(0.05)
    batch.cancel()
    with pytest.raises(asyncio.CancelledError):
        await batch
    assert asyncio.all_tasks() == {asyncio.current_task()}


def test_sync_batch_with_a_failing_callback_starts_nothing_more() -> None:
    started: list[int] = []

    def job(item: int) -> int:
        started.append(item)
        time.sleep(0.001)
        return item

    def save(index: int, outcome: Any) -> None:
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        Batch(2, on_result=save).map(job, list(range(1000)))
    assert len(started) < 1000 and batch_threads() == []


@pytest.mark.parametrize("concurrency", [0, -1, 1.5, True])
def test_a_bad_concurrency_is_a_typed_value_error(concurrency: Any) -> None:
    with pytest.raises(InvalidArgumentError) as raised:
        router().run_many(QUERIES, concurrency=concurrency)
    assert isinstance(raised.value, ValueError) and "concurrency" in str(raised.value)
