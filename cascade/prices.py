"""Prices in USD per million tokens: genai-prices' data for the three vendors, with a policy's `prices:` on top.

The list prices come from `genai-prices` (pydantic's maintained price data: cache reads and writes, long-context
tiers, prices that change on a date), pinned in pyproject.toml and read from the data the package ships. Its
`UpdatePrices` would fetch newer data over the network and swap a process-wide snapshot: cascade never starts it and
never reads that snapshot, so a price depends on the pinned version and the date of the call alone.

A call costs the prompt's fresh tokens, its cache reads, its 5-minute and 1-hour cache writes and its output, each
at its own rate, the rates of the tier the whole prompt falls in (Gemini and Claude bill every token of a prompt
past 200k at a higher rate). Thinking tokens are output, and all three vendors bill them as output. `Rates` are
those figures for one call, recorded on its `Attempt`. Pricing never raises: a model with no price is refused when
a policy is loaded, and costs 0.0 if asked anyway.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, fields, replace
from datetime import UTC, date, datetime
from functools import cache
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    from genai_prices.types import ModelInfo, Provider

_PER_MILLION = 1_000_000
# genai-prices' provider ids, which are cascade's provider names. Claude first: Google's data also lists the Claude
# models that Vertex sells, at Vertex's prices.
VENDORS = ("anthropic", "openai", "google")
OVERRIDE = "policy override"


class Rates(BaseModel):
    """The rates one call is billed at, USD per million tokens, and where they come from.

    With the call's token counts they give its cost again (`cost`), whatever the price data says by then."""

    model_config = ConfigDict(frozen=True)

    source: str = Field(description="`genai-prices VERSION` (the data that version ships) or `policy override`.")
    model: str = Field(description="The price entry: genai-prices' model id, or the policy's key.")
    as_of: date = Field(description="The day whose prices these are (some prices change on a date).")
    above_prompt_tokens: int = Field(0, description="The long-context tier: prompts over this many tokens (0: none).")
    input: float = Field(description="Prompt tokens that are neither cache reads nor cache writes.")
    cached_input: float = Field(description="Cache reads.")
    cache_write: float = Field(description="Cache writes kept 5 minutes (and any write not said to be 1-hour).")
    cache_write_1h: float = Field(description="Cache writes kept 1 hour.")
    output: float = Field(description="Output tokens, thinking included.")

    def cost(self, usage: Usage) -> float:
        """USD for a call with these counts. Counts that overlap more than they can (more cache reads than prompt
        tokens) are clamped, so that a confused reply is not billed twice."""
        prompt = max(usage.input_tokens, 0)
        reads = min(max(usage.cached_input_tokens, 0), prompt)
        writes = min(max(usage.cache_write_tokens, 0), prompt - reads)
        hour = min(max(usage.cache_write_1h_tokens, 0), writes)
        total = (
            (prompt - reads - writes) * self.input
            + reads * self.cached_input
            + (writes - hour) * self.cache_write
            + hour * self.cache_write_1h
            + max(usage.output_tokens, 0) * self.output
        )
        return total / _PER_MILLION


@dataclass(frozen=True, slots=True)
class Usage:
    """One call's token counts as the vendor reported them: `input_tokens` is the whole prompt (cache reads and
    writes included), `output_tokens` the whole output (thinking included); the others are parts of those."""

    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0  # cache reads
    cache_write_tokens: int = 0  # cache writes of any lifetime
    cache_write_1h_tokens: int = 0  # the writes kept for an hour
    reasoning_tokens: int = 0  # thinking, billed as output

    @classmethod
    def of(cls, counts: object) -> Usage:
        """The counts of a `Completion` or an `Attempt` (fields of these names; a missing one is 0)."""
        return cls(**{f.name: getattr(counts, f.name, 0) or 0 for f in fields(cls)})


