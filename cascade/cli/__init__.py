"""The `cascade` command. Only Typer is imported up front, so `cascade --help` answers fast; each command
imports the engine, the SDKs and Rich when it runs.

Exit codes: 0 done, 1 a query failed, 2 a usage or policy error.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

EXIT_OK, EXIT_QUERY_FAILED, EXIT_USAGE = 0, 1, 2
DEFAULT_POLICY = "policies/default.yaml"

app = typer.Typer(
    name="cascade",
    help="Answer each LLM query with the cheapest model a judge trusts. Try `cascade demo` (offline, no keys).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
policy_app = typer.Typer(help="Validate policies and print their JSON Schema.", no_args_is_help=True)
app.add_typer(policy_app, name="policy")

Verbose = Annotated[bool, typer.Option("--verbose", "-v", help="Show structlog events on standard error.")]
PolicyOpt = Annotated[Path, typer.Option("--policy", "-p", help="Policy file.")]


def _console(stderr: bool = False) -> Any:
    from rich.console import Console

    return Console(stderr=stderr, soft_wrap=False)


def _configure_logging(verbose: bool) -> None:
    """The CLI is an application, so it (unlike the library) decides where events go."""
    import logging

    import structlog

    if verbose:
        structlog.configure(
            processors=[
                structlog.processors.add_log_level,
                structlog.processors.TimeStamper(fmt="iso"),
                structlog.dev.ConsoleRenderer(colors=False),
            ],
            logger_factory=structlog.PrintLoggerFactory(sys.stderr),
            cache_logger_on_first_use=False,
        )
    else:
        structlog.configure(
            wrapper_class=structlog.make_filtering_bound_logger(logging.CRITICAL),
            cache_logger_on_first_use=False,
        )


def _fail(message: str, code: int) -> typer.Exit:
    _console(stderr=True).print(f"[bold red]error:[/] {message}", highlight=False, markup=True)
    return typer.Exit(code)


def _load_router(policy: Path) -> Any:
    from cascade.engine import Cascade
    from cascade.errors import PolicyError

    try:
        return Cascade.from_policy(policy)
    except PolicyError as exc:
        raise _fail(str(exc), EXIT_USAGE) from None


@app.command()
def demo(verbose: Verbose = False) -> None:
    """Run twenty queries through policies/default.yaml with every vendor reply replayed (no keys, no network)."""
    _configure_logging(verbose)
    from cascade.cli.render import print_tables, route_line, totals_tables
    from cascade.demo import CASSETTE, run_demo
    from cascade.errors import UsageError
    from cascade.report import summarize

    console = _console()
    console.print(
        f"[bold]cascade demo[/]: vendor replies are [bold]replayed[/] from {CASSETTE} "
        "(synthesized in the vendors' wire formats; no key, no network).\n"
    )
    try:
        policy, answered = run_demo()
    except UsageError as exc:
        raise _fail(str(exc), EXIT_USAGE) from None
    for query, result in answered:
        console.print(
            f"[dim]{query.id}[/] [cyan]{query.category:<24}[/] ",
            route_line(result),
            f" [dim]{result.cost_usd * 1e6:,.0f} µ$[/]",
        )
    console.print()
    summary = summarize([r for _, r in answered], policy)
    print_tables(console, totals_tables(summary, policy))
    console.print(
        f"\n[bold green]Saved {summary.saving:.1%}[/] against sending every query to "
        f"{policy.stages[-1].model} (judge calls included; the all-last-stage cost is an estimate "
        "from the same token counts)."
    )


@app.command()
def ask(
    query: Annotated[str, typer.Argument(help="The query, or - to read it from standard input.")],
    policy: PolicyOpt = Path(DEFAULT_POLICY),
    json_output: Annotated[bool, typer.Option("--json", help="Print the result object as JSON.")] = False,
    system: Annotated[str | None, typer.Option(help="A system prompt.")] = None,
    max_cost: Annotated[float | None, typer.Option("--max-cost", help="Budget for this query, USD.")] = None,
    verbose: Verbose = False,
) -> None:
    """Answer one query live, then show every call it made."""
    _configure_logging(verbose)
    from cascade.cli.render import attempts_table
    from cascade.errors import BudgetExhaustedError, CascadeExhausted, UsageError

    if query == "-":
        query = sys.stdin.read()
    router = _load_router(policy)
    console = _console()
    try:
        result = router.run(query, system=system, max_cost_usd=max_cost)
    except (CascadeExhausted, BudgetExhaustedError) as exc:
        if json_output:
            print(exc.result.model_dump_json(indent=2))
        else:
            console.print(attempts_table(exc.result))
        raise _fail(str(exc), EXIT_QUERY_FAILED) from None
    except (UsageError, ValueError) as exc:
        raise _fail(str(exc), EXIT_USAGE) from None
    if json_output:
        print(result.model_dump_json(indent=2))
        return
    console.print(result.answer, markup=False, highlight=False)
    console.print()
    console.print(attempts_table(result))


@app.command()
def run(
    input_path: Annotated[Path, typer.Option("--input", "-i", help='JSON lines: {"id", "query"[, "system"]}.')],
    output_path: Annotated[Path, typer.Option("--output", "-o", help="JSON lines of results, appended.")],
    policy: PolicyOpt = Path(DEFAULT_POLICY),
    concurrency: Annotated[int, typer.Option("--concurrency", "-c", min=1, help="Queries in flight.")] = 8,
    verbose: Verbose = False,
) -> None:
    """Answer many queries; results are written as they complete, and a rerun skips ids already written."""
    _configure_logging(verbose)
    from cascade.cli.batch import BatchError, run_batch

    router = _load_router(policy)
    try:
        failed = run_batch(router, input_path, output_path, concurrency, _console(), _console(stderr=True))
    except BatchError as exc:
        raise _fail(str(exc), EXIT_USAGE) from None
    if failed:
        raise typer.Exit(EXIT_QUERY_FAILED)


@policy_app.command("check")
def policy_check(files: Annotated[list[Path], typer.Argument(help="Policy files.")]) -> None:
    """Validate policies; print stages, thresholds, judges and the price of an average query at each stage."""
    from cascade.cli.policy_view import check_policies

    if not check_policies(files, _console(), _console(stderr=True)):
        raise typer.Exit(EXIT_USAGE)


@policy_app.command("schema")
def policy_schema() -> None:
    """Print the policies' JSON Schema (the one committed as policies/policy.schema.json)."""
    import json

    from cascade.policy import Policy

    print(json.dumps(Policy.model_json_schema(), indent=2))


def main() -> None:
    """Console-script entry point: usage and policy errors exit 2 without a traceback."""
    from cascade.errors import MissingAPIKeyError, MissingDependencyError

    try:
        app()
    except (MissingAPIKeyError, MissingDependencyError) as exc:
        _console(stderr=True).print(f"[bold red]error:[/] {exc}", highlight=False)
        sys.exit(EXIT_USAGE)


from cascade.cli import tuning_commands as _tuning_commands  # noqa: E402,F401
