"""Offline tuning: collect traces in shadow mode, replay a policy on them, search thresholds to a target.

`cascade collect`, `cascade eval` and `cascade tune` are the command-line faces of this package
(`cascade.cli.tuning_commands`). The replay and the search are pure functions over numpy arrays; the trace
format is documented in docs/traces.md.
"""

from __future__ import annotations

from cascade._lazy import lazy_exports

_EXPORTS = {
    "Trace": "cascade.tuning.traces",
    "StageTrace": "cascade.tuning.traces",
    "TraceError": "cascade.tuning.traces",
    "read_traces": "cascade.tuning.traces",
    "collect_flow": "cascade.tuning.traces",
    "GRADERS": "cascade.tuning.graders",
    "LLMGrader": "cascade.tuning.graders",
    "ReplayData": "cascade.tuning.replay",
    "replay_data": "cascade.tuning.replay",
    "evaluate": "cascade.tuning.replay",
    "tune": "cascade.tuning.tuner",
    "write_tuned_policy": "cascade.tuning.write",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
