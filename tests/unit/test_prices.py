"""The price table: genai-prices' shipped data, pinned and never fetched, with a policy's `prices:` on top."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from datetime import UTC, datetime
from decimal import Decimal
from importlib.metadata import version
from pathlib import Path

import pytest
from genai_prices import Usage as GenaiUsage
from genai_prices import calc_price, data_snapshot
from genai_prices.data import providers
from genai_prices.types import ClauseEquals, ModelInfo, Provider
from genai_prices.types import ModelPrice as GenaiModelPrice

from cascade.policy import Policy
from cascade.prices import VENDORS, ListedPrice, ModelPrice, PriceTable, Usage, data_version, load_prices

ROOT = Path(__file__).resolve().parents[2]
DAY = datetime(2026, 12, 1, tzinfo=UTC)


def test_the_price_data_is_the_pinned_genai_prices() -> None:
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    (pin,) = [d for d in dependencies if d.startswith("genai-prices")]
    assert pin == f"genai-prices=={version('genai-prices')}"  # exact: a price is what this version ships
    assert data_version() == f"genai-prices {version('genai-prices')}"
    price = load_prices()["gpt-4o-mini"]
    assert isinstance(price, ListedPrice) and price.source == data_version()


@pytest.mark.parametrize("path", sorted((ROOT / "policies").glob("*.yaml")), ids=lambda p: p.name)
def test_every_model_of_the_shipped_policies_is_in_the_price_data(path: Path) -> None:
    policy = Policy.from_file(path)
    models = {policy.judge.model} | {s.model for s in policy.stages} | {s.judge.model for s in policy.stages if s.judge}
    if policy.routing.classifier:
        models.add(policy.routing.classifier.model)
    for model in models:
        assert isinstance(load_prices().find(model), ListedPrice), model


def test_dated_vendor_ids_find_their_model_and_unknown_ones_cost_nothing() -> None:
    table = load_prices()
    assert table["gpt-4o-mini-2024-07-18"].model == "gpt-4o-mini"
    assert table["claude-3-5-haiku-20241022"].model == "claude-3-5-haiku-latest"
    # Google's data lists Claude at Vertex's prices too: a Claude id is Anthropic's.
    found = table.find("claude-haiku-4-5")
    assert isinstance(found, ListedPrice) and found.vendor == "anthropic"
    assert table.find("unknown-model") is None and "unknown-model" not in table
    assert table.cost("unknown-model", 10, 10) == 0.0
    assert table.priced("unknown-model", Usage(10, 10)) == (0.0, None)


def test_gpt_4o_mini_at_its_list_price() -> None:
    # https://openai.com/api/pricing/ : gpt-4o-mini $0.15 input, $0.075 cached input, $0.60 output per 1M tokens.
    cost = load_prices().cost("gpt-4o-mini", 1234, 567, cached_input_tokens=234, at=DAY)
    assert cost == pytest.approx((1000 * 0.15 + 234 * 0.075 + 567 * 0.60) / 1e6)


def test_a_price_that_changes_on_a_date_is_billed_by_the_call_s_date() -> None:
    # genai-prices lists gemini-3.8-flash at $0.75 / $3.75 through 2026 and $1.50 / $7.50 from 2027-01-01.
    table = load_prices()
    before = table.rates("gemini-3.8-flash", 1000, datetime(2026, 12, 31, 23, 59, tzinfo=UTC))
    after = table.rates("gemini-3.8-flash", 1000, datetime(2027, 1, 1, tzinfo=UTC))
    assert before is not None and after is not None
    assert (before.input, before.output, before.as_of.isoformat()) == (0.75, 3.75, "2026-12-31")
    assert (after.input, after.output, after.as_of.isoformat()) == (1.50, 7.50, "2027-01-01")


def test_overrides_win_add_and_keep_the_listed_context_window() -> None:
    table = load_prices().with_overrides({"gpt-4o-mini": ModelPrice(1.0, 2.0), "my-finetune": ModelPrice(3.0, 4.0)})
    price = table["gpt-4o-mini"]
    assert isinstance(price, ModelPrice)
    assert (price.input, price.context_window, price.source) == (1.0, 128_000, "policy override")
    assert table["my-finetune-2026-01-01"] is table["my-finetune"]  # a dated id of a hand entry
    rates = table.rates("gpt-4o-mini")
    assert rates is not None and (rates.source, rates.model) == ("policy override", "gpt-4o-mini")
    assert load_prices()["gpt-4o-mini"].source == data_version()  # the shipped table is untouched
    assert list(table)[:2] == ["gpt-4o-mini", "my-finetune"] and len(table) == len(list(table))


def test_an_override_without_cache_rates_bills_cache_tokens_as_input() -> None:
    flat = ModelPrice(input=2.0, output=8.0)
    usage = Usage(input_tokens=1000, output_tokens=100, cached_input_tokens=300, cache_write_tokens=200)
    assert flat.rates().cost(usage) == pytest.approx((1000 * 2.0 + 100 * 8.0) / 1e6)
    priced = ModelPrice(input=2.0, output=8.0, cached_input=0.2, cache_write=2.5)
    one_hour = Usage(1000, 100, cached_input_tokens=300, cache_write_tokens=200, cache_write_1h_tokens=50)
    # 500 fresh x 2.0 + 300 read x 0.2 + 200 written (no 1-hour rate: all at 2.5) + 100 out x 8.0
    assert priced.rates().cost(one_hour) == pytest.approx((500 * 2.0 + 300 * 0.2 + 200 * 2.5 + 100 * 8.0) / 1e6)


def test_counts_that_overlap_more_than_they_can_are_not_billed_twice() -> None:
    rates = ModelPrice(input=1.0, output=1.0, cached_input=0.5, cache_write=3.0, cache_write_1h=9.0).rates()
    # More cache reads than prompt tokens: the whole prompt is reads, and nothing is left to be a write.
    assert rates.cost(Usage(100, 0, cached_input_tokens=500, cache_write_tokens=50)) == pytest.approx(100 * 0.5 / 1e6)
    # More 1-hour writes than writes; negative counts count as none.
    assert rates.cost(Usage(100, -5, cache_write_tokens=40, cache_write_1h_tokens=90)) == pytest.approx(
        (60 * 1.0 + 40 * 9.0) / 1e6
    )


def _genai_usage(usage: Usage) -> GenaiUsage:
    return GenaiUsage(
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        cache_read_tokens=usage.cached_input_tokens,
        cache_write_tokens=usage.cache_write_tokens,
        cache_write_1h_tokens=usage.cache_write_1h_tokens,
        output_reasoning_tokens=usage.reasoning_tokens,
    )


SHAPES = [
    Usage(1000, 500, cached_input_tokens=200, cache_write_tokens=100, cache_write_1h_tokens=40, reasoning_tokens=300),
    Usage(250_000, 2000, cached_input_tokens=50_000, cache_write_tokens=10_000, cache_write_1h_tokens=3000),
    Usage(10, 0),
]


@pytest.mark.parametrize("at", [DAY, datetime(2027, 6, 1, tzinfo=UTC)], ids=["2026-12", "2027-06"])
def test_every_model_of_the_three_vendors_prices_as_genai_prices_itself_does(at: datetime) -> None:
    """Our reading of the data (kinds of token, fallbacks, tiers, dates) against the package's own calculator."""
    checked = 0
    for provider in (p for p in providers if p.id in VENDORS):
        for info in provider.models:
            for usage in SHAPES:
                expected = info.calc_price(_genai_usage(usage), provider, genai_request_timestamp=at).total_price
                ours = ListedPrice(provider.id, info).rates(usage.input_tokens, at).cost(usage)
                assert ours == pytest.approx(float(expected), rel=1e-9, abs=1e-15), (provider.id, info.id, usage)
                checked += 1
    assert checked > 300


