"""Spend limits (per policy, per tenant) and rate limits through the public API, in one process."""

from __future__ import annotations

import time
from typing import Any

import pytest
from structlog.testing import capture_logs

from cascade import BudgetExhaustedError
from cascade.budget import call_cost_bound
from cascade.errors import InvalidArgumentError, SpendLimitError
from cascade.fleet.guard import Fleet
from cascade.fleet.state import MemoryStore, to_nanos
from cascade.providers.base import CompletionRequest, Message
from cascade.stages import answer_request, judge_request
from cascade.testing import completion
from tests.fleet.helpers import HAIKU, NANO, Vendors, fleet_policy
from tests.fleet.test_breaker import Clock

ANSWER = f"{NANO} says 4"


def bounds(router: Any, query: str) -> tuple[float, float, float]:
    """The reservations of nano's answer, its judge call and haiku's answer for a query."""
    ctx = router.context(query)
    prices, (nano, haiku) = ctx.spec.prices, ctx.policy.stages
    return (
        call_cost_bound(prices, answer_request(ctx, nano)),
        call_cost_bound(prices, judge_request(ctx, nano, ANSWER)),
        call_cost_bound(prices, answer_request(ctx, haiku)),
    )


def with_clock(router: Any) -> Clock:
    clock = Clock()
    router.fleet = Fleet(router.policies.values(), clock=clock)
    return clock


def test_the_policy_never_spends_past_its_limit_and_is_refused_only_near_it() -> None:
    vendors = Vendors()
    plain = vendors.cascade(fleet_policy())
    answer_bound, judge_bound, _ = bounds(plain, "what is 2+2?")
    limit = 2 * (answer_bound + judge_bound)  # about 25 queries' real cost: calls cost far less than their bounds
    router = vendors.cascade(fleet_policy(limits={"spend": {"policy": {"per_minute": limit}}}))
    with_clock(router)
    with capture_logs() as events:
        outcomes = router.run_many(["what is 2+2?"] * 60, concurrency=1, return_exceptions=True)
    answered = [o for o in outcomes if not isinstance(o, Exception)]
    refused = [o for o in outcomes if isinstance(o, SpendLimitError)]
    assert refused and len(refused) + len(answered) == len(outcomes)
    assert all(o.refusal.scope == "policy" for o in refused)
    assert isinstance(refused[0], BudgetExhaustedError) and "spend limit" in str(refused[0])
    spent = sum(r.cost_usd for r in answered) + sum(o.result.cost_usd for o in refused)
    assert spent <= limit
    # Refused only when the next call's bound no longer fitted in what was left.
    assert limit - spent < max(answer_bound, judge_bound)
    # A query whose judge call did not fit has its answer as best effort; one whose answer did not fit, none.
    best_effort = [r for r in answered if r.budget_exhausted]
    assert best_effort and all(r.stage == "nano" and not r.accepted for r in best_effort)
    limits = [e for e in events if e["event"] == "cascade.limit"]
    assert len(limits) == len(refused) + len(best_effort)
    assert {(e["kind"], e["scope"], e["period"]) for e in limits} == {("spend", "policy", "minute")}


def test_a_new_window_starts_over() -> None:
    vendors = Vendors()
    answer_bound, judge_bound, _ = bounds(vendors.cascade(fleet_policy()), "q")
    router = vendors.cascade(fleet_policy(limits={"spend": {"policy": {"per_minute": answer_bound + judge_bound}}}))
    clock = with_clock(router)
    clock.now = 1_800_000_000 // 60 * 60 + 1.0
    assert router.run("q").stage == "nano"
    with pytest.raises(SpendLimitError):
        for _ in range(200):
            router.run("q")
    clock.now += 60
    assert router.run("q").stage == "nano"


def test_a_limit_reached_mid_query_returns_the_best_answer_so_far() -> None:
    vendors = Vendors()
    policy = {"haiku": {"max_output_tokens": 2048}}
    plain = vendors.cascade(fleet_policy(**policy))
    answer_bound, judge_bound, haiku_bound = bounds(plain, "a hard one")
    first = plain.run("a hard one")
    assert first.stage == "haiku"
    nano_cost = sum(a.cost_usd for a in first.attempts if a.stage == "nano")
    assert nano_cost + haiku_bound > answer_bound + judge_bound  # so that a limit fits nano and not haiku
    limit = (answer_bound + judge_bound + nano_cost + haiku_bound) / 2
    router = vendors.cascade(fleet_policy(limits={"spend": {"policy": {"per_day": limit}}}, **policy))
    with_clock(router)
    result = router.run("a hard one")
    assert (result.stage, result.accepted, result.budget_exhausted, result.confidence) == ("nano", False, True, 0.3)
    assert vendors.calls[HAIKU] == 1  # only the unlimited router's


