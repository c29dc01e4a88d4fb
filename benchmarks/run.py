"""Every figure of the benchmarks issue, with its target beside it, in one table.

    python benchmarks/run.py                      # everything (about 8 minutes on 2 CPUs)
    python benchmarks/run.py --quick              # smaller samples (about 3 minutes): for a quick look, not the record
    python benchmarks/run.py --only overhead,coldstart [--vendors openai,anthropic]

Sections: overhead (1), concurrency (2), coldstart (3), memory (4), tune (5), cost (6). Each runs in a fresh
process (`overhead.py`, `concurrency.py`, ... can also be run alone for their detailed tables). See
benchmarks/README.md for what each figure means and what it is compared against.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import common

HERE = Path(__file__).resolve().parent
SECTIONS = ("overhead", "concurrency", "coldstart", "memory", "tune", "cost")
OVERHEAD_US, OVERHEAD_RATIO = 300.0, 1.10
CONCURRENCY_RATIO = 1.2
IMPORT_MS, HELP_MS = 150.0, 300.0
MEMORY_MB = 10.0


@dataclass
class Row:
    figure: str
    case: str
    measured: str
    target: str
    met: str  # "yes", "NO", or "-" (reported, no target)
    notes: str = ""


def _yes(ok: bool) -> str:
    return "yes" if ok else "NO"


def overhead_rows(quick: bool, vendors: list[str]) -> list[Row]:
    import overhead

    common.quiet_logs()
    rows = []
    for r in overhead.measure(vendors, quick, ("sync", "async")):
        legacy = " (legacy, apart)" if r.vendor == "google-legacy" else ""
        ok = r.overhead_us <= OVERHEAD_US and r.ratio <= OVERHEAD_RATIO
        low, high = r.overhead_iqr_us
        rows.append(
            Row(
                "1 engine overhead" + ("" if r.mode == "sync" else " (async, info)"),
                f"{r.vendor}{legacy}",
                f"{r.overhead_us:.0f} us, ratio {r.ratio:.3f}",
                f"<= {OVERHEAD_US:.0f} us, <= {OVERHEAD_RATIO:.2f}",
                _yes(ok) if r.mode == "sync" else "-",
                f"{r.cascade_us:.0f} vs {r.direct_us:.0f} us/query for the 5 SDK calls alone; overhead IQR "
                f"{low:.0f}-{high:.0f} us over {r.rounds} rounds",
            )
        )
    return rows


def concurrency_rows(quick: bool, vendors: list[str]) -> list[Row]:
    import concurrency

    common.quiet_logs()
    results = concurrency.measure(vendors, quick)
    # "direct SDK" or "direct SDK, aiohttp" beside "cascade" or "cascade, aiohttp"
    direct = {(r.vendor, r.label.replace("direct SDK", "cascade")): r for r in results if r.label.startswith("direct")}
    rows = []
    for r in results:
        if r.label.startswith("direct"):
            continue
        legacy = " (legacy, apart)" if r.vendor == "google-legacy" else ""
        notes = f"{r.queries} queries; client CPU {r.cpu_s:.2f} s = {r.cpu_us_per_call:.0f} us/call"
        d = direct.get((r.vendor, r.label))
        if d is not None:
            notes += (
                f"; the same calls with the SDK alone: {d.wall_s:.2f} s = {d.ratio:.2f}x, "
                f"{d.cpu_us_per_call:.0f} us/call"
            )
        library = r.label.split(", ", 1)[1] if ", " in r.label else ("requests" if legacy else "httpx2")
        case = f"{r.vendor}{legacy}, {library}"
        rows.append(
            Row(
                "2 concurrency 100, +50 ms/call",
                case,
                f"{r.wall_s:.2f} s = {r.ratio:.2f}x ideal {r.ideal_s:.2f} s",
                f"<= {CONCURRENCY_RATIO}x ideal",
                _yes(r.ratio <= CONCURRENCY_RATIO),
                notes,
            )
        )
    return rows


def coldstart_rows(quick: bool, vendors: list[str]) -> list[Row]:
    import coldstart

    results, imported = coldstart.measure(10)
    by_name = {r.what: r.median_ms for r in results}
    plain = by_name["python -c pass"]
    imported_ms, help_ms = by_name["python -c 'import cascade'"], by_name["cascade --help"]
    rows = [
        Row(
            "3 cold start (median of 10)",
            "python -c 'import cascade'",
            f"{imported_ms:.0f} ms",
            f"<= {IMPORT_MS:.0f} ms",
            _yes(imported_ms <= IMPORT_MS),
            f"plain python -c pass: {plain:.0f} ms",
        ),
        Row(
            "3 cold start (median of 10)",
            "cascade --help",
            f"{help_ms:.0f} ms",
            f"<= {HELP_MS:.0f} ms",
            _yes(help_ms <= HELP_MS),
            f"plain python -c pass: {plain:.0f} ms",
        ),
    ]
    early = {stage: imported[stage] for stage in ("import", "help", "router")}
    found = sorted({m for modules in early.values() for m in modules})
    rows.append(
        Row(
            "3 vendor SDKs imported early",
            "import / --help / Cascade(default.yaml)",
            ", ".join(found) or "none",
            "none",
            _yes(not found),
            f"after the router's first (openai) adapter lookup: {', '.join(imported['lookup'])}",
        )
    )
    return rows


def memory_rows(quick: bool, vendors: list[str]) -> list[Row]:
    import memory

    rows = []
    for r in memory.measure(vendors, quick):
        legacy = " (legacy, apart)" if r.vendor == "google-legacy" else ""
        rows.append(
            Row(
                "4 memory: RSS growth",
                f"{r.vendor}{legacy}, {r.variant}",
                f"{r.growth_mb:+.2f} MB",
                f"<= {MEMORY_MB:.0f} MB",
                _yes(r.growth_mb <= MEMORY_MB),
                f"RSS after {r.first:,} queries {r.rss_first_mb:.1f} MB, after {r.total:,} {r.rss_total_mb:.1f} MB",
            )
        )
    return rows


def tune_rows(quick: bool, vendors: list[str]) -> list[Row]:
    script = HERE / "tune_speed.py"
    if not script.exists():
        return [
            Row("5 cascade tune, 10,000 traces", "-", "not available (no benchmarks/tune_speed.py)", "reported", "-")
        ]
    runs = "1" if quick else "3"
    done = subprocess.run([sys.executable, str(script), "--runs", runs], capture_output=True, text=True)
    if done.returncode != 0:
        return [
            Row(
                "5 cascade tune, 10,000 traces",
                "-",
                f"not available (tune_speed.py failed: {(done.stderr.strip().splitlines() or ['?'])[-1]})",
                "reported",
                "-",
            )
        ]
    rows = []
    lines = done.stdout.splitlines()
    table = lines[next(i for i, line in enumerate(lines) if line.startswith("---")) + 1 :]
    for line in table:
        # tune_speed.py prints fixed columns: labels (16), options (24), median seconds (8).
        try:
            label, options, median = line[:16].strip(), line[17:41].strip(), float(line[42:50])
        except ValueError:
            continue
        rows.append(
            Row(
                "5 cascade tune, 10,000 traces",
                f"{label}, {options}",
                f"{median:.2f} s",
                "reported",
                "-",
                f"median of {runs} runs of the command in a fresh process, start-up included",
            )
        )
    return rows or [Row("5 cascade tune, 10,000 traces", "-", "not available (output not understood)", "reported", "-")]


def cost_rows(quick: bool, vendors: list[str]) -> list[Row]:
    import cost

    return [
        Row(
            "6 cost: saving vs last stage alone",
            s.what,
            f"{s.saving:.1%}" if s.saving is not None else "n/a",
            "reported",
            "-",
            s.detail,
        )
        for s in cost.measure()
    ]


SECTION_ROWS = {
    "overhead": overhead_rows,
    "concurrency": concurrency_rows,
    "coldstart": coldstart_rows,
    "memory": memory_rows,
    "tune": tune_rows,
    "cost": cost_rows,
}


def _run_section(section: str, quick: bool, vendors: list[str]) -> tuple[list[Row], float]:
    """One section in a fresh interpreter, so that no section inherits another's imports, caches or heap."""
    start = time.perf_counter()
    argv = [sys.executable, __file__, "--child", section, "--vendors", ",".join(vendors)] + (
        ["--quick"] if quick else []
    )
    done = subprocess.run(argv, capture_output=True, text=True)
    if done.returncode != 0:
        why = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return [Row(section, "-", f"FAILED: {why}", "-", "NO")], time.perf_counter() - start
    rows = [Row(**row) for row in json.loads(done.stdout.strip().splitlines()[-1])]
    return rows, time.perf_counter() - start


