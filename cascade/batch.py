"""Many jobs at once, at most `concurrency` in flight: the one loop under `Cascade.run_many`, `Cascade.arun_many`
and the command line's `cascade run` and `cascade collect`.

A batch gives one outcome per item, in input order: what the job returned, or the exception it raised (any
`Exception`: one bad reply must not cost the other results). `on_result(index, outcome)` is called as each job
ends, in the caller's thread or on the caller's loop, so a caller can save outcomes as they come. A batch leaves
nothing behind: when it returns, or raises (an `on_result` failed, or the batch was cancelled), every task or
thread it started has ended.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any, TypeVar

from cascade.errors import InvalidArgumentError

T = TypeVar("T")
R = TypeVar("R")

OnResult = Callable[[int, Any], object]


class Batch:
    """How a batch runs: `concurrency` jobs at most in flight, `on_result` called as each one ends."""

    def __init__(self, concurrency: int, on_result: OnResult | None = None) -> None:
        if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
            raise InvalidArgumentError(f"concurrency must be a whole number of at least 1 (got {concurrency!r})")
        self.concurrency = concurrency
        self.on_result = on_result

    def _record(self, outcomes: list[Any], index: int, outcome: Any) -> None:
        outcomes[index] = outcome
        if self.on_result is not None:
            self.on_result(index, outcome)

    async def amap(self, job: Callable[[T], Awaitable[R]], items: Sequence[T]) -> list[R | Exception]:
        """Await `job(item)` for every item on the running loop."""
        outcomes: list[Any] = [None] * len(items)
        # Workers share one iterator, so there are `concurrency` tasks however many items: nothing waits on a
        # semaphore, and cancelling the batch cancels a handful of tasks.
        pending = iter(enumerate(items))

        async def worker() -> None:
            for index, item in pending:
                outcome: Any
                try:
                    outcome = await job(item)
                except Exception as exc:  # any failure belongs to this item only
                    outcome = exc
                self._record(outcomes, index, outcome)

        workers = [asyncio.create_task(worker()) for _ in range(min(self.concurrency, len(items)))]
        try:
            await asyncio.gather(*workers)
        finally:
            await _end(workers)
        return outcomes

    def map(self, job: Callable[[T], R], items: Sequence[T]) -> list[R | Exception]:
        """Call `job(item)` for every item on worker threads; `on_result` runs in the calling thread."""
        outcomes: list[Any] = [None] * len(items)

        def one(item: T) -> Any:
            try:
                return job(item)
            except Exception as exc:
                return exc

        size = min(self.concurrency, max(len(items), 1))
        with ThreadPoolExecutor(max_workers=size, thread_name_prefix="cascade-batch") as pool:
            futures: dict[Future[Any], int] = {pool.submit(one, item): index for index, item in enumerate(items)}
            try:
                running = set(futures)
                while running:
                    finished, running = wait(running, return_when=FIRST_COMPLETED)
                    for future in sorted(finished, key=futures.__getitem__):
                        self._record(outcomes, futures[future], future.result())
            finally:
                # A failed callback or an interrupt: start nothing more; leaving the pool waits for the calls in
                # flight.
                pool.shutdown(wait=False, cancel_futures=True)
        return outcomes


async def _end(workers: list[asyncio.Task[None]]) -> None:
    """Cancel what still runs and wait for every worker, so that no task outlives the batch."""
    for task in workers:
        task.cancel()
    if workers:
        await asyncio.wait(workers)
    for task in workers:
        if not task.cancelled():
            task.exception()  # retrieved: a second failing callback is not reported as "never retrieved"
