"""The policy's meaning, written once: given what the stages tried so far produced, what happens next.

The live cascade (`cascade.flow`), `cascade eval` (`cascade.tuning.replay`) and the tests of `cascade tune`'s
accelerated search all ask `decide`, so what offline replay predicts is what production does. Plain data and
pure functions: no I/O, no logging, no pydantic.

    rules = Rules.of(policy)
    results = []
    while isinstance(step := decide(rules, entry, results), Try):
        results.append(<run stage step.stage>)
    # step is a Done: whose answer (or none), accepted or best effort, and why

The rules, in words: stages run in order from the entry stage. A stage that fails to answer (a vendor error, a
block, a truncated reply) moves the query on; with `on_error: raise` it ends the query with no answer, as does a
judge call that fails. A judged answer is accepted when its confidence is at least its stage's threshold (an
unreadable verdict is confidence 0); the last stage's answer is accepted whether or not it is judged. When no
stage is accepted, the best-scored answer so far is returned (the earliest of equals), as "best effort".
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from cascade.policy import Policy

StageOutcome = Literal["answered", "failed", "skipped"]


def accepts(threshold: float, confidence: float) -> bool:
    """The acceptance rule. Also used by the vectorised threshold search, which must rank candidates the same way."""
    return confidence >= threshold


@dataclass(frozen=True, slots=True)
class Rules:
    """What of a policy the decision reads: per stage, its threshold and whether it is judged; `on_error`."""

    thresholds: tuple[float, ...]  # one per stage; the last stage's is never read
    judged: tuple[bool, ...]
    raise_on_error: bool

    @classmethod
    def of(cls, policy: Policy) -> Rules:
        """The rules of a policy (a stage without a threshold accepts any confidence)."""
        k = len(policy.stages)
        return cls(
            thresholds=tuple(s.threshold if s.threshold is not None else 0.0 for s in policy.stages),
            judged=tuple(i < k - 1 or policy.judge_last_stage for i in range(k)),
            raise_on_error=policy.on_error == "raise",
        )

    @property
    def stages(self) -> int:
        """How many stages the policy has."""
        return len(self.thresholds)

    def with_thresholds(self, thresholds: Sequence[float]) -> Rules:
        """The same rules with other thresholds for every stage but the last (what `tune` tries)."""
        if len(thresholds) != self.stages - 1:
            raise ValueError(f"{self.stages} stages need {self.stages - 1} thresholds, got {len(thresholds)}")
        return replace(self, thresholds=(*thresholds, self.thresholds[-1]))


@dataclass(frozen=True, slots=True)
class StageResult:
    """What one stage produced for a query: live (`cascade.flow`) or read from a trace (`cascade.tuning`).

    `confidence` is None when the stage was not judged; 0.0 when its verdict was unreadable or its judge call
    failed (`judge_failed`). `cost_usd` is what the stage cost: its answer call, plus its judge call if judged.
    """

    stage: int
    outcome: StageOutcome
    confidence: float | None = None
    judge_failed: bool = False
    cost_usd: float = 0.0

    @property
    def answered(self) -> bool:
        return self.outcome == "answered"

    @property
    def failed(self) -> bool:
        """A failure in `on_error`'s sense: no answer, or an answer whose judge call failed."""
        return self.outcome == "failed" or self.judge_failed


@dataclass(frozen=True, slots=True)
class Try:
    """Run this stage next."""

    stage: int


@dataclass(frozen=True, slots=True)
class Done:
    """The query is settled: the answer of `stage` (None: no answer), accepted or best effort, and why."""

    stage: int | None
    accepted: bool
    reason: str


Decision = Try | Done


def decide(rules: Rules, entry: int, results: Sequence[StageResult]) -> Decision:
    """What happens next, given the entry stage and the results of the stages tried so far, in order."""
    if not results:
        return Try(entry) if entry < rules.stages else Done(None, False, "the policy has no stage to try")
    last = results[-1]
    if last.failed and rules.raise_on_error:
        return Done(None, False, "on_error=raise: a call failed")
    if last.answered and is_accepted(rules, last):
        return Done(last.stage, True, "accepted")
    if last.stage + 1 < rules.stages:
        return Try(last.stage + 1)
    answered = any(r.answered for r in results)
    return settle(results, "no later stage answered" if answered else "every stage failed")


def is_accepted(rules: Rules, result: StageResult) -> bool:
    """An answer the policy accepts: the last stage's, or one whose confidence meets its stage's threshold."""
    if result.stage == rules.stages - 1:
        return True
    return accepts(rules.thresholds[result.stage], result.confidence or 0.0)


def settle(results: Sequence[StageResult], reason: str) -> Done:
    """Stop now (no stage accepted, or a live limit was reached): the best-scored answer so far, if any."""
    best: StageResult | None = None
    for result in results:
        scored = result.answered and result.confidence is not None
        if scored and (best is None or (result.confidence or 0.0) > (best.confidence or 0.0)):
            best = result
    if best is None:
        return Done(None, False, reason)
    return Done(best.stage, False, f"best effort ({reason})")


def fold(rules: Rules, entry: int, result_at: Callable[[int], StageResult]) -> tuple[Done, list[StageResult]]:
    """Run the decision over results known in advance (a trace): the outcome and the stages it went through."""
    results: list[StageResult] = []
    while isinstance(step := decide(rules, entry, results), Try):
        results.append(result_at(step.stage))
    return step, results
