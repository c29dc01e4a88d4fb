"""`cascade drift`: does the quality a policy was tuned to still hold on live traffic?

The baseline is the traces the policy was tuned on; the live rows are shadow rows (`cascade.monitor.shadow`) or
any traces in the same format. Both are replayed with the policy (`cascade.tuning.replay`: the decision code of
the live cascade), and the live figures are tested against the baseline's:

- **quality** (measured directly): where the live rows are labelled (`correct`, a labels file, or a grader and
  a `reference`), the cascade's live quality must not be significantly below what it was on the baseline: a
  one-sided exact binomial test (Hoeffding for partial credit) against the baseline's one-sided lower bound at
  the same level (the baseline is a sample too), less `margin`. This is the promise tune made.
- **agreement** (no labels needed): of the queries the cascade answers before the last stage, the share whose
  answer agrees with the last stage's (an `exact`, `numeric` or `choice` grader, the last answer as reference),
  against the same share on the baseline: the same one-sided test. It suits short answers (labels, numbers,
  letters); on free text give labels or references.
- **judge scores**, stage by stage: the two-sample Kolmogorov-Smirnov test (Bonferroni across stages);
  **escalation rate** (queries not answered at their entry stage): a two-proportion z-test; **cost per
  query**: Welch's z-test. These say the traffic moved (re-tuning is advised); they fail the check only when
  `strict`.

A check needs `min_rows` live rows to judge; with fewer it says so and does not fail.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np

from cascade.monitor.stats import ks_two_sample, rate_below, rate_lower_bound, two_means, two_proportions
from cascade.policy import Policy
from cascade.tuning.graders import Grader
from cascade.tuning.replay import FloatArray, ReplayData, ReplayOutcome, fold_replay, policy_thresholds, replay_data
from cascade.tuning.traces import Correct, StageTrace, Trace

Labeler = Callable[[str, StageTrace, Trace], Correct]
Status = Literal["holds", "drifted", "steady", "shifted", "too few rows", "not measured"]


@dataclass(frozen=True)
class Check:
    """One comparison of live with baseline: the two figures, the test's p-value, and the verdict."""

    name: str
    baseline: float | None
    live: float | None
    n_baseline: int
    n_live: int
    status: Status
    p_value: float | None = None
    promised: float | None = None  # quality and agreement: what the live rate is tested against
    upper_bound: float | None = None  # quality and agreement: the live rate is below this (1 - alpha)
    method: str = ""
    gates: bool = False  # whether a drift here fails the check
    note: str = ""

    @property
    def failed(self) -> bool:
        return self.gates and self.status in ("drifted", "shifted")


@dataclass(frozen=True)
class DriftReport:
    """Every check, and whether the tuned quality still holds (no gating check failed)."""

    policy: str
    checks: list[Check]
    alpha: float
    margin: float
    notes: list[str] = field(default_factory=list)

    @property
    def holds(self) -> bool:
        return not any(check.failed for check in self.checks)


def check_drift(
    policy: Policy,
    baseline: Sequence[Trace],
    live: Sequence[Trace],
    *,
    agreement: Grader,
    alpha: float = 0.05,
    margin: float = 0.0,
    min_rows: int = 30,
    strict: bool = False,
) -> DriftReport:
    """Compare live rows with the baseline the policy was tuned on (see the module docstring)."""
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    stages = [s.name for s in policy.stages]
    base_run, live_run = _replayed(policy, baseline), _replayed(policy, live)
    checks = [
        _quality(policy, baseline, live, stages, alpha, margin, min_rows),
        _agreement(policy, baseline, live, agreement, alpha, margin, min_rows),
    ]
    judged = [j for j in range(len(stages)) if base_run[0].rules.judged[j]]
    for j in judged:
        checks.append(_scores(stages[j], base_run[0], live_run[0], j, alpha / max(len(judged), 1), min_rows, strict))
    checks.append(_escalation(base_run, live_run, alpha, min_rows, strict))
    checks.append(_cost(base_run, live_run, alpha, min_rows, strict))
    notes = []
    if all(c.status in ("not measured", "too few rows") for c in checks[:2]):
        notes.append("neither quality nor agreement could be measured: the check cannot fail on quality")
    return DriftReport(policy.name, checks, alpha, margin, notes)


# -- replays -------------------------------------------------------------------------------------


def _relabelled(traces: Sequence[Trace], label: Labeler) -> list[Trace]:
    """Traces with `correct` set on every answered stage to `label(stage name, stage, trace)`."""
    out: list[Trace] = []
    for trace in traces:
        stages = {}
        for name, stage in trace.stages.items():
            correct = label(name, stage, trace) if stage.answered else None
            stages[name] = stage.model_copy(update={"correct": correct})
        out.append(trace.model_copy(update={"stages": stages}))
    return out


def _replayed(policy: Policy, traces: Sequence[Trace]) -> tuple[ReplayData, ReplayOutcome]:
    """Which stage answers each query and what it costs: labels play no part, so every answer counts as 1."""
    data = replay_data(policy, _relabelled(traces, lambda *_: True))
    return data, fold_replay(data, policy_thresholds(policy))


def _quality_values(policy: Policy, traces: Sequence[Trace], stages: Sequence[str]) -> list[float]:
    """The replayed quality of each query whose answered stages are all labelled."""
    labelled = [t for t in traces if all(t.stages[s].correct is not None or not t.stages[s].answered for s in stages)]
    if not labelled:
        return []
    data = replay_data(policy, labelled)
    return [float(q) for q in fold_replay(data, policy_thresholds(policy)).quality]


