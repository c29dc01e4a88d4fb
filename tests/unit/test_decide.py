"""The decision core on its own: plain data in, the next step out."""

from __future__ import annotations

import pytest

from cascade.decide import Done, Rules, StageResult, Try, decide, fold, settle

THREE = Rules(thresholds=(0.7, 0.8, 0.0), judged=(True, True, False), raise_on_error=False)


def answered(stage: int, confidence: float | None, cost: float = 0.001) -> StageResult:
    return StageResult(stage, "answered", confidence, cost_usd=cost)


def failed(stage: int) -> StageResult:
    return StageResult(stage, "failed")


def test_the_entry_stage_is_tried_first() -> None:
    assert decide(THREE, 0, []) == Try(0)
    assert decide(THREE, 2, []) == Try(2)


def test_a_confidence_at_the_threshold_is_accepted_and_below_it_escalates() -> None:
    assert decide(THREE, 0, [answered(0, 0.7)]) == Done(0, True, "accepted")
    assert decide(THREE, 0, [answered(0, 0.69)]) == Try(1)


def test_the_last_stage_is_accepted_judged_or_not() -> None:
    assert decide(THREE, 0, [answered(0, 0.1), answered(1, 0.2), answered(2, None)]) == Done(2, True, "accepted")
    judged_last = Rules((0.7, 0.8, 0.99), (True, True, True), False)
    assert decide(judged_last, 2, [answered(2, 0.0)]) == Done(2, True, "accepted")


def test_a_failed_stage_escalates_and_a_failed_last_stage_returns_the_best_earlier_answer() -> None:
    assert decide(THREE, 0, [failed(0)]) == Try(1)
    done = decide(THREE, 0, [answered(0, 0.6), answered(1, 0.6), failed(2)])
    assert done == Done(0, False, "best effort (no later stage answered)")  # the earliest of equals
    assert decide(THREE, 0, [answered(0, 0.3), answered(1, 0.6), failed(2)]).stage == 1  # type: ignore[union-attr]


def test_no_answer_at_all_is_done_with_no_stage() -> None:
    assert decide(THREE, 0, [failed(0), failed(1), failed(2)]) == Done(None, False, "every stage failed")


def test_on_error_raise_ends_the_query_at_the_first_failure_judge_calls_included() -> None:
    strict = Rules(THREE.thresholds, THREE.judged, raise_on_error=True)
    assert decide(strict, 0, [failed(0)]) == Done(None, False, "on_error=raise: a call failed")
    judge_down = StageResult(0, "answered", 0.0, judge_failed=True)
    assert decide(strict, 0, [judge_down]).stage is None  # type: ignore[union-attr]
    assert decide(THREE, 0, [judge_down]) == Try(1)  # escalate: a failed judge is confidence 0
    assert decide(strict, 0, [StageResult(0, "skipped")]) == Try(1)  # a skip is no failure


def test_settle_ignores_unjudged_and_unanswered_stages() -> None:
    assert settle([failed(0), answered(1, None)], "budget exhausted") == Done(None, False, "budget exhausted")
    assert settle([answered(0, 0.2), failed(1)], "budget exhausted") == Done(0, False, "best effort (budget exhausted)")


def test_fold_runs_the_decision_over_known_results() -> None:
    row = (answered(0, 0.5), answered(1, 0.9), answered(2, None))
    done, tried = fold(THREE, 0, row.__getitem__)
    assert done == Done(1, True, "accepted") and [r.stage for r in tried] == [0, 1]
    done, tried = fold(THREE.with_thresholds((0.5, 0.8)), 0, row.__getitem__)
    assert done.stage == 0 and len(tried) == 1


def test_with_thresholds_checks_the_count() -> None:
    with pytest.raises(ValueError, match="3 stages need 2 thresholds"):
        THREE.with_thresholds((0.5,))
