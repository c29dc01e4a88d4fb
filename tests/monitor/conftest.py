"""Shared by the monitoring tests: OpenTelemetry's in-memory exporters, and a scripted three-stage cascade."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from cascade.engine import Cascade
from cascade.errors import ProviderError
from cascade.monitor import Monitor
from cascade.policy import Policy, load_policy
from cascade.providers.base import CompletionRequest
from cascade.testing import ScriptedProvider, judge_json

ROOT = Path(__file__).resolve().parents[2]
DEFAULT = load_policy(ROOT / "policies" / "default.yaml")  # mini (0.8) -> flash (0.5) -> sonnet
MINI, FLASH, SONNET = "gpt-4o-mini", "gemini-1.5-flash", "claude-3-5-sonnet-20241022"
STAGE_OF = {MINI: "mini", FLASH: "flash", SONNET: "sonnet"}


def policy(**changes: Any) -> Policy:
    """The default policy with some top-level fields changed (`monitor={...}`, `log_text=True`)."""
    return Policy.from_dict({**DEFAULT.model_dump(mode="json"), **changes})


@dataclass
class Otel:
    """An SDK tracer and meter provider writing to memory."""

    spans: InMemorySpanExporter
    reader: InMemoryMetricReader
    tracer_provider: TracerProvider
    meter_provider: MeterProvider

    def monitor(self, seed: int | None = 0, **kwargs: Any) -> Monitor:
        return Monitor(tracer_provider=self.tracer_provider, meter_provider=self.meter_provider, seed=seed, **kwargs)

    def finished(self) -> list[ReadableSpan]:
        return list(self.spans.get_finished_spans())

    def points(self, name: str) -> list[Any]:
        data = self.reader.get_metrics_data()
        found = []
        for resource in data.resource_metrics if data else ():
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    if metric.name == name:
                        found.extend(metric.data.data_points)
        return found


@pytest.fixture
def otel() -> Iterator[Otel]:
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    yield Otel(spans, reader, tracer_provider, meter_provider)
    tracer_provider.shutdown()
    meter_provider.shutdown()


Reply = str | ProviderError | Exception


@dataclass
class Vendors:
    """Scripted vendors: each model's answer, and the judge's score (0-10) for each stage's answer.

    `hooks[model]` runs inside the vendor call (while the call's span is current) before it replies.
    """

    answers: dict[str, Reply] = field(
        default_factory=lambda: {MINI: "mini: yes", FLASH: "flash: yes", SONNET: "sonnet: yes"}
    )
    scores: dict[str, int] = field(default_factory=lambda: {"mini": 9, "flash": 9, "sonnet": 9})
    hooks: dict[str, Callable[[CompletionRequest], None]] = field(default_factory=dict)
    calls: list[tuple[str, str]] = field(default_factory=list)  # (model, "answer" | "judge")
    lock: threading.Lock = field(default_factory=threading.Lock)

    def reply(self, request: CompletionRequest) -> Any:
        prompt = request.messages[0].content
        judging = "<<<ANSWER" in prompt
        with self.lock:
            self.calls.append((request.model, "judge" if judging else "answer"))
        if judging:
            judged = next(STAGE_OF[m] for m, a in self.answers.items() if isinstance(a, str) and a in prompt)
            hook = self.hooks.get(f"judge:{judged}")
            if hook is not None:
                hook(request)
            return judge_json(self.scores[judged])
        hook = self.hooks.get(request.model)
        if hook is not None:
            hook(request)
        answer = self.answers[request.model]
        if isinstance(answer, Exception):
            raise answer
        return answer

    def providers(self) -> Mapping[str, ScriptedProvider]:
        return {name: _Unlocked(name, self.reply) for name in ("openai", "google", "anthropic")}

    def count(self, model: str, kind: str) -> int:
        with self.lock:
            return self.calls.count((model, kind))


class _Unlocked(ScriptedProvider):
    """A scripted provider whose script runs outside the provider's lock, so that one blocked call (a hook
    waiting on an event) does not hold up the others."""

    def _reply(self, request: CompletionRequest) -> Any:
        return self._script(request)


def router(vendors: Vendors, watcher: Monitor, **changes: Any) -> Cascade:
    """A router on the default policy (with `changes`) calling the scripted vendors."""
    chosen = policy(**changes) if changes else DEFAULT
    return Cascade(chosen, providers=vendors.providers(), monitor=watcher, retry_backoff_s=0.0)