@dataclass(frozen=True, slots=True)
class ModelPrice:
    """A price written by hand, USD per million tokens: a policy's `prices:` entry. Flat (no tiers, no dates); an
    unset cache rate bills those tokens at `input` (a 1-hour write at `cache_write` when that is set)."""

    input: float
    output: float
    cached_input: float | None = None
    cache_write: float | None = None
    cache_write_1h: float | None = None
    context_window: int | None = None
    source: str = OVERRIDE
    model: str = ""

    def kinds(self, at: datetime | None = None) -> set[str]:
        """The kinds of token (`Rates` field names) with a rate of their own; the others bill as their parent."""
        own = {
            "cached_input": self.cached_input,
            "cache_write": self.cache_write,
            "cache_write_1h": self.cache_write_1h,
        }
        return {"input", "output"} | {name for name, rate in own.items() if rate is not None}

    def rates(self, prompt_tokens: int = 0, at: datetime | None = None) -> Rates:
        """The rates of a call (the same for any prompt and day)."""
        write = self.input if self.cache_write is None else self.cache_write
        return Rates(
            source=self.source,
            model=self.model,
            as_of=_when(at).date(),
            input=self.input,
            cached_input=self.input if self.cached_input is None else self.cached_input,
            cache_write=write,
            cache_write_1h=write if self.cache_write_1h is None else self.cache_write_1h,
            output=self.output,
        )


@dataclass(frozen=True, slots=True)
class ListedPrice:
    """A model's price in genai-prices' data: rates that depend on the day and on the prompt's size."""

    vendor: str
    info: ModelInfo

    @property
    def model(self) -> str:
        return self.info.id

    @property
    def source(self) -> str:
        return data_version()

    @property
    def context_window(self) -> int | None:
        return self.info.context_window

    def tiers(self, at: datetime | None = None) -> list[int]:
        """The prompt sizes (tokens) past which the rates go up, smallest first; empty for a flat price."""
        prices = self.info.get_prices(_when(at))
        starts = {tier.start for key in _KEYS.values() for tier in getattr(getattr(prices, key), "tiers", None) or ()}
        return sorted(starts)

    def kinds(self, at: datetime | None = None) -> set[str]:
        """The kinds of token (`Rates` field names) with a rate of their own; the others bill as their parent."""
        prices = self.info.get_prices(_when(at))
        return {name for name, key in _KEYS.items() if getattr(prices, key) is not None}

    def rates(self, prompt_tokens: int = 0, at: datetime | None = None) -> Rates:
        """The rates of a call whose whole prompt is `prompt_tokens` tokens, on the day `at` (default: now)."""
        when = _when(at)
        prices = self.info.get_prices(when)
        found: dict[str, float] = {}
        crossed = 0
        for name, key in _KEYS.items():
            value = getattr(prices, key)
            if value is None:
                continue
            rate, start = _tier(value, prompt_tokens)
            found[name], crossed = rate, max(crossed, start)
        # What genai-prices does with a kind of token it has no rate for: bill it as its parent kind.
        base = found.get("input", 0.0)
        write = found.get("cache_write", base)
        return Rates(
            source=self.source,
            model=self.model,
            as_of=when.date(),
            above_prompt_tokens=crossed,
            input=base,
            cached_input=found.get("cached_input", base),
            cache_write=write,
            cache_write_1h=found.get("cache_write_1h", write),
            output=found.get("output", 0.0),
        )


Price = ModelPrice | ListedPrice

# Our name for each kind of token -> genai-prices' price key.
_KEYS = {
    "input": "input_mtok",
    "cached_input": "cache_read_mtok",
    "cache_write": "cache_write_mtok",
    "cache_write_1h": "cache_write_1h_mtok",
    "output": "output_mtok",
}


def _tier(value: Any, prompt_tokens: int) -> tuple[float, int]:
    """(rate, tier start) for a genai-prices price: a flat Decimal, or tiers where a prompt past a tier's start
    bills every token at that tier's rate (not only the tokens past it), as the vendors do."""
    tiers = getattr(value, "tiers", None)
    if tiers is None:
        return float(value), 0
    rate, start = value.base, 0
    for tier in tiers:  # sorted by start
        if prompt_tokens > tier.start:
            rate, start = tier.price, tier.start
    return float(rate), start


def _when(at: datetime | None) -> datetime:
    return at if at is not None else datetime.now(UTC)


