"""State in a real Redis: shared by routers, expiring, and never the reason a query fails."""

from __future__ import annotations

import socket
from typing import Any

import pytest
from structlog.testing import capture_logs

from cascade.fleet.fallback import FallbackStore
from cascade.fleet.redis_store import RedisStore
from cascade.fleet.state import to_nanos
from tests.fleet.conftest import RedisServer, Server
from tests.fleet.helpers import NANO, Vendors, fleet_policy

LIMITS = {"spend": {"policy": {"per_day": 100.0}, "tenant": {"per_hour": 50.0}}}


def redis_policy(url: str, **sections: Any) -> Any:
    return fleet_policy(breaker={"failures": 3, "cooldown_s": 60}, limits=LIMITS, state={"redis": url}, **sections)


def spent(server: Server, pattern: str) -> int:
    client = server.client()
    return sum(int(client.get(key)) for key in client.scan_iter(pattern))


def test_two_routers_on_one_redis_share_breakers_and_spend(redis_server: Server) -> None:
    vendors = Vendors()
    first, second = vendors.cascade(redis_policy(redis_server.url)), vendors.cascade(redis_policy(redis_server.url))
    results = [first.run("q", tenant="acme"), second.run("q", tenant="acme")]
    total = sum(to_nanos(a.cost_usd) for r in results for a in r.attempts)
    assert spent(redis_server, "cascade:spend:policy:fleet:day:*") == total
    assert spent(redis_server, "cascade:spend:tenant:acme:hour:*") == total
    vendors.down[NANO] = None
    for _ in range(3):
        first.run("q")
    skipped = second.run("q").attempts[0].error
    assert skipped is not None and skipped.type == "CircuitOpenError"
    assert vendors.calls[NANO] == 5
    # Every key expires: a Redis shared for long does not fill with old windows.
    client = redis_server.client()
    keys = list(client.scan_iter("cascade:*"))
    assert keys and all(0 < client.ttl(key) <= 86_400 + 3600 for key in keys)


def test_the_key_prefix_and_a_url_from_the_environment(redis_server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLEET_TEST_REDIS_URL", redis_server.url)
    policy = fleet_policy(limits=LIMITS, state={"redis_url_env": "FLEET_TEST_REDIS_URL", "key_prefix": "app1"})
    Vendors().cascade(policy).run("q")
    assert spent(redis_server, "app1:spend:policy:fleet:day:*") > 0
    assert not list(redis_server.client().scan_iter("cascade:*"))


def test_redis_unreachable_from_the_start_degrades_to_in_process_state_with_one_warning() -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        url = f"redis://127.0.0.1:{probe.getsockname()[1]}/0"
    vendors = Vendors()
    router = vendors.cascade(redis_policy(url))
    vendors.down[NANO] = None
    with capture_logs() as events:
        results = [router.run("q", tenant="acme") for _ in range(5)]
    assert all(r.stage == "haiku" for r in results)
    assert vendors.calls[NANO] == 3  # the breaker works, in this process
    warnings = [e for e in events if e["event"] == "cascade.state"]
    assert len(warnings) == 1 and warnings[0]["log_level"] == "warning"
    assert warnings[0]["state"] == "in-process" and warnings[0]["redis"] == url
    assert "ConnectionError" in warnings[0]["error"]


def test_a_redis_restart_loses_no_query_and_no_spend(own_redis_server: RedisServer) -> None:
    vendors = Vendors()
    router = vendors.cascade(redis_policy(own_redis_server.url))
    store = router.fleet.stores[own_redis_server.url]
    assert isinstance(store, FallbackStore)
    store.retry_s = 0.0  # try Redis again at the next call
    results = [router.run("q", tenant="acme") for _ in range(3)]
    own_redis_server.stop()
    with capture_logs() as events:
        results += [router.run("q", tenant="acme") for _ in range(3)]
        assert store.degraded
        own_redis_server.start()
        results += [router.run("q", tenant="acme") for _ in range(3)]
    assert not store.degraded
    assert all(r.stage == "nano" for r in results)
    states = [(e["state"], e["log_level"]) for e in events if e["event"] == "cascade.state"]
    assert states == [("in-process", "warning"), ("redis", "info")]
    # What was spent while Redis was away was added to its counters when it came back.
    total = sum(to_nanos(a.cost_usd) for r in results for a in r.attempts)
    assert spent(own_redis_server, "cascade:spend:policy:fleet:day:*") == total


def test_a_reservation_whose_reply_was_lost_is_undone_when_redis_answers_again(redis_server: Server) -> None:
    import redis

    class LosesOneReply(RedisStore):
        """Makes the first reservation, then fails as if the connection dropped before its reply came."""

        lost = False

        def reserve(self, *args: Any) -> Any:
            held = super().reserve(*args)
            if not self.lost:
                self.lost = True
                raise redis.ConnectionError("connection reset by peer")
            return held

    vendors = Vendors()
    router = vendors.cascade(redis_policy(redis_server.url))
    store = FallbackStore(LosesOneReply.from_url(redis_server.url), retry_s=0.0)
    router.fleet.stores[redis_server.url] = store
    for parts in router.fleet._policies.values():
        parts.spend.store = store
    with capture_logs():
        results = [router.run("q") for _ in range(3)]
    assert not store.degraded
    total = sum(to_nanos(a.cost_usd) for r in results for a in r.attempts)
    assert spent(redis_server, "cascade:spend:policy:fleet:day:*") == total
