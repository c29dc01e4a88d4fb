"""Memory: resident set size after 10,000 queries minus after 1,000, per adapter.

    python benchmarks/memory.py [--quick] [--vendors ...]

Each measurement runs in a fresh process over the in-process transport (no sockets, so it is quick), with
structlog dropping events (unconfigured, structlog would print every event to stdout). RSS is read from
/proc/self/statm after a full `gc.collect()`. Also measured, for the openai adapter: with every event rendered as
JSON (to /dev/null), and through `arun_many` (async clients, 16 at a time).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
from dataclasses import dataclass

import common

_PAGE = os.sysconf("SC_PAGE_SIZE")


@dataclass
class Memory:
    vendor: str
    variant: str
    first: int
    total: int
    rss_first_mb: float
    rss_total_mb: float

    @property
    def growth_mb(self) -> float:
        return self.rss_total_mb - self.rss_first_mb


def _rss_mb() -> float:
    gc.collect()
    with open("/proc/self/statm", encoding="ascii") as statm:
        return int(statm.read().split()[1]) * _PAGE / 2**20


def _child(vendor: str, variant: str, first: int, total: int) -> dict[str, float]:
    common.quiet_logs("json" if variant == "events json" else "off")
    bench = common.bench_router(vendor, common.replies_for(vendor))
    router = bench.router
    if variant == "arun_many":
        import asyncio

        async def main() -> tuple[float, float]:
            done = 0
            before = after = 0.0
            while done < total:
                batch = min(500, first - done if done < first else total - done)
                await router.arun_many([f"{common.QUERY} ({done + i})" for i in range(batch)], concurrency=16)
                done += batch
                if done == first:
                    before = _rss_mb()
            after = _rss_mb()
            await router.aclose()
            return before, after

        before, after = asyncio.run(main())
    else:
        for i in range(first):
            router.run(f"{common.QUERY} ({i})")
        before = _rss_mb()
        for i in range(first, total):
            router.run(f"{common.QUERY} ({i})")
        after = _rss_mb()
    return {"before": before, "after": after}


def measure_one(vendor: str, variant: str, first: int, total: int) -> Memory:
    done = subprocess.run(
        [sys.executable, __file__, "--child", vendor, variant, str(first), str(total)],
        capture_output=True,
        text=True,
        check=True,
    )
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    return Memory(vendor, variant, first, total, figures["before"], figures["after"])


def measure(vendors: list[str], quick: bool) -> list[Memory]:
    first, total = (1000, 3000) if quick else (1000, 10_000)
    results = [measure_one(vendor, "run, events off", first, total) for vendor in vendors]
    if "openai" in vendors:
        results.append(measure_one("openai", "events json", first, total))
        results.append(measure_one("openai", "arun_many", first, total))
    return results


def main() -> None:
    if len(sys.argv) == 6 and sys.argv[1] == "--child":
        vendor, variant, first, total = sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
        print(json.dumps(_child(vendor, variant, first, total)))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--vendors", default=",".join(common.VENDORS))
    args = parser.parse_args()
    results = measure(args.vendors.split(","), args.quick)
    print(f"{'adapter':<14} {'variant':<18} {'RSS after N1':>13} {'RSS after N2':>13} {'growth MB':>10}")
    for r in results:
        print(
            f"{r.vendor:<14} {r.variant:<18} {r.rss_first_mb:>8.1f} ({r.first}) {r.rss_total_mb:>7.1f} ({r.total}) "
            f"{r.growth_mb:>10.2f}"
        )


if __name__ == "__main__":
    main()
