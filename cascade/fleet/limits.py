"""Fleet-wide spend limits (per policy and per tenant, per calendar minute, hour and day) and rate limits per
provider (requests and tokens per minute).

Spend: every call is reserved before it is sent at the most it can cost (`cascade.budget.call_cost_bound`) in
every counter that applies, and only if none would pass its limit; after the call the reservation is replaced by
the real cost. So what the fleet has spent never passes a limit, and the counters read at any moment hold the
real spend plus the reservations of calls in flight. A call cancelled in flight keeps its reservation: what it
cost is not known. Windows are calendar periods in UTC: a per-minute limit starts again at every minute.

Rate: a token bucket per provider and resource, refilled continuously, holding at most one minute's worth. A call
takes its share before it is sent and waits until the share is there, if that is before its deadline.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

from cascade.fleet.settings import RateLimit, RateLimits, SpendLimits
from cascade.fleet.state import Hold, Refused, Store, to_nanos


@dataclass(frozen=True, slots=True)
class SpendRefusal:
    """Which limit a reservation would have broken."""

    scope: str  # "policy" or "tenant"
    name: str
    period: str
    limit_usd: float

    def __str__(self) -> str:
        return f"the {self.scope} {self.name!r} would pass its spend limit of ${self.limit_usd:g} per {self.period}"


@dataclass(frozen=True, slots=True)
class _Counter:
    scope: str
    name: str
    period: str
    limit_usd: float
    key: str
    ttl: int


class Spend:
    """The spend limits of one policy over a store."""

    def __init__(self, limits: SpendLimits, store: Store, prefix: str, policy: str, clock: Callable[[], float]) -> None:
        self.limits = limits
        self.store = store
        self.prefix = prefix
        self.policy = policy
        self.clock = clock

    def applies(self, tenant: str | None) -> bool:
        """Whether any limit counts this query's calls."""
        return bool(self.limits.policy.periods() or (tenant is not None and self.limits.tenant.periods()))

    def counters(self, tenant: str | None) -> list[_Counter]:
        """The counters a call of this query is reserved in, now: one per scope and period with a limit."""
        now = self.clock()
        scopes = [("policy", self.policy, self.limits.policy)]
        if tenant is not None:
            scopes.append(("tenant", tenant, self.limits.tenant))
        counters = []
        for scope, name, limit in scopes:
            for period, seconds, usd in limit.periods():
                window = int(now // seconds)
                key = f"{self.prefix}:spend:{scope}:{name}:{period}:{window}"
                # Kept past its window for settlements of calls still in flight (a query's deadline is <= 1 h).
                counters.append(_Counter(scope, name, period, usd, key, seconds + 3600))
        return counters

    def reserve(self, tenant: str | None, usd: float) -> Hold | SpendRefusal | None:
        """Reserve a call's most expensive outcome; None when no limit applies."""
        counters = self.counters(tenant)
        if not counters:
            return None
        keys, limits, ttls = (
            [c.key for c in counters],
            [to_nanos(c.limit_usd) for c in counters],
            [c.ttl for c in counters],
        )
        hold_key = f"{self.prefix}:hold:{os.urandom(12).hex()}"
        held = self.store.reserve(keys, limits, ttls, to_nanos(usd), hold_key)
        if isinstance(held, Refused):
            c = counters[held.index]
            return SpendRefusal(c.scope, c.name, c.period, c.limit_usd)
        return held

    def settle(self, hold: Hold, usd: float) -> None:
        """Replace a reservation by the call's real cost."""
        self.store.settle(hold, to_nanos(usd))


class Rates:
    """The rate limits of one policy over a store."""

    def __init__(self, limits: RateLimits, store: Store, prefix: str, clock: Callable[[], float]) -> None:
        self.limits = limits
        self.store = store
        self.prefix = prefix
        self.clock = clock

    def limit(self, provider: str) -> RateLimit | None:
        limit: RateLimit | None = getattr(self.limits, provider, None)
        return limit

    def take(self, provider: str, tokens: int, max_wait_s: float) -> float | None:
        """Take one request and `tokens` tokens of the provider's limits: the seconds to wait before sending
        (0: now), or None, taking nothing, if the wait would be longer than `max_wait_s`."""
        limit = self.limit(provider)
        if limit is None:
            return 0.0
        wanted = [("requests", limit.requests_per_minute, 1), ("tokens", limit.tokens_per_minute, tokens)]
        waits: list[float] = []
        taken: list[tuple[str, int, int]] = []
        for resource, per_minute, cost in wanted:
            if per_minute is None:
                continue
            wait = self._take(provider, resource, per_minute, cost, max_wait_s)
            if wait is None:
                for given_back, rate, share in taken:  # the requests share, when the tokens one cannot be had
                    self._take(provider, given_back, rate, -share, float("inf"))
                return None
            waits.append(wait)
            taken.append((resource, per_minute, cost))
        return max(waits, default=0.0)

    def correct(self, provider: str, tokens: int) -> None:
        """Count `tokens` more (or fewer, when negative) tokens than were taken: the call's real usage."""
        limit = self.limit(provider)
        if limit is not None and limit.tokens_per_minute is not None and tokens:
            self._take(provider, "tokens", limit.tokens_per_minute, tokens, float("inf"))

    def _take(self, provider: str, resource: str, per_minute: int, cost: float, max_wait_s: float) -> float | None:
        key = f"{self.prefix}:rate:{provider}:{resource}"
        return self.store.take(key, self.clock(), float(per_minute), per_minute / 60.0, cost, max_wait_s)