def test_each_tenant_has_its_own_limit_and_queries_without_one_are_not_counted() -> None:
    vendors = Vendors()
    answer_bound, judge_bound, _ = bounds(vendors.cascade(fleet_policy()), "q")
    per_day = 1.5 * (answer_bound + judge_bound)
    router = vendors.cascade(fleet_policy(limits={"spend": {"tenant": {"per_day": per_day}}}))
    with_clock(router)
    acme = []
    with pytest.raises(SpendLimitError) as caught:
        for _ in range(200):
            acme.append(router.run("q", tenant="acme"))
    assert acme
    assert caught.value.refusal.scope == "tenant" and caught.value.refusal.name == "acme"
    assert "tenant 'acme'" in str(caught.value)
    assert router.run("q", tenant="globex").stage == "nano"
    for _ in range(3):
        assert router.run("q").stage == "nano"
    assert router.run_many(["q"], tenant="initech")[0].stage == "nano"
    # The tenant's counter holds what its calls really cost (each rounded up to a nano-dollar).
    store = router.fleet.stores[None]
    assert isinstance(store, MemoryStore)
    day = int(router.fleet.clock() // 86_400)
    assert store.spent(f"cascade:spend:tenant:acme:day:{day}") == sum(
        to_nanos(a.cost_usd) for result in acme for a in result.attempts
    )
    for bad in ("", "   ", "x" * 201):
        with pytest.raises(InvalidArgumentError):
            router.run("q", tenant=bad)


def test_a_call_waits_for_its_rate_limit_turn_within_its_time_or_is_not_sent(monkeypatch: pytest.MonkeyPatch) -> None:
    vendors = Vendors()
    policy = fleet_policy(nano={"timeout_s": 61.0}, limits={"rate": {"openai": {"requests_per_minute": 2}}})
    router = vendors.cascade(policy)
    clock = with_clock(router)
    slept: list[float] = []

    def sleep(seconds: float) -> None:  # the driver's sleep moves the fleet's clock instead
        slept.append(seconds)
        clock.now += seconds

    monkeypatch.setattr(time, "sleep", sleep)  # the module the sync driver sleeps with
    assert router.run("q").stage == "nano" and slept == []  # a minute's worth at once: two calls
    with capture_logs() as events:
        result = router.run("q")
    # nano's answer waited its turn (30 s: at most half of its 61 s); then its judge's turn was 30 s away, more
    # than half of the judge's 20 s, so it was not sent and haiku answered.
    assert slept == [pytest.approx(30.0)]
    assert [(a.stage, a.role, a.error.type if a.error else None) for a in result.attempts] == [
        ("nano", "answer", None),
        ("nano", "judge", "RateLimitWaitError"),
        ("haiku", "answer", None),
    ]
    rate = [(e.get("wait_s"), e.get("refused")) for e in events if e["event"] == "cascade.limit"]
    assert rate == [(pytest.approx(30.0), None), (None, True)]
    assert vendors.calls["gpt-4o-mini"] == 1


def test_tokens_per_minute_count_the_estimate_then_the_real_usage() -> None:
    policy = fleet_policy(limits={"rate": {"anthropic": {"tokens_per_minute": 600}}})
    clock = Clock()
    fleet = Fleet([policy], clock=clock)
    query = fleet.join(policy, None, lambda name, **fields: None)
    request = CompletionRequest(model=HAIKU, messages=(Message("user", "x" * 400),), max_output_tokens=199)
    # 400 characters are about 101 tokens, plus the 199 allowed out: 300 of the 600 a minute.
    assert query.admit("anthropic", request, 60.0) == 0.0
    assert query.admit("anthropic", request, 60.0) == 0.0
    assert query.admit("anthropic", request, 60.0) == pytest.approx(30.0)  # 300 more at 10 a second
    used = completion("ok", model=HAIKU, provider="anthropic", input_tokens=100, output_tokens=0)
    for _ in range(3):
        query.observe("anthropic", request, used, True)  # each used 100, not 300: 600 given back
    assert query.admit("anthropic", request, 60.0) == 0.0
