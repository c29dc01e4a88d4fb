"""Where the fleet's state lives: the operations every store performs atomically, and the in-process store.

A store knows nothing of policies: it keeps three kinds of record under keys it is given, and each operation
reads and writes one or more of them as one step, so that concurrent queries (threads here, worker processes
with `cascade.fleet.redis_store`) never see half an update.

- a breaker per (provider, model): how many failures in a row since when, open until when, probe lease until when;
- a spend counter per scope and calendar window, in nano-USD (whole numbers add up exactly);
- a token bucket per provider and resource (requests, tokens), which may go into debt: a caller that is told to
  wait has already taken its share, so callers queue in the order they asked.

`MemoryStore` is the definition; `RedisStore` runs the same operations as Lua scripts, and the tests run one
suite against both. Times are wall-clock seconds given by the caller, so that every worker reads one clock.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

BreakerAdmit = Literal["closed", "open", "probe"]
# What a reported outcome did to a breaker ("": nothing worth an event).
BreakerChange = Literal["", "opened", "reopened", "closed"]

NANOS_PER_USD = 1_000_000_000


def to_nanos(usd: float) -> int:
    """Dollars as whole nano-USD, rounded up: a reservation or a cost is never counted as less than it is."""
    return math.ceil(usd * NANOS_PER_USD)


@dataclass(frozen=True, slots=True)
class Hold:
    """A spend reservation: the counters it was added to, how much, which store holds it, and its own key there
    (which makes settling it twice, or settling one that was never made, a no-op)."""

    keys: tuple[str, ...]
    ttls: tuple[int, ...]
    nanos: int
    where: str
    key: str


@dataclass(frozen=True, slots=True)
class Refused:
    """A reservation that would take the counter `index` (of the keys asked) past its limit."""

    index: int


class Store(Protocol):
    """The atomic operations behind breakers, spend limits and rate limits."""

    def breaker_admit(self, key: str, now: float, lease_s: float) -> tuple[BreakerAdmit, float]:
        """May a call go? closed: yes. probe: yes, as the one probe after a cool-down (leased for `lease_s`).
        open: no, for about the seconds returned."""
        ...

    def breaker_report(
        self, key: str, now: float, failed: bool, failures: int, window_s: float, cooldown_s: float
    ) -> BreakerChange:
        """Record a call's outcome. A success closes the breaker and clears the count; a failure counts, and
        the `failures`-th in a row within `window_s` opens it for `cooldown_s`, as does a failed probe."""
        ...

    def reserve(
        self, keys: Sequence[str], limits: Sequence[int], ttls: Sequence[int], nanos: int, hold_key: str
    ) -> Hold | Refused:
        """Add `nanos` to every counter if none would pass its limit, and remember it as `hold_key`; else change
        nothing."""
        ...

    def settle(self, hold: Hold, nanos: int) -> None:
        """Replace a reservation by what the call really cost (0: nothing was spent); once only."""
        ...

    def take(self, key: str, now: float, capacity: float, per_s: float, cost: float, max_wait_s: float) -> float | None:
        """Take `cost` from a bucket that holds up to `capacity` and refills at `per_s`: the seconds to wait
        before the taken share is there (0: now), or None, taking nothing, if that is longer than `max_wait_s`.
        A negative cost gives back."""
        ...


@dataclass
class _Breaker:
    count: int = 0
    since: float = 0.0
    open_until: float = 0.0
    probe_until: float = 0.0


@dataclass
class _Bucket:
    level: float
    at: float


@dataclass
class MemoryStore:
    """The store of one process (the default): plain dictionaries behind one lock."""

    name: str = "memory"
    _breakers: dict[str, _Breaker] = field(default_factory=dict)
    _spend: dict[str, int] = field(default_factory=dict)
    _holds: set[str] = field(default_factory=set)
    _buckets: dict[str, _Bucket] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def breaker_admit(self, key: str, now: float, lease_s: float) -> tuple[BreakerAdmit, float]:
        with self._lock:
            state = self._breakers.get(key)
            if state is None or state.open_until == 0:
                return "closed", 0.0
            if now < state.open_until:
                return "open", state.open_until - now
            if now < state.probe_until:
                return "open", state.probe_until - now
            state.probe_until = now + lease_s
            return "probe", 0.0

    def breaker_report(
        self, key: str, now: float, failed: bool, failures: int, window_s: float, cooldown_s: float
    ) -> BreakerChange:
        with self._lock:
            state = self._breakers.get(key)
            if not failed:
                self._breakers.pop(key, None)
                return "closed" if state is not None and state.open_until > 0 else ""
            if state is None:
                state = self._breakers[key] = _Breaker()
            if state.open_until > 0:
                if now < state.open_until:
                    return ""  # a call sent before the breaker opened, failing late: already counted as down
                state.open_until, state.probe_until = now + cooldown_s, 0.0
                return "reopened"
            if state.count == 0 or now - state.since > window_s:
                state.count, state.since = 1, now
            else:
                state.count += 1
            if state.count < failures:
                return ""
            state.count, state.since, state.open_until, state.probe_until = 0, 0.0, now + cooldown_s, 0.0
            return "opened"

    def reserve(
        self, keys: Sequence[str], limits: Sequence[int], ttls: Sequence[int], nanos: int, hold_key: str
    ) -> Hold | Refused:
        # Counters of past windows are not expired here: a process holds a few per scope and period a day.
        with self._lock:
            for index, (key, limit) in enumerate(zip(keys, limits, strict=True)):
                if self._spend.get(key, 0) + nanos > limit:
                    return Refused(index)
            for key in keys:
                self._spend[key] = self._spend.get(key, 0) + nanos
            self._holds.add(hold_key)
        return Hold(tuple(keys), tuple(ttls), nanos, self.name, hold_key)

    def settle(self, hold: Hold, nanos: int) -> None:
        with self._lock:
            if hold.key not in self._holds:
                return
            self._holds.discard(hold.key)
        self.add(hold.keys, hold.ttls, nanos - hold.nanos)

    def add(self, keys: Sequence[str], ttls: Sequence[int], nanos: int) -> None:
        """Add to spend counters, whatever their limits (a settlement, or spend that Redis missed)."""
        with self._lock:
            for key in keys:
                self._spend[key] = self._spend.get(key, 0) + nanos

    def spent(self, key: str) -> int:
        """A spend counter, in nano-USD."""
        with self._lock:
            return self._spend.get(key, 0)

    def take(self, key: str, now: float, capacity: float, per_s: float, cost: float, max_wait_s: float) -> float | None:
        with self._lock:
            bucket = self._buckets.get(key) or _Bucket(capacity, now)
            level = min(capacity, bucket.level + max(0.0, now - bucket.at) * per_s)
            wait = (cost - level) / per_s if level < cost else 0.0
            if wait > max_wait_s:
                return None
            self._buckets[key] = _Bucket(level - cost, max(now, bucket.at))
            return wait
