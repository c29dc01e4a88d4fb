"""Cold start: `python -c "import cascade"` and `cascade --help`, median of 10, beside a plain interpreter start.

    python benchmarks/coldstart.py [--runs 10]

Each run is a fresh process, timed from before `fork` to after `exit`. The figures are for an installed package
with its bytecode cached (what `pip install` leaves); the cache goes to a temporary PYTHONPYCACHEPREFIX, so the
checkout gets no `__pycache__`. Without a bytecode cache (this workspace sets PYTHONDONTWRITEBYTECODE=1) every
start also compiles cascade's modules: that figure is printed as well. Then the check that no vendor SDK is
imported before a policy needs one: after `import cascade`, after `cascade --help`, after building a router on
policies/default.yaml (three vendors), and after its first adapter lookup (openai: only that SDK).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import common

SDKS = ("openai", "anthropic", "google.genai", "google.generativeai", "httpx2", "requests", "vcr")

_PROBE = r"""
import json, sys
stage, policy, sdks = sys.argv[1:4]
if stage == "help":
    sys.argv = ["cascade", "--help"]
    import contextlib, io
    from cascade.cli import main
    with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):
        main()
else:
    import cascade
    if stage in ("router", "lookup"):
        from cascade import Cascade
        router = Cascade.from_policy(policy, api_keys={"openai": "k", "anthropic": "k", "google": "k"})
        if stage == "lookup":  # what the router's first call does: build the adapter (importing its SDK)
            from cascade.providers import get_provider_class
            get_provider_class("openai")(None)
print(json.dumps(sorted(m for m in json.loads(sdks) if m in sys.modules)))
"""


@dataclass
class ColdStart:
    what: str
    runs_s: list[float]

    @property
    def median_ms(self) -> float:
        return statistics.median(self.runs_s) * 1000


def _time(argv: list[str], runs: int, env: dict[str, str]) -> list[float]:
    subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, check=True)  # warm the OS caches and the bytecode
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, check=True)
        times.append(time.perf_counter() - start)
    return times


def measure(runs: int = 10) -> tuple[list[ColdStart], dict[str, list[str]]]:
    python = sys.executable
    cli = str(Path(python).parent / "cascade")
    with tempfile.TemporaryDirectory() as cache:
        cached = {**os.environ, "PYTHONPYCACHEPREFIX": cache}
        cached.pop("PYTHONDONTWRITEBYTECODE", None)
        uncached = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
        uncached.pop("PYTHONPYCACHEPREFIX", None)
        results = [
            ColdStart("python -c pass", _time([python, "-c", "pass"], runs, cached)),
            ColdStart("python -c 'import cascade'", _time([python, "-c", "import cascade"], runs, cached)),
            ColdStart("cascade --help", _time([cli, "--help"], runs, cached)),
            ColdStart(
                "python -c 'import cascade' (cascade not byte-compiled)",
                _time([python, "-c", "import cascade"], runs, uncached),
            ),
            ColdStart("cascade --help (cascade not byte-compiled)", _time([cli, "--help"], runs, uncached)),
        ]
        policy = str(common.ROOT / "policies" / "default.yaml")
        imported = {}
        for stage in ("import", "help", "router", "lookup"):
            done = subprocess.run(
                [python, "-c", _PROBE, stage, policy, json.dumps(SDKS)],
                env=cached,
                capture_output=True,
                text=True,
                check=True,
            )
            imported[stage] = json.loads(done.stdout.strip().splitlines()[-1])
    return results, imported


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    results, imported = measure(args.runs)
    print(f"cold start, median of {args.runs} fresh processes (bytecode cached unless said)")
    for r in results:
        runs = " ".join(f"{t * 1000:.0f}" for t in r.runs_s)
        print(f"{r.what:<50} {r.median_ms:7.1f} ms   [{runs}]")
    labels = {
        "import": "after import cascade",
        "help": "after cascade --help",
        "router": "after Cascade.from_policy(default.yaml)",
        "lookup": "after its openai adapter is looked up",
    }
    for stage, modules in imported.items():
        print(f"vendor SDKs {labels[stage]:<42} {', '.join(modules) or 'none'}")


if __name__ == "__main__":
    main()