def print_table(rows: list[Row]) -> None:
    headers = ("figure", "case", "measured", "target", "met", "notes")
    widths = [max(len(h), *(len(getattr(r, h)) for r in rows)) for h in headers]
    widths[-1] = len("notes")  # the last column is not padded
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))
    print(line)
    lines = ["  ".join(getattr(r, h).ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip() for r in rows]
    print("-" * max(len(line), *map(len, lines)))
    print("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller samples: a quick look, not the record")
    parser.add_argument("--only", default=",".join(SECTIONS), help=f"comma-separated subset of {', '.join(SECTIONS)}")
    parser.add_argument("--vendors", default=",".join(common.VENDORS), help="adapters for sections 1, 2 and 4")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    vendors = [v for v in args.vendors.split(",") if v]
    unknown = set(vendors) - set(common.VENDORS)
    if unknown:
        parser.error(f"unknown adapters {sorted(unknown)}; choose from {', '.join(common.VENDORS)}")
    if args.child:
        rows = SECTION_ROWS[args.child](args.quick, vendors)
        print(json.dumps([asdict(r) for r in rows]))
        return
    sections = [s for s in args.only.split(",") if s]
    unknown = set(sections) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown sections {sorted(unknown)}; choose from {', '.join(SECTIONS)}")
    print("cascade benchmarks" + (" (--quick: smaller samples)" if args.quick else ""))
    for key, value in common.machine().items():
        print(f"{key}: {value}")
    print()
    rows, timings = [], []
    for section in sections:
        print(f"running {section} ...", file=sys.stderr, flush=True)
        sys.stdout.flush()
        section_rows, seconds = _run_section(section, args.quick, vendors)
        rows += section_rows
        timings.append(f"{section} {seconds:.0f} s")
    print_table(rows)
    print(f"\n(took {', '.join(timings)})")


if __name__ == "__main__":
    main()
