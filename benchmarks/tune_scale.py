"""`cascade tune` and `cascade eval` at 1k, 10k, 100k and 1M three-stage traces: time and peak memory.

    python benchmarks/tune_scale.py [--sizes 1000,10000,100000,1000000] [--grid-check 10000]

Each size is a fresh file of synthetic traces (benchmarks/tune_data.py: a continuous judge, so every stage has
about as many distinct confidences as traces, the worst case for the search; answers, ids and query texts as
`cascade collect` writes them). Each command runs in a fresh process through the console script's entry point,
reading the file included; the table gives its wall time, its CPU time (user + system) and its peak resident
memory. `cascade eval` without labels or a grader streams the file into replay columns
(`cascade.tuning.columns.read_replay_data`), as `cascade tune` does: "eval, streamed reader" times that reader
alone, "eval (the command)" the whole command.
The policy has no routing rules (see benchmarks/README.md for what rules cost). `--grid-check N` also compares,
on N traces, the in-sample optimum found over the quantile grid of candidates (`MAX_CANDIDATES` per stage) with
the exact one over every distinct confidence.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import tune_data

ROOT = Path(__file__).resolve().parent.parent
RUN = (
    "import resource, sys\n"
    "from cascade.cli import main\n"
    "try:\n"
    "    main()\n"
    "finally:\n"
    "    print('maxrss', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)\n"
)


# What `cascade eval` runs once its loader reads traces with `cascade.tuning.columns` (as `cascade tune` does).
EVAL_STREAMED = (
    "import json, resource, sys\n"
    "from pathlib import Path\n"
    "from cascade.policy import load_policy\n"
    "from cascade.tuning.columns import read_replay_data\n"
    "from cascade.tuning.replay import evaluate, policy_thresholds\n"
    "policy = load_policy(sys.argv[1])\n"
    "report = evaluate(read_replay_data(policy, Path(sys.argv[2])), policy_thresholds(policy))\n"
    "print(json.dumps({'thresholds': report.thresholds, 'saving_against_last': report.saving_against(report.last)}))\n"
    "print('maxrss', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)\n"
)


def run(args: list[str], script: str = RUN) -> tuple[float, float, float, dict[str, object]]:
    """Wall s, CPU s and peak RSS MB of one `cascade` command in a fresh process, and its JSON output."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, cwd=ROOT)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    rss = next(int(line.split()[1]) for line in done.stderr.splitlines() if line.startswith("maxrss"))
    if done.returncode not in (0, 1):
        raise RuntimeError(done.stderr[-2000:])
    return wall, cpu, rss / 1024, json.loads(done.stdout) if done.stdout.strip() else {}


def grid_check(n: int) -> str:
    """The quantile grid's in-sample optimum against the exact one, on n traces."""
    from cascade.policy import Policy
    from cascade.tuning import search as search_module
    from cascade.tuning.columns import read_replay_data
    from cascade.tuning.search import needed_quality, search

    with tempfile.TemporaryDirectory() as tmp:
        path = tune_data.write(Path(tmp, "t.jsonl"), n, 3, levels=0)
        data = read_replay_data(Policy.from_dict(tune_data.policy_dict(3)), path)
    rows = []
    for target in (0.95, 0.99):
        need = needed_quality(data, target)
        start = time.perf_counter()
        grid = search(data, need)
        grid_s = time.perf_counter() - start
        cap, search_module.MAX_CANDIDATES = search_module.MAX_CANDIDATES, 10**9
        try:
            start = time.perf_counter()
            exact = search(data, need)
            exact_s = time.perf_counter() - start
        finally:
            search_module.MAX_CANDIDATES = cap
        rows.append(
            f"| {n:,} | {target:g} | ${exact.cost:.7f} ({exact.settings:,} settings, {exact_s:.1f} s) | "
            f"${grid.cost:.7f} ({grid.settings:,} settings, {grid_s:.1f} s) | {grid.cost / exact.cost - 1:+.3%} |"
        )
    head = "| traces | target | exact optimum, cost / query | grid optimum | grid - exact |\n" + "| --- " * 5 + "|"
    return "\n".join([head, *rows])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000,100000,1000000")
    parser.add_argument("--grid-check", type=int, default=10_000)
    args = parser.parse_args()
    print(f"machine: {platform.platform()}, {os.cpu_count()} CPUs, python {platform.python_version()}, "
          f"numpy {np.__version__}; load average {os.getloadavg()[0]:.1f} at the start\n")  # fmt: skip
    print("| traces | file | command | wall s | CPU s | peak MB | tuned thresholds, saving |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    with tempfile.TemporaryDirectory() as tmp:
        policy = Path(tmp, "policy.json")
        policy.write_text(json.dumps(tune_data.policy_dict(3)))
        for n in (int(s) for s in args.sizes.split(",")):
            traces = tune_data.write(Path(tmp, f"t{n}.jsonl"), n, 1, levels=0)
            size = f"{traces.stat().st_size / 1e6:,.0f} MB"
            base = ["--policy", str(policy), "--traces", str(traces), "--json"]
            commands = [
                ("eval, streamed reader", [str(policy), str(traces)]),
                *([("eval (the command)", ["eval", *base])] if n <= 100_000 else []),
                ("tune (default: --confidence 0.95)", ["tune", *base, "--target", "0.95", "--output", f"{tmp}/o.yaml"]),
                ("tune --confidence 0", ["tune", *base, "--target", "0.95", "--confidence", "0", "--output",
                                         f"{tmp}/o.yaml"]),
            ]  # fmt: skip
            for label, command in commands:
                wall, cpu, rss, out = run(command, EVAL_STREAMED if label.startswith("eval,") else RUN)
                saving = out.get("saving", out.get("saving_against_last"))
                detail = f"{out.get('thresholds')}, saves {float(saving):.1%}" if saving is not None else ""  # type: ignore[arg-type]
                print(f"| {n:,} | {size} | `{label}` | {wall:.1f} | {cpu:.1f} | {rss:,.0f} | {detail} |", flush=True)
            traces.unlink()
    if args.grid_check:
        print()
        print(grid_check(args.grid_check))


if __name__ == "__main__":
    main()
