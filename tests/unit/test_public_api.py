from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cascade


def test_all_lists_exactly_the_public_api() -> None:
    assert sorted(cascade.__all__) == sorted(
        [
            "Attempt",
            "BatchError",
            "BudgetExhaustedError",
            "Cascade",
            "CascadeError",
            "CascadeExhausted",
            "CascadeResult",
            "Final",
            "InvalidQueryError",
            "MissingAPIKeyError",
            "OutputSchemaError",
            "Policy",
            "PolicyError",
            "PriceTable",
            "ProviderError",
            "Reset",
            "TextDelta",
            "ToolCallDelta",
            "__version__",
            "load_policy",
            "load_prices",
        ]
    )
    for name in cascade.__all__:
        assert getattr(cascade, name) is not None


def test_import_loads_no_vendor_sdk_until_a_policy_needs_it() -> None:
    code = (
        "import sys, cascade\n"
        "router = cascade.Cascade.from_policy('policies/default.yaml')\n"
        # httpx2 is not looked for: genai-prices (the price data a policy loads) imports it for its updater.
        "loaded = [m for m in ('openai', 'anthropic', 'google.genai', 'google.generativeai')"
        " if m in sys.modules]\n"
        "print(','.join(loaded))\n"
    )
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=root)
    assert out.stdout.strip() == ""