def _agreement_values(policy: Policy, traces: Sequence[Trace], grader: Grader) -> list[float]:
    """Per query answered before the last stage: 1 if its answer agrees with the last stage's, else 0."""
    last = policy.stages[-1].name
    usable = [t for t in traces if t.stages[last].answer is not None]
    if not usable:
        return []

    def agrees(name: str, stage: StageTrace, trace: Trace) -> bool:
        reference = trace.stages[last].answer
        assert reference is not None and stage.answer is not None
        return name == last or grader(stage.answer, reference)

    data = replay_data(policy, _relabelled(usable, agrees))
    outcome = fold_replay(data, policy_thresholds(policy))
    early = (outcome.answerer >= 0) & (outcome.answerer < data.k - 1)
    return [float(q) for q in outcome.quality[early]]


# -- checks --------------------------------------------------------------------------------------


def _rate_check(
    name: str, base: list[float], live: list[float], alpha: float, margin: float, min_rows: int, why_missing: str
) -> Check:
    if not base or not live:
        return Check(name, _mean(base), _mean(live), len(base), len(live), "not measured", gates=True, note=why_missing)
    # The baseline is a sample too: the promise is the lowest rate it supports (one-sided), less the margin.
    promised = rate_lower_bound(base, alpha) - margin
    if len(live) < min_rows:
        return Check(
            name, _mean(base), _mean(live), len(base), len(live), "too few rows", promised=promised, gates=True
        )
    test = rate_below(live, promised, alpha)
    return Check(
        name,
        _mean(base),
        test.rate,
        len(base),
        len(live),
        "drifted" if test.below(alpha) else "holds",
        p_value=test.p_value,
        promised=promised,
        upper_bound=test.upper_bound,
        method=f"one-sided {test.method}",
        gates=True,
    )


def _quality(
    policy: Policy,
    baseline: Sequence[Trace],
    live: Sequence[Trace],
    stages: Sequence[str],
    alpha: float,
    margin: float,
    min_rows: int,
) -> Check:
    base, now = _quality_values(policy, baseline, stages), _quality_values(policy, live, stages)
    why = "no labelled baseline" if not base else "no labelled live rows (give --labels, or --grader and references)"
    return _rate_check("quality", base, now, alpha, margin, min_rows, why)


def _agreement(
    policy: Policy,
    baseline: Sequence[Trace],
    live: Sequence[Trace],
    grader: Grader,
    alpha: float,
    margin: float,
    min_rows: int,
) -> Check:
    base, now = _agreement_values(policy, baseline, grader), _agreement_values(policy, live, grader)
    check = _rate_check(
        "agreement with the last stage", base, now, alpha, margin, min_rows, "no query answered before the last stage"
    )
    if check.promised is not None and check.promised <= 0:
        return _with_note(check, "the baseline never agrees: this grader cannot compare these answers")
    return check


def _scores(name: str, base: ReplayData, live: ReplayData, j: int, alpha: float, min_rows: int, strict: bool) -> Check:
    a = base.score[base.answered[:, j], j]
    b = live.score[live.answered[:, j], j]
    label = f"judge scores: {name}"
    if len(a) == 0 or len(b) == 0:
        return Check(label, _mean(a), _mean(b), len(a), len(b), "not measured", gates=strict, note="no answers")
    if len(b) < min_rows:
        return Check(label, _mean(a), _mean(b), len(a), len(b), "too few rows", gates=strict)
    d, p = ks_two_sample(a, b)
    status: Status = "shifted" if p < alpha else "steady"
    method = f"Kolmogorov-Smirnov (D = {d:.3f}; Bonferroni alpha {alpha:.3g})"
    return Check(label, _mean(a), _mean(b), len(a), len(b), status, p_value=p, method=method, gates=strict)


Run = tuple[ReplayData, ReplayOutcome]


def _escalation(base: Run, live: Run, alpha: float, min_rows: int, strict: bool) -> Check:
    def escalated(run: Run) -> int:
        data, outcome = run
        return int(np.count_nonzero(outcome.answerer != data.entry))

    n1, n2 = base[0].n, live[0].n
    k1, k2 = escalated(base), escalated(live)
    if n2 < min_rows:
        return Check("escalation rate", k1 / n1, k2 / n2, n1, n2, "too few rows", gates=strict)
    p = two_proportions(k1, n1, k2, n2)
    status: Status = "shifted" if p < alpha else "steady"
    return Check(
        "escalation rate", k1 / n1, k2 / n2, n1, n2, status, p_value=p, method="two-proportion z", gates=strict
    )


def _cost(base: Run, live: Run, alpha: float, min_rows: int, strict: bool) -> Check:
    a, b = base[1].cost, live[1].cost
    if len(b) < min_rows:
        return Check("cost per query", _mean(a), _mean(b), len(a), len(b), "too few rows", gates=strict)
    p = two_means(a, b)
    status: Status = "shifted" if p < alpha else "steady"
    return Check(
        "cost per query", _mean(a), _mean(b), len(a), len(b), status, p_value=p, method="Welch z", gates=strict
    )


def _mean(values: Sequence[float] | FloatArray) -> float | None:
    return float(np.mean(values)) if len(values) else None


def _with_note(check: Check, note: str) -> Check:
    return replace(check, note=note)
