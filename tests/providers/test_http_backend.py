"""`async_http`, the provider setting that puts the SDKs' own aiohttp backend under their async clients.

Every test runs the real SDKs against the in-package fake server on 127.0.0.1. That a request really went through
aiohttp is seen by a spy on `aiohttp.ClientSession.request`, which both the openai/anthropic bridge and google-genai
call, and which no httpx2 request touches.
"""

from __future__ import annotations

import gc
import json
import socket
import sys
import time
import warnings
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest

from cascade import Cascade
from cascade.errors import MissingDependencyError, PolicyError, VendorConnectionError, VendorTimeoutError
from cascade.policy import Policy
from cascade.providers import get_provider_class
from cascade.providers.base import CompletionRequest, Message, ProviderSettings
from cascade.testing import FakeVendorServer, wire
from cascade.testing.wire import FakeReply

VENDORS = ("openai", "anthropic", "google")
MODELS = {"openai": "gpt-4.1-nano", "anthropic": "claude-haiku-4-5", "google": "gemini-2.0-flash"}
KEYS = {"openai": "test-key-openai", "anthropic": "test-key-anthropic", "google": "test-key-google"}
# The fallback of the fault tests: another vendor than the one under test, on its default (httpx) client.
FALLBACK = {"openai": "anthropic", "anthropic": "openai", "google": "openai"}
STALL_S = 3.0  # what the server waits before answering a stalled call; the stage's timeout is 0.5 s


@pytest.fixture(scope="module", autouse=True)
def _adapters_imported() -> None:
    """Import the adapters (and so the SDKs) before any test hides aiohttp: google-genai decides at import time,
    once, whether aiohttp exists."""
    for vendor in VENDORS:
        get_provider_class(vendor)


@pytest.fixture
def server() -> Iterator[FakeVendorServer]:
    with FakeVendorServer() as running:
        yield running


@pytest.fixture
def aiohttp_sessions(monkeypatch: pytest.MonkeyPatch) -> list[aiohttp.ClientSession]:
    """Every aiohttp session that sent a request, once per request."""
    used: list[aiohttp.ClientSession] = []
    request = aiohttp.ClientSession.request

    def spy(self: aiohttp.ClientSession, method: str, url: Any, **kwargs: Any) -> Any:
        used.append(self)
        return request(self, method, url, **kwargs)

    monkeypatch.setattr(aiohttp.ClientSession, "request", spy)
    return used


def _url(vendor: str, base: str) -> str:
    return base + "/v1" if vendor == "openai" else base


def _answer(vendor: str, text: str = "Canberra.") -> FakeReply:
    model = MODELS[vendor]
    if vendor == "openai":
        return wire.openai_chat(text, prompt_tokens=12, completion_tokens=3, model=model)
    if vendor == "anthropic":
        return wire.anthropic_message(text, input_tokens=12, output_tokens=3, model=model)
    return wire.gemini_content(text, prompt_tokens=12, output_tokens=3, model=model)


def _closed_port() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


def _policy(vendor: str, url: str, async_http: str | None) -> Policy:
    config: dict[str, Any] = {"base_url": _url(vendor, url)}
    if async_http is not None:
        config["async_http"] = async_http
    stage = {"name": "only", "provider": vendor, "model": MODELS[vendor], "max_output_tokens": 64, "retries": 0}
    return Policy.from_dict(
        {
            "name": f"http-{vendor}-{async_http}",
            "version": "1",
            "stages": [stage],
            "providers": {vendor: config},
        }
    )


# -- the policy setting -------------------------------------------------------------------------------------


def _providers(**providers: Any) -> dict[str, Any]:
    return {
        "name": "p",
        "version": "1",
        "stages": [{"name": "only", "provider": "openai", "model": "gpt-4.1-nano"}],
        "providers": providers,
    }


def test_httpx_is_the_default() -> None:
    policy = Policy.from_dict(_providers(openai={}))
    assert policy.providers["openai"].async_http == "httpx"


