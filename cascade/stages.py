"""The three kinds of vendor call a query makes, as steps of the flow: classify (route), answer, judge.

`run_stage` answers with one stage and, where the policy judges it, asks its judge; what it returns is the
`StageResult` that `cascade.decide` reads, with the completion beside it.
"""

from __future__ import annotations

import json
from collections.abc import Generator
from dataclasses import dataclass
from typing import Any

from cascade.budget import ANSWER_BYTES_PER_TOKEN, call_cost_bound
from cascade.calls import Call, Outcome, Step, attempt_error, record_failure, record_success, vendor_call
from cascade.context import QueryContext
from cascade.decide import StageResult
from cascade.errors import JudgeError, UnusableAnswerError
from cascade.judge import (
    Verdict,
    build_judge_prompt,
    conversation_view,
    parse_json_verdict,
    render_tool_calls,
    score_from_logprobs,
)
from cascade.policy import Stage
from cascade.providers import returns_logprobs
from cascade.providers.base import Completion, CompletionRequest, Message
from cascade.result import AttemptError
from cascade.routing import classifier_prompt, parse_label, route_by_rules
from cascade.tools import check_tool_calls

LOGPROBS_TOP_N = 20


@dataclass(frozen=True, slots=True)
class Answer:
    """A stage's answer once checked: the completion, and the structured answer it holds (None: not asked for, or
    the answer is tool calls)."""

    completion: Completion
    output: Any = None

    @property
    def structured(self) -> bool:
        """True when the answer was checked against a structure (a schema, or the tools' parameters)."""
        return self.output is not None or bool(self.completion.tool_calls)

    def shown(self) -> str:
        """The answer as the judge and the traces show it: the text, or its tool calls as JSON."""
        completion = self.completion
        if completion.tool_calls:
            return render_tool_calls(completion.text or "", completion.tool_calls)
        return completion.text or ""


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
) -> Generator[Step, Outcome, tuple[StageResult, Answer | None]]:
    """One stage's answer, judged if `judged`: its result for the decision, and its answer (None: failed).

    A structured answer that validates on a stage with `accept_valid_output` is not judged: confidence 1.0."""
    stage = ctx.policy.stages[index]
    spent_before = ctx.trace.spent_usd
    answered = yield from answer(ctx, stage)
    if answered is None:
        return StageResult(index, "failed", cost_usd=ctx.trace.spent_usd - spent_before), None
    if not judged:
        return StageResult(index, "answered", cost_usd=ctx.trace.spent_usd - spent_before), answered
    if stage.accept_valid_output and answered.structured:
        return StageResult(index, "answered", 1.0, cost_usd=ctx.trace.spent_usd - spent_before), answered
    verdict = yield from judge(ctx, stage, answered.shown())
    confidence = verdict.confidence if verdict is not None else 0.0
    cost = ctx.trace.spent_usd - spent_before
    return StageResult(index, "answered", confidence, judge_failed=verdict is None, cost_usd=cost), answered


def answer_request(ctx: QueryContext, stage: Stage) -> CompletionRequest:
    """What a stage is asked: the query, under the stage's own system prompt (first) and the caller's."""
    system = ctx.spec.system
    if stage.system_prompt:
        system = f"{stage.system_prompt}\n\n{system}" if system else stage.system_prompt
    spec = ctx.spec
    return CompletionRequest(
        model=stage.model,
        messages=spec.messages,
        max_output_tokens=stage.max_output_tokens,
        temperature=stage.temperature,
        system=system,
        timeout_s=stage.timeout_s,
        output=spec.output_schema,
        tools=spec.tools,
        tool_choice=spec.tool_choice,
    )


def judge_request(ctx: QueryContext, stage: Stage, answer_text: str) -> CompletionRequest:
    """What the stage's judge is asked about an answer (JSON verdict, or one score token where logprobs exist):
    the conversation before the query (up to the judge's `max_context_chars`), the query, what the answer had to
    fit, and the answer."""
    config = ctx.policy.judge_for(stage)
    kind = ctx.policy.provider_kind(config.provider)  # a declared endpoint answers for what it speaks
    method = config.method if returns_logprobs(kind, config_backend(ctx, config.provider)) else "json"
    spec = ctx.spec
    history, query = conversation_view(spec.messages, spec.system, config.max_context_chars)
    prompt = build_judge_prompt(
        query, answer_text, instructions=config.prompt, method=method, history=history, requirements=_requirements(ctx)
    )
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


def _requirements(ctx: QueryContext) -> str:
    """What the answer had to fit, for the judge: the output schema and the tools offered, as JSON."""
    spec = ctx.spec
    shown: dict[str, Any] = {}
    if spec.output is not None:
        shown["output_schema"] = spec.output.schema
    if spec.tools:
        shown["tools"] = [
            {"name": t.name, "description": t.description, "parameters": t.parameters} for t in spec.tools
        ]
    return json.dumps(shown, ensure_ascii=False) if shown else ""


def answer(ctx: QueryContext, stage: Stage) -> Generator[Step, Outcome, Answer | None]:
    """The stage's answer, recorded; None when the call failed or the reply is no answer (blocked, truncated, or
    not the structure asked for: those were billed, and are recorded as errors)."""
    request = answer_request(ctx, stage)
    streamed = ctx.showing is not None and ctx.showing.streams(last=stage is ctx.policy.stages[-1])
    call = Call(stage.name, "answer", stage.provider, request, stream=streamed)
    reply = yield from vendor_call(ctx, call, retries=stage.retries)
    if reply is None:
        return None
    completion = reply.completion
    try:
        answered = checked(ctx, completion)
    except UnusableAnswerError as exc:
        record_failure(ctx, reply.attempt(error=attempt_error(exc)))
        return None
    text = {"query": ctx.text, "answer": answered.shown()} if ctx.policy.log_text else {}
    record_success(ctx, "cascade.answer", reply.attempt(), **text)
    return answered


def checked(ctx: QueryContext, completion: Completion) -> Answer:
    """The completion as an answer, or the `UnusableAnswerError` that says why it is none: blocked, truncated, a
    tool call that breaks the tools offered, a structured answer that does not fit (`OutputSchemaError`)."""
    spec = ctx.spec
    if not completion.usable:
        completion.answer_text()  # raises the error that says why there is no answer
    if spec.tools or completion.tool_calls:
        check_tool_calls(completion, spec.tools, spec.tool_choice)
    if spec.output is not None and not completion.tool_calls:
        return Answer(completion, spec.output.validate(completion))
    return Answer(completion)


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
    config = ctx.policy.providers.get(provider)
    return config.backend if config is not None else None
