"""`cascade prices MODEL...`: the rates a call of each model is billed at, and an average query of a policy.

Only Typer is imported here; the command imports the price data and Rich when it runs (`cascade.cli.prices_view`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer

from cascade.cli import common
from cascade.cli.common import DEFAULT_POLICY, EXIT_USAGE, PolicyOpt


def prices(
    models: Annotated[list[str], typer.Argument(help="Model ids, as a policy names them.")],
    policy: PolicyOpt = DEFAULT_POLICY,
    on: Annotated[
        datetime | None,
        typer.Option("--on", formats=["%Y-%m-%d"], help="The day whose prices to show (default: today, UTC)."),
    ] = None,
) -> None:
    """What a call costs per million tokens (input, cache reads and writes, output, each long-context tier) and
    what an average query of the policy costs with each model answering. The policy's `prices:` win."""
    from cascade.cli.prices_view import show_prices, unknown_models
    from cascade.errors import PolicyError
    from cascade.policy import load_policy

    try:
        loaded = load_policy(policy)
    except PolicyError as exc:
        raise common.fail(str(exc), EXIT_USAGE) from None
    unknown = unknown_models(loaded, models)
    if len(unknown) == 1:
        raise common.fail(f"no price for model {unknown[0]!r}: add it under `prices:` in the policy", EXIT_USAGE)
    if unknown:
        names = ", ".join(repr(m) for m in unknown)
        raise common.fail(f"no price for models {names}: add them under `prices:` in the policy", EXIT_USAGE)
    day = on.replace(tzinfo=UTC) if on is not None else datetime.now(UTC)
    show_prices(loaded, models, day, common.console())


def register(app: typer.Typer) -> None:
    """Add `prices` to the `cascade` app."""
    app.command()(prices)
