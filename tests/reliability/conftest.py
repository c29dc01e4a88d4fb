from __future__ import annotations

import pytest


@pytest.fixture(scope="session", autouse=True)
def _vendor_sdks_imported() -> None:
    """Import the adapters (and their SDKs, about 2 s) once, so a cell's short stage timeout measures the
    vendor call and not the first import."""
    from cascade.providers import get_provider_class

    for provider, backend in (("openai", None), ("anthropic", None), ("google", "genai"), ("google", "generativeai")):
        get_provider_class(provider, backend)
