"""Serve overhead: what `cascade serve` adds to a query, against calling the library in process.

    python benchmarks/serve_overhead.py [--quick] [--queries N] [--concurrency C]

The openai adapter on the benchmark cascade of `common.py` (five vendor calls a query). Two measures:

1. The app alone, in this process, no sockets: the Starlette app called as an ASGI application (the request
   body in, the response out) against `router.arun` on the same router, both over the in-process transport
   (`common.httpx_transport`). CPU per query, median of rounds: what the endpoint's own code adds (routing, checking
   the request, the reply's JSON and headers), apart from HTTP.
2. End to end: `benchmarks/slow_server.py` (no added delay) in its own process as the vendor, and the same queries
   (a) through the library in this process, (b) through `cascade serve` (the real command, uvicorn) in a child
   process from the `openai` client here, one at a time and C at once. Latency is per query, seen by the caller;
   CPU per query is the process that runs the cascade: this one for the library, the server for the served rows
   (read from /proc, so Linux only); the client's own CPU is shown apart.

Added = served - library. On a machine with few cores the client, the server and the vendor share them: the end-to-end
latencies there include waiting for a core, and the app-alone figure is the one to compare across machines.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import common
from concurrency import Server

TICKS_PER_S = os.sysconf("SC_CLK_TCK")


@dataclass
class Row:
    what: str
    queries: int
    concurrency: int
    wall_s: float
    latencies_s: list[float]
    cascade_cpu_s: float  # the process running the cascade: this one (library) or the server
    client_cpu_s: float = 0.0  # this process's CPU when it is only the caller (served rows)

    @property
    def p50_ms(self) -> float:
        return statistics.median(self.latencies_s) * 1000

    @property
    def p95_ms(self) -> float:
        return statistics.quantiles(self.latencies_s, n=20)[-1] * 1000

    @property
    def cpu_ms(self) -> float:
        return self.cascade_cpu_s / self.queries * 1000

    @property
    def per_s(self) -> float:
        return self.queries / self.wall_s


def _cpu_of(pid: int) -> float:
    """User + system CPU seconds of a process so far (/proc/PID/stat, fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS_PER_S


def _queries(n: int, offset: int = 0) -> list[str]:
    return [f"{common.QUERY} (query {offset + i})" for i in range(n)]


class Served:
    """`cascade serve` in a child process, serving the benchmark policy; the vendor at `vendor_url`."""

    def __init__(self, vendor_url: str, folder: Path) -> None:
        policy = folder / "bench.yaml"
        policy.write_text(json.dumps(common.policy_dict("openai", base_url=vendor_url)))  # JSON is YAML
        self.model = "cascade/bench-openai"
        command = [sys.executable, "-c", "from cascade.cli import main; main()", "serve", "--policy", str(policy)]
        command += ["--port", "0", "--max-concurrency", "10000"]
        env = {**os.environ, "OPENAI_API_KEY": common.KEY}
        self.process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, env=env)
        assert self.process.stderr is not None
        line = self.process.stderr.readline()
        if not line.startswith("serving "):
            self.process.kill()
            raise RuntimeError(f"cascade serve did not start: {line!r}")
        self.url = line.split(" on ", 1)[1].split()[0]

    def cpu_s(self) -> float:
        return _cpu_of(self.process.pid)

    def __enter__(self) -> Served:
        return self

    def __exit__(self, *exc: object) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


def library_sequential(vendor_url: str, n: int) -> Row:
    async def main() -> Row:
        router = common.bench_router("openai", None, base_url=vendor_url).router
        try:
            for query in _queries(20, 10**6):
                await router.arun(query)
            latencies = []
            start, cpu = time.perf_counter(), time.process_time()
            for query in _queries(n):
                began = time.perf_counter()
                result = await router.arun(query)
                latencies.append(time.perf_counter() - began)
                assert result.stage == "flagship"
            return Row(
                "library, one at a time", n, 1, time.perf_counter() - start, latencies, time.process_time() - cpu
            )
        finally:
            await router.aclose()

    return asyncio.run(main())


def served_sequential(served: Served, n: int) -> Row:
    import openai

    with openai.OpenAI(api_key="none", base_url=served.url + "/v1", max_retries=0) as client:
        ask = lambda query: client.chat.completions.create(  # noqa: E731
            model=served.model, messages=[{"role": "user", "content": query}]
        )
        for query in _queries(20, 10**6):
            ask(query)
        latencies = []
        start, cpu, server_cpu = time.perf_counter(), time.process_time(), served.cpu_s()
        for query in _queries(n):
            began = time.perf_counter()
            reply = ask(query)
            latencies.append(time.perf_counter() - began)
            assert reply.choices[0].message.content == common.ANSWER
        wall, client_cpu = time.perf_counter() - start, time.process_time() - cpu
    return Row("served, one at a time", n, 1, wall, latencies, served.cpu_s() - server_cpu, client_cpu)


def library_concurrent(vendor_url: str, n: int, concurrency: int) -> Row:
    async def main() -> Row:
        router = common.bench_router("openai", None, base_url=vendor_url).router
        latencies: list[float] = []

        async def timed(query: str) -> object:
            began = time.perf_counter()
            result = await router.arun(query)
            latencies.append(time.perf_counter() - began)
            return result

        try:
            await router.arun_many(_queries(concurrency, 10**6), concurrency=concurrency)
            start, cpu = time.perf_counter(), time.process_time()
            from cascade.batch import Batch

            await Batch(concurrency).amap(timed, _queries(n))
            wall, cpu = time.perf_counter() - start, time.process_time() - cpu
        finally:
            await router.aclose()
        return Row(f"library, {concurrency} at once", n, concurrency, wall, latencies, cpu)

    return asyncio.run(main())