@pytest.mark.parametrize(
    "config",
    [
        {"openai": {"async_http": "aiohttp"}},
        {"anthropic": {"async_http": "aiohttp"}},
        {"google": {"async_http": "aiohttp"}},
        {"google": {"async_http": "aiohttp", "backend": "genai"}},
        {"google": {"async_http": "httpx", "backend": "generativeai"}},
    ],
)
def test_policy_accepts(config: dict[str, Any]) -> None:
    policy = Policy.from_dict(_providers(**config))
    for name, fields in config.items():
        assert policy.providers[name].async_http == fields["async_http"]


def test_policy_rejects_an_unknown_library() -> None:
    with pytest.raises(PolicyError) as info:
        Policy.from_dict(_providers(openai={"async_http": "requests"}))
    assert info.value.problems[0][0] == "providers.openai.async_http"


def test_policy_rejects_aiohttp_on_the_legacy_google_backend() -> None:
    with pytest.raises(PolicyError) as info:
        Policy.from_dict(_providers(google={"backend": "generativeai", "async_http": "aiohttp"}))
    (where, message), *_ = info.value.problems
    assert where == "providers.google.async_http"
    assert "genai" in message and "requests" in message


def test_settings_repr_shows_the_setting_and_hides_the_key() -> None:
    text = repr(ProviderSettings(api_key="test-key-secret", async_http="aiohttp"))
    assert "async_http='aiohttp'" in text and "test-key-secret" not in text


# -- answers through aiohttp, and only when asked for ------------------------------------------------------


@pytest.mark.parametrize("async_http", [None, "httpx", "aiohttp"])
@pytest.mark.parametrize("vendor", VENDORS)
async def test_arun_sends_through_the_chosen_library(
    vendor: str, async_http: str | None, server: FakeVendorServer, aiohttp_sessions: list[Any]
) -> None:
    server.script(vendor, _answer(vendor), _answer(vendor, "Canberra, again."))
    async with Cascade(_policy(vendor, server.url, async_http), api_keys=KEYS) as router:
        first = await router.arun("What is the capital of Australia?")
        second = await router.arun("And again?")
    assert (first.answer, second.answer) == ("Canberra.", "Canberra, again.")
    assert len(server.requests) == 2
    # google with httpx must stay on httpx2 although aiohttp is installed (the SDK would switch by itself).
    assert len(aiohttp_sessions) == (2 if async_http == "aiohttp" else 0)
    if async_http == "aiohttp":
        assert len({id(s) for s in aiohttp_sessions}) == 1, "one session per loop, reused"


@pytest.mark.parametrize("vendor", VENDORS)
def test_sync_calls_are_unchanged(vendor: str, server: FakeVendorServer, aiohttp_sessions: list[Any]) -> None:
    server.script(vendor, _answer(vendor))
    result = Cascade(_policy(vendor, server.url, "aiohttp"), api_keys=KEYS).run("What is the capital of Australia?")
    assert result.answer == "Canberra." and len(server.requests) == 1
    assert aiohttp_sessions == []


async def test_one_router_keeps_one_adapter_per_setting(server: FakeVendorServer, aiohttp_sessions: list[Any]) -> None:
    plain, fast = _policy("openai", server.url, "httpx"), _policy("openai", server.url, "aiohttp")
    server.script("openai", _answer("openai"), _answer("openai"))
    async with Cascade(plain, fast, api_keys=KEYS) as router:
        await router.arun("Plain?", policy=plain.name)
        assert aiohttp_sessions == []
        await router.arun("Fast?", policy=fast.name)
        assert len(aiohttp_sessions) == 1


# -- closing ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("vendor", VENDORS)
async def test_aclose_closes_the_aiohttp_session(
    vendor: str, server: FakeVendorServer, aiohttp_sessions: list[Any]
) -> None:
    server.script(vendor, _answer(vendor), _answer(vendor))
    router = Cascade(_policy(vendor, server.url, "aiohttp"), api_keys=KEYS)
    await router.arun("What is the capital of Australia?")
    session = aiohttp_sessions[0]
    assert not session.closed
    await router.aclose()
    assert session.closed
    del session
    aiohttp_sessions.clear()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gc.collect()
    assert not [w for w in caught if "Unclosed" in str(w.message)]
    # The adapter reconnects on its next call, with a new session.
    assert (await router.arun("Again?")).answer == "Canberra."
    assert aiohttp_sessions and not aiohttp_sessions[0].closed
    await router.aclose()
    assert aiohttp_sessions[0].closed


