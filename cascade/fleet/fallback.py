"""Redis first, this process's own state while Redis cannot be reached: no query fails because Redis is down.

When a Redis call fails, the worker says so once (a `cascade.state` warning event), carries on with its
in-process `MemoryStore`, and tries Redis again every `retry_s`. Meanwhile each worker enforces the limits on its
own, and breakers open per worker. Nothing spent is forgotten: what the worker spent while Redis was away, and
settlements Redis missed, are added to Redis's counters once it answers again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import structlog

from cascade.errors import redact
from cascade.fleet.redis_store import RedisStore, redis_errors
from cascade.fleet.state import BreakerAdmit, BreakerChange, Hold, MemoryStore, Refused

T = TypeVar("T")

RETRY_S = 1.0


def state_event(level: int, event: str, **fields: Any) -> None:
    """An event of the worker's state (not of one query), routed as `cascade.events` routes a query's: through
    structlog if the application configured it, else the `cascade` logger, silent until configured."""
    if structlog.is_configured():
        structlog.get_logger("cascade").log(level, event, **fields)
        return
    logger = logging.getLogger("cascade")
    if logger.isEnabledFor(level):
        rendered = " ".join(f"{key}={value!r}" for key, value in fields.items())
        logger.log(level, "%s %s", event, rendered, extra={"cascade_event": event, "cascade_fields": fields})


class FallbackStore:
    """A `RedisStore` backed by a `MemoryStore` for the times Redis does not answer."""

    def __init__(
        self,
        primary: RedisStore,
        local: MemoryStore | None = None,
        *,
        retry_s: float = RETRY_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.primary = primary
        self.local = local or MemoryStore()
        self.retry_s = retry_s
        self.clock = clock
        self.name = primary.name
        self._errors = redis_errors()
        self._lock = threading.Lock()
        self._down_until: float | None = None  # None: Redis is in use
        self._missed: dict[str, tuple[int, int]] = {}  # spend Redis has not seen: key -> (expiry, nano-USD)
        # Settlements Redis has not seen, replayed when it answers again (a settlement happens once at most: a
        # reservation whose reply was lost is settled at 0, which undoes it if Redis made it).
        self._unsettled: list[tuple[Hold, int]] = []

    @property
    def degraded(self) -> bool:
        """True while this worker keeps its own state."""
        return self._down_until is not None

    def _run(
        self, on_redis: Callable[[], T], on_local: Callable[[], T], on_error: Callable[[], object] | None = None
    ) -> T:
        """`on_redis` unless Redis is known to be away, else (or when it fails, after `on_error`) `on_local`."""
        with self._lock:
            skip = self._down_until is not None and self.clock() < self._down_until
        if not skip:
            try:
                result = on_redis()
            except self._errors as exc:
                if on_error is not None:
                    on_error()
                self._went_down(exc)
            else:
                if self._down_until is not None or self._missed or self._unsettled:
                    self._came_back()
                return result
        return on_local()

    def _went_down(self, exc: Exception) -> None:
        with self._lock:
            first = self._down_until is None
            self._down_until = self.clock() + self.retry_s
        if first:
            state_event(
                logging.WARNING,
                "cascade.state",
                state="in-process",
                redis=self.name,
                error=f"{type(exc).__name__}: {redact(str(exc))}",
                retry_s=self.retry_s,
            )

    def _came_back(self) -> None:
        with self._lock:
            was_down, self._down_until = self._down_until is not None, None
            missed, self._missed = self._missed, {}
            unsettled, self._unsettled = self._unsettled, []
        pushed = 0
        try:
            while unsettled:
                self.primary.settle(*unsettled[0])
                unsettled.pop(0)
            for key, (ttl, nanos) in list(missed.items()):
                self.primary.add([key], [ttl], nanos)
                del missed[key]
                pushed += nanos
        except self._errors as exc:
            with self._lock:
                self._unsettled[:0] = unsettled
            self._remember(missed)
            self._went_down(exc)
            return
        if was_down:
            state_event(logging.INFO, "cascade.state", state="redis", redis=self.name, resynced_usd=pushed / 1e9)

    def _remember(self, spend: dict[str, tuple[int, int]]) -> None:
        with self._lock:
            for key, (ttl, nanos) in spend.items():
                _, before = self._missed.get(key, (ttl, 0))
                self._missed[key] = (ttl, before + nanos)

    def _missed_spend(self, keys: Sequence[str], ttls: Sequence[int], nanos: int) -> None:
        if nanos:
            self._remember({key: (ttl, nanos) for key, ttl in zip(keys, ttls, strict=True)})

    # -- the store's operations -------------------------------------------------------------------

    def breaker_admit(self, key: str, now: float, lease_s: float) -> tuple[BreakerAdmit, float]:
        return self._run(
            lambda: self.primary.breaker_admit(key, now, lease_s), lambda: self.local.breaker_admit(key, now, lease_s)
        )

    def breaker_report(
        self, key: str, now: float, failed: bool, failures: int, window_s: float, cooldown_s: float
    ) -> BreakerChange:
        args = (key, now, failed, failures, window_s, cooldown_s)
        return self._run(lambda: self.primary.breaker_report(*args), lambda: self.local.breaker_report(*args))

    def reserve(
        self, keys: Sequence[str], limits: Sequence[int], ttls: Sequence[int], nanos: int, hold_key: str
    ) -> Hold | Refused:
        args = (keys, limits, ttls, nanos, hold_key)
        # A reservation whose reply was lost may have been made: it is undone when Redis answers again.
        maybe_made = Hold(tuple(keys), tuple(ttls), nanos, self.primary.name, hold_key)
        return self._run(
            lambda: self.primary.reserve(*args),
            lambda: self.local.reserve(*args),
            lambda: self._owe_settlement(maybe_made, 0),
        )

    def settle(self, hold: Hold, nanos: int) -> None:
        if hold.where == self.local.name:
            # Reserved while Redis was away: settled here, and the real cost owed to Redis's counters.
            self.local.settle(hold, nanos)
            self._missed_spend(hold.keys, hold.ttls, nanos)
            return
        self._run(lambda: self.primary.settle(hold, nanos), lambda: self._owe_settlement(hold, nanos))

    def _owe_settlement(self, hold: Hold, nanos: int) -> None:
        with self._lock:
            self._unsettled.append((hold, nanos))

    def take(self, key: str, now: float, capacity: float, per_s: float, cost: float, max_wait_s: float) -> float | None:
        args = (key, now, capacity, per_s, cost, max_wait_s)
        return self._run(lambda: self.primary.take(*args), lambda: self.local.take(*args))
