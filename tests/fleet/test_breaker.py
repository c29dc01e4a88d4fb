"""Circuit breakers through the public API: a model that keeps failing is skipped, probed, and trusted again."""

from __future__ import annotations

from typing import Any

import pytest
from structlog.testing import capture_logs

from cascade import Cascade
from cascade.errors import BadRequestError, CascadeExhausted
from cascade.fleet.guard import Fleet
from cascade.providers.base import CompletionRequest
from cascade.testing import ScriptedProvider
from tests.fleet.helpers import HAIKU, NANO, Vendors, fleet_policy


class Clock:
    """The fleet's wall clock, moved by hand."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def setup(**breaker: Any) -> tuple[Vendors, Any, Clock]:
    vendors = Vendors()
    router = vendors.cascade(fleet_policy(breaker={"failures": 3, "cooldown_s": 60, **breaker}))
    clock = Clock()
    router.fleet = Fleet(router.policies.values(), clock=clock)
    return vendors, router, clock


def test_failures_in_a_row_open_the_breaker_and_the_stage_is_skipped_unsent() -> None:
    vendors, router, _ = setup()
    vendors.down[NANO] = None
    with capture_logs() as events:
        for _ in range(3):
            assert router.run("what is 2+2?").stage == "haiku"
        result = router.run("what is 2+2?")
    assert vendors.calls[NANO] == 3  # the fourth query did not call nano
    assert result.stage == "haiku" and result.accepted
    skipped = result.attempts[0]
    assert (skipped.stage, skipped.role, skipped.model) == ("nano", "answer", NANO)
    assert skipped.error is not None and skipped.error.type == "CircuitOpenError"
    assert "circuit open" in skipped.error.message and skipped.cost_usd == 0
    opened = [e for e in events if e["event"] == "cascade.breaker"]
    assert [(e["state"], e["model"], e["cooldown_s"]) for e in opened] == [("open", NANO, 60.0)]
    skips = [e for e in events if e["event"] == "cascade.skip"]
    assert len(skips) == 1 and skips[0]["stage"] == "nano" and "circuit open" in skips[0]["reason"]


def test_after_the_cooldown_one_probe_goes_and_its_success_closes_the_breaker() -> None:
    vendors, router, clock = setup()
    vendors.down[NANO] = None
    for _ in range(3):
        router.run("q")
    del vendors.down[NANO]
    clock.now += 59
    assert router.run("q").stage == "haiku" and vendors.calls[NANO] == 3
    clock.now += 2
    with capture_logs() as events:
        probed = router.run("q")
    assert probed.stage == "nano" and vendors.calls[NANO] == 4
    states = [e["state"] for e in events if e["event"] == "cascade.breaker"]
    assert states == ["probe", "closed"]
    assert router.run("q").stage == "nano"


def test_a_failed_probe_opens_it_again_for_a_whole_cooldown() -> None:
    vendors, router, clock = setup()
    vendors.down[NANO] = None
    for _ in range(3):
        router.run("q")
    clock.now += 61
    with capture_logs() as events:
        router.run("q")  # the probe, failing
    assert vendors.calls[NANO] == 4
    assert [e["state"] for e in events if e["event"] == "cascade.breaker"] == ["probe", "open"]
    clock.now += 59
    router.run("q")
    assert vendors.calls[NANO] == 4


def test_the_vendors_retry_after_is_the_cooldown_up_to_the_cap() -> None:
    vendors, router, clock = setup(max_cooldown_s=120)
    vendors.down[NANO] = 90.0
    with capture_logs() as events:
        for _ in range(3):
            router.run("q")
    assert [e["cooldown_s"] for e in events if e["event"] == "cascade.breaker"] == [90.0]
    clock.now += 89
    router.run("q")
    assert vendors.calls[NANO] == 3
    clock.now += 2
    router.run("q")
    assert vendors.calls[NANO] == 4
    vendors.down[NANO] = 1000.0
    clock.now += 200
    with capture_logs() as events:
        router.run("q")  # the probe fails with a Retry-After of 1000 s
    assert [e.get("cooldown_s") for e in events if e["event"] == "cascade.breaker"] == [None, 120.0]


def test_an_open_breaker_on_every_stage_ends_the_query_at_once_with_a_typed_error() -> None:
    vendors, router, _ = setup()
    vendors.down[NANO] = vendors.down[HAIKU] = None
    for _ in range(3):
        with pytest.raises(CascadeExhausted):
            router.run("q")
    with pytest.raises(CascadeExhausted) as caught:
        router.run("q")
    assert [a.error.type for a in caught.value.attempts if a.error] == ["CircuitOpenError", "CircuitOpenError"]
    assert vendors.calls[NANO] == vendors.calls[HAIKU] == 3


def test_a_judge_whose_breaker_is_open_counts_as_a_failed_judge_call() -> None:
    vendors, router, _ = setup()
    vendors.down["gpt-4o-mini"] = None
    for _ in range(3):
        router.run("q")
    result = router.run("q")
    assert result.stage == "haiku"
    judge = next(a for a in result.attempts if a.role == "judge")
    assert judge.error is not None and judge.error.type == "CircuitOpenError"
    assert vendors.calls["gpt-4o-mini"] == 3


def test_a_disabled_breaker_never_skips() -> None:
    vendors, router, _ = setup(enabled=False)
    vendors.down[NANO] = None
    for _ in range(6):
        router.run("q")
    assert vendors.calls[NANO] == 6


def test_errors_that_say_the_vendor_is_up_do_not_open_it() -> None:
    vendors = Vendors()

    def openai(request: CompletionRequest) -> Any:
        if request.model == NANO:
            raise BadRequestError("bad parameter", provider="openai", model=NANO, status_code=400)
        return vendors.reply(request)

    providers = {**vendors.providers, "openai": ScriptedProvider("openai", openai)}
    router = Cascade(fleet_policy(breaker={"failures": 3}), providers=providers)
    for _ in range(5):
        assert router.run("q").stage == "haiku"
    assert sum(r.model == NANO for r in providers["openai"].requests) == 5


async def test_the_async_driver_skips_the_same_way() -> None:
    vendors, router, _ = setup()
    vendors.down[NANO] = None
    first = await router.arun_many(["q"] * 3, concurrency=1, tenant="acme")
    assert [r.stage for r in first] == ["haiku"] * 3
    result = await router.arun("q", tenant="acme")
    assert result.attempts[0].error is not None and result.attempts[0].error.type == "CircuitOpenError"
    assert vendors.calls[NANO] == 3
