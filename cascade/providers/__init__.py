"""Vendor adapters, one module each, loaded only when a policy names the vendor.

`import cascade` imports no vendor SDK: `get_provider_class` imports the adapter module (and with it the SDK)
on first use, and turns a missing SDK into `MissingDependencyError` naming the extra to install. What the engine
must know of a vendor before that (does it return log-probabilities?) is in the registry entry.

The registry is keyed by what a provider speaks (its kind), not by the name a policy gives it: a policy's
`vllm: {kind: openai-compatible, ...}` is the openai adapter, which the engine builds under the name `vllm`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, NamedTuple

from cascade.errors import InvalidArgumentError, MissingDependencyError

if TYPE_CHECKING:
    from cascade.providers.base import Provider


class Adapter(NamedTuple):
    """One registry entry: where the adapter lives, the SDK it imports, and facts about its vendor's API."""

    module: str
    class_name: str
    sdk: str
    extra: str  # the `pip install 'cascade-router[EXTRA]'` that brings the SDK
    returns_logprobs: bool  # the same as the class's `returns_logprobs` (a test holds them equal)


# (provider, backend) -> adapter
ADAPTERS: dict[tuple[str, str], Adapter] = {
    ("openai", "default"): Adapter("cascade.providers.openai", "OpenAIProvider", "openai", "openai", True),
    # The Messages API has no log-probabilities.
    ("anthropic", "default"): Adapter(
        "cascade.providers.anthropic", "AnthropicProvider", "anthropic", "anthropic", False
    ),
    ("google", "genai"): Adapter("cascade.providers.google", "GoogleProvider", "google.genai", "google", True),
    ("google", "generativeai"): Adapter(
        "cascade.providers.google_legacy", "GoogleLegacyProvider", "google.generativeai", "google-legacy", True
    ),
}

# Endpoints that speak a vendor's API without being that vendor, by the `kind` a policy gives them: the adapter
# that speaks the API, and what is known of such endpoints (not of the vendor: which is why they are not in
# ADAPTERS, whose entries agree with their adapter classes).
COMPATIBLE: dict[str, Adapter] = {
    # No log-probabilities claimed, so the judge asks for a JSON verdict. What an endpoint does with `logprobs` is
    # not known: vLLM returns them (up to its --max-logprobs) and Ollama's OpenAI layer long returned none, and a
    # server that rejects the parameter would fail every judge call. The score-token weighting also assumes a
    # tokenizer with each score as one token, which a local model's need not have.
    "openai-compatible": Adapter("cascade.providers.openai", "OpenAIProvider", "openai", "openai", False),
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


def adapter_entry(provider: str, backend: str | None = None) -> Adapter:
    """The registry entry for a provider's kind: a vendor (and, for google, a backend: `genai` unless told), or
    `openai-compatible`."""
    if provider in COMPATIBLE and backend is None:
        return COMPATIBLE[provider]
    key = (provider, backend or ("genai" if provider == "google" else "default"))
    if key not in ADAPTERS:
        raise InvalidArgumentError(f"unknown provider/backend {key}")
    return ADAPTERS[key]


def get_provider_class(provider: str, backend: str | None = None) -> type[Provider]:
    """The adapter class for a provider's kind (and, for google, a backend), importing its SDK now."""
    entry = adapter_entry(provider, backend)
    try:
        module = importlib.import_module(entry.module)
    except ModuleNotFoundError as exc:
        sdk = entry.sdk
        if exc.name and (exc.name == sdk or sdk.startswith(exc.name + ".") or exc.name.startswith(sdk)):
            raise MissingDependencyError(provider, entry.extra, sdk) from exc
        raise
    cls: type[Provider] = getattr(module, entry.class_name)
    return cls


def returns_logprobs(provider: str, backend: str | None = None) -> bool:
    """Whether a provider's kind returns token log-probabilities (the judge's `logprobs` method), without importing
    its SDK."""
    return adapter_entry(provider, backend).returns_logprobs
