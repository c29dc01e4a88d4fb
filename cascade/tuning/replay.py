"""Replay a policy on traces with no vendor call: which stage answers each query, at what cost and quality.

A trace row is the `StageResult` data the live cascade decides on (`stage_results`), and `cascade eval` folds
`cascade.decide` over each trace in plain Python (`fold_replay`): what eval reports is what the live cascade
would have done. Only the vendor calls are swapped for their traced outcomes; routing rules pick the entry stage
when the trace has the query text. Not replayed: the LLM classifier (a query no rule matches starts at the first
stage), budgets, deadlines and context-window skips.

`cascade tune` tries millions of threshold settings, too many to fold one by one: `ReplayData` also holds the
traces as arrays (n queries x k stages) for `replay`, the vectorised equivalent that `cascade.tuning.search`
builds on. A property test (tests/tuning/test_properties.py) holds the two to the same answers on random traces.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from cascade.decide import Rules, StageResult, accepts, fold, settle
from cascade.policy import Policy
from cascade.routing import route_by_rules
from cascade.tuning.traces import StageTrace, Trace, check_complete

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]
BoolArray = NDArray[np.bool_]


def accept_mask(threshold: float, confidence: FloatArray) -> BoolArray:
    """`accepts(threshold, c)` for every c at once (the rule is a comparison, so it broadcasts)."""
    return np.asarray(accepts(threshold, confidence), dtype=bool)  # type: ignore[arg-type]


def stage_result(rules: Rules, index: int, stage: StageTrace) -> StageResult:
    """One traced stage as the decision sees it under these rules (judged or not, which sets its cost)."""
    judged = rules.judged[index]
    if not stage.answered:
        return StageResult(index, "failed", cost_usd=stage.cost_usd if judged else stage.answer_cost())
    if not judged:
        return StageResult(index, "answered", cost_usd=stage.answer_cost())
    judge_failed = stage.error is not None  # an answered stage records an error only when its judge call failed
    return StageResult(index, "answered", stage.confidence, judge_failed=judge_failed, cost_usd=stage.cost_usd)


def stage_results(rules: Rules, names: Sequence[str], trace: Trace) -> tuple[StageResult, ...]:
    """Every stage of a trace as `StageResult`s, in the policy's order."""
    return tuple(stage_result(rules, j, trace.stages[name]) for j, name in enumerate(names))


@dataclass(frozen=True)
class ReplayData:
    """Traces ready to replay: per query its entry stage, its `StageResult`s and each stage's quality.

    The arrays (n x k) are the vectorised form for the threshold search: `confidence` is the judge's score,
    -inf where the stage gave no answer (never accepted) and +inf where `on_error: raise` ends the query there
    (always stops); `cost` is what reaching the stage costs. `stop_quality` / `stop_answerer` say what a query is
    worth and which stage's answer it returns if the cascade stops at a stage; their last column is the outcome
    of running to the end (the last stage, or the best earlier answer when it failed).
    """

    stages: tuple[str, ...]
    ids: tuple[str, ...]
    rules: Rules
    results: tuple[tuple[StageResult, ...], ...]
    entry: IntArray
    confidence: FloatArray
    cost: FloatArray
    stop_quality: FloatArray
    stop_answerer: IntArray
    alone_cost: FloatArray
    alone_quality: FloatArray

    @property
    def n(self) -> int:
        """How many queries."""
        return len(self.ids)

    @property
    def k(self) -> int:
        """How many stages."""
        return len(self.stages)

    def subset(self, rows: IntArray) -> ReplayData:
        """The same data for some queries only."""
        return ReplayData(
            self.stages,
            tuple(self.ids[i] for i in rows),
            self.rules,
            tuple(self.results[i] for i in rows),
            self.entry[rows],
            self.confidence[rows],
            self.cost[rows],
            self.stop_quality[rows],
            self.stop_answerer[rows],
            self.alone_cost[rows],
            self.alone_quality[rows],
        )


def replay_data(policy: Policy, traces: Sequence[Trace]) -> ReplayData:
    """Check the traces against the policy (every stage traced and labeled) and turn them into replay data."""
    names = tuple(s.name for s in policy.stages)
    check_complete(traces, names)
    rules = Rules.of(policy)
    n, k = len(traces), len(names)
    entry = np.zeros(n, dtype=np.int64)
    conf = np.zeros((n, k))
    cost = np.zeros((n, k))
    stop_q = np.zeros((n, k))
    stop_by = np.full((n, k), -1, dtype=np.int64)
    alone_cost = np.zeros((n, k))
    alone_q = np.zeros((n, k))
    results = []
    for i, trace in enumerate(traces):
        ruled = route_by_rules(policy, trace.query) if trace.query else None
        entry[i] = policy.stage_index(ruled[0]) if ruled else 0
        row = stage_results(rules, names, trace)
        results.append(row)
        for j, result in enumerate(row):
            cost[i, j] = result.cost_usd
            alone_cost[i, j] = trace.stages[names[j]].answer_cost()
            alone_q[i, j] = trace.stages[names[j]].quality()
            if rules.raise_on_error and result.failed:
                conf[i, j] = np.inf  # the query ends here, with no answer
            elif result.answered:
                conf[i, j], stop_q[i, j], stop_by[i, j] = result.confidence or 0.0, alone_q[i, j], j
            else:
                conf[i, j] = -np.inf
        if k > 0 and not np.isposinf(conf[i, k - 1]) and stop_by[i, k - 1] < 0:
            # The last stage failed: the decision's best effort among the stages tried before it.
            best = settle(row[int(entry[i]) : k - 1], "the last stage failed").stage
            if best is not None:
                stop_q[i, k - 1], stop_by[i, k - 1] = stop_q[i, best], best
    ids = tuple(t.id for t in traces)
    return ReplayData(names, ids, rules, tuple(results), entry, conf, cost, stop_q, stop_by, alone_cost, alone_q)


