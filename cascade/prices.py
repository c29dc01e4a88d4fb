"""The price table: USD per million tokens for each model, shipped as package data and overridable per policy.

Cost of a call = input tokens x input price + output tokens x output price, from the usage the vendor
reported. Cached input tokens are billed at `cached_input` where the table has it. Pricing never raises:
a model with no price is refused when a policy is loaded, not in the middle of a query.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from functools import cache
from importlib import resources

_PER_TOKEN = 1_000_000


@dataclass(frozen=True, slots=True)
class ModelPrice:
    """One model's price in USD per million tokens, with where and when the figure was read."""

    input: float
    output: float
    cached_input: float | None = None
    context_window: int | None = None
    source: str = ""
    as_of: str = ""

    def cost(self, input_tokens: int, output_tokens: int, cached_input_tokens: int = 0) -> float:
        """USD for one call. Cached tokens are part of `input_tokens`, billed at the cached rate."""
        if cached_input_tokens <= 0 or self.cached_input is None:  # the common case, priced without the split
            return (input_tokens * self.input + output_tokens * self.output) / _PER_TOKEN
        cached = min(cached_input_tokens, input_tokens)
        fresh = input_tokens - cached
        total = fresh * self.input + cached * self.cached_input + output_tokens * self.output
        return total / _PER_TOKEN


class PriceTable(Mapping[str, ModelPrice]):
    """Model id -> price. Lookups also accept a dated vendor id (`gpt-4o-mini-2024-07-18`) by prefix."""

    def __init__(self, prices: Mapping[str, ModelPrice]) -> None:
        self._prices = dict(prices)

    def __getitem__(self, model: str) -> ModelPrice:
        found = self.find(model)
        if found is None:
            raise KeyError(model)
        return found

    def __iter__(self) -> Iterator[str]:
        return iter(self._prices)

    def __len__(self) -> int:
        return len(self._prices)

    def find(self, model: str) -> ModelPrice | None:
        """The price of `model`, or of the longest listed id it starts with (a dated snapshot)."""
        if model in self._prices:
            return self._prices[model]
        candidates = [m for m in self._prices if model.startswith(m + "-")]
        return self._prices[max(candidates, key=len)] if candidates else None

    def cost(self, model: str, input_tokens: int, output_tokens: int, cached_input_tokens: int = 0) -> float:
        """USD for one call, or 0.0 for an unknown model (never raises mid-query)."""
        price = self.find(model)
        return price.cost(input_tokens, output_tokens, cached_input_tokens) if price else 0.0

    def with_overrides(self, overrides: Mapping[str, ModelPrice]) -> PriceTable:
        """A new table where `overrides` replace (or add) entries."""
        merged = dict(self._prices)
        for model, price in overrides.items():
            base = merged.get(model)
            merged[model] = replace(
                price,
                context_window=price.context_window or (base.context_window if base else None),
                source=price.source or "policy override",
            )
        return PriceTable(merged)


@cache
def load_prices() -> PriceTable:
    """The table shipped in `cascade/data/prices.toml`."""
    text = resources.files("cascade").joinpath("data/prices.toml").read_text(encoding="utf-8")
    raw = tomllib.loads(text)["models"]
    return PriceTable({model: ModelPrice(**entry) for model, entry in raw.items()})
