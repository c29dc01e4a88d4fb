"""cascade: answer each LLM query with the cheapest model a judge trusts.

Names are loaded on first use so that `import cascade` stays fast and imports no vendor SDK.
"""

from __future__ import annotations

from cascade._lazy import lazy_exports

__version__ = "0.1.0"

_EXPORTS = {
    "Cascade": "cascade.engine",
    "CascadeResult": "cascade.result",
    "Attempt": "cascade.result",
    "Policy": "cascade.policy",
    "load_policy": "cascade.policy",
    "PriceTable": "cascade.prices",
    "load_prices": "cascade.prices",
    "CascadeError": "cascade.errors",
    "CascadeExhausted": "cascade.errors",
    "BatchError": "cascade.errors",
    "BudgetExhaustedError": "cascade.errors",
    "PolicyError": "cascade.errors",
    "MissingAPIKeyError": "cascade.errors",
    "ProviderError": "cascade.errors",
    "InvalidQueryError": "cascade.errors",
    "OutputSchemaError": "cascade.errors",
    "TextDelta": "cascade.streaming",
    "ToolCallDelta": "cascade.streaming",
    "Reset": "cascade.streaming",
    "Final": "cascade.streaming",
}

__all__ = sorted([*_EXPORTS, "__version__"])


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
