"""`cascade demo`, `ask` and `run` (answer queries) and `cascade policy` (list, check and describe policies).

Only Typer is imported here; each command imports the engine and Rich when it runs (`cascade.cli.answering`).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from cascade.cli import common
from cascade.cli.common import DEFAULT_POLICY, EXIT_USAGE, ConcurrencyOpt, PolicyOpt, Verbose, configure_logging


def demo(verbose: Verbose = False) -> None:
    """Run twenty queries through the design's `default` policy, every vendor reply replayed (no keys, no network)."""
    configure_logging(verbose)
    from cascade.cli.answering import show_demo

    show_demo()


def ask(
    query: Annotated[str, typer.Argument(help="The query, or - to read it from standard input.")],
    policy: PolicyOpt = DEFAULT_POLICY,
    json_output: Annotated[bool, typer.Option("--json", help="Print the result object as JSON.")] = False,
    system: Annotated[str | None, typer.Option(help="A system prompt.")] = None,
    max_cost: Annotated[float | None, typer.Option("--max-cost", help="Budget for this query, USD.")] = None,
    stream: Annotated[bool, typer.Option("--stream", help="Print the answer as it arrives.")] = False,
    mode: Annotated[
        str | None,
        typer.Option(help="With --stream: buffered, speculative or final (default: the policy's stream.mode)."),
    ] = None,
    verbose: Verbose = False,
) -> None:
    """Answer one query live, then show every call it made."""
    configure_logging(verbose)
    from cascade.cli.answering import answer_one, stream_one

    if query == "-":
        query = sys.stdin.read()
    if mode is not None and not stream:
        raise common.fail("--mode goes with --stream", common.EXIT_USAGE)
    if stream and json_output:
        raise common.fail("--stream prints text as it arrives: use --json without it", common.EXIT_USAGE)
    router = common.load_router(policy)
    if stream:
        raise typer.Exit(stream_one(router, query, system, max_cost, mode))
    raise typer.Exit(answer_one(router, query, system, max_cost, json_output))


def run(
    input_path: Annotated[
        Path,
        typer.Option(
            "--input", "-i", help='JSON lines: {"id", "query"[, "system", "tools", "tool_choice", "output_schema"]}.'
        ),
    ],
    output_path: Annotated[Path, typer.Option("--output", "-o", help="JSON lines of results, appended.")],
    policy: PolicyOpt = DEFAULT_POLICY,
    concurrency: ConcurrencyOpt = 8,
    verbose: Verbose = False,
) -> None:
    """Answer many queries, appending each result as it ends; a rerun skips answered ids and retries failed ones."""
    configure_logging(verbose)
    from cascade.cli.answering import answer_rows
    from cascade.cli.preflight import check_vendors
    from cascade.cli.runner import read_rows
    from cascade.errors import UsageError

    try:
        rows = read_rows(input_path)
        router = common.load_router(policy)
        check_vendors(router)
        code = answer_rows(router, rows, output_path, concurrency)
    except UsageError as exc:  # the input or the output cannot be used
        raise common.fail(str(exc), EXIT_USAGE) from None
    raise typer.Exit(code)


def policy_check(
    policies: Annotated[list[str], typer.Argument(help="Shipped policies' names or policy files.")],
) -> None:
    """Validate policies; print stages, thresholds, judges and the price of an average query at each stage."""
    from cascade.cli.policy_view import check_policies

    if not check_policies(policies, common.console(), common.console(stderr=True)):
        raise typer.Exit(EXIT_USAGE)


def policy_list() -> None:
    """List the policies shipped with cascade, one line each; any command's `--policy` takes these names."""
    from cascade.cli.policy_view import list_policies

    list_policies(common.console())


def policy_schema() -> None:
    """Print the policies' JSON Schema (the one committed as policies/policy.schema.json)."""
    import json

    from cascade.policy import Policy

    print(json.dumps(Policy.model_json_schema(), indent=2))


def register(app: typer.Typer) -> None:
    """Add `demo`, `ask`, `run` and the `policy` group to the `cascade` app."""
    for command in (demo, ask, run):
        app.command()(command)
    policy_app = typer.Typer(
        help="List the shipped policies, validate policies and print their JSON Schema.", no_args_is_help=True
    )
    policy_app.command("list")(policy_list)
    policy_app.command("check")(policy_check)
    policy_app.command("schema")(policy_schema)
    app.add_typer(policy_app, name="policy")
