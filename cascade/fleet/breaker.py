"""Circuit breakers per (provider, model): a model that keeps failing is not called for a while, by any worker.

Without one, every query learns alone that a vendor is down, each waiting out a stage timeout before escalating.
The state machine (closed, open for a cool-down, one probe, closed or open again) is kept by the store
(`cascade.fleet.state`), so that every worker sharing it sees one breaker.
"""

from __future__ import annotations

from collections.abc import Callable

from cascade.fleet.settings import BreakerSettings
from cascade.fleet.state import BreakerAdmit, BreakerChange, Store

# A probe that never reports (its worker died) frees the breaker this long after its call's own timeout.
PROBE_GRACE_S = 5.0


class Breakers:
    """The breakers as one policy sees them: its settings over a store."""

    def __init__(self, settings: BreakerSettings, store: Store, prefix: str, clock: Callable[[], float]) -> None:
        self.settings = settings
        self.store = store
        self.prefix = prefix
        self.clock = clock

    def key(self, provider: str, model: str) -> str:
        return f"{self.prefix}:breaker:{provider}:{model}"

    def admit(self, provider: str, model: str, timeout_s: float) -> tuple[BreakerAdmit, float]:
        """closed or probe: the call may go; open: not for about the seconds returned."""
        if not self.settings.enabled:
            return "closed", 0.0
        return self.store.breaker_admit(self.key(provider, model), self.clock(), timeout_s + PROBE_GRACE_S)

    def report(self, provider: str, model: str, failed: bool, retry_after: float | None) -> BreakerChange:
        """Record an outcome: `failed` for a retryable failure (the vendor is not answering), else a success."""
        if not self.settings.enabled:
            return ""
        s = self.settings
        return self.store.breaker_report(
            self.key(provider, model), self.clock(), failed, s.failures, s.window_s, self.cooldown(retry_after)
        )

    def cooldown(self, retry_after: float | None) -> float:
        """How long the breaker stays open: the vendor's Retry-After when it sent one (capped), else the setting's."""
        if retry_after is None or retry_after <= 0:
            return self.settings.cooldown_s
        return min(retry_after, self.settings.max_cooldown_s)
