"""`cascade prices`: what a call of each model costs per million tokens, and what an average query of a policy costs.

The rates are the ones the engine bills with: the policy's `prices:` entries where it has them, else genai-prices'
data for the day asked (today unless told). A model with long-context tiers gets one row per tier.
"""

from __future__ import annotations

from datetime import datetime

from rich.console import Console

from cascade.budget import JUDGE_PROMPT_OVERHEAD_TOKENS
from cascade.cli.policy_view import AVERAGE_INPUT_TOKENS, AVERAGE_JUDGE_OUTPUT_TOKENS, AVERAGE_OUTPUT_TOKENS
from cascade.cli.render import Column, Sheet, money, show
from cascade.policy import Policy
from cascade.prices import ListedPrice, Price, Rates

_RATE_COLUMNS = ("input", "cached input", "cache write 5m", "cache write 1h", "output")


def unknown_models(policy: Policy, models: list[str]) -> list[str]:
    """The models neither the policy's `prices:` nor the price data knows."""
    table = policy.price_table()
    return [model for model in models if table.find(model) is None]


def show_prices(policy: Policy, models: list[str], on: datetime, out: Console) -> None:
    """Print the rates of each model (every tier), then an average query of `policy` answered by each."""
    table = policy.price_table()
    found = [(model, price) for model in models if (price := table.find(model)) is not None]
    tiered = [(model, price, tier) for model, price in found for tier in _tier_rates(price, on)]
    usd = money([getattr(rates, name) for *_, (_, rates) in tiered for name in _FIELDS])
    columns = [Column("model"), Column("price from"), Column("prompt tokens")]
    columns += [Column(name, numeric=True) for name in (*_RATE_COLUMNS, "context window")]
    rates_sheet = Sheet(
        f"USD per million tokens, prices of {on.date().isoformat()}",
        columns,
        caption="past a tier, every token of the prompt bills at the tier's rates; thinking bills as output; "
        "-: no rate of its own (billed as input, a 1-hour write as a 5-minute one)",
    )
    for model, price, (prompt, rates) in tiered:
        own = price.kinds(on)
        cells = (usd(getattr(rates, name)) if name in own else "-" for name in _FIELDS)
        window = f"{price.context_window:,}" if price.context_window else "-"
        rates_sheet.add(model, f"{rates.source}: {rates.model}", prompt, *cells, window)

    judge = policy.judge.model
    judge_input = AVERAGE_INPUT_TOKENS + AVERAGE_OUTPUT_TOKENS + JUDGE_PROMPT_OVERHEAD_TOKENS
    judge_cost = table.cost(judge, judge_input, AVERAGE_JUDGE_OUTPUT_TOKENS, at=on)
    answers = [(model, table.cost(model, AVERAGE_INPUT_TOKENS, AVERAGE_OUTPUT_TOKENS, at=on)) for model, _ in found]
    usd_query = money([cost for _, cost in answers] + [judge_cost])
    query_sheet = Sheet(
        f"An average query of {policy.name} v{policy.version}: {AVERAGE_INPUT_TOKENS} tokens in, "
        f"{AVERAGE_OUTPUT_TOKENS} out",
        [Column("model"), *(Column(name, numeric=True) for name in ("answer", f"+ judge ({judge})", "total"))],
        caption=f"the judge: {judge_input} tokens in, {AVERAGE_JUDGE_OUTPUT_TOKENS} out",
    )
    for model, answer in answers:
        query_sheet.add(model, usd_query(answer), usd_query(judge_cost), usd_query(answer + judge_cost))
    show(out, rates_sheet, query_sheet)


# The Rates fields in the order of _RATE_COLUMNS.
_FIELDS = ("input", "cached_input", "cache_write", "cache_write_1h", "output")


def _tier_rates(price: Price, on: datetime) -> list[tuple[str, Rates]]:
    """(prompt size, rates) for each tier of a price: `any` for a flat one."""
    starts = price.tiers(on) if isinstance(price, ListedPrice) else []
    if not starts:
        return [("any", price.rates(0, on))]
    rows = [(f"<= {starts[0]:,}", price.rates(0, on))]
    return rows + [(f"> {start:,}", price.rates(start + 1, on)) for start in starts]