def served_concurrent(served: Served, n: int, concurrency: int) -> Row:
    import openai

    async def main() -> Row:
        latencies: list[float] = []
        gate = asyncio.Semaphore(concurrency)
        async with openai.AsyncOpenAI(api_key="none", base_url=served.url + "/v1", max_retries=0) as client:

            async def one(query: str) -> None:
                async with gate:
                    began = time.perf_counter()
                    reply = await client.chat.completions.create(
                        model=served.model, messages=[{"role": "user", "content": query}]
                    )
                    latencies.append(time.perf_counter() - began)
                    assert reply.choices[0].message.content == common.ANSWER

            await asyncio.gather(*(one(q) for q in _queries(concurrency, 10**6)))
            latencies.clear()
            start, cpu, server_cpu = time.perf_counter(), time.process_time(), served.cpu_s()
            await asyncio.gather(*(one(q) for q in _queries(n)))
            wall, client_cpu = time.perf_counter() - start, time.process_time() - cpu
        row = f"served, {concurrency} at once"
        return Row(row, n, concurrency, wall, latencies, served.cpu_s() - server_cpu, client_cpu)

    return asyncio.run(main())


def app_alone(rounds: int, per_round: int) -> tuple[float, float]:
    """CPU seconds per query, median of rounds: (`router.arun`, the app answering the same query over ASGI)."""
    from cascade.serve import create_app

    router = common.bench_router("openai", common.replies_for("openai")).router
    app = create_app(router)

    async def post(query: str) -> None:
        body = json.dumps({"model": "cascade/bench-openai", "messages": [{"role": "user", "content": query}]})
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": "/v1/chat/completions",
            "raw_path": b"/v1/chat/completions",
            "query_string": b"",
            "root_path": "",
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
            "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", 8000),
        }
        messages = [{"type": "http.request", "body": body.encode(), "more_body": False}]
        sent: list[dict[str, object]] = []

        async def receive() -> dict[str, object]:
            return messages.pop() if messages else {"type": "http.disconnect"}

        async def send(message: dict[str, object]) -> None:
            sent.append(message)

        await app(scope, receive, send)
        assert sent[0]["status"] == 200, sent

    async def one_round(run: Callable[[str], Awaitable[object]], offset: int) -> float:
        cpu = time.process_time()
        for query in _queries(per_round, offset):
            await run(query)
        return (time.process_time() - cpu) / per_round

    async def main() -> tuple[float, float]:
        for query in _queries(50, 10**6):
            await router.arun(query)
            await post(query)
        library, served = [], []
        for i in range(rounds):
            library.append(await one_round(router.arun, i * per_round))
            served.append(await one_round(post, i * per_round))
        return statistics.median(library), statistics.median(served)

    return asyncio.run(main())


def measure(queries: int, concurrency: int) -> list[Row]:
    with Server(delay_ms=0) as vendor, tempfile.TemporaryDirectory() as folder, Served(vendor.url, Path(folder)) as s:
        return [
            library_sequential(vendor.url, queries),
            served_sequential(s, queries),
            library_concurrent(vendor.url, queries, concurrency),
            served_concurrent(s, queries, concurrency),
        ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--queries", type=int)
    parser.add_argument("--concurrency", type=int, default=100)
    args = parser.parse_args()
    common.quiet_logs()
    rounds, per_round = (5, 100) if args.quick else (15, 200)
    library_s, app_s = app_alone(rounds, per_round)
    rows = measure(args.queries or (200 if args.quick else 1000), args.concurrency)
    for name, value in common.machine().items():
        print(f"{name}: {value}")
    print(f"\nopenai adapter, {common.CALLS_PER_QUERY} vendor calls a query")
    print(
        f"app alone (ASGI in process, in-process transport; median of {rounds} rounds of {per_round}): "
        f"library {library_s * 1e6:.0f} us CPU per query, app {app_s * 1e6:.0f} us, "
        f"added {(app_s - library_s) * 1e6:+.0f} us"
    )
    print("\nend to end, vendor on 127.0.0.1 with no added delay")
    print(
        f"{'what':<24} {'queries':>7} {'p50 ms':>7} {'p95 ms':>7} {'per s':>6} {'cascade CPU ms/q':>16} "
        f"{'client CPU ms/q':>15}"
    )
    for r in rows:
        client = f"{r.client_cpu_s / r.queries * 1000:.2f}" if r.client_cpu_s else "-"
        print(
            f"{r.what:<24} {r.queries:>7} {r.p50_ms:>7.2f} {r.p95_ms:>7.2f} {r.per_s:>6.0f} {r.cpu_ms:>16.2f} "
            f"{client:>15}"
        )
    for library, served in ((rows[0], rows[1]), (rows[2], rows[3])):
        latency, cpu = served.p50_ms - library.p50_ms, served.cpu_ms - library.cpu_ms
        print(
            f"added by serve at concurrency {served.concurrency}: {latency:+.2f} ms p50 latency, "
            f"{cpu:+.2f} ms CPU per query (server - library)"
        )


if __name__ == "__main__":
    main()
