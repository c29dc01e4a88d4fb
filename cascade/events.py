"""Events: the library says what happened, the application decides whether and where it is shown.

Every event has a stable dotted name and keyword fields. A query emits `cascade.route`, `cascade.answer`,
`cascade.judge`, `cascade.escalate`, `cascade.error`, `cascade.skip`, `cascade.budget` and `cascade.done`; a fleet
adds `cascade.breaker`, `cascade.limit` and `cascade.state` (docs/fleet.md); shadow sampling `cascade.shadow`
(docs/monitoring.md); `cascade serve` `cascade.serve.failed` (docs/serve.md). Where they go:

- the application configured structlog (`structlog.configure(...)`): through `structlog.get_logger("cascade")`,
  so its processors and level filter apply;
- otherwise: as INFO records of the standard library logger `cascade`, which has a `NullHandler`, so nothing is
  shown until the application configures logging (`logging.basicConfig(level=logging.INFO)`). The record's
  message is the event name and its fields as `key=value`; the fields are also on the record as
  `record.cascade_fields`.

structlog's own unconfigured default prints every event to stdout in colour: a library must never do that.
"""

from __future__ import annotations

import logging
from typing import Any

import structlog

_stdlib = logging.getLogger("cascade")
_stdlib.addHandler(logging.NullHandler())


class Events:
    """The event sink of one query: its fields (query id, policy) are bound to every event it emits."""

    __slots__ = ("_bound", "_fields")

    def __init__(self, **fields: Any) -> None:
        self._fields = fields
        # Decided once per query: an app that configures structlog mid-query sees the next query's events.
        self._bound: Any = structlog.get_logger("cascade").bind(**fields) if structlog.is_configured() else None

    def emit(self, name: str, **fields: Any) -> None:
        """Emit one event (dropped unless the application asked for events)."""
        if self._bound is not None:
            self._bound.info(name, **fields)
        elif _stdlib.isEnabledFor(logging.INFO):
            merged = {**self._fields, **fields}
            rendered = " ".join(f"{key}={value!r}" for key, value in merged.items())
            _stdlib.info("%s %s", name, rendered, extra={"cascade_event": name, "cascade_fields": merged})