# -- faults: translated at the adapter, and the cascade escalates -----------------------------------------


def _request(timeout_s: float = 0.5) -> CompletionRequest:
    return CompletionRequest(
        model="m",
        messages=(Message("user", "What is the capital of Australia?"),),
        max_output_tokens=16,
        timeout_s=timeout_s,
    )


def _adapter(vendor: str, url: str) -> Any:
    return get_provider_class(vendor)(
        ProviderSettings(api_key=KEYS[vendor], base_url=_url(vendor, url), async_http="aiohttp")
    )


@pytest.mark.parametrize("vendor", VENDORS)
async def test_refused_connection_is_a_connection_error(vendor: str, aiohttp_sessions: list[Any]) -> None:
    adapter = _adapter(vendor, _closed_port())
    start = time.perf_counter()
    try:
        with pytest.raises(VendorConnectionError) as info:
            await adapter.acomplete(_request())
    finally:
        await adapter.aclose()
    # Not VendorTimeoutError, although openai's aiohttp bridge reports a refused connection as a timeout.
    assert type(info.value) is VendorConnectionError and info.value.provider == vendor
    assert info.value.__cause__ is not None  # the SDK's (or aiohttp's) exception stays chained
    # google-genai would sleep 1-10 s and try once more on its own: the adapter turns that off.
    assert time.perf_counter() - start < 1.0
    assert aiohttp_sessions


@pytest.mark.parametrize("vendor", VENDORS)
async def test_stalled_reply_is_a_timeout(vendor: str, server: FakeVendorServer, aiohttp_sessions: list[Any]) -> None:
    server.script(vendor, FakeReply(200, {}, delay_s=STALL_S))
    adapter = _adapter(vendor, server.url)
    try:
        with pytest.raises(VendorTimeoutError) as info:
            await adapter.acomplete(_request(timeout_s=0.5))
    finally:
        await adapter.aclose()
    assert info.value.provider == vendor and info.value.__cause__ is not None
    assert aiohttp_sessions


def _escalating_policy(vendor: str, url: str, primary_url: str) -> Policy:
    fallback = FALLBACK[vendor]
    return Policy.from_dict(
        {
            "name": "aiohttp-faults",
            "version": "1",
            "stages": [
                {
                    "name": "primary",
                    "provider": vendor,
                    "model": MODELS[vendor],
                    "threshold": 0.5,
                    "retries": 1,
                    "timeout_s": 0.5,
                    "max_output_tokens": 64,
                },
                {"name": "fallback", "provider": fallback, "model": MODELS[fallback], "max_output_tokens": 64},
            ],
            "providers": {
                vendor: {"base_url": _url(vendor, primary_url), "async_http": "aiohttp"},
                fallback: {"base_url": _url(fallback, url)},
            },
        }
    )


@pytest.mark.parametrize(
    ("fault", "errors"),
    [("connection refused", ["VendorConnectionError"] * 2), ("stall past the timeout", ["VendorTimeoutError"])],
)
@pytest.mark.parametrize("vendor", VENDORS)
async def test_fault_through_aiohttp_escalates(
    vendor: str, fault: str, errors: list[str], server: FakeVendorServer, aiohttp_sessions: list[Any]
) -> None:
    refused = fault == "connection refused"
    if not refused:
        server.script(vendor, FakeReply(200, {}, delay_s=STALL_S))
    server.script(FALLBACK[vendor], _answer(FALLBACK[vendor], "Canberra is the capital."))
    policy = _escalating_policy(vendor, server.url, _closed_port() if refused else server.url)
    async with Cascade(policy, api_keys=KEYS, retry_backoff_s=0.0) as router:
        result = await router.arun("What is the capital of Australia?")
    primary = [a for a in result.attempts if a.stage == "primary"]
    assert [a.error.type if a.error else None for a in primary] == errors
    assert result.stage == "fallback" and result.answer == "Canberra is the capital."
    assert len(aiohttp_sessions) == len(errors)


