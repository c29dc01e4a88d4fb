from __future__ import annotations

import pytest

from cascade.prices import ModelPrice, load_prices


@pytest.mark.parametrize(
    ("model", "inp", "out"),
    [("gpt-4o-mini", 0.15, 0.60), ("gemini-1.5-flash", 0.075, 0.30), ("claude-3-5-sonnet-20241022", 3.00, 15.00)],
)
def test_design_prices(model: str, inp: float, out: float) -> None:
    price = load_prices()[model]
    assert (price.input, price.output) == (inp, out)
    assert price.source.startswith("https://") and price.as_of


def test_every_entry_has_source_and_date() -> None:
    for model, price in load_prices().items():
        assert price.source and price.as_of, model


def test_cost_is_tokens_times_price() -> None:
    # 1,234 input x $0.15/M + 567 output x $0.60/M
    assert load_prices().cost("gpt-4o-mini", 1234, 567) == pytest.approx((1234 * 0.15 + 567 * 0.60) / 1e6)


def test_dated_vendor_id_prices_as_its_family_and_longest_prefix_wins() -> None:
    table = load_prices()
    assert table.find("gpt-4o-mini-2024-07-18") is table["gpt-4o-mini"]
    assert table.find("gpt-4o-2024-08-06") is table["gpt-4o"]
    assert table.find("unknown-model") is None
    assert table.cost("unknown-model", 10, 10) == 0.0


def test_cached_tokens_bill_at_the_cached_rate() -> None:
    price = ModelPrice(input=1.0, output=2.0, cached_input=0.1)
    assert price.cost(1000, 0, cached_input_tokens=400) == pytest.approx((600 * 1.0 + 400 * 0.1) / 1e6)
    assert ModelPrice(input=1.0, output=2.0).cost(1000, 0, cached_input_tokens=400) == pytest.approx(1000 / 1e6)


def test_overrides_replace_and_add() -> None:
    table = load_prices().with_overrides({"gpt-4o-mini": ModelPrice(1.0, 1.0), "new": ModelPrice(2.0, 2.0)})
    assert table["gpt-4o-mini"].input == 1.0
    assert table["gpt-4o-mini"].context_window == 128000
    assert table["new"].source == "policy override"
    assert load_prices()["gpt-4o-mini"].input == 0.15
