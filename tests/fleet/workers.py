"""What one worker process of the fleet tests does (run with multiprocessing's spawn: a fresh interpreter)."""

from __future__ import annotations

from collections import Counter
from collections.abc import MutableMapping
from typing import Any

from structlog.testing import capture_logs

from cascade.errors import SpendLimitError
from cascade.fleet.fallback import FallbackStore
from cascade.fleet.state import to_nanos
from cascade.result import CascadeResult
from tests.fleet.helpers import NANO, Vendors, fleet_policy


def _summary(outcomes: list[Any], events: list[MutableMapping[str, Any]]) -> dict[str, Any]:
    results = [o.result if isinstance(o, SpendLimitError) else o for o in outcomes]
    results = [r for r in results if isinstance(r, CascadeResult)]
    return {
        "outcomes": Counter("spend-limit" if isinstance(o, SpendLimitError) else type(o).__name__ for o in outcomes),
        "best_effort": sum(r.budget_exhausted and r.answer is not None for r in results),
        "cost_usd": sum(r.cost_usd for r in results),
        "cost_nanos": sum(to_nanos(a.cost_usd) for r in results for a in r.attempts),
        "states": [(e["state"], e["log_level"]) for e in events if e["event"] == "cascade.state"],
        "errors": Counter(a.error.type for r in results for a in r.attempts if a.error),
    }


def spend(url: str, cap_usd: float, queries: int, concurrency: int) -> dict[str, Any]:
    """Send `queries` queries under a fleet-wide daily cap."""
    policy = fleet_policy(limits={"spend": {"policy": {"per_day": cap_usd}}}, state={"redis": url})
    router = Vendors(delay_s=0.001).cascade(policy)
    with capture_logs() as events:
        outcomes = router.run_many(["what is 2+2?"] * queries, concurrency=concurrency, return_exceptions=True)
    return _summary(outcomes, events)


def trip(url: str, failures: int) -> dict[str, Any]:
    """Send queries while nano is down, until its breaker opens."""
    vendors = Vendors()
    vendors.down[NANO] = None
    router = vendors.cascade(fleet_policy(breaker={"failures": failures, "cooldown_s": 60}, state={"redis": url}))
    with capture_logs() as events:
        outcomes = [router.run("q") for _ in range(failures)]
    opened = [e for e in events if e["event"] == "cascade.breaker" and e["state"] == "open"]
    return {**_summary(outcomes, events), "opened": len(opened), "nano_calls": vendors.calls[NANO]}


def healthy(url: str) -> dict[str, Any]:
    """One query with every vendor up: does this worker see the breaker another one opened?"""
    vendors = Vendors()
    router = vendors.cascade(fleet_policy(breaker={"failures": 3, "cooldown_s": 60}, state={"redis": url}))
    with capture_logs() as events:
        result = router.run("q")
    return {**_summary([result], events), "stage": result.stage, "nano_calls": vendors.calls[NANO]}


def steady(url: str, queries: int, concurrency: int) -> dict[str, Any]:
    """Queries at a steady pace (the vendors take 5 ms a call) while the test restarts Redis."""
    policy = fleet_policy(limits={"spend": {"policy": {"per_day": 100.0}}}, state={"redis": url})
    router = Vendors(delay_s=0.005).cascade(policy)
    store = router.fleet.stores[url]
    assert isinstance(store, FallbackStore)
    store.retry_s = 0.2
    with capture_logs() as events:
        outcomes = router.run_many(["what is 2+2?"] * queries, concurrency=concurrency, return_exceptions=True)
    return _summary(outcomes, events)
