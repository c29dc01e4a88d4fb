"""The `cascade` command. Only Typer is imported up front, so `cascade --help` answers fast; each command
imports the engine, the SDKs and Rich when it runs.

The commands live in `commands` (demo, ask, run, policy), `tuning_commands` (collect, eval, tune),
`prices_command` (prices), `serve_command` (serve) and `drift_command` (drift); each module adds its own to the
app below with its `register` function. Exit codes: 0 done, 1 a query failed, 2 a usage or policy error,
130 interrupted (Ctrl-C).
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from cascade.cli import commands, drift_command, prices_command, serve_command, tuning_commands
from cascade.cli.common import EXIT_USAGE, fail

app = typer.Typer(
    name="cascade",
    help="Answer each LLM query with the cheapest model a judge trusts. Try `cascade demo` (offline, no keys).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _print_version(value: bool) -> None:
    if value:
        from cascade import __version__

        print(f"cascade-router {__version__}")
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[
        bool, typer.Option("--version", help="Print the version and exit.", callback=_print_version, is_eager=True)
    ] = False,
) -> None:
    """Answer each LLM query with the cheapest model a judge trusts. Try `cascade demo` (offline, no keys)."""


commands.register(app)
tuning_commands.register(app)
prices_command.register(app)
serve_command.register(app)
drift_command.register(app)


def main() -> None:
    """Console-script entry point: usage errors that surface outside a command's own checks exit 2 without a
    traceback."""
    from cascade.errors import UsageError

    try:
        app()
    except UsageError as exc:
        fail(str(exc), EXIT_USAGE)
        sys.exit(EXIT_USAGE)
