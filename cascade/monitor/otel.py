"""OpenTelemetry spans and metrics: one span per query, one child span per vendor call, and the cascade's metrics.

Imported only when `opentelemetry-api` is installed (`cascade.monitor` checks first). The API's tracer and meter
are proxies: until the application installs a tracer or meter provider (the SDK, or a vendor's distribution),
every span and instrument is a no-op, so nothing is emitted and nothing is computed for it (attributes are set
only on a recording span).

A call span is the current span while the vendor's SDK runs (the sync driver runs it in the same thread, the
async driver in the same task), so the SDKs' own instrumentations (`opentelemetry-instrumentation-openai-v2` and
its peers) nest their spans under ours. Attributes follow the GenAI semantic conventions (`gen_ai.*`, including
the older `gen_ai.system` beside its successor `gen_ai.provider.name`); the cascade's own are under `cascade.*`.
No query or answer text is put on a span unless the policy says `log_text: true`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import metrics, trace
from opentelemetry.trace import Link, Span, SpanKind, Status, StatusCode

from cascade import __version__
from cascade.calls import Call
from cascade.context import QueryContext
from cascade.decide import accepts
from cascade.result import Attempt, CascadeResult

SCOPE = "cascade"
# gen_ai.provider.name's well-known values; google-genai with an API key is the Gemini API.
_PROVIDER_NAMES = {"openai": "openai", "anthropic": "anthropic", "google": "gcp.gemini"}
# Judge scores are tenths (0-10 / 10): one bucket per score; logprob-weighted scores fall between.
_SCORE_BUCKETS = [round(0.05 + 0.1 * i, 2) for i in range(10)]

Attributes = dict[str, Any]


class Telemetry:
    """The tracer and the instruments of one `Monitor`; providers default to the global ones (the API's proxies)."""

    def __init__(self, tracer_provider: Any = None, meter_provider: Any = None) -> None:
        self.tracer = trace.get_tracer(SCOPE, __version__, tracer_provider=tracer_provider)
        meter = metrics.get_meter(SCOPE, __version__, meter_provider=meter_provider)
        self.queries = meter.create_counter(
            "cascade.queries", unit="{query}", description="Queries answered or given up, by policy and outcome."
        )
        self.escalations = meter.create_counter(
            "cascade.escalations", unit="{escalation}", description="Queries that moved on from a stage, by stage."
        )
        self.judge_score = meter.create_histogram(
            "cascade.judge.score",
            unit="1",
            description="The judge's confidence in each answer it graded, by stage.",
            explicit_bucket_boundaries_advisory=_SCORE_BUCKETS,
        )
        self.cost = meter.create_counter("cascade.cost", unit="USD", description="What the queries cost.")
        self.savings = meter.create_up_down_counter(
            "cascade.savings",
            unit="USD",
            description="ESTIMATE: the last stage alone minus what the cascade paid (negative when it cost more).",
        )
        self.shadow = meter.create_counter(
            "cascade.shadow.queries",
            unit="{query}",
            description="Shadow sampling, by outcome: written, dropped (queue full), over_budget, failed.",
        )
        self.shadow_cost = meter.create_counter(
            "cascade.shadow.cost", unit="USD", description="What the shadow calls cost (calls reused from live: 0)."
        )

    # -- spans ----------------------------------------------------------------------------------------

    def start_query(self, ctx: QueryContext) -> tuple[Span, object]:
        """The query's span, made current (every call span of the query is its child)."""
        policy = ctx.policy
        span = self.tracer.start_span(f"cascade {policy.name}", kind=SpanKind.INTERNAL)
        if span.is_recording():
            span.set_attributes(
                {
                    "cascade.policy": policy.name,
                    "cascade.policy.version": policy.version,
                    "cascade.query_id": ctx.spec.query_id,
                }
            )
            if policy.log_text:
                messages = [
                    {"role": m.role, "parts": [{"type": "text", "content": m.content}]} for m in ctx.spec.messages
                ]
                span.set_attribute("gen_ai.input.messages", json.dumps(messages, ensure_ascii=False))
                if ctx.spec.system:
                    span.set_attribute("gen_ai.system_instructions", ctx.spec.system)
        return span, otel_context.attach(trace.set_span_in_context(span))

    def end_query(
        self, span: Span, token: object, ctx: QueryContext, result: CascadeResult | None, error: BaseException | None
    ) -> None:
        """Detach and end the query's span, with what the query came to; count it in the metrics."""
        otel_context.detach(token)  # type: ignore[arg-type]
        if result is not None:
            self._record_result(span, ctx, result)
        if error is not None:
            span.set_attribute("error.type", type(error).__name__)
            span.set_status(Status(StatusCode.ERROR, _describe(error, ctx.policy.log_text)))
            if result is None:
                self.queries.add(1, {"cascade.policy": ctx.policy.name, "cascade.outcome": "error"})
        span.end()

    def start_shadow(self, ctx: QueryContext, live: Span | None) -> tuple[Span, object]:
        """The span of a shadow query (a root, linked to the live query's span), made current."""
        links = [Link(live.get_span_context())] if live is not None else []
        name = f"cascade.shadow {ctx.policy.name}"
        span = self.tracer.start_span(name, context=otel_context.Context(), links=links)
        if span.is_recording():
            span.set_attributes({"cascade.policy": ctx.policy.name, "cascade.query_id": ctx.spec.query_id})
        return span, otel_context.attach(trace.set_span_in_context(span))

    def end_shadow(self, span: Span, token: object, policy: str, outcome: str, spent_usd: float) -> None:
        otel_context.detach(token)  # type: ignore[arg-type]
        if span.is_recording():
            span.set_attributes({"cascade.shadow.outcome": outcome, "cascade.cost_usd": spent_usd})
            if outcome == "failed":
                span.set_status(Status(StatusCode.ERROR, "shadow query failed"))
        span.end()
        self.shadow_outcome(policy, outcome, spent_usd)

    def shadow_outcome(self, policy: str, outcome: str, spent_usd: float = 0.0) -> None:
        self.shadow.add(1, {"cascade.policy": policy, "cascade.shadow.outcome": outcome})
        if spent_usd:
            self.shadow_cost.add(spent_usd, {"cascade.policy": policy})

    def start_call(self, call: Call) -> tuple[Span, object]:
        """A vendor call's span (a child of the current span), made current while the SDK runs."""
        operation = "generate_content" if call.provider == "google" else "chat"
        request = call.request
        attributes: Attributes = {
            "gen_ai.operation.name": operation,
            "gen_ai.system": _PROVIDER_NAMES.get(call.provider, call.provider),
            "gen_ai.provider.name": _PROVIDER_NAMES.get(call.provider, call.provider),
            "gen_ai.request.model": request.model,
            "gen_ai.request.max_tokens": request.max_output_tokens,
            "cascade.stage": call.stage,
            "cascade.role": call.role,
        }
        if request.temperature is not None:
            attributes["gen_ai.request.temperature"] = request.temperature
        span = self.tracer.start_span(f"{operation} {request.model}", kind=SpanKind.CLIENT, attributes=attributes)
        return span, otel_context.attach(trace.set_span_in_context(span))

    def end_call(self, span: Span, token: object, attempts: Sequence[Attempt], log_text: bool) -> None:
        """Detach and end a call's span with what the call's trace record says (tokens, cost, verdict, error)."""
        otel_context.detach(token)  # type: ignore[arg-type]
        if attempts and span.is_recording():
            attempt = attempts[-1]
            span.set_attributes(_call_attributes(attempt))
            if attempt.error is not None:
                span.set_attribute("error.type", attempt.error.type)
                why = attempt.error.message if log_text else attempt.error.type
                span.set_status(Status(StatusCode.ERROR, why))
        span.end()

    # -- metrics --------------------------------------------------------------------------------------

    def _record_result(self, span: Span, ctx: QueryContext, result: CascadeResult) -> None:
        policy = ctx.policy
        outcome = "no_answer" if result.answer is None else "accepted" if result.accepted else "best_effort"
        base = {"cascade.policy": policy.name}
        self.queries.add(1, {**base, "cascade.outcome": outcome, "cascade.stage": result.stage or ""})
        tried = result.stages_tried()
        for stage in tried[:-1]:  # every stage tried before the last one tried was escalated from
            self.escalations.add(1, {**base, "cascade.stage": stage})
        for attempt in result.attempts:
            if attempt.role == "judge" and attempt.confidence is not None:
                self.judge_score.record(attempt.confidence, {**base, "cascade.stage": attempt.stage})
        self.cost.add(result.cost_usd, base)
        if result.answer is not None:
            self.savings.add(result.flagship_cost_usd - result.cost_usd, base)
        if not span.is_recording():
            return
        threshold = policy.stage(result.stage).threshold if result.stage is not None else None
        attributes: Attributes = {
            "cascade.outcome": outcome,
            "cascade.entry_stage": result.entry_stage,
            "cascade.route": result.route,
            "cascade.accepted": result.accepted,
            "cascade.escalations": result.escalations,
            "cascade.cost_usd": result.cost_usd,
            "cascade.flagship_cost_usd": result.flagship_cost_usd,
            "cascade.savings_usd": result.savings_usd,
            "cascade.budget_exhausted": result.budget_exhausted,
            "cascade.calls": len(result.attempts),
            "cascade.stages_tried": tried,
        }
        optional = {
            "cascade.stage": result.stage,
            "cascade.provider": result.provider,
            "cascade.model": result.model,
            "cascade.confidence": result.confidence,
            "cascade.threshold": threshold if threshold is not None and math.isfinite(threshold) else None,
        }
        attributes.update({key: value for key, value in optional.items() if value is not None})
        if policy.log_text and result.answer is not None:
            output = [{"role": "assistant", "parts": [{"type": "text", "content": result.answer}]}]
            attributes["gen_ai.output.messages"] = json.dumps(output, ensure_ascii=False)
        span.set_attributes(attributes)


def _call_attributes(attempt: Attempt) -> Attributes:
    attributes: Attributes = {
        "gen_ai.usage.input_tokens": attempt.input_tokens,
        "gen_ai.usage.output_tokens": attempt.output_tokens,
        "cascade.cost_usd": attempt.cost_usd,
        "cascade.retry": attempt.retry,
    }
    optional = {
        "gen_ai.response.model": attempt.served_by,
        "gen_ai.response.finish_reasons": [attempt.finish_reason] if attempt.finish_reason else None,
        "gen_ai.usage.cache_read.input_tokens": attempt.cached_input_tokens or None,
        "gen_ai.usage.cache_creation.input_tokens": attempt.cache_write_tokens or None,
        "gen_ai.usage.reasoning.output_tokens": attempt.reasoning_tokens or None,
        "cascade.confidence": attempt.confidence,
        "cascade.label": attempt.label,
        "http.response.status_code": attempt.error.status_code if attempt.error else None,
    }
    if attempt.threshold is not None and attempt.confidence is not None:
        # A `never` threshold (inf) is left off: an attribute keeps one type, and exporters may refuse inf.
        optional["cascade.threshold"] = attempt.threshold if math.isfinite(attempt.threshold) else None
        optional["cascade.accepted"] = accepts(attempt.threshold, attempt.confidence)
    attributes.update({key: value for key, value in optional.items() if value is not None})
    return attributes


def _describe(error: BaseException, log_text: bool) -> str:
    """A failed query's span status: its message only with `log_text` (an error may quote a vendor's reply)."""
    return f"{type(error).__name__}: {error}" if log_text else type(error).__name__
