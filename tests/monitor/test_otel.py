"""Spans and metrics through the OpenTelemetry SDK's in-memory exporter and metric reader."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest
from opentelemetry import trace
from opentelemetry.trace import StatusCode

from cascade import CascadeExhausted
from cascade.errors import OverloadedError
from cascade.monitor import Monitor
from cascade.providers.base import CompletionRequest
from tests.monitor.conftest import FLASH, MINI, ROOT, SONNET, Otel, Vendors, router

QUERY = "Is 'great phone' a positive review?"


def escalating() -> Vendors:
    """mini is judged 4/10 (below 0.8): flash answers, judged 9/10 (above 0.7)."""
    return Vendors(scores={"mini": 4, "flash": 9, "sonnet": 9})


def by_name(otel: Otel) -> tuple[object, list[object]]:
    spans = otel.finished()
    (query,) = [s for s in spans if s.name == "cascade default"]
    calls = [s for s in spans if s is not query]
    return query, calls


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_one_query_span_with_a_child_per_vendor_call(otel: Otel, mode: str) -> None:
    r = router(escalating(), otel.monitor())
    result = r.run(QUERY) if mode == "sync" else await r.arun(QUERY)
    query, calls = by_name(otel)
    assert [(c.name, c.attributes["cascade.stage"], c.attributes["cascade.role"]) for c in calls] == [
        (f"chat {MINI}", "mini", "answer"),
        (f"chat {MINI}", "mini", "judge"),
        (f"generate_content {FLASH}", "flash", "answer"),
        (f"chat {MINI}", "flash", "judge"),
    ]
    assert all(c.parent is not None and c.parent.span_id == query.context.span_id for c in calls)
    assert all(c.context.trace_id == query.context.trace_id for c in calls)
    assert query.parent is None

    answer, judged = calls[2].attributes, calls[3].attributes
    assert answer["gen_ai.system"] == answer["gen_ai.provider.name"] == "gcp.gemini"
    assert answer["gen_ai.request.model"] == FLASH and answer["gen_ai.response.model"] == FLASH
    assert answer["gen_ai.usage.input_tokens"] == result.attempts[2].input_tokens
    assert answer["gen_ai.usage.output_tokens"] == result.attempts[2].output_tokens
    assert answer["cascade.cost_usd"] == pytest.approx(result.attempts[2].cost_usd)
    assert answer["gen_ai.response.finish_reasons"] == ("stop",)
    assert (
        calls[0].attributes["gen_ai.operation.name"] == "chat" and answer["gen_ai.operation.name"] == "generate_content"
    )
    assert calls[1].attributes["cascade.confidence"] == 0.4 and calls[1].attributes["cascade.accepted"] is False
    assert (judged["cascade.confidence"], judged["cascade.threshold"], judged["cascade.accepted"]) == (0.9, 0.7, True)

    q = query.attributes
    assert (q["cascade.stage"], q["cascade.outcome"], q["cascade.accepted"], q["cascade.escalations"]) == (
        "flash", "accepted", True, 1,
    )  # fmt: skip
    assert (q["cascade.confidence"], q["cascade.threshold"], q["cascade.model"]) == (0.9, 0.7, FLASH)
    assert q["cascade.cost_usd"] == pytest.approx(result.cost_usd)
    assert q["cascade.flagship_cost_usd"] == pytest.approx(result.flagship_cost_usd)
    assert q["cascade.stages_tried"] == ("mini", "flash") and q["cascade.calls"] == 4


def test_no_query_or_answer_text_on_spans_unless_log_text(otel: Otel) -> None:
    router(escalating(), otel.monitor()).run(QUERY, system="Be brief.")
    dumped = json.dumps([dict(s.attributes) for s in otel.finished()])
    assert "great phone" not in dumped and "flash: yes" not in dumped and "Be brief" not in dumped

    otel.spans.clear()
    router(escalating(), otel.monitor(), log_text=True).run(QUERY, system="Be brief.")
    query, _ = by_name(otel)
    assert "great phone" in query.attributes["gen_ai.input.messages"]
    assert json.loads(query.attributes["gen_ai.output.messages"])[0]["parts"][0]["content"] == "flash: yes"
    assert query.attributes["gen_ai.system_instructions"] == "Be brief."


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_a_vendor_sdk_span_nests_under_the_call_span(otel: Otel, mode: str) -> None:
    """An SDK instrumentation starts its span from the current context, inside the provider's call."""
    tracer = otel.tracer_provider.get_tracer("fake-sdk-instrumentation")

    def sdk_span(request: CompletionRequest) -> None:
        with tracer.start_as_current_span("sdk POST /chat/completions"):
            pass

    vendors = escalating()
    vendors.hooks = {FLASH: sdk_span, "judge:flash": sdk_span}
    r = router(vendors, otel.monitor())
    _ = r.run(QUERY) if mode == "sync" else await r.arun(QUERY)
    spans = {s.context.span_id: s for s in otel.finished()}
    sdk = [s for s in spans.values() if s.name.startswith("sdk")]
    assert len(sdk) == 2
    parents = [spans[s.parent.span_id] for s in sdk]
    assert [(p.attributes["cascade.stage"], p.attributes["cascade.role"]) for p in parents] == [
        ("flash", "answer"),
        ("flash", "judge"),
    ]


