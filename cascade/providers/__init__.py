"""Vendor adapters, one module each, loaded only when a policy names the vendor.

`import cascade` imports no vendor SDK: `get_provider_class` imports the adapter module (and with it the SDK)
on first use, and turns a missing SDK into `MissingDependencyError` naming the extra to install.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from cascade.errors import MissingDependencyError

if TYPE_CHECKING:
    from cascade.providers.base import Provider

PROVIDERS = ("openai", "anthropic", "google")

# (provider, backend) -> (adapter module, class, SDK module, extra that installs it)
_ADAPTERS: dict[tuple[str, str], tuple[str, str, str, str]] = {
    ("openai", "default"): ("cascade.providers.openai", "OpenAIProvider", "openai", "openai"),
    ("anthropic", "default"): ("cascade.providers.anthropic", "AnthropicProvider", "anthropic", "anthropic"),
    ("google", "genai"): ("cascade.providers.google", "GoogleProvider", "google.genai", "google"),
    ("google", "generativeai"): (
        "cascade.providers.google_legacy",
        "GoogleLegacyProvider",
        "google.generativeai",
        "google-legacy",
    ),
}

# Where each vendor's key and base URL come from when the policy does not say.
DEFAULT_KEY_ENV: dict[str, tuple[str, ...]] = {
    "openai": ("OPENAI_API_KEY",),
    "anthropic": ("ANTHROPIC_API_KEY",),
    "google": ("GEMINI_API_KEY", "GOOGLE_API_KEY"),
}
DEFAULT_BASE_URL_ENV: dict[str, str] = {
    "openai": "OPENAI_BASE_URL",
    "anthropic": "ANTHROPIC_BASE_URL",
    "google": "GOOGLE_GEMINI_BASE_URL",
}


def get_provider_class(provider: str, backend: str | None = None) -> type[Provider]:
    """The adapter class for a provider (and, for google, a backend), importing its SDK now."""
    key = (provider, backend or ("genai" if provider == "google" else "default"))
    if key not in _ADAPTERS:
        raise ValueError(f"unknown provider/backend {key}")
    module_name, class_name, sdk, extra = _ADAPTERS[key]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and (exc.name == sdk or sdk.startswith(exc.name + ".") or exc.name.startswith(sdk)):
            raise MissingDependencyError(provider, extra, sdk) from exc
        raise
    cls: type[Provider] = getattr(module, class_name)
    return cls


def returns_logprobs(provider: str, backend: str | None = None) -> bool:
    """Whether the vendor's API returns token log-probabilities (the judge's `logprobs` method), without importing
    its SDK. The Anthropic Messages API has none."""
    return provider != "anthropic"