def policy_thresholds(policy: Policy) -> tuple[float, ...]:
    """The thresholds of every stage but the last, in order."""
    return tuple(s.threshold if s.threshold is not None else 0.0 for s in policy.stages[:-1])


def walk(data: ReplayData, thresholds: Sequence[float], start: IntArray, end: int) -> tuple[IntArray, FloatArray]:
    """Run the stages from `start` (per query) up to `end` (exclusive): the stage each query stops at (-1: it
    went past `end - 1`) and the cost paid on the way. The last stage always stops a query."""
    n, k = data.n, data.k
    stop = np.full(n, -1, dtype=np.int64)
    paid = np.zeros(n)
    going = np.ones(n, dtype=bool)
    for j in range(int(start.min(initial=end)), end):
        here = going & (start <= j)
        paid += np.where(here, data.cost[:, j], 0.0)
        stops = here if j == k - 1 else here & accept_mask(thresholds[j], data.confidence[:, j])
        stop[stops] = j
        going &= ~stops
    return stop, paid


@dataclass(frozen=True)
class ReplayOutcome:
    """Per query: what it cost, what it was worth, and which stage's answer it returned (-1: none)."""

    cost: FloatArray
    quality: FloatArray
    answerer: IntArray


def replay(data: ReplayData, thresholds: Sequence[float]) -> ReplayOutcome:
    """What the policy with these thresholds does on every traced query, vectorised (for the search)."""
    data.rules.with_thresholds(thresholds)  # checks the count
    stop, cost = walk(data, thresholds, data.entry, data.k)
    rows = np.arange(data.n)
    return ReplayOutcome(cost, data.stop_quality[rows, stop], data.stop_answerer[rows, stop])


def fold_replay(data: ReplayData, thresholds: Sequence[float]) -> ReplayOutcome:
    """What the policy with these thresholds does on every traced query: `cascade.decide` folded over each."""
    rules = data.rules.with_thresholds(thresholds)
    cost, quality = np.zeros(data.n), np.zeros(data.n)
    answerer = np.full(data.n, -1, dtype=np.int64)
    for i, row in enumerate(data.results):
        done, tried = fold(rules, int(data.entry[i]), row.__getitem__)
        cost[i] = sum(r.cost_usd for r in tried)
        if done.stage is not None:
            quality[i], answerer[i] = data.alone_quality[i, done.stage], done.stage
    return ReplayOutcome(cost, quality, answerer)


# -- figures ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Figures:
    """Mean quality and cost per query of one way of answering, with the share answered at each stage."""

    name: str
    queries: int
    quality: float
    cost_per_query: float
    shares: dict[str, float] = field(default_factory=dict)
    unanswered: float = 0.0


@dataclass(frozen=True)
class EvalReport:
    """The cascade's figures next to each stage alone and the oracle, on the same queries."""

    cascade: Figures
    alone: list[Figures]
    oracle: Figures
    thresholds: dict[str, float] | None = None

    @property
    def last(self) -> Figures:
        """The last stage alone: what the cascade saves against."""
        return self.alone[-1]

    def saving_against(self, other: Figures) -> float:
        """Share of `other`'s cost the cascade saves (negative: the cascade costs more)."""
        return 1 - self.cascade.cost_per_query / other.cost_per_query if other.cost_per_query else 0.0


def figures(data: ReplayData, outcome: ReplayOutcome, name: str = "cascade") -> Figures:
    """Mean quality, cost per query and answer shares of a replay."""
    n = max(data.n, 1)
    shares = {s: float(np.count_nonzero(outcome.answerer == j)) / n for j, s in enumerate(data.stages)}
    return Figures(
        name,
        data.n,
        float(outcome.quality.sum()) / n,
        float(outcome.cost.sum()) / n,
        shares,
        float(np.count_nonzero(outcome.answerer < 0)) / n,
    )


def report(data: ReplayData, outcome: ReplayOutcome, thresholds: Sequence[float] | None = None) -> EvalReport:
    """The figures of a replay, each stage alone, and the oracle (the cheapest best stage per query)."""
    n = max(data.n, 1)
    alone = [
        Figures(
            f"{s} alone",
            data.n,
            float(data.alone_quality[:, j].sum()) / n,
            float(data.alone_cost[:, j].sum()) / n,
            {s: 1.0},
        )
        for j, s in enumerate(data.stages)
    ]
    best = data.alone_quality.max(axis=1, initial=0.0)
    cost_if_best = np.where(data.alone_quality >= best[:, None], data.alone_cost, np.inf)
    pick = cost_if_best.argmin(axis=1)
    rows = np.arange(data.n)
    oracle_outcome = ReplayOutcome(data.alone_cost[rows, pick], best, pick.astype(np.int64))
    named = dict(zip(data.stages[:-1], thresholds, strict=True)) if thresholds is not None else None
    return EvalReport(figures(data, outcome), alone, figures(data, oracle_outcome, "oracle"), named)


def evaluate(data: ReplayData, thresholds: Sequence[float]) -> EvalReport:
    """Replay the thresholds (the decision folded over each trace) and report."""
    return report(data, fold_replay(data, thresholds), thresholds)
