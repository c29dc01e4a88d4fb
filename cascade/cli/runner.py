"""The resumable JSON-lines runner behind `cascade run` and `cascade collect`.

Input: one JSON object a line, each with a "query" and an "id" (a row without one is `line-N`); a row may also
give a `system` prompt, `tools` and `tool_choice`, and an `output_schema` (`query_options`). Each row is a job
(`Job`: answer the query, or trace it through every stage) run by `cascade.batch.Batch`, the loop
under `Cascade.arun_many`; its output line is appended as soon as it ends, so a kill loses nothing already written.

The resume rule, the same for both commands:
- a row whose id has a finished output line (`Job.finished`) is done and is not sent again;
- a row whose lines record only failures runs again, and so does a row with no line;
- the failed line a retry replaces is removed when the run ends (the file is rewritten whole, atomically), so the
  output keeps one line per id;
- a line that cannot be read is kept as it is and reported (its row runs again), except a last line cut short by
  an interruption, which is removed.
Lines are split on "\\n" only: U+2028 and U+0085 are text inside a JSON string, not line breaks.
"""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from cascade.batch import Batch
from cascade.cli.common import printable
from cascade.engine import Cascade, QueryOptions
from cascade.errors import InvalidQueryError, JSONLinesError

Row = dict[str, Any]


class Job(Protocol):
    """What a command does with each input row, and how its output lines read back."""

    async def __call__(self, row: Row) -> Any:
        """Run the row; the outcome is a value or the exception it raised."""

    def line(self, row: Row, outcome: Any) -> str | None:
        """The output line for an outcome (one JSON object, no newline), or None to write nothing."""

    def finished(self, line: Row) -> bool:
        """Whether an output line read back is a finished row (else its row runs again)."""


@dataclass
class OutputState:
    """What an earlier run left in the output file."""

    done: set[str] = field(default_factory=set)
    failed: set[str] = field(default_factory=set)  # ids whose lines all record a failure
    unreadable: list[int] = field(default_factory=list)  # line numbers, kept in the file as they are
    cut: bool = False  # a last line cut short by an interruption was removed
    needs_newline: bool = False  # the last line is whole but has no "\n" yet


@dataclass
class RunReport:
    """What one run did: `outcomes` holds this run's (row, outcome) pairs in the order they ended."""

    rows: int
    already_done: int
    retried: int
    outcomes: list[tuple[Row, Any]] = field(default_factory=list)
    written: int = 0  # lines written in this run
    finished: int = 0  # of which finished rows (the others record failures)
    interrupted: bool = False

    def earlier(self) -> str:
        """` (5 done before, 2 retried)` when earlier runs did part of the work, else nothing."""
        if not (self.already_done or self.retried):
            return ""
        return f" ({self.already_done} done before, {self.retried} retried)"


def split_lines(data: bytes) -> list[bytes]:
    """Lines of a JSON-lines file: split on b"\\n" only; the piece after the last "\\n" is the last line."""
    return data.split(b"\n")


