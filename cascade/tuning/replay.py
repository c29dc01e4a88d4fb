"""Replay a policy on traces with no vendor call: which stage answers each query, at what cost and quality.

A trace row is the `StageResult` data the live cascade decides on (`ReplayData.result`), and `cascade eval`
folds `cascade.decide` over each trace (`fold_replay`): what eval reports is what the live cascade would have
done. Only the vendor calls are swapped for their traced outcomes; routing rules pick the entry stage
when the trace has the query text. Not replayed: the LLM classifier (a query no rule matches starts at the first
stage), budgets, deadlines and context-window skips.

`cascade tune` tries millions of threshold settings, too many to fold one by one: `ReplayData` also holds the
traces as arrays (n queries x k stages) for `replay`, the vectorised equivalent that `cascade.tuning.search`
builds on. A property test (tests/tuning/test_properties.py) holds the two to the same answers on random traces.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial

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


@dataclass(frozen=True)
class TraceColumns:
    """What the replay reads of each trace, as arrays (n queries x k stages, in the policy's order).

    `cascade.tuning.columns` reads a traces file straight into this form; `columns_of` makes it from `Trace`s.
    """

    ids: tuple[str, ...]
    entry: IntArray  # the stage each query starts at (routing rules on its text; 0 without one)
    answered: BoolArray
    confidence: FloatArray  # the judge's score in [0, 1] (0 when it failed)
    cost_usd: FloatArray  # the answer call plus its judge call
    answer_cost: FloatArray  # the answer call alone (cost_usd minus judge_cost_usd when traced)
    quality: FloatArray  # `correct` as a number; 0 where the stage gave no answer
    error: BoolArray  # the stage recorded an error (on an answered stage: its judge call failed)
    # The stage was not asked: its model cannot serve the query (no answer, and no failure). None: no stage was.
    skipped: BoolArray | None = None


def entry_stage(policy: Policy, query: str | None) -> int:
    """The stage a traced query starts at: the first routing rule its text matches, else the first stage."""
    ruled = route_by_rules(policy, query) if query else None
    return policy.stage_index(ruled[0]) if ruled else 0


def columns_of(policy: Policy, traces: Sequence[Trace]) -> TraceColumns:
    """The columns of validated traces (after `check_complete`: every stage traced, every answer labeled)."""
    names = [s.name for s in policy.stages]
    stages = [[t.stages[name] for name in names] for t in traces]
    shape = (len(traces), len(names))

    def grid(value: Callable[[StageTrace], float]) -> FloatArray:
        return np.array([[value(s) for s in row] for row in stages], dtype=np.float64).reshape(shape)

    return TraceColumns(
        ids=tuple(t.id for t in traces),
        entry=np.array([entry_stage(policy, t.query) for t in traces], dtype=np.int64),
        answered=grid(lambda s: s.answered).astype(bool),
        confidence=grid(lambda s: s.confidence),
        cost_usd=grid(lambda s: s.cost_usd),
        answer_cost=grid(StageTrace.answer_cost),
        quality=grid(StageTrace.quality),
        error=grid(lambda s: s.error is not None).astype(bool),
        skipped=grid(lambda s: s.skipped is not None).astype(bool),
    )


@dataclass(frozen=True)
class ReplayData:
    """Traces ready to replay: per query its entry stage, what each stage produced, and each stage's quality.

    `result(i, j)` is stage j of query i as the decision sees it (a `StageResult`). The arrays (n x k) are the
    vectorised form for the threshold search: `confidence` is the judge's score, -inf where the stage gave no
    answer (never accepted) and +inf where `on_error: raise` ends the query there (always stops); `cost` is what
    reaching the stage costs. `stop_quality` / `stop_answerer` say what a query is worth and which stage's
    answer it returns if the cascade stops at a stage; their last column is the outcome of running to the end
    (the last stage, or the best earlier answer when it failed).
    """

    stages: tuple[str, ...]
    ids: tuple[str, ...]
    rules: Rules
    answered: BoolArray
    score: FloatArray  # the judge's confidence as traced
    judge_failed: BoolArray
    skipped: BoolArray
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

    def result(self, i: int, j: int) -> StageResult:
        """Stage j of query i as the decision sees it: judged or not (which sets its cost), failed or answered."""
        cost = float(self.cost[i, j])
        if self.skipped[i, j]:
            return StageResult(j, "skipped", cost_usd=cost)
        if not self.answered[i, j]:
            return StageResult(j, "failed", cost_usd=cost)
        if not self.rules.judged[j]:
            return StageResult(j, "answered", cost_usd=cost)
        return StageResult(j, "answered", float(self.score[i, j]), bool(self.judge_failed[i, j]), cost)

    @property
    def results(self) -> Sequence[tuple[StageResult, ...]]:
        """Every query's `StageResult`s, built when asked for (a million traces would not fit as objects)."""
        return _Results(self)

    def subset(self, rows: IntArray) -> ReplayData:
        """The same data for some queries only."""
        return ReplayData(
            self.stages,
            tuple(map(self.ids.__getitem__, rows.tolist())),
            self.rules,
            self.answered[rows],
            self.score[rows],
            self.judge_failed[rows],
            self.skipped[rows],
            self.entry[rows],
            self.confidence[rows],
            self.cost[rows],
            self.stop_quality[rows],
            self.stop_answerer[rows],
            self.alone_cost[rows],
            self.alone_quality[rows],
        )


class _Results(Sequence[tuple[StageResult, ...]]):
    def __init__(self, data: ReplayData) -> None:
        self._data = data

    def __len__(self) -> int:
        return self._data.n

    def __getitem__(self, i: int) -> tuple[StageResult, ...]:  # type: ignore[override]
        return tuple(self._data.result(i, j) for j in range(self._data.k))

    def __iter__(self) -> Iterator[tuple[StageResult, ...]]:
        return (self[i] for i in range(len(self)))


def replay_data(policy: Policy, traces: Sequence[Trace]) -> ReplayData:
    """Check the traces against the policy (every stage traced and labeled) and turn them into replay data."""
    check_complete(traces, [s.name for s in policy.stages])
    return replay_data_from_columns(policy, columns_of(policy, traces))


def replay_data_from_columns(policy: Policy, columns: TraceColumns) -> ReplayData:
    """Replay data from trace columns (checked: every stage traced, every answer labeled)."""
    names = tuple(s.name for s in policy.stages)
    rules = Rules.of(policy)
    n, k = columns.answered.shape
    judged = np.array(rules.judged, dtype=bool)
    answered = columns.answered
    cost = np.where(judged, columns.cost_usd, columns.answer_cost)
    judge_failed = answered & columns.error & judged
    # A skipped stage gave no answer but did not fail: `on_error: raise` moves past it, as the live cascade does.
    skipped = columns.skipped if columns.skipped is not None else np.zeros_like(answered)
    failed = (~answered & ~skipped) | judge_failed
    conf = np.where(answered, np.where(judged, columns.confidence, 0.0), -np.inf)
    if rules.raise_on_error:
        conf = np.where(failed, np.inf, conf)  # the query ends here, with no answer
    stop_q = np.where(answered & ~(failed & rules.raise_on_error), columns.quality, 0.0)
    stages = np.broadcast_to(np.arange(k), (n, k))
    stop_by = np.where(answered & ~(failed & rules.raise_on_error), stages, -1).astype(np.int64)
    data = ReplayData(
        names, columns.ids, rules, answered, columns.confidence, judge_failed, skipped, columns.entry, conf, cost,
        stop_q, stop_by, columns.answer_cost, np.where(answered, columns.quality, 0.0),
    )  # fmt: skip
    if k > 0:
        # The last stage failed: the decision's best effort among the stages tried before it.
        for i in np.flatnonzero(~np.isposinf(conf[:, k - 1]) & (stop_by[:, k - 1] < 0)):
            tried = [data.result(int(i), j) for j in range(int(columns.entry[i]), k - 1)]
            best = settle(tried, "the last stage failed").stage
            if best is not None:
                stop_q[i, k - 1], stop_by[i, k - 1] = stop_q[i, best], best
    return data


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
    """What the policy with these thresholds does on every traced query: `cascade.decide` folded over each.

    Queries the decision cannot tell apart are folded once, so a million traces take a second, not a minute:
    `decide` reads a confidence only by comparing it with its stage's threshold (`accepts`) and with the other
    stages' confidences (the best effort), so queries with the same entry stage, the same outcome at every
    stage, the same acceptances and the same order of confidences go the same way. What each query pays and is
    worth is then read from its own trace. tests/tuning/test_properties.py holds this to a plain fold of
    `decide` over every trace.
    """
    rules = data.rules.with_thresholds(thresholds)
    n, k = data.n, data.k
    if n == 0:
        return ReplayOutcome(np.zeros(0), np.zeros(0), np.zeros(0, dtype=np.int64))
    scored = data.answered & np.array(rules.judged, dtype=bool)
    columns = [data.entry[:, None], data.answered, data.judge_failed]
    columns += [scored[:, [j]] & accept_mask(rules.thresholds[j], data.score[:, [j]]) for j in range(k)]
    for j in range(k):
        for other in range(j + 1, k):
            both = scored[:, j] & scored[:, other]
            columns.append((np.sign(data.score[:, j] - data.score[:, other]) * both)[:, None])
    signature = np.concatenate([np.asarray(c, dtype=np.int64).reshape(n, -1) + 1 for c in columns], axis=1)
    radix = max(k, 2) + 2  # every column holds 0 .. k + 1
    if signature.shape[1] * np.log2(radix) < 62:  # one integer per query: a faster sort than rows
        signature = signature @ radix ** np.arange(signature.shape[1], dtype=np.int64)
    _, first, which = np.unique(signature, axis=0, return_index=True, return_inverse=True)
    tried = np.zeros((len(first), k), dtype=bool)
    answer = np.full(len(first), -1, dtype=np.int64)
    for group, i in enumerate(first):
        done, steps = fold(rules, int(data.entry[i]), partial(data.result, int(i)))
        tried[group, [r.stage for r in steps]] = True
        answer[group] = -1 if done.stage is None else done.stage
    which = which.reshape(-1)
    answerer = answer[which]
    cost = np.where(tried[which], data.cost, 0.0).sum(axis=1)
    quality = np.where(answerer >= 0, data.alone_quality[np.arange(n), np.maximum(answerer, 0)], 0.0)
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
