"""The fleet as the flow sees it: `Fleet` (one per `Cascade`, the state its queries share) and `QueryFleet`
(`ctx.fleet`, what one query asks of it).

The flow asks a query's `QueryFleet` four things, and nothing else of the fleet: before a stage, is its model's
breaker open (`refusal`)? Before a call, may its most expensive outcome be spent (`reserve`)? Before each try,
may it go, and after how long a wait for the provider's rate limit (`admit`)? After each try, what came back
(`observe`, then `settle` with the real cost)?
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from cascade.errors import (
    CircuitOpenError,
    InvalidArgumentError,
    PolicyError,
    ProviderError,
    RateLimitWaitError,
    VendorHTTPError,
    VendorTimeoutError,
    register_secret,
)
from cascade.fleet.breaker import Breakers
from cascade.fleet.limits import Rates, Spend, SpendRefusal
from cascade.fleet.settings import StateSettings
from cascade.fleet.state import Hold, MemoryStore, Store
from cascade.providers.base import Completion, CompletionRequest
from cascade.query import estimate_input_tokens

if TYPE_CHECKING:
    from cascade.policy import Policy

Emit = Callable[..., None]
MAX_TENANT_CHARS = 200
# A call waits for its rate-limit turn for at most this share of the time it has left.
MAX_WAIT_SHARE = 0.5


@dataclass(frozen=True, slots=True)
class PolicyFleet:
    """One policy's breakers and limits, over the store its `state:` names."""

    breakers: Breakers
    spend: Spend
    rates: Rates
    store: Store


