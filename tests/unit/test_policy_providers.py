"""Named providers in a policy: entries under `providers:` say what they speak, and everything that names a provider
names a vendor or one of those entries. No I/O: policies only."""

from __future__ import annotations

from typing import Any

import pytest

from cascade import PolicyError
from cascade.policy import Policy
from cascade.providers import returns_logprobs

LOCAL = {"kind": "openai-compatible", "base_url": "http://127.0.0.1:11434/v1"}


def _policy(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": "p",
        "version": "1",
        "stages": [
            {"name": "local", "provider": "local", "model": "llama3.2:3b", "threshold": 0.7},
            {"name": "big", "provider": "openai", "model": "gpt-4o-mini"},
        ],
        "providers": {"local": dict(LOCAL)},
        "prices": {"llama3.2:3b": {"input": 0, "output": 0}},
    }
    data.update(changes)
    return data


def _error(data: dict[str, Any]) -> str:
    with pytest.raises(PolicyError) as info:
        Policy.from_dict(data, source="p.yaml")
    return str(info.value)


def test_a_local_endpoint_beside_the_vendors() -> None:
    policy = Policy.from_dict(_policy())
    assert [policy.provider_kind(s.provider) for s in policy.stages] == ["openai-compatible", "openai"]
    assert policy.provider_kind("anthropic") == "anthropic"  # a vendor needs no entry
    assert policy.providers["local"].api_key_env is None
    # Its judge verdicts are asked for as JSON: log-probabilities are not claimed for such endpoints.
    assert returns_logprobs(policy.provider_kind("local")) is False
    assert returns_logprobs(policy.provider_kind("openai")) is True


def test_an_entry_under_a_vendors_name_is_that_vendor() -> None:
    policy = Policy.from_dict(
        _policy(providers={"local": LOCAL, "openai": {"kind": "openai", "base_url": "http://gw"}})
    )
    assert policy.provider_kind("openai") == "openai"
    message = _error(
        _policy(providers={"local": LOCAL, "openai": {"kind": "openai-compatible", "base_url": "http://x"}})
    )
    assert message == (
        "p.yaml: providers.openai.kind: the openai entry is openai's own API; give an endpoint of kind "
        "openai-compatible a name of its own"
    )


def test_a_second_account_of_a_vendor_under_a_name_of_its_own() -> None:
    eu = {"kind": "anthropic", "base_url": "https://gateway.example/anthropic", "api_key_env": "ANTHROPIC_EU_KEY"}
    stages = [
        {"name": "a", "provider": "anthropic", "model": "claude-3-5-haiku-20241022", "threshold": 0.7},
        {"name": "b", "provider": "anthropic-eu", "model": "claude-3-5-sonnet-20241022"},
    ]
    policy = Policy.from_dict(_policy(stages=stages, providers={"anthropic-eu": eu}, prices={}))
    # A vendor's kind keeps the vendor's prices: no `prices:` entry is needed for its models.
    assert policy.provider_kind("anthropic-eu") == "anthropic"
    legacy = {"kind": "google", "backend": "generativeai"}
    policy = Policy.from_dict(_policy(providers={"local": LOCAL, "gemini-old": legacy}))
    assert (policy.provider_kind("gemini-old"), policy.providers["gemini-old"].backend) == ("google", "generativeai")


@pytest.mark.parametrize(
    ("providers", "expected"),
    [
        ({"local": {"base_url": "http://x/v1"}}, "providers.local.kind: required for 'local', which is not a vendor"),
        ({"local": {"kind": "openai-compatible"}}, "providers.local.base_url: required for kind openai-compatible"),
        (
            {"local": {**LOCAL, "kind": "ollama"}},
            "providers.local.kind: Input should be 'openai', 'anthropic', 'google'",
        ),
        ({"local": {**LOCAL, "backend": "genai"}}, "providers.local.backend: only the google provider (or one of kind"),
        ({"local": LOCAL, "Local": LOCAL}, "a provider name is a lower-case letter"),
        ({"local": LOCAL, "a" * 33: LOCAL}, "a provider name is a lower-case letter"),
        ({"local": LOCAL, "copy": LOCAL}, "providers.copy: 'copy' is a name the policy's models use for themselves"),
    ],
)
def test_an_entry_that_cannot_be_used_is_refused(providers: dict[str, Any], expected: str) -> None:
    assert expected in _error(_policy(providers=providers))


