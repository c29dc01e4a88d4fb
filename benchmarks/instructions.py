"""Machine instructions per query, counted by valgrind: the engine overhead without this machine's timing noise.

    python benchmarks/instructions.py [--vendors openai,anthropic,google]    # needs valgrind; a few minutes

Timings on a shared 2-CPU VM drift by 10% between runs; instruction counts do not (PYTHONHASHSEED is fixed). Each
figure is (instructions of a run of N2 queries - of N1 queries) / (N2 - N1), from `valgrind --tool=cachegrind`, so
start-up and imports cancel out. Rows: the engine alone (an adapter that returns ready-made completions, so no
SDK runs), and per adapter the cascade against the same five SDK calls made directly (`common.direct_calls`), over
the in-process transport. Instructions are not time: the engine's code runs at a lower rate than the SDKs' (more
cache and branch misses), so the timed ratio (`overhead.py`) is higher than the instruction ratio. This is how the
before/after figure of each change in README.md was taken (PYTHONPATH pointing at a tree of each version).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import common

HERE = Path(__file__).resolve().parent


def _null_router() -> Any:
    """A router whose openai adapter returns ready-made completions: the engine's own work, no SDK."""
    from cascade.engine import Cascade
    from cascade.providers.base import Completion, CompletionRequest, Provider

    same = {"model": "gpt-4o-mini-2024-07-18", "finish_reason": "stop", "latency_s": 0.0, "provider": "openai"}
    answer = Completion(text=common.ANSWER, input_tokens=21, output_tokens=9, **same)
    judge = Completion(text=common.JUDGE_REPLY, input_tokens=233, output_tokens=21, **same)

    class ReadyMade(Provider):
        name = "openai"

        def send(self, request: CompletionRequest) -> Completion:
            return judge if "<<<ANSWER " in request.messages[0].content else answer

        def parse(self, reply: Any, request: CompletionRequest, latency_s: float) -> Completion:
            completion: Completion = reply
            return completion

    return Cascade(common.policy_for("openai"), providers={"openai": ReadyMade()})


def _child(what: str, vendor: str, n: int) -> None:
    common.quiet_logs()
    if what == "engine":
        run = _null_router().run
    elif what == "cascade":
        run = common.bench_router(vendor, common.replies_for(vendor)).router.run
    else:
        run = common.direct_calls(vendor, common.sync_client(vendor, common.replies_for(vendor)))
    for _ in range(3 + n):
        run(common.QUERY)


def _instructions(what: str, vendor: str, n: int) -> int:
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    done = subprocess.run(
        [
            "valgrind",
            "--tool=cachegrind",
            "--cache-sim=no",
            "--cachegrind-out-file=/dev/null",
            sys.executable,
            __file__,
            "--child",
            what,
            vendor,
            str(n),
        ],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    match = re.search(r"I\s+refs:\s+([\d,]+)", done.stderr)
    if match is None:
        raise SystemExit(f"no instruction count from valgrind:\n{done.stderr[-2000:]}")
    return int(match.group(1).replace(",", ""))


def per_query(what: str, vendor: str, n1: int, n2: int) -> float:
    return (_instructions(what, vendor, n2) - _instructions(what, vendor, n1)) / (n2 - n1)


def main() -> None:
    if len(sys.argv) == 5 and sys.argv[1] == "--child":
        _child(sys.argv[2], sys.argv[3], int(sys.argv[4]))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vendors", default="openai,anthropic,google")
    parser.add_argument("--engine-only", action="store_true", help="only the engine-alone row")
    args = parser.parse_args()
    if shutil.which("valgrind") is None:
        raise SystemExit("needs valgrind (apt-get install valgrind)")
    import cascade

    print(f"cascade from {Path(cascade.__file__).parent}")
    print(f"{'what':<28} {'instructions/query':>18} {'ratio':>7}")
    print(f"{'engine alone (no SDK)':<28} {per_query('engine', 'openai', 100, 600):>18,.0f}")
    for vendor in [] if args.engine_only else args.vendors.split(","):
        cascade_n = per_query("cascade", vendor, 20, 120)
        direct_n = per_query("direct", vendor, 20, 120)
        print(f"{vendor + ' cascade':<28} {cascade_n:>18,.0f} {cascade_n / direct_n:>7.3f}")
        print(f"{vendor + ' direct SDK calls':<28} {direct_n:>18,.0f}")


if __name__ == "__main__":
    main()