class Fleet:
    """The state the queries of one router share: in this process, or in Redis for every worker pointed at it.

    Policies that name the same state share it: breakers are per (provider, model) whatever the policy, spend
    is counted per policy name and per tenant. `clock` is wall-clock time, the one clock all workers share.
    """

    def __init__(self, policies: Iterable[Policy], *, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.stores: dict[str | None, Store] = {}
        self._policies: dict[str, PolicyFleet] = {}
        for policy in policies:
            store = self._store(policy)
            prefix = policy.state.key_prefix
            self._policies[policy.name] = PolicyFleet(
                Breakers(policy.breaker, store, prefix, clock),
                Spend(policy.limits.spend, store, prefix, policy.name, clock),
                Rates(policy.limits.rate, store, prefix, clock),
                store,
            )

    def _store(self, policy: Policy) -> Store:
        url = _redis_url(policy.name, policy.state)
        if url not in self.stores:
            if url is None:
                self.stores[url] = MemoryStore()
            else:
                # Imported here: a policy without `state: {redis: ...}` needs no Redis client installed.
                from cascade.fleet.fallback import FallbackStore
                from cascade.fleet.redis_store import RedisStore

                self.stores[url] = FallbackStore(RedisStore.from_url(url))
        return self.stores[url]

    def join(self, policy: Policy, tenant: str | None, emit: Emit) -> QueryFleet:
        """The fleet as one query of `policy` sees it (`emit` sends the query's events)."""
        if tenant is not None and (not isinstance(tenant, str) or not tenant.strip() or len(tenant) > MAX_TENANT_CHARS):
            raise InvalidArgumentError(f"tenant must be a non-empty string of at most {MAX_TENANT_CHARS} characters")
        return QueryFleet(self._policies[policy.name], tenant, emit)


def _redis_url(policy: str, state: StateSettings) -> str | None:
    if state.redis_url_env is None:
        return state.redis
    url = os.environ.get(state.redis_url_env)
    if not url:
        raise PolicyError(f"policy {policy}", [("state.redis_url_env", f"{state.redis_url_env} is not set")])
    register_secret(urlsplit(url).password)  # so that an error echoing the URL is masked
    return url


class QueryFleet:
    """What one query asks of the fleet (`ctx.fleet`). Without a `Fleet` (a context built by hand), nothing is
    limited and no breaker is kept."""

    def __init__(self, parts: PolicyFleet | None = None, tenant: str | None = None, emit: Emit | None = None) -> None:
        self.parts = parts
        self.tenant = tenant
        self.emit = emit or (lambda name, **fields: None)
        self.spend_refused: SpendRefusal | None = None  # why the fleet refused a call of this query, if it did
        self._probes: set[tuple[str, str]] = set()  # breakers this query holds the probe of
        self._cleared: set[tuple[str, str]] = set()  # checked before a stage: its first try needs no second look

    # -- breakers ---------------------------------------------------------------------------------

    def refusal(self, provider: str, model: str, timeout_s: float) -> CircuitOpenError | None:
        """Why a stage on this model must be skipped (its breaker is open), or None. A breaker whose cool-down
        has ended lets this query through as its one probe."""
        refused = self._breaker(provider, model, timeout_s)
        if refused is None:
            self._cleared.add((provider, model))
        return refused

    def _breaker(self, provider: str, model: str, timeout_s: float) -> CircuitOpenError | None:
        if self.parts is None or (provider, model) in self._probes:
            return None
        state, seconds = self.parts.breakers.admit(provider, model, timeout_s)
        if state == "closed":
            return None
        if state == "probe":
            self._probes.add((provider, model))
            self.emit("cascade.breaker", provider=provider, model=model, state="probe")
            return None
        return CircuitOpenError(
            f"{provider}/{model}: circuit open after repeated failures, not sent (retry in {seconds:.1f} s)",
            provider=provider,
            model=model,
            retry_in_s=seconds,
        )

    def observe(self, provider: str, request: CompletionRequest, outcome: Any, full_timeout: bool) -> None:
        """What a try came back with: a breaker outcome, and the tokens it really used."""
        if self.parts is None:
            return
        model = request.model
        self._probes.discard((provider, model))
        estimate = _token_estimate(request)
        if isinstance(outcome, Completion):
            self.parts.rates.correct(provider, outcome.input_tokens + outcome.output_tokens - estimate)
            failed, retry_after = False, None
        elif isinstance(outcome, ProviderError):
            self.parts.rates.correct(provider, -estimate)
            # A timeout this query cut short (its deadline was near) says nothing of the vendor.
            failed = outcome.retryable and (full_timeout or not isinstance(outcome, VendorTimeoutError))
            retry_after = outcome.retry_after if isinstance(outcome, VendorHTTPError) else None
        else:
            return
        change = self.parts.breakers.report(provider, model, failed, retry_after)
        if change in ("opened", "reopened"):
            cooldown = self.parts.breakers.cooldown(retry_after)
            self.emit("cascade.breaker", provider=provider, model=model, state="open", cooldown_s=cooldown)
        elif change == "closed":
            self.emit("cascade.breaker", provider=provider, model=model, state="closed")

    # -- spend ------------------------------------------------------------------------------------

    def reserve(self, usd: float) -> Hold | bool:
        """Reserve a call's most expensive outcome: a hold to `settle` after the call, True when no limit
        applies, False when a limit refuses it (`spend_refused` says which; a `cascade.limit` event too)."""
        if self.parts is None or not self.parts.spend.applies(self.tenant):
            return True
        held = self.parts.spend.reserve(self.tenant, usd)
        if held is None:
            return True
        if isinstance(held, SpendRefusal):
            self.spend_refused = held
            self.emit(
                "cascade.limit",
                kind="spend",
                scope=held.scope,
                **({"tenant": held.name} if held.scope == "tenant" else {}),
                period=held.period,
                limit_usd=held.limit_usd,
                reserve_usd=usd,
            )
            return False
        return held

    def settle(self, hold: Hold | bool, usd: float) -> None:
        """Replace a reservation by what the call cost (0 when no try got a reply)."""
        if isinstance(hold, Hold) and self.parts is not None:
            self.parts.spend.settle(hold, usd)

    # -- rate -------------------------------------------------------------------------------------

    def admit(self, provider: str, request: CompletionRequest, within_s: float) -> float | ProviderError:
        """Before a try with `within_s` seconds left for it: the seconds to wait for the provider's rate limit
        (0: go now), or why it must not be sent (its breaker is open, or its turn would leave it less than half
        of its time: a call sent with a sliver of time left would only time out)."""
        if self.parts is None:
            return 0.0
        if (provider, request.model) in self._cleared:
            self._cleared.discard((provider, request.model))
        elif (refused := self._breaker(provider, request.model, request.timeout_s)) is not None:
            return refused
        wait = self.parts.rates.take(provider, _token_estimate(request), within_s * MAX_WAIT_SHARE)
        if wait is None:
            self.emit("cascade.limit", kind="rate", provider=provider, model=request.model, refused=True)
            return RateLimitWaitError(
                f"{provider}: no turn under the rate limit within {within_s * MAX_WAIT_SHARE:.1f} s, not sent",
                provider=provider,
                model=request.model,
            )
        if wait > 0:
            self.emit("cascade.limit", kind="rate", provider=provider, model=request.model, wait_s=wait)
        return wait


def _token_estimate(request: CompletionRequest) -> int:
    """What a call counts against a tokens-per-minute limit before it is made: its prompt (estimated) and its
    whole output allowance, as the vendors' own limiters count it."""
    return estimate_input_tokens(request.messages, request.system) + request.max_output_tokens
