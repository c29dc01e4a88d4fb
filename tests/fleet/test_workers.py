"""A fleet of worker processes on one real Redis: a shared spend cap holds, a breaker opened by one worker is
seen by the others, and a Redis restart in the middle costs no query."""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any

import pytest

from cascade.budget import call_cost_bound
from cascade.stages import answer_request, judge_request
from tests.fleet import workers
from tests.fleet.conftest import RedisServer, Server
from tests.fleet.helpers import NANO, Vendors, fleet_policy

WORKERS, QUERIES, CONCURRENCY = 4, 500, 4


@pytest.fixture(scope="module")
def pool() -> Iterator[ProcessPoolExecutor]:
    # spawn: fresh interpreters, as real workers are (no state inherited from this process).
    with ProcessPoolExecutor(WORKERS, mp_context=multiprocessing.get_context("spawn")) as executor:
        list(executor.map(time.sleep, [0] * WORKERS))  # start them before any timing matters
        yield executor


def spend_counter(server: Server) -> int:
    client = server.client()
    return sum(int(client.get(key) or 0) for key in client.scan_iter("cascade:spend:policy:fleet:day:*"))


def largest_bound() -> float:
    ctx = Vendors().cascade(fleet_policy()).context("what is 2+2?")
    nano, haiku = ctx.policy.stages
    requests = [answer_request(ctx, nano), judge_request(ctx, nano, f"{NANO} says 4"), answer_request(ctx, haiku)]
    return max(call_cost_bound(ctx.spec.prices, request) for request in requests)


def watch_counter(server: Server, jobs: list[Future[Any]]) -> list[int]:
    samples = []
    while not all(job.done() for job in jobs):
        samples.append(spend_counter(server))
        time.sleep(0.005)
    return samples


def test_four_workers_never_spend_past_the_fleet_cap(redis_server: Server, pool: ProcessPoolExecutor) -> None:
    # 2,000 queries would cost about $0.033: a cap of $0.02 binds, part way through.
    cap = 0.02
    jobs = [pool.submit(workers.spend, redis_server.url, cap, QUERIES, CONCURRENCY) for _ in range(WORKERS)]
    samples = watch_counter(redis_server, jobs)
    reports = [job.result() for job in jobs]
    spent = sum(r["cost_usd"] for r in reports)
    outcomes = sum((r["outcomes"] for r in reports), start=type(reports[0]["outcomes"])())
    assert sum(outcomes.values()) == WORKERS * QUERIES
    assert set(outcomes) == {"CascadeResult", "spend-limit"} and outcomes["spend-limit"] > 0
    # The counter holds the real spend plus the reservations in flight: it never passed the cap, so neither did
    # the spend. Once all is settled it is exactly what the calls cost.
    assert samples and max(samples) <= round(cap * 1e9)
    assert spent <= cap
    assert spend_counter(redis_server) == sum(r["cost_nanos"] for r in reports)
    # Refused only near the cap: what is left is less than the calls that could be in flight at once.
    assert cap - spent < WORKERS * CONCURRENCY * largest_bound()
    print(
        f"\nfleet cap: {WORKERS} workers x {QUERIES} queries at concurrency {CONCURRENCY}, cap ${cap}: "
        f"spent ${spent:.6f}, counter at most ${max(samples) / 1e9:.6f} over {len(samples)} samples, "
        f"{dict(outcomes)} ({sum(r['best_effort'] for r in reports)} best effort), "
        f"room left ${cap - spent:.6f} (largest call bound ${largest_bound():.6f})"
    )


def test_a_breaker_opened_in_one_worker_is_seen_by_the_others(redis_server: Server, pool: ProcessPoolExecutor) -> None:
    tripped = pool.submit(workers.trip, redis_server.url, 3).result()
    assert tripped["opened"] == 1 and tripped["nano_calls"] == 3
    others = [pool.submit(workers.healthy, redis_server.url) for _ in range(WORKERS - 1)]
    for report in (job.result() for job in others):
        # nano is up for these workers, but the fleet's breaker says skip it.
        assert report["stage"] == "haiku" and report["nano_calls"] == 0
        assert report["errors"] == {"CircuitOpenError": 1}


def test_a_redis_restart_in_the_middle_loses_no_query(own_redis_server: RedisServer, pool: ProcessPoolExecutor) -> None:
    queries = 300
    start = time.monotonic()
    jobs = [pool.submit(workers.steady, own_redis_server.url, queries, 2) for _ in range(2)]
    end = time.monotonic() + 10
    while spend_counter(own_redis_server) == 0 and time.monotonic() < end:
        time.sleep(0.01)
    restarted = time.monotonic()
    own_redis_server.restart(down_s=0.5)
    up = time.monotonic()
    reports = [job.result() for job in jobs]
    print(
        f"\nredis restart: 2 workers x {queries} queries; down from {restarted - start:.2f} s to {up - start:.2f} s, "
        f"done at {time.monotonic() - start:.2f} s; states {[r['states'] for r in reports]}"
    )
    for report in reports:
        assert report["outcomes"] == {"CascadeResult": queries}  # every query answered
        assert report["errors"] == {}
    states = [s for r in reports for s in r["states"]]
    assert ("in-process", "warning") in states and ("redis", "info") in states
    assert not any(job.running() for job in jobs)
    # Nothing spent was lost: what the workers spent while Redis was away was added back when it returned.
    assert spend_counter(own_redis_server) == sum(r["cost_nanos"] for r in reports)
