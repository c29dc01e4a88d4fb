"""The adapters' public interface: the registry's facts, SDK clients given to the constructor, the shared error path.

The SDK tests run the real SDKs against the in-package fake server on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
import warnings
from collections.abc import Iterator
from typing import Any

import pytest

from cascade.errors import MalformedResponseError, MissingAPIKeyError, ProviderError, VendorConnectionError
from cascade.providers import ADAPTERS, get_provider_class, returns_logprobs
from cascade.providers.base import Completion, CompletionRequest, Message, Provider, ProviderSettings
from cascade.testing import FakeVendorServer, completion, wire
from cascade.testing.wire import FakeReply

KEY = "test-key-given-client"
REQUEST = CompletionRequest("m", (Message("user", "What is the capital of Australia?"),), max_output_tokens=16)


@pytest.fixture
def server() -> Iterator[FakeVendorServer]:
    with FakeVendorServer() as running:
        yield running


def test_the_registry_and_the_adapters_agree_on_logprobs() -> None:
    for (provider, backend), entry in ADAPTERS.items():
        assert get_provider_class(provider, backend).returns_logprobs is entry.returns_logprobs
        assert returns_logprobs(provider, backend) is entry.returns_logprobs
    assert [returns_logprobs(p) for p in ("openai", "anthropic", "google")] == [True, False, True]
    assert returns_logprobs("google", "generativeai") is True


def test_returns_logprobs_imports_no_sdk() -> None:
    code = (
        "import json, sys\n"
        "from cascade.providers import returns_logprobs\n"
        "answers = [returns_logprobs(p) for p in ('openai', 'anthropic', 'google')]\n"
        "sdks = [m for m in ('openai', 'anthropic', 'google.genai', 'google.generativeai') if m in sys.modules]\n"
        "print(json.dumps([answers, sdks]))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(done.stdout) == [[True, False, True], []]


def _legacy_client(url: str) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        from google.ai import generativelanguage as glm
        from google.api_core.client_options import ClientOptions

    return glm.GenerativeServiceClient(transport="rest", client_options=ClientOptions(api_key=KEY, api_endpoint=url))


def _given(vendor: str, url: str) -> tuple[Provider, list[Any]]:
    """An adapter built only from SDK clients made here (no settings), and those clients."""
    if vendor == "openai":
        import openai

        from cascade.providers.openai import OpenAIProvider

        clients: list[Any] = [
            openai.OpenAI(api_key=KEY, base_url=url + "/v1", max_retries=0),
            openai.AsyncOpenAI(api_key=KEY, base_url=url + "/v1", max_retries=0),
        ]
        return OpenAIProvider(client=clients[0], async_client=clients[1]), clients
    if vendor == "anthropic":
        import anthropic

        from cascade.providers.anthropic import AnthropicProvider

        clients = [
            anthropic.Anthropic(api_key=KEY, base_url=url, max_retries=0),
            anthropic.AsyncAnthropic(api_key=KEY, base_url=url, max_retries=0),
        ]
        return AnthropicProvider(client=clients[0], async_client=clients[1]), clients
    if vendor == "google":
        import google.genai as genai
        from google.genai import types

        from cascade.providers.google import GoogleProvider

        client = genai.Client(api_key=KEY, http_options=types.HttpOptions(base_url=url, api_version="v1"))
        return GoogleProvider(client=client), [client]
    from cascade.providers.google_legacy import GoogleLegacyProvider

    legacy = _legacy_client(url)
    return GoogleLegacyProvider(client=legacy), [legacy]


async def _close(clients: list[Any]) -> None:
    for client in clients:
        if hasattr(client, "aio"):  # genai.Client: sync and async sides
            client.close()
            await client.aio.aclose()
        elif hasattr(client, "transport"):  # the legacy SDK's client
            client.transport.close()
        elif asyncio.iscoroutinefunction(client.close):
            await client.close()
        else:
            client.close()


def _answer(vendor: str, text: str) -> FakeReply:
    if vendor == "openai":
        return wire.openai_chat(text, prompt_tokens=12, completion_tokens=3)
    if vendor == "anthropic":
        return wire.anthropic_message(text, input_tokens=12, output_tokens=3)
    return wire.gemini_content(text, prompt_tokens=12, output_tokens=3, int_enums=vendor == "google-legacy")


@pytest.mark.parametrize("vendor", ["openai", "anthropic", "google", "google-legacy"])
async def test_an_adapter_uses_the_clients_it_is_given_and_leaves_them_open(
    vendor: str, server: FakeVendorServer
) -> None:
    wire_vendor = "google" if vendor == "google-legacy" else vendor
    server.script(wire_vendor, _answer(vendor, "Canberra."), _answer(vendor, "Canberra!"), _answer(vendor, "Again."))
    adapter, clients = _given(vendor, server.url)
    try:
        assert adapter.complete(REQUEST).text == "Canberra."
        assert (await adapter.acomplete(REQUEST)).text == "Canberra!"
        await adapter.aclose()  # the clients are the caller's: still open
        assert adapter.complete(REQUEST).text == "Again."
    finally:
        await _close(clients)
    assert [r.headers.get("authorization") or r.headers.get("x-goog-api-key") for r in server.requests] == [
        f"Bearer {KEY}" if vendor in ("openai", "anthropic") else KEY
    ] * 3


@pytest.mark.parametrize("vendor", ["openai", "anthropic"])
async def test_given_one_client_the_adapter_builds_the_other_from_its_settings(
    vendor: str, server: FakeVendorServer
) -> None:
    import openai

    server.script(vendor, _answer(vendor, "sync"), _answer(vendor, "async"))
    url = server.url + ("/v1" if vendor == "openai" else "")
    settings = ProviderSettings(api_key="test-key-from-settings", base_url=url)
    if vendor == "openai":
        given: Any = openai.OpenAI(api_key=KEY, base_url=url, max_retries=0)
    else:
        import anthropic

        given = anthropic.Anthropic(api_key=KEY, base_url=url, max_retries=0)
    adapter_class: Any = get_provider_class(vendor)
    adapter = adapter_class(settings, client=given)
    try:
        assert adapter.complete(REQUEST).text == "sync"
        assert (await adapter.acomplete(REQUEST)).text == "async"
    finally:
        await adapter.aclose()
        given.close()
    keys = [r.headers["authorization"] for r in server.requests]
    assert keys == [f"Bearer {KEY}", "Bearer test-key-from-settings"]


class Bare(Provider):
    """An adapter with only the two required methods."""

    name = "bare"

    def __init__(self, fail: Exception | None = None) -> None:
        super().__init__()
        self.fail = fail
        self.threads: list[str] = []

    def send(self, request: CompletionRequest) -> str:
        self.threads.append(threading.current_thread().name)
        if self.fail is not None:
            raise self.fail
        return "Canberra."

    def parse(self, reply: Any, request: CompletionRequest, latency_s: float) -> Completion:
        return completion(reply, model=request.model, provider=self.name)


async def test_two_methods_make_an_adapter_and_asend_defaults_to_a_thread() -> None:
    bare = Bare()
    assert bare.complete(REQUEST).text == (await bare.acomplete(REQUEST)).text == "Canberra."
    assert bare.threads[0] == threading.current_thread().name != bare.threads[1]
    assert repr(bare) == "Bare(ProviderSettings(api_key=None, api_key_env=(), base_url=None, base_url_env=None, " \
        "backend=None, async_http='httpx'))"  # fmt: skip


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_an_exception_nobody_translates_is_a_provider_error(mode: str) -> None:
    bare = Bare(fail=RuntimeError("something odd"))
    with pytest.raises(MalformedResponseError, match=r"bare: unexpected \(RuntimeError: something odd\)") as info:
        bare.complete(REQUEST) if mode == "sync" else await bare.acomplete(REQUEST)
    assert isinstance(info.value.__cause__, RuntimeError)
    assert (info.value.provider, info.value.model) == ("bare", "m")


async def test_cascade_errors_pass_unchanged() -> None:
    refused = VendorConnectionError("bare: refused", provider="bare", model="m")
    with pytest.raises(VendorConnectionError) as info:
        await Bare(fail=refused).acomplete(REQUEST)
    assert info.value is refused
    # A usage error (here: no key, found when the first client is built) stays one: the caller must act.
    adapter = get_provider_class("openai")(ProviderSettings(api_key_env=("CASCADE_TEST_UNSET_KEY",)))
    with pytest.raises(MissingAPIKeyError):
        adapter.complete(REQUEST)


def test_error_for_sees_every_failed_call(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[Exception] = []
    original = Provider.error_for

    def error_for(self: Provider, exc: Exception, request: CompletionRequest) -> ProviderError:
        seen.append(exc)
        return original(self, exc, request)

    monkeypatch.setattr(Provider, "error_for", error_for)
    problem = KeyError("choices")
    with pytest.raises(MalformedResponseError):
        Bare(fail=problem).complete(REQUEST)
    assert seen == [problem]