def test_metrics_count_queries_escalations_scores_cost_and_saving(otel: Otel) -> None:
    r = router(escalating(), otel.monitor())
    results = [r.run(QUERY) for _ in range(3)]
    (queries,) = otel.points("cascade.queries")
    assert queries.value == 3 and queries.attributes["cascade.outcome"] == "accepted"
    assert queries.attributes["cascade.stage"] == "flash"
    (escalations,) = otel.points("cascade.escalations")
    assert (escalations.attributes["cascade.stage"], escalations.value) == ("mini", 3)
    scores = {p.attributes["cascade.stage"]: p for p in otel.points("cascade.judge.score")}
    assert scores["mini"].count == 3 and scores["mini"].sum == pytest.approx(1.2)
    assert scores["flash"].count == 3 and scores["flash"].sum == pytest.approx(2.7)
    # One bucket per judge score (tenths): 0.4 falls in (0.35, 0.45].
    assert scores["mini"].bucket_counts[4] == 3
    (cost,) = otel.points("cascade.cost")
    assert cost.value == pytest.approx(sum(x.cost_usd for x in results))
    (savings,) = otel.points("cascade.savings")
    assert savings.value == pytest.approx(sum(x.flagship_cost_usd - x.cost_usd for x in results))


def test_a_query_with_no_answer_ends_its_span_in_error(otel: Otel) -> None:
    down = OverloadedError("overloaded", provider="x", model="m", status_code=503)
    vendors = Vendors(answers={MINI: down, FLASH: down, SONNET: down})
    r = router(vendors, otel.monitor())
    with pytest.raises(CascadeExhausted):
        r.run(QUERY)
    query, calls = by_name(otel)
    assert query.status.status_code is StatusCode.ERROR
    assert query.status.description == "CascadeExhausted"  # no message: it could quote a vendor's reply
    assert query.attributes["error.type"] == "CascadeExhausted"
    assert query.attributes["cascade.outcome"] == "no_answer"
    failed = [c for c in calls if c.attributes["cascade.role"] == "answer"]
    assert len(failed) == 3 * 3  # three tries (two retries) at each stage
    assert all(
        c.status.status_code is StatusCode.ERROR and c.attributes["error.type"] == "OverloadedError" for c in failed
    )
    assert all(c.status.description == "OverloadedError" for c in failed)
    assert [c.attributes["cascade.retry"] for c in failed[:3]] == [0, 1, 2]
    (queries,) = otel.points("cascade.queries")
    assert queries.attributes["cascade.outcome"] == "no_answer"


def test_a_policy_can_turn_spans_off(otel: Otel) -> None:
    router(escalating(), otel.monitor(), monitor={"otel": False}).run(QUERY)
    assert otel.finished() == [] and otel.points("cascade.queries") == []


def test_without_the_api_installed_queries_run_untraced(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "opentelemetry", None)  # `import opentelemetry` now fails
    monkeypatch.delitem(sys.modules, "cascade.monitor.otel", raising=False)
    monitor = Monitor()
    result = router(escalating(), monitor).run(QUERY)
    assert result.stage == "flash" and monitor.telemetry() is None


def test_with_no_provider_configured_nothing_is_recorded() -> None:
    """A fresh process: `import cascade` imports no OpenTelemetry; a query then uses the API's no-op default."""
    app = textwrap.dedent(
        """
        import sys
        import cascade
        assert not [m for m in sys.modules if m.startswith("opentelemetry")], "import cascade imported otel"
        from cascade import Cascade
        from cascade.testing import ScriptedProvider, judge_json

        def script(request):
            return judge_json(9) if "<<<ANSWER" in request.messages[0].content else "Positive."

        vendors = {name: ScriptedProvider(name, script) for name in ("openai", "google", "anthropic")}
        router = Cascade("policies/default.yaml", providers=vendors)
        router.run("Is 'great phone' positive?")
        from opentelemetry import trace
        telemetry = router.monitor.telemetry()
        assert type(trace.get_tracer_provider()).__name__ == "ProxyTracerProvider"
        span = telemetry.tracer.start_span("probe")
        print(type(span).__name__, span.is_recording())
        """
    )
    ran = subprocess.run([sys.executable, "-c", app], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.split() == ["NonRecordingSpan", "False"]


def test_the_app_s_own_span_is_the_query_span_s_parent(otel: Otel) -> None:
    tracer = otel.tracer_provider.get_tracer("app")
    with tracer.start_as_current_span("POST /ask") as request_span:
        router(escalating(), otel.monitor()).run(QUERY)
    query, _ = by_name(otel)
    assert query.parent is not None and query.parent.span_id == request_span.get_span_context().span_id
    assert trace.get_current_span() is trace.INVALID_SPAN  # every context attached was detached
