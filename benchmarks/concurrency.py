"""Concurrency: 1,000 queries at concurrency 100 through `arun_many` against a server adding 50 ms to every call.

    python benchmarks/concurrency.py [--quick] [--vendors openai,anthropic,google,google-legacy] [--queries N]
                                     [--async-http httpx,aiohttp]

Each query makes five calls (answer, judge, answer, judge, answer), so the ideal wall time is
queries / concurrency x 5 x 50 ms = 2.5 s for 1,000 queries; the target is 1.2x that. The server
(`slow_server.py`) runs in its own process, over real sockets on 127.0.0.1. Before timing, one batch of
`concurrency` queries warms the connection pools. Beside each cascade figure, the same calls made directly with the
vendor's async SDK at the same concurrency show how much of the time is the SDK's own. The legacy Gemini SDK has
no working async call on REST: the adapter runs its sync call on a thread pool of its own (up to 128 threads, so
the calls in flight follow the concurrency asked for), and it has no SDK-alone row.

`--async-http` lists the HTTP libraries to measure under the async clients, each for the cascade (the policy's
`async_http` provider setting) and for the SDK alone (its own aiohttp client, or its default httpx2 one). The
default measures both, here and in `run.py`.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import common

HERE = Path(__file__).resolve().parent
DELAY_MS = 50.0


@dataclass
class Concurrency:
    vendor: str
    label: str  # what ran: "cascade", "direct SDK", ...
    queries: int
    concurrency: int
    wall_s: float
    calls: int
    cpu_s: float  # the client process's CPU time over the same span: near wall_s means CPU-bound

    @property
    def cpu_us_per_call(self) -> float:
        return self.cpu_s / self.calls * 1e6

    @property
    def ideal_s(self) -> float:
        return self.queries / self.concurrency * common.CALLS_PER_QUERY * DELAY_MS / 1000

    @property
    def ratio(self) -> float:
        return self.wall_s / self.ideal_s


class Server:
    """`slow_server.py` in a subprocess."""

    def __init__(self, delay_ms: float = DELAY_MS) -> None:
        self.process = subprocess.Popen(
            [sys.executable, str(HERE / "slow_server.py"), "--delay-ms", str(delay_ms)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line.startswith("listening on "):
            self.process.kill()
            raise RuntimeError(f"slow_server did not start: {line!r}")
        self.url = f"http://127.0.0.1:{int(line.split()[-1])}"

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


def _queries(n: int, offset: int = 0) -> list[str]:
    return [f"{common.QUERY} (query {offset + i})" for i in range(n)]


def _label(what: str, async_http: str) -> str:
    return what if async_http == "httpx" else f"{what}, {async_http}"


def run_cascade(vendor: str, url: str, queries: int, concurrency: int, async_http: str = "httpx") -> Concurrency:
    async def main() -> Concurrency:
        bench = common.bench_router(vendor, None, base_url=url, async_http=async_http)
        router = bench.router
        try:
            await router.arun_many(_queries(concurrency, 10**6), concurrency=concurrency)  # warm the pools
            start, cpu = time.perf_counter(), time.process_time()
            results = await router.arun_many(_queries(queries), concurrency=concurrency)
            wall, cpu = time.perf_counter() - start, time.process_time() - cpu
        finally:
            await router.aclose()
        calls = sum(len(r.attempts) for r in results)
        if calls != queries * common.CALLS_PER_QUERY or any(r.stage != "flagship" for r in results):
            raise SystemExit(f"{vendor}: unexpected routes ({calls} calls for {queries} queries)")
        return Concurrency(vendor, _label("cascade", async_http), queries, concurrency, wall, calls, cpu)

    return asyncio.run(main())


def run_direct(vendor: str, url: str, queries: int, concurrency: int, async_http: str = "httpx") -> Concurrency:
    """The same calls made with the vendor's async SDK directly, at the same concurrency."""

    async def main() -> Concurrency:
        client = common.async_client(vendor, None, base_url=url, async_http=async_http)
        run = common.async_direct_calls(vendor, client)
        semaphore = asyncio.Semaphore(concurrency)

        async def one(query: str) -> str:
            async with semaphore:
                return await run(query)

        await asyncio.gather(*(one(q) for q in _queries(concurrency, 10**6)))
        start, cpu = time.perf_counter(), time.process_time()
        await asyncio.gather(*(one(q) for q in _queries(queries)))
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu
        close = getattr(client, "close", None) or getattr(client, "aclose", None)
        if close is not None:
            await close()
        calls = queries * common.CALLS_PER_QUERY
        return Concurrency(vendor, _label("direct SDK", async_http), queries, concurrency, wall, calls, cpu)

    return asyncio.run(main())


def measure(
    vendors: list[str],
    quick: bool,
    queries: int | None = None,
    concurrency: int = 100,
    async_http: tuple[str, ...] = ("httpx", "aiohttp"),
) -> list[Concurrency]:
    n = queries or (300 if quick else 1000)
    results = []
    with Server() as server:
        for vendor in vendors:
            if vendor == "google-legacy":  # requests under the SDK: no choice of HTTP library, no async SDK call
                results.append(run_cascade(vendor, server.url, n, concurrency))
            else:
                for library in async_http:
                    results.append(run_cascade(vendor, server.url, n, concurrency, async_http=library))
                    results.append(run_direct(vendor, server.url, n, concurrency, async_http=library))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--vendors", default=",".join(common.VENDORS))
    parser.add_argument("--queries", type=int)
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--async-http", default="httpx,aiohttp", help="HTTP libraries under the async clients")
    args = parser.parse_args()
    common.quiet_logs()
    libraries = tuple(args.async_http.split(","))
    results = measure(args.vendors.split(","), args.quick, args.queries, args.concurrency, libraries)
    print(
        f"{'adapter':<14} {'what':<28} {'queries':>7} {'wall s':>7} {'ideal s':>7} {'ratio':>6} {'CPU s':>6} "
        f"{'CPU us/call':>11}"
    )
    for r in results:
        print(
            f"{r.vendor:<14} {r.label:<28} {r.queries:>7} {r.wall_s:>7.2f} {r.ideal_s:>7.2f} {r.ratio:>6.2f} "
            f"{r.cpu_s:>6.2f} {r.cpu_us_per_call:>11.0f}"
        )


if __name__ == "__main__":
    main()