class PriceTable(Mapping[str, Price]):
    """Model id -> price: the entries written by hand (they win), then genai-prices' data for the three vendors.

    Lookups accept what the vendors accept: a dated id (`claude-3-5-haiku-20241022`) finds its model in
    genai-prices' data as the vendor names it; a hand entry also prices the dated ids that start with its name.
    """

    def __init__(self, prices: Mapping[str, ModelPrice] | None = None) -> None:
        self._hand = {model: replace(price, model=price.model or model) for model, price in (prices or {}).items()}
        self._found: dict[str, Price | None] = {}

    def __getitem__(self, model: str) -> Price:
        found = self.find(model)
        if found is None:
            raise KeyError(model)
        return found

    def __iter__(self) -> Iterator[str]:
        yield from self._hand
        for vendor in _vendors():
            yield from (m.id for m in vendor.models if m.id not in self._hand and _matches(vendor, m.id))

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def find(self, model: str) -> Price | None:
        """The price of `model`: a hand entry (by id, or the longest one it starts with), else genai-prices'."""
        if model in self._found:
            return self._found[model]
        found: Price | None = self._hand.get(model)
        if found is None:
            prefixes = [m for m in self._hand if model.startswith(m + "-")]
            found = self._hand[max(prefixes, key=len)] if prefixes else _listed(model)
        self._found[model] = found
        return found

    def rates(self, model: str, prompt_tokens: int = 0, at: datetime | None = None) -> Rates | None:
        """The rates of a call of `model` with a prompt of `prompt_tokens` tokens, or None for an unknown model."""
        price = self.find(model)
        return price.rates(prompt_tokens, at) if price is not None else None

    def priced(self, model: str, usage: Usage, at: datetime | None = None) -> tuple[float, Rates | None]:
        """USD for one call and the rates it was billed at; (0.0, None) for an unknown model (never raises)."""
        rates = self.rates(model, usage.input_tokens, at)
        return (rates.cost(usage), rates) if rates is not None else (0.0, None)

    def cost(
        self,
        model: str,
        input_tokens: int,
        output_tokens: int,
        cached_input_tokens: int = 0,
        at: datetime | None = None,
    ) -> float:
        """USD for a call without cache writes, or 0.0 for an unknown model. Cached tokens are part of the input."""
        return self.priced(model, Usage(input_tokens, output_tokens, cached_input_tokens), at)[0]

    def with_overrides(self, overrides: Mapping[str, ModelPrice]) -> PriceTable:
        """A new table where `overrides` replace (or add) entries; an override without a context window keeps the
        one of the model it replaces."""
        merged = dict(self._hand)
        for model, price in overrides.items():
            base = merged.get(model) or _listed(model)
            window = price.context_window or (base.context_window if base else None)
            merged[model] = replace(price, context_window=window, model=price.model or model)
        return PriceTable(merged)


@cache
def load_prices() -> PriceTable:
    """genai-prices' data for OpenAI, Anthropic and Google models, with no hand entries."""
    return PriceTable()


@cache
def data_version() -> str:
    """`genai-prices VERSION`: the price data every listed price comes from."""
    from importlib.metadata import version

    return f"genai-prices {version('genai-prices')}"


@cache
def _vendors() -> tuple[Provider, ...]:
    # Imported on first use: the data is a large module, and `import cascade` must stay fast. The list is read
    # as shipped, never through genai-prices' `get_snapshot()`, which an application's `UpdatePrices` may replace.
    from genai_prices.data import providers

    by_id = {p.id: p for p in providers}
    return tuple(by_id[v] for v in VENDORS)


def _matches(vendor: Provider, model: str) -> bool:
    return vendor.model_match is not None and vendor.model_match.is_match(model.lower())


@cache
def _listed(model: str) -> ListedPrice | None:
    """genai-prices' entry for `model`: first at the vendor whose model names it has (`claude`, `gemini`, `gpt-`),
    then at the others; only an entry with a token price counts."""
    vendors = sorted(_vendors(), key=lambda v: not _matches(v, model))
    for vendor in vendors:
        info = vendor.find_model(model)
        if info is not None:
            prices = info.get_prices(datetime.now(UTC))
            if prices.input_mtok is not None or prices.output_mtok is not None:
                return ListedPrice(vendor.id, info)
    return None
