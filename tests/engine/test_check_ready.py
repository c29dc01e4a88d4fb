"""`Cascade.check_ready`: what the first query would raise for a vendor that cannot be called, raised before it.

No vendor is ever called here: a missing key or SDK stops the first query before its request is sent, and a ready
router is checked without sending anything (the scripted providers record every call).
"""

from __future__ import annotations

import sys
from typing import Any

import pytest

from cascade import Cascade
from cascade.errors import MissingAPIKeyError, MissingDependencyError
from cascade.policy import Policy
from cascade.testing import ScriptedProvider

KEY_VARS = ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY", "GOOGLE_API_KEY", "CASCADE_TEST_KEY")


@pytest.fixture(autouse=True)
def _no_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in KEY_VARS:
        monkeypatch.delenv(var, raising=False)


def policy(**extra: Any) -> Policy:
    """Three vendors in three stages, judged by openai unless `extra` says otherwise."""
    stages = [
        {"name": "mini", "provider": "openai", "model": "gpt-4o-mini", "threshold": 0.8},
        {"name": "flash", "provider": "google", "model": "gemini-2.0-flash", "threshold": 0.7},
        {"name": "sonnet", "provider": "anthropic", "model": "claude-sonnet-4-5"},
    ]
    return Policy.from_dict({"name": "three", "version": "1", "stages": stages, **extra})


def one_stage(provider: str, model: str, **extra: Any) -> Policy:
    stage = {"name": "only", "provider": provider, "model": model}
    return Policy.from_dict({"name": f"only-{provider}", "version": "1", "stages": [stage], **extra})


def first_call_error(router: Cascade) -> BaseException:
    with pytest.raises(Exception) as raised:
        router.run("What is the capital of Australia?")
    return raised.value


def test_a_missing_key_is_the_error_the_first_query_raises() -> None:
    with pytest.raises(MissingAPIKeyError) as checked:
        Cascade(policy()).check_ready()
    first = first_call_error(Cascade(policy()))
    assert type(first) is MissingAPIKeyError and str(checked.value) == str(first)
    assert checked.value.provider == "openai" and "OPENAI_API_KEY" in str(checked.value)


def test_every_vendor_is_checked_not_only_the_first(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-openai")
    with pytest.raises(MissingAPIKeyError) as checked:
        Cascade(policy()).check_ready()
    # google's key may be in either variable: the message names both, and the Python argument.
    assert checked.value.env_vars == ("GEMINI_API_KEY", "GOOGLE_API_KEY")
    assert "GEMINI_API_KEY or GOOGLE_API_KEY" in str(checked.value) and "api_keys=" in str(checked.value)
    monkeypatch.setenv("GOOGLE_API_KEY", "test-google")
    with pytest.raises(MissingAPIKeyError, match="ANTHROPIC_API_KEY"):
        Cascade(policy()).check_ready()
    monkeypatch.setenv("ANTHROPIC_API_KEY", "test-anthropic")
    Cascade(policy()).check_ready()


def test_keys_given_from_python_count() -> None:
    keys = {"openai": "sk-a", "google": "g-b", "anthropic": "a-c"}
    Cascade(policy(), api_keys=keys).check_ready()
    with pytest.raises(MissingAPIKeyError, match="anthropic"):
        Cascade(policy(), api_keys={"openai": "sk-a", "google": "g-b"}).check_ready()


def test_the_policy_s_own_key_variable_is_the_one_read(monkeypatch: pytest.MonkeyPatch) -> None:
    custom = one_stage("openai", "gpt-4o-mini", providers={"openai": {"api_key_env": "CASCADE_TEST_KEY"}})
    monkeypatch.setenv("OPENAI_API_KEY", "sk-not-this-one")
    with pytest.raises(MissingAPIKeyError) as checked:
        Cascade(custom).check_ready()
    assert checked.value.env_vars == ("CASCADE_TEST_KEY",)
    monkeypatch.setenv("CASCADE_TEST_KEY", "sk-this-one")
    Cascade(custom).check_ready()


def test_injected_providers_are_the_caller_s_and_nothing_is_sent() -> None:
    vendors = {name: ScriptedProvider(name, {}) for name in ("openai", "google", "anthropic")}
    Cascade(policy(), providers=vendors).check_ready()
    assert all(not vendor.requests for vendor in vendors.values())
    # Only the vendors not injected are checked.
    with pytest.raises(MissingAPIKeyError, match="anthropic"):
        Cascade(policy(), providers={"openai": vendors["openai"], "google": vendors["google"]}).check_ready()


def test_judges_and_the_classifier_are_vendors_too() -> None:
    openai = {"openai": ScriptedProvider("openai", {})}
    anthropic_judge = one_stage("openai", "gpt-4o-mini", judge_last_stage=True, judge={"provider": "anthropic"})
    with pytest.raises(MissingAPIKeyError, match="anthropic"):
        Cascade(anthropic_judge, providers=openai).check_ready()
    # The last stage is not judged unless the policy says so: its judge is never called.
    unjudged = one_stage("openai", "gpt-4o-mini", judge={"provider": "anthropic"})
    Cascade(unjudged, providers=openai).check_ready()
    classifier = {"provider": "google", "model": "gemini-2.0-flash", "labels": {"low": "only"}}
    routed = one_stage("openai", "gpt-4o-mini", routing={"classifier": classifier})
    with pytest.raises(MissingAPIKeyError, match="google"):
        Cascade(routed, providers=openai).check_ready()


def test_also_adds_vendors_called_outside_the_stages() -> None:
    openai = {"openai": ScriptedProvider("openai", {})}
    router = Cascade(one_stage("openai", "gpt-4o-mini"), providers=openai)
    router.check_ready()
    with pytest.raises(MissingAPIKeyError, match="anthropic"):
        router.check_ready(also=["anthropic"])


def test_a_named_policy_is_checked_and_an_unknown_name_is_refused() -> None:
    openai = {"openai": ScriptedProvider("openai", {})}
    router = Cascade(one_stage("openai", "gpt-4o-mini"), one_stage("anthropic", "claude-sonnet-4-5"), providers=openai)
    router.check_ready()
    router.check_ready("only-openai")
    with pytest.raises(MissingAPIKeyError, match="anthropic"):
        router.check_ready("only-anthropic")
    with pytest.raises(ValueError, match="no policy named 'nope'"):
        router.check_ready("nope")


def test_a_missing_sdk_is_the_error_the_first_query_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    # As if the anthropic SDK were not installed: the adapter module imports it afresh, and fails.
    monkeypatch.delitem(sys.modules, "cascade.providers.anthropic", raising=False)
    monkeypatch.setitem(sys.modules, "anthropic", None)
    vendors = {"openai": ScriptedProvider("openai", {}), "google": ScriptedProvider("google", {})}
    with pytest.raises(MissingDependencyError) as checked:
        Cascade(policy(), providers=vendors).check_ready()
    assert "pip install 'cascade-router[anthropic]'" in str(checked.value)
    one = one_stage("anthropic", "claude-sonnet-4-5")
    first = first_call_error(Cascade(one))
    assert type(first) is MissingDependencyError and str(first) == str(checked.value)
