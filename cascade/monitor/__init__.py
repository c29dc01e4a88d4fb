"""Live monitoring: OpenTelemetry spans and metrics, shadow sampling, and the drift check (docs/monitoring.md).

- `config`: the policy's `monitor:` block;
- `observer`: `Monitor`, the one object the engine calls around each query;
- `otel`: spans and metrics, imported only when `opentelemetry-api` is installed (the `otel` extra);
- `shadow`: a sample of live queries run through every stage in the background, written as traces;
- `drift` and `stats`: `cascade drift`, the statistical check that the tuned quality still holds.

Names load on first use: `cascade.policy` imports `config`, which must not pull in the engine.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cascade._lazy import lazy_exports

if TYPE_CHECKING:
    from cascade.monitor.observer import Monitor as Monitor
    from cascade.monitor.observer import QueryWatch as QueryWatch

_EXPORTS = {"Monitor": "cascade.monitor.observer", "QueryWatch": "cascade.monitor.observer"}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
