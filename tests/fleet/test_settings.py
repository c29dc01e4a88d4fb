"""The policy's `breaker:`, `limits:` and `state:` sections: strict, with sane defaults, and no secrets in them."""

from __future__ import annotations

import sys
from typing import Any

import pytest

from cascade import Cascade
from cascade.errors import MissingDependencyError, PolicyError
from tests.fleet.helpers import fleet_policy


def problem(**sections: Any) -> str:
    with pytest.raises(PolicyError) as caught:
        fleet_policy(**sections)
    return str(caught.value)


def test_defaults_keep_state_in_process_with_a_breaker_and_no_limits() -> None:
    policy = fleet_policy()
    assert policy.breaker.enabled and policy.breaker.failures == 5
    assert (policy.breaker.window_s, policy.breaker.cooldown_s, policy.breaker.max_cooldown_s) == (60, 30, 300)
    assert policy.limits.spend.policy.periods() == [] and policy.limits.rate.openai is None
    assert policy.state.redis is None and policy.state.key_prefix == "cascade"


def test_a_typo_or_a_value_out_of_range_is_an_error_at_its_path() -> None:
    assert "breaker.failurs: unknown field" in problem(breaker={"failurs": 3})
    assert "limits.rate.mistral: unknown field" in problem(limits={"rate": {"mistral": {"requests_per_minute": 1}}})
    assert "limits.spend.tenant.per_day" in problem(limits={"spend": {"tenant": {"per_day": 0}}})
    assert "cooldown_s (400.0) is longer than max_cooldown_s" in problem(
        breaker={"cooldown_s": 400, "max_cooldown_s": 300}
    )
    assert "state.key_prefix" in problem(state={"key_prefix": "has space"})


def test_a_redis_url_is_checked_and_a_password_in_it_is_refused_without_being_echoed() -> None:
    assert "redis: not a Redis URL" in problem(state={"redis": "http://localhost:6379"})
    message = problem(state={"redis": "redis://worker:hunter2-secret@db.internal:6379/0"})
    assert "redis_url_env" in message and "hunter2" not in message
    assert "not both" in problem(state={"redis": "redis://localhost", "redis_url_env": "REDIS_URL"})
    assert fleet_policy(state={"redis": "unix:///run/redis.sock"}).state.redis == "unix:///run/redis.sock"


def test_a_redis_url_variable_that_is_not_set_fails_when_the_router_is_built(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FLEET_TEST_REDIS_URL", raising=False)
    policy = fleet_policy(state={"redis_url_env": "FLEET_TEST_REDIS_URL"})
    with pytest.raises(PolicyError, match="FLEET_TEST_REDIS_URL is not set"):
        Cascade(policy)


def test_redis_state_without_the_client_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "redis", None)  # `import redis` now raises ImportError
    with pytest.raises(MissingDependencyError, match=r"pip install 'cascade-router\[redis\]'"):
        Cascade(fleet_policy(state={"redis": "redis://127.0.0.1:1/0"}))