def read_rows(path: Path) -> list[Row]:
    """Input rows: `{"id": str, "query": str | messages, ...}`; a row without an id gets `line-N`."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise JSONLinesError(f"{path}: cannot read: {exc.strerror or exc}") from None
    rows: list[Row] = []
    seen: set[str] = set()
    for number, raw in enumerate(split_lines(data), 1):
        if not raw.strip():
            continue
        try:
            row = json.loads(raw.decode("utf-8-sig" if number == 1 else "utf-8"))  # a byte-order mark is not data
        except UnicodeDecodeError:
            raise JSONLinesError(f"{path}:{number}: not UTF-8 text") from None
        except ValueError as exc:
            raise JSONLinesError(f"{path}:{number}: not JSON ({exc})") from None
        if not isinstance(row, dict) or "query" not in row:
            raise JSONLinesError(f'{path}:{number}: each line must be an object with a "query"')
        row["id"] = str(row.get("id", f"line-{number}"))
        if row["id"] in seen:
            raise JSONLinesError(f"{path}:{number}: duplicate id {printable(row['id'])!r}")
        seen.add(row["id"])
        rows.append(row)
    return rows


def query_options(row: Row) -> QueryOptions:
    """What a row asks of the router besides its query: its id, `system`, `tools` and `tool_choice` (OpenAI's
    shape), and `output_schema`, a JSON Schema object every answer must fit (the router's `output_type=`).

    The router checks them when the row runs (`InvalidQueryError`: that row fails, the others go on).
    """
    options: QueryOptions = {"system": row.get("system"), "query_id": row["id"]}
    if row.get("tools") is not None:
        options["tools"] = row["tools"]
    if row.get("tool_choice") is not None:
        options["tool_choice"] = row["tool_choice"]
    schema = row.get("output_schema")
    if schema is not None:
        if not isinstance(schema, dict):
            raise InvalidQueryError("output_schema must be a JSON Schema object")
        options["output_type"] = schema
    return options


def _parsed(raw: bytes) -> Row | None:
    """An output line as a row with an id, or None when it cannot be read as one."""
    try:
        row = json.loads(raw.decode("utf-8"))
    except ValueError:  # UnicodeDecodeError included
        return None
    return row if isinstance(row, dict) and "id" in row else None


def read_output(path: Path, finished: Callable[[Row], bool]) -> OutputState:
    """Read what an earlier run wrote; a last line cut short by an interruption is removed from the file."""
    state = OutputState()
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return state
    except OSError as exc:
        raise JSONLinesError(f"{path}: cannot read: {exc.strerror or exc}") from None
    lines = split_lines(data)
    for number, raw in enumerate(lines, 1):
        if not raw.strip():
            continue
        row = _parsed(raw)
        last = number == len(lines)  # no "\n" after it: the line an interrupted write leaves
        if row is None and last:
            with path.open("r+b") as handle:
                handle.truncate(len(data) - len(raw))
            state.cut = True
        elif row is None:
            state.unreadable.append(number)
        else:
            (state.done if finished(row) else state.failed).add(str(row["id"]))
            state.needs_newline = last
    state.failed -= state.done
    return state


def tidy(path: Path, finished: Callable[[Row], bool]) -> int:
    """Remove each unfinished line that a later line for the same id replaces; returns how many went.

    The file is rewritten to a temporary file beside it and moved over it, so a kill leaves the old or the new.
    """
    try:
        lines = split_lines(path.read_bytes())
    except FileNotFoundError:
        return 0
    last_line_of: dict[str, int] = {}
    rows = [_parsed(raw) for raw in lines]
    for number, row in enumerate(rows):
        if row is not None:
            last_line_of[str(row["id"])] = number
    replaced = {
        number
        for number, row in enumerate(rows)
        if row is not None and not finished(row) and last_line_of[str(row["id"])] != number
    }
    if not replaced:
        return 0
    kept = b"\n".join(raw for number, raw in enumerate(lines) if number not in replaced)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(kept)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return len(replaced)


def encoded(line: str) -> bytes:
    """A line as UTF-8. A lone surrogate (valid in JSON input, not in UTF-8) is written as a JSON escape instead."""
    try:
        return line.encode("utf-8") + b"\n"
    except UnicodeEncodeError:
        return json.dumps(json.loads(line)).encode("ascii") + b"\n"


def run_rows(
    router: Cascade, job: Job, rows: list[Row], output: Path, concurrency: int, err: Console, label: str
) -> RunReport:
    """Run the rows the output does not hold finished, appending each line as its row ends."""
    state = read_output(output, job.finished)
    todo = [row for row in rows if row["id"] not in state.done]
    report = RunReport(len(rows), len(rows) - len(todo), sum(1 for row in todo if row["id"] in state.failed))
    _say_resuming(err, output, state, report)
    output.parent.mkdir(parents=True, exist_ok=True)
    try:
        with output.open("ab") as sink, _progress(err, label, len(todo)) as advance:
            if state.needs_newline:
                sink.write(b"\n")

            def save(index: int, outcome: Any) -> None:
                row = todo[index]
                report.outcomes.append((row, outcome))
                line = job.line(row, outcome)
                if line is not None:
                    sink.write(encoded(line))
                    sink.flush()
                    report.written += 1
                    report.finished += job.finished(json.loads(line))
                advance()

            asyncio.run(_all(router, job, todo, concurrency, save))
    except KeyboardInterrupt:
        report.interrupted = True
    except OSError as exc:
        raise JSONLinesError(f"{output}: cannot write: {exc.strerror or exc}") from None
    finally:
        tidy(output, job.finished)
    return report


async def _all(router: Cascade, job: Job, rows: list[Row], concurrency: int, save: Callable[[int, Any], None]) -> None:
    try:
        await Batch(concurrency, on_result=save).amap(job, rows)
    finally:
        await router.aclose()  # on this loop, which owns the async connections


def _say_resuming(err: Console, output: Path, state: OutputState, report: RunReport) -> None:
    if state.cut:
        err.print(
            f"{output}: its last line was cut short by an interruption: removed, that row runs again",
            markup=False,
            highlight=False,
        )
    if state.unreadable:
        numbers = ", ".join(str(n) for n in state.unreadable[:10]) + (" ..." if len(state.unreadable) > 10 else "")
        err.print(
            f"{output}: {len(state.unreadable)} line(s) cannot be read (line {numbers}): kept as they are; "
            "rows without another line run again",
            markup=False,
            highlight=False,
        )
    if report.already_done or report.retried:
        retrying = f"; retrying {report.retried} that failed" if report.retried else ""
        err.print(
            f"resuming: {report.already_done} of {report.rows} rows already done in {output}{retrying}",
            markup=False,
            highlight=False,
        )


@contextmanager
def _progress(err: Console, label: str, total: int) -> Iterator[Callable[[], None]]:
    """A progress bar on an interactive terminal; piped, nothing (the summary says what happened)."""
    if not err.is_interactive:
        yield lambda: None
        return
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=err) as progress:
        task = progress.add_task(label, total=total)
        yield lambda: progress.advance(task)


def interrupted_note(output: Path, report: RunReport) -> str:
    """What Ctrl-C left: how many rows are saved, and that the same command resumes."""
    done = report.already_done + report.finished
    return (
        f"interrupted: {report.written} rows saved in {output} in this run, {done} of {report.rows} now done; "
        "rerun the same command to resume"
    )
