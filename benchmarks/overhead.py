"""Engine overhead: the three-stage cascade against the same SDK calls made directly, per adapter.

    python benchmarks/overhead.py [--quick] [--vendors openai,anthropic] [--events off|json] [--async]

The cascade goes answer, judge, escalate, answer, judge, escalate, answer: five vendor calls (the issue counts the
seven steps; the escalations are decisions, not calls). Both sides talk to an in-process transport that answers
instantly (an httpx2 `MockTransport`; a `requests` adapter for the legacy Gemini SDK) with the same reply bytes,
so what is left is Python: the SDK's own work on both sides, and on the cascade's side the engine, the step
machine, the adapter and the result. Before timing, the request bodies of both sides are compared: they must be
identical. Many short rounds alternate the two sides (this machine's speed drifts over seconds); each side's
figure is the median over rounds of its mean time per query, and the overhead and the ratio are the medians of
the per-round differences and ratios. structlog drops events (as `cascade run` does without --verbose);
`--events json` renders every event as JSON to /dev/null instead.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import common


@dataclass
class Overhead:
    vendor: str
    mode: str  # "sync" or "async"
    cascade_rounds: list[float]  # mean microseconds per query, one figure per round
    direct_rounds: list[float]
    per_round: int

    @property
    def rounds(self) -> int:
        return len(self.cascade_rounds)

    @property
    def cascade_us(self) -> float:
        return statistics.median(self.cascade_rounds)

    @property
    def direct_us(self) -> float:
        return statistics.median(self.direct_rounds)

    @property
    def overhead_us(self) -> float:
        return statistics.median(c - d for c, d in zip(self.cascade_rounds, self.direct_rounds, strict=True))

    @property
    def ratio(self) -> float:
        return statistics.median(c / d for c, d in zip(self.cascade_rounds, self.direct_rounds, strict=True))

    @property
    def overhead_iqr_us(self) -> tuple[float, float]:
        q = statistics.quantiles([c - d for c, d in zip(self.cascade_rounds, self.direct_rounds, strict=True)], n=4)
        return q[0], q[2]


def check_same_requests(vendor: str) -> None:
    """Refuse to time two sides that do not send the same requests."""
    mine = common.replies_for(vendor)
    mine.recorded = []
    bench = common.bench_router(vendor, mine)
    result = bench.router.run(common.QUERY)
    theirs = common.replies_for(vendor)
    theirs.recorded = []
    answer = common.direct_calls(vendor, common.sync_client(vendor, theirs))(common.QUERY)
    if result.answer != answer or mine.recorded != theirs.recorded or len(mine.recorded) != common.CALLS_PER_QUERY:
        raise SystemExit(f"{vendor}: the cascade and the direct calls do not send the same requests")


def _time(fn: Callable[[], Any], n: int) -> float:
    start = time.perf_counter_ns()
    for _ in range(n):
        fn()
    return (time.perf_counter_ns() - start) / n / 1000


def measure_sync(vendor: str, rounds: int, per_round: int) -> Overhead:
    check_same_requests(vendor)
    bench = common.bench_router(vendor, common.replies_for(vendor))
    direct = common.direct_calls(vendor, common.sync_client(vendor, common.replies_for(vendor)))
    run, query = bench.router.run, common.QUERY

    def cascade_once() -> Any:
        return run(query)

    def direct_once() -> Any:
        return direct(query)

    for _ in range(2):  # warm both sides: caches, lazily built SDK resources
        _time(cascade_once, per_round)
        _time(direct_once, per_round)
    cascade_us, direct_us = [], []
    for i in range(rounds):
        gc.collect()
        if i % 2:
            cascade_us.append(_time(cascade_once, per_round))
            direct_us.append(_time(direct_once, per_round))
        else:
            direct_us.append(_time(direct_once, per_round))
            cascade_us.append(_time(cascade_once, per_round))
    return Overhead(vendor, "sync", cascade_us, direct_us, per_round)


def measure_async(vendor: str, rounds: int, per_round: int) -> Overhead:
    async def main() -> Overhead:
        bench = common.bench_router(vendor, common.replies_for(vendor))
        direct = common.async_direct_calls(vendor, common.async_client(vendor, common.replies_for(vendor)))
        arun, query = bench.router.arun, common.QUERY

        async def timed(fn: Callable[[str], Any]) -> float:
            start = time.perf_counter_ns()
            for _ in range(per_round):
                await fn(query)
            return (time.perf_counter_ns() - start) / per_round / 1000

        for _ in range(2):
            await timed(arun)
            await timed(direct)
        cascade_us, direct_us = [], []
        for i in range(rounds):
            gc.collect()
            pair = (arun, direct) if i % 2 else (direct, arun)
            first, second = await timed(pair[0]), await timed(pair[1])
            (cascade_us if pair[0] is arun else direct_us).append(first)
            (cascade_us if pair[1] is arun else direct_us).append(second)
        return Overhead(vendor, "async", cascade_us, direct_us, per_round)

    return asyncio.run(main())


def measure(vendors: list[str], quick: bool, modes: tuple[str, ...] = ("sync",)) -> list[Overhead]:
    rounds, per_round = (11, 30) if quick else (41, 50)
    results = []
    for vendor in vendors:
        if "sync" in modes:
            results.append(measure_sync(vendor, rounds, per_round))
        if "async" in modes and vendor != "google-legacy":
            results.append(measure_async(vendor, rounds, per_round))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--vendors", default=",".join(common.VENDORS))
    parser.add_argument("--events", choices=("off", "json"), default="off")
    parser.add_argument("--async", dest="with_async", action="store_true", help="also time arun against awaits")
    args = parser.parse_args()
    common.quiet_logs(args.events)
    modes = ("sync", "async") if args.with_async else ("sync",)
    results = measure(args.vendors.split(","), args.quick, modes)
    print(
        f"engine overhead per query, structlog events {args.events} (median of {results[0].rounds} rounds "
        f"of {results[0].per_round} queries; {common.CALLS_PER_QUERY} calls per query)"
    )
    print(
        f"{'adapter':<14} {'mode':<6} {'cascade us':>11} {'direct us':>10} {'overhead us':>12} {'(IQR)':>11} "
        f"{'ratio':>6}"
    )
    for r in results:
        low, high = r.overhead_iqr_us
        print(
            f"{r.vendor:<14} {r.mode:<6} {r.cascade_us:>11.0f} {r.direct_us:>10.0f} {r.overhead_us:>12.0f} "
            f"{f'{low:.0f}-{high:.0f}':>11} {r.ratio:>6.3f}"
        )
    sys.stdout.flush()


if __name__ == "__main__":
    main()