def test_an_application_s_price_updater_cannot_change_our_prices() -> None:
    """genai-prices' `UpdatePrices` swaps a process-wide snapshot; cascade reads the shipped data only."""
    dear = ModelInfo(
        id="gpt-4o-mini", match=ClauseEquals("gpt-4o-mini"), prices=GenaiModelPrice(input_mtok=Decimal(999))
    )
    swapped = data_snapshot.DataSnapshot([Provider(id="openai", name="OpenAI", api_pattern="", models=[dear])], True)
    data_snapshot.set_custom_snapshot(swapped)
    try:
        one_million = GenaiUsage(input_tokens=1_000_000)
        assert calc_price(one_million, "gpt-4o-mini", provider_id="openai").total_price == 999  # the swap took
        assert PriceTable().cost("gpt-4o-mini", 1_000_000, 0, at=DAY) == pytest.approx(0.15)
    finally:
        data_snapshot.set_custom_snapshot(None)


def test_loading_prices_opens_no_connection_and_starts_no_thread() -> None:
    code = (
        "import socket, threading\n"
        "def refuse(*a, **k): raise AssertionError('network used')\n"
        "socket.socket.connect = refuse; socket.create_connection = refuse; socket.getaddrinfo = refuse\n"
        "from cascade.policy import load_policy\n"
        "from cascade.prices import Usage\n"
        "policy = load_policy('policies/current-models.yaml')\n"
        "table = policy.price_table()\n"
        "cost, rates = table.priced('claude-sonnet-4-6', Usage(300_000, 10, cache_write_tokens=1000))\n"
        "assert cost > 0 and rates is not None, cost\n"
        "print(threading.active_count())\n"
    )
    ran = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.strip() == "1"
