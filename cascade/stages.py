"""The three kinds of vendor call a query makes, as steps of the flow: classify (route), answer, judge.

`run_stage` answers with one stage and, where the policy judges it, asks its judge; what it returns is the
`StageResult` that `cascade.decide` reads, with the completion beside it.
"""

from __future__ import annotations

from collections.abc import Generator

from cascade.budget import ANSWER_BYTES_PER_TOKEN, call_cost_bound
from cascade.calls import Call, Outcome, Step, attempt_error, record_failure, record_success, vendor_call
from cascade.context import QueryContext
from cascade.decide import StageResult
from cascade.errors import JudgeError, UnusableAnswerError
from cascade.judge import Verdict, build_judge_prompt, parse_json_verdict, score_from_logprobs
from cascade.policy import Stage
from cascade.providers import returns_logprobs
from cascade.providers.base import Completion, CompletionRequest, Message
from cascade.result import AttemptError
from cascade.routing import classifier_prompt, parse_label, route_by_rules

LOGPROBS_TOP_N = 20


def choose_entry(ctx: QueryContext) -> Generator[Step, Outcome, tuple[str, str]]:
    """The entry stage and why: the first matching routing rule, else the classifier's label, else the first stage."""
    policy = ctx.policy
    if (ruled := route_by_rules(policy, ctx.text)) is not None:
        ctx.event("cascade.route", entry_stage=ruled[0], route=ruled[1])
        return ruled
    classifier = policy.routing.classifier
    first = policy.stages[0].name
    if classifier is None:
        return first, "default"
    request = CompletionRequest(
        model=classifier.model,
        messages=(Message("user", classifier_prompt(classifier, ctx.text)),),
        max_output_tokens=classifier.max_output_tokens,
        timeout_s=classifier.timeout_s,
    )
    reply = yield from vendor_call(ctx, Call("classifier", "classify", classifier.provider, request), retries=0)
    if reply is None:
        why = "over budget" if ctx.trace.budget_refused else "failed"
        return first, f"default (classifier {why})"
    label = parse_label(reply.completion.text)
    if label is None:
        unreadable = AttemptError(type="JudgeError", message=f"unreadable label: {reply.completion.text!r}")
        ctx.trace.record(reply.attempt(error=unreadable))
        return first, "default (classifier unreadable)"
    ctx.trace.record(reply.attempt(label=label))
    stage = classifier.labels.get(label, first)  # type: ignore[call-overload]
    ctx.event("cascade.route", entry_stage=stage, route=f"classifier:{label}")
    return stage, f"classifier:{label}"


def run_stage(
    ctx: QueryContext, index: int, judged: bool
) -> Generator[Step, Outcome, tuple[StageResult, Completion | None]]:
    """One stage's answer, judged if `judged`: its result for the decision, and its completion (None: failed)."""
    stage = ctx.policy.stages[index]
    spent_before = ctx.trace.spent_usd
    completion = yield from answer(ctx, stage)
    if completion is None:
        return StageResult(index, "failed", cost_usd=ctx.trace.spent_usd - spent_before), None
    if not judged:
        return StageResult(index, "answered", cost_usd=ctx.trace.spent_usd - spent_before), completion
    verdict = yield from judge(ctx, stage, completion.text or "")
    confidence = verdict.confidence if verdict is not None else 0.0
    cost = ctx.trace.spent_usd - spent_before
    return StageResult(index, "answered", confidence, judge_failed=verdict is None, cost_usd=cost), completion


def answer_request(ctx: QueryContext, stage: Stage) -> CompletionRequest:
    """What a stage is asked: the query, under the stage's own system prompt (first) and the caller's."""
    system = ctx.spec.system
    if stage.system_prompt:
        system = f"{stage.system_prompt}\n\n{system}" if system else stage.system_prompt
    return CompletionRequest(
        model=stage.model,
        messages=ctx.spec.messages,
        max_output_tokens=stage.max_output_tokens,
        temperature=stage.temperature,
        system=system,
        timeout_s=stage.timeout_s,
    )


def judge_request(ctx: QueryContext, stage: Stage, answer_text: str) -> CompletionRequest:
    """What the stage's judge is asked about an answer (JSON verdict, or one score token where logprobs exist)."""
    config = ctx.policy.judge_for(stage)
    method = config.method if returns_logprobs(config.provider, config_backend(ctx, config.provider)) else "json"
    prompt = build_judge_prompt(ctx.text, answer_text, instructions=config.prompt, method=method)
    return CompletionRequest(
        model=config.model,
        messages=(Message("user", prompt),),
        max_output_tokens=config.max_output_tokens,
        temperature=config.temperature,
        timeout_s=config.timeout_s,
        top_logprobs=LOGPROBS_TOP_N if method == "logprobs" else None,
    )


def stage_cost_bound(ctx: QueryContext, stage: Stage, judged: bool) -> float:
    """What to reserve before a stage starts: its answer call and, if judged, its judge call (`cascade.budget`)."""
    prices = ctx.spec.prices
    cost = call_cost_bound(prices, answer_request(ctx, stage))
    if judged:
        answer_bytes = stage.max_output_tokens * ANSWER_BYTES_PER_TOKEN
        cost += call_cost_bound(prices, judge_request(ctx, stage, ""), extra_bytes=answer_bytes)
    return cost


def answer(ctx: QueryContext, stage: Stage) -> Generator[Step, Outcome, Completion | None]:
    """The stage's answer, recorded; None when the call failed or the reply is no answer (blocked, truncated)."""
    request = answer_request(ctx, stage)
    reply = yield from vendor_call(ctx, Call(stage.name, "answer", stage.provider, request), retries=stage.retries)
    if reply is None:
        return None
    completion = reply.completion
    if not completion.usable:
        try:
            completion.answer_text()  # raises the error that says why there is no answer
        except UnusableAnswerError as exc:
            record_failure(ctx, reply.attempt(error=attempt_error(exc)))
            return None
    text = {"query": ctx.text, "answer": completion.text} if ctx.policy.log_text else {}
    record_success(ctx, "cascade.answer", reply.attempt(), **text)
    return completion


def judge(ctx: QueryContext, stage: Stage, answer_text: str) -> Generator[Step, Outcome, Verdict | None]:
    """The judge's verdict on an answer, recorded; an unreadable verdict is confidence 0, a failed call None."""
    config = ctx.policy.judge_for(stage)
    request = judge_request(ctx, stage, answer_text)
    reply = yield from vendor_call(ctx, Call(stage.name, "judge", config.provider, request), retries=config.retries)
    if reply is None:
        return None
    completion = reply.completion
    try:
        if request.top_logprobs is not None:
            verdict = score_from_logprobs(completion.first_token_logprobs, completion.text)
        else:
            verdict = parse_json_verdict(completion.text)
    except JudgeError as exc:
        failed = reply.attempt(confidence=0.0, threshold=stage.threshold, error=attempt_error(exc))
        record_failure(ctx, failed)
        return Verdict(confidence=0.0, reason="")  # an unreadable verdict escalates, like a low score
    judged = reply.attempt(confidence=verdict.confidence, threshold=stage.threshold, judge_reason=verdict.reason)
    record_success(ctx, "cascade.judge", judged, confidence=verdict.confidence, threshold=stage.threshold)
    return verdict


def config_backend(ctx: QueryContext, provider: str) -> str | None:
    """The backend a policy names for a provider (google: genai or generativeai), if any."""
    config = ctx.policy.providers.get(provider)  # type: ignore[call-overload]
    return config.backend if config is not None else None