@pytest.mark.parametrize(
    ("mutate", "path", "name"),
    [
        (lambda d: d["stages"][0].update(provider="locl"), "stages[0].provider", "locl"),
        (lambda d: d.update(judge={"provider": "vllm", "model": "gpt-4o-mini"}), "judge.provider", "vllm"),
        (
            lambda d: d["stages"][0].update(judge={"provider": "lm-studio", "model": "gpt-4o-mini"}),
            "stages[0].judge.provider",
            "lm-studio",
        ),
        (
            lambda d: d.update(routing={"classifier": {"provider": "vllm", "labels": {"low": "local"}}}),
            "routing.classifier.provider",
            "vllm",
        ),
    ],
)
def test_an_unknown_provider_names_the_field_and_the_declared_ones(mutate: Any, path: str, name: str) -> None:
    data = _policy()
    data["providers"]["ollama"] = dict(LOCAL)
    mutate(data)
    assert _error(data) == (
        f"p.yaml: {path}: Input should be 'openai', 'anthropic', 'google' or a provider declared under `providers:` "
        f"(declared: local, ollama) (got {name!r})"
    )


def test_with_no_entries_the_message_says_none_are_declared() -> None:
    data = _policy(providers={}, prices={})
    data["stages"][0].update(provider="mistral", model="gpt-4o-mini")
    assert "stages[0].provider: Input should be 'openai', 'anthropic', 'google' or a provider declared under " in (
        message := _error(data)
    )
    assert message.endswith("(none declared) (got 'mistral')")


def test_a_model_on_a_compatible_endpoint_needs_a_policy_price() -> None:
    assert _error(_policy(prices={})) == (
        "p.yaml: stages[0].model: model 'llama3.2:3b' runs on 'local' (openai-compatible), so the vendors' prices do "
        "not apply: give its price under `prices:` in the policy (0 for a self-hosted model)"
    )
    # Even a model the shipped prices know: behind a gateway or on your own GPUs it costs what its owner says.
    data = _policy(prices={})
    data["stages"][0]["model"] = "gpt-4o-mini"
    assert "stages[0].model: model 'gpt-4o-mini' runs on 'local' (openai-compatible)" in _error(data)
    data["prices"] = {"gpt-4o-mini": {"input": 0.1, "output": 0.3}}
    assert Policy.from_dict(data).price_table().find("gpt-4o-mini") is not None


@pytest.mark.parametrize(
    ("mutate", "path"),
    [
        (lambda d: d.update(judge={"provider": "local", "model": "qwen2.5:7b"}), "judge.model"),
        (lambda d: d["stages"][0].update(judge={"provider": "local", "model": "qwen2.5:7b"}), "stages[0].judge.model"),
        (
            lambda d: d.update(
                routing={"classifier": {"provider": "local", "model": "qwen2.5:7b", "labels": {"low": "local"}}}
            ),
            "routing.classifier.model",
        ),
    ],
)
def test_judges_and_classifiers_on_a_compatible_endpoint_need_a_price_too(mutate: Any, path: str) -> None:
    data = _policy()
    mutate(data)
    assert f"{path}: model 'qwen2.5:7b' runs on 'local' (openai-compatible)" in _error(data)
    data["prices"]["qwen2.5:7b"] = {"input": 0, "output": 0}
    Policy.from_dict(data)


def test_rate_limits_for_a_declared_endpoint() -> None:
    policy = Policy.from_dict(_policy(limits={"rate": {"local": {"requests_per_minute": 30}, "openai": {}}}))
    local = (policy.limits.rate.model_extra or {})["local"]
    assert local.requests_per_minute == 30
    assert _error(_policy(limits={"rate": {"lcoal": {}}})) == (
        "p.yaml: limits.rate.lcoal: unknown field: rate limits are for openai, anthropic, google or a provider "
        "declared under `providers:` (declared: local)"
    )
    assert "limits.rate.local.rpm: unknown field" in _error(_policy(limits={"rate": {"local": {"rpm": 3}}}))
