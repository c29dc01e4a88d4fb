"""What every `cascade` command shares: exit codes, options, consoles, logging, errors and loading the router.

Only Typer is imported up front (so `cascade --help` answers fast); Rich and the engine load when a command runs.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from rich.console import Console

    from cascade.engine import Cascade

EXIT_OK, EXIT_QUERY_FAILED, EXIT_USAGE = 0, 1, 2
EXIT_INTERRUPTED = 130  # what a shell reports for a command stopped by Ctrl-C
# Commands that call vendors default to the shipped policy for live traffic (`default` is the design's policy,
# on model ids the vendors have retired: `cascade demo` replays it from its cassette).
DEFAULT_POLICY = "current-models"
# Piped output is laid out as wide as it needs: nothing is cut to fit a terminal that is not there.
PIPED_WIDTH = 10_000

Verbose = Annotated[bool, typer.Option("--verbose", "-v", help="Show structlog events on standard error.")]
PolicyOpt = Annotated[
    str, typer.Option("--policy", "-p", help="A shipped policy's name (`cascade policy list`) or a policy file.")
]
ConcurrencyOpt = Annotated[int, typer.Option("--concurrency", "-c", min=1, help="Queries in flight.")]


def console(stderr: bool = False) -> Console:
    """A console for standard output (or error): colours on a terminal, plain text and no width limit when piped."""
    from rich.console import Console

    made = Console(stderr=stderr, soft_wrap=False)
    if not made.is_terminal:
        made.width = PIPED_WIDTH
    return made


def configure_logging(verbose: bool) -> None:
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


def printable(text: str) -> str:
    """`text` as a terminal can show it: a lone surrogate (valid in JSON, not in UTF-8) becomes `\\udXXX`."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def fail(message: str, code: int) -> typer.Exit:
    """Print `error: message` on standard error and return the exit to raise. The message is not Rich markup:
    `pip install 'cascade-router[openai]'` keeps its brackets."""
    from rich.markup import escape

    console(stderr=True).print(f"[bold red]error:[/] {escape(printable(message))}", highlight=False)
    return typer.Exit(code)


def load_router(policy: str) -> Cascade:
    """The router for a shipped policy's name or a policy file; an invalid or unreadable policy exits 2 with what
    is wrong."""
    from cascade.engine import Cascade
    from cascade.errors import UsageError

    try:
        return Cascade.from_policy(policy)
    except UsageError as exc:
        raise fail(str(exc), EXIT_USAGE) from None
