"""`cascade run`: many queries from JSON lines, results appended as they complete, resumable by id."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from cascade.cli.render import print_tables, totals_tables
from cascade.engine import Cascade
from cascade.errors import BudgetExhaustedError, CascadeError, CascadeExhausted
from cascade.report import summarize
from cascade.result import CascadeResult


class BatchError(Exception):
    """The input or output file cannot be used (the message says which line and why)."""


def read_queries(path: Path) -> list[dict[str, Any]]:
    """Input rows: `{"id": str, "query": str | messages, "system"?: str}`; a row without an id gets `line-N`."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise BatchError(f"{path}: cannot read: {exc.strerror or exc}") from None
    rows: list[dict[str, Any]] = []
    seen: set[str] = set()
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as exc:
            raise BatchError(f"{path}:{number}: not JSON ({exc})") from None
        if not isinstance(row, dict) or "query" not in row:
            raise BatchError(f'{path}:{number}: each line must be an object with a "query"')
        row["id"] = str(row.get("id", f"line-{number}"))
        if row["id"] in seen:
            raise BatchError(f"{path}:{number}: duplicate id {row['id']!r}")
        seen.add(row["id"])
        rows.append(row)
    return rows


def finished_ids(path: Path) -> set[str]:
    """Ids already in the output. A last line cut short by an interruption is removed so it will be redone."""
    if not path.exists():
        return set()
    data = path.read_bytes()
    done: set[str] = set()
    keep = 0
    for raw in data.splitlines(keepends=True):
        try:
            row = json.loads(raw)
            complete = raw.endswith(b"\n") and isinstance(row, dict) and "id" in row
        except ValueError:
            complete = False
        if not complete:
            break
        done.add(str(row["id"]))
        keep += len(raw)
    if keep < len(data):
        with path.open("r+b") as handle:
            handle.truncate(keep)
    return done


def output_row(row_id: str, outcome: CascadeResult | CascadeError) -> dict[str, Any]:
    if isinstance(outcome, CascadeResult):
        return {"id": row_id, "ok": True, "result": outcome.model_dump(mode="json")}
    trace = (
        outcome.result.model_dump(mode="json") if isinstance(outcome, CascadeExhausted | BudgetExhaustedError) else None
    )
    return {
        "id": row_id,
        "ok": False,
        "error": {"type": type(outcome).__name__, "message": str(outcome)},
        "result": trace,
    }


def run_batch(
    router: Cascade, input_path: Path, output_path: Path, concurrency: int, out: Console, err: Console
) -> int:
    """Run the queries not yet in the output; returns how many failed in this run."""
    rows = read_queries(input_path)
    done = finished_ids(output_path)
    todo = [row for row in rows if row["id"] not in done]
    if done:
        err.print(f"resuming: {len(rows) - len(todo)} of {len(rows)} queries already in {output_path}")
    output_path.parent.mkdir(parents=True, exist_ok=True)
    results: list[CascadeResult] = []
    failed = 0
    with (
        output_path.open("a", encoding="utf-8") as sink,
        Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=err,
            transient=False,
        ) as progress,
    ):
        task = progress.add_task("queries", total=len(todo))

        async def one(row: dict[str, Any], semaphore: asyncio.Semaphore) -> None:
            nonlocal failed
            async with semaphore:
                try:
                    outcome: CascadeResult | CascadeError = await router.arun(
                        row["query"], system=row.get("system"), query_id=row["id"]
                    )
                except CascadeError as exc:
                    outcome = exc
                except ValueError as exc:  # an invalid query fails that row, not the run
                    from cascade.errors import InvalidQueryError

                    outcome = InvalidQueryError(str(exc))
            if isinstance(outcome, CascadeResult):
                results.append(outcome)
            else:
                failed += 1
                if isinstance(outcome, CascadeExhausted | BudgetExhaustedError):
                    results.append(outcome.result)
            sink.write(json.dumps(output_row(row["id"], outcome), ensure_ascii=False) + "\n")
            sink.flush()
            progress.advance(task)

        async def all_rows() -> None:
            semaphore = asyncio.Semaphore(concurrency)
            try:
                await asyncio.gather(*(one(row, semaphore) for row in todo))
            finally:
                await router.aclose()  # on this loop, which owns the async connections

        asyncio.run(all_rows())
    summary = summarize(results, router.default_policy)
    print_tables(out, totals_tables(summary, router.default_policy))
    out.print(f"{len(todo) - failed} answered, {failed} failed in this run; results in {output_path}")
    return failed
