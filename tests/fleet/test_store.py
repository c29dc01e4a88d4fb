"""The store's operations, one suite for the in-process store and for Redis's Lua scripts: they must agree.

Times are given to the store, so these tests move a clock by hand and never sleep.
"""

from __future__ import annotations

from typing import Any

import pytest

from cascade.fleet.redis_store import RedisStore
from cascade.fleet.state import Hold, MemoryStore, Refused, Store, to_nanos
from tests.fleet.conftest import Server

T0 = 1_800_000_000.0  # a wall-clock time, far from the epoch as a real one is


@pytest.fixture(params=["memory", "redis"])
def store(request: pytest.FixtureRequest) -> Store:
    if request.param == "memory":
        return MemoryStore()
    server: Server = request.getfixturevalue("redis_server")
    return RedisStore.from_url(server.url)


def report(store: Store, now: float, failed: bool, *, cooldown_s: float = 30.0) -> str:
    return store.breaker_report("b", now, failed, failures=3, window_s=60.0, cooldown_s=cooldown_s)


def test_failures_in_a_row_open_the_breaker_and_a_success_clears_the_count(store: Store) -> None:
    assert store.breaker_admit("b", T0, 10.0) == ("closed", 0.0)
    assert report(store, T0, True) == ""
    assert report(store, T0 + 1, True) == ""
    assert report(store, T0 + 2, False) == ""  # a success: the count starts again
    assert report(store, T0 + 3, True) == ""
    assert report(store, T0 + 4, True) == ""
    assert store.breaker_admit("b", T0 + 4, 10.0)[0] == "closed"
    assert report(store, T0 + 5, True) == "opened"
    state, seconds = store.breaker_admit("b", T0 + 6, 10.0)
    assert state == "open" and seconds == pytest.approx(29.0)
    assert store.breaker_admit("other", T0 + 6, 10.0)[0] == "closed"  # one breaker per key


def test_failures_spread_wider_than_the_window_do_not_open_it(store: Store) -> None:
    for i in range(6):
        assert report(store, T0 + 40 * i, True) == ""
    assert store.breaker_admit("b", T0 + 240, 10.0)[0] == "closed"


def test_one_probe_after_the_cooldown_then_closed_or_open_again(store: Store) -> None:
    for i in range(3):
        report(store, T0 + i, True, cooldown_s=5.0)
    assert store.breaker_admit("b", T0 + 6, 10.0)[0] == "open"
    assert store.breaker_admit("b", T0 + 7.5, 10.0) == ("probe", 0.0)
    state, seconds = store.breaker_admit("b", T0 + 8, 10.0)  # the probe is in flight: nobody else goes
    assert state == "open" and seconds == pytest.approx(9.5)
    assert report(store, T0 + 9, True, cooldown_s=5.0) == "reopened"
    assert store.breaker_admit("b", T0 + 10, 10.0)[0] == "open"
    assert store.breaker_admit("b", T0 + 14.5, 10.0)[0] == "probe"
    assert report(store, T0 + 15, False) == "closed"
    assert store.breaker_admit("b", T0 + 15, 10.0) == ("closed", 0.0)


def test_a_probe_that_never_reports_frees_the_breaker_when_its_lease_ends(store: Store) -> None:
    for i in range(3):
        report(store, T0 + i, True, cooldown_s=1.0)
    assert store.breaker_admit("b", T0 + 3, 2.0)[0] == "probe"
    assert store.breaker_admit("b", T0 + 4.5, 2.0)[0] == "open"
    assert store.breaker_admit("b", T0 + 5.5, 2.0)[0] == "probe"


def test_a_late_failure_while_open_does_not_extend_the_cooldown(store: Store) -> None:
    for i in range(3):
        report(store, T0 + i, True, cooldown_s=10.0)
    assert report(store, T0 + 5, True, cooldown_s=10.0) == ""
    assert store.breaker_admit("b", T0 + 12.5, 1.0)[0] == "probe"


def test_reserve_adds_to_every_counter_or_to_none(store: Store) -> None:
    keys, limits, ttls = ["policy", "tenant"], [to_nanos(1.0), to_nanos(0.5)], [120, 120]
    first = store.reserve(keys, limits, ttls, to_nanos(0.3), "h1")
    assert isinstance(first, Hold) and first.nanos == to_nanos(0.3) and first.key == "h1"
    assert store.reserve(keys, limits, ttls, to_nanos(0.3), "h2") == Refused(1)  # the tenant's 0.5 would be passed
    store.settle(first, to_nanos(0.1))  # the call cost less than its bound
    second = store.reserve(keys, limits, ttls, to_nanos(0.4), "h3")
    assert isinstance(second, Hold)
    assert store.reserve(keys, limits, ttls, to_nanos(0.000001), "h4") == Refused(1)
    third = store.reserve(["policy"], limits[:1], ttls[:1], to_nanos(0.5), "h5")
    assert third == Hold(("policy",), (120,), to_nanos(0.5), first.where, "h5")
    assert store.reserve(["policy"], limits[:1], ttls[:1], to_nanos(0.01), "h6") == Refused(0)  # 0.1 + 0.4 + 0.5


def test_a_hold_is_settled_once_and_one_never_made_not_at_all(store: Store) -> None:
    keys, limits, ttls = ["policy"], [to_nanos(1.0)], [120]
    hold = store.reserve(keys, limits, ttls, to_nanos(0.6), "h1")
    assert isinstance(hold, Hold)
    store.settle(hold, to_nanos(0.1))
    store.settle(hold, to_nanos(0.1))  # a retried settlement: no second refund
    assert isinstance(store.reserve(keys, limits, ttls, to_nanos(0.9), "h2"), Hold)  # 0.1 + 0.9
    never = Hold(tuple(keys), tuple(ttls), to_nanos(0.5), hold.where, "lost")  # a reservation whose reply was lost
    store.settle(never, 0)
    assert store.reserve(keys, limits, ttls, to_nanos(0.01), "h3") == Refused(0)


def test_the_bucket_grants_waits_in_turn_and_refuses_past_the_deadline(store: Store) -> None:
    # 60 a minute: one a second, a minute's worth at most.
    args: dict[str, Any] = {"capacity": 60.0, "per_s": 1.0}
    assert store.take("r", T0, cost=59, max_wait_s=0, **args) == 0.0
    assert store.take("r", T0, cost=1, max_wait_s=0, **args) == 0.0
    assert store.take("r", T0, cost=1, max_wait_s=0.5, **args) is None  # nothing taken
    assert store.take("r", T0, cost=1, max_wait_s=5, **args) == pytest.approx(1.0)
    assert store.take("r", T0, cost=1, max_wait_s=5, **args) == pytest.approx(2.0)  # queued behind the first
    assert store.take("r", T0 + 2, cost=1, max_wait_s=5, **args) == pytest.approx(1.0)
    assert store.take("r", T0 + 2, cost=-3, max_wait_s=0, **args) == 0.0  # given back
    assert store.take("r", T0 + 2, cost=2, max_wait_s=0, **args) == 0.0
    assert store.take("r", T0 + 1000, cost=60, max_wait_s=0, **args) == 0.0  # refilled to a minute's worth only
    assert store.take("r", T0 + 1000, cost=1, max_wait_s=0, **args) is None