# -- aiohttp missing ---------------------------------------------------------------------------------------


@pytest.fixture
def no_aiohttp(monkeypatch: pytest.MonkeyPatch) -> None:
    """`import aiohttp` fails as it does where the package is not installed."""
    monkeypatch.setitem(sys.modules, "aiohttp", None)


@pytest.mark.parametrize("vendor", VENDORS)
@pytest.mark.usefixtures("no_aiohttp")
async def test_missing_aiohttp_names_the_extra(vendor: str, server: FakeVendorServer) -> None:
    router = Cascade(_policy(vendor, server.url, "aiohttp"), api_keys=KEYS)
    with pytest.raises(MissingDependencyError) as info:
        await router.arun("What is the capital of Australia?")
    assert info.value.extra == "aiohttp" and info.value.provider == vendor
    assert "pip install 'cascade-router[aiohttp]'" in str(info.value)
    assert server.requests == []


@pytest.mark.parametrize("vendor", VENDORS)
@pytest.mark.usefixtures("no_aiohttp")
async def test_httpx_needs_no_aiohttp(vendor: str, server: FakeVendorServer) -> None:
    server.script(vendor, _answer(vendor))
    async with Cascade(_policy(vendor, server.url, "httpx"), api_keys=KEYS) as router:
        assert (await router.arun("What is the capital of Australia?")).answer == "Canberra."


def test_the_extra_exists() -> None:
    import tomllib
    from pathlib import Path

    project = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    assert any(req.startswith("aiohttp") for req in extras["aiohttp"])
    assert "aiohttp" in json.dumps(extras["all"])


# -- google: a session without trust_env when the environment gives it nothing to find -----------------------


@pytest.fixture
def bare_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> Any:
    """No proxy variables, no NETRC, and a home directory without a netrc file."""
    import os

    for name in list(os.environ):
        if name.lower().endswith("_proxy"):
            monkeypatch.delenv(name)
    monkeypatch.delenv("NETRC", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    return tmp_path


@pytest.mark.parametrize("environment", ["bare", "https_proxy", "netrc file", "NETRC"])
async def test_google_aiohttp_session_trusts_the_environment_only_when_it_has_something(
    environment: str,
    bare_environment: Any,
    monkeypatch: pytest.MonkeyPatch,
    server: FakeVendorServer,
    aiohttp_sessions: list[Any],
) -> None:
    if environment == "https_proxy":
        # For https only: the fake server speaks http, so its calls are not sent to this (absent) proxy.
        monkeypatch.setenv("HTTPS_PROXY", "http://proxy.invalid:3128")
    elif environment == "netrc file":
        (bare_environment / ".netrc").write_text("machine example.invalid login a password b\n")
    elif environment == "NETRC":
        monkeypatch.setenv("NETRC", str(bare_environment / "elsewhere"))
    server.script("google", _answer("google"), _answer("google"))
    async with Cascade(_policy("google", server.url, "aiohttp"), api_keys=KEYS) as router:
        assert (await router.arun("What is the capital of Australia?")).answer == "Canberra."
        assert (await router.arun("Again?")).answer == "Canberra."
    # With nothing in the environment, the adapter's own session: no netrc lookup on a thread before each request.
    assert [s.trust_env for s in aiohttp_sessions] == [environment != "bare"] * 2
    assert all(s.closed for s in aiohttp_sessions), "aclose closes the session, ours or the SDK's"


def test_google_own_session_follows_the_event_loop(bare_environment: Any, server: FakeVendorServer) -> None:
    import asyncio

    server.script("google", _answer("google"), _answer("google"))
    router = Cascade(_policy("google", server.url, "aiohttp"), api_keys=KEYS)

    async def ask() -> str | None:
        try:
            return (await router.arun("What is the capital of Australia?")).answer
        finally:
            await router.aclose()

    # Two loops one after the other: a session bound to the first must not serve the second.
    assert asyncio.run(ask()) == asyncio.run(ask()) == "Canberra."
