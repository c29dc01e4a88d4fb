"""Streaming: time to the first token of the accepted answer, per mode, against the vendors' SDKs streaming alone.

    python benchmarks/streaming.py [--repeats N]

A local `FakeVendorServer` plays the three vendors: each streamed answer waits a first-token latency, then sends its
SSE events a byte at a time at a steady rate (so an answer takes about a second), and the judge (not streamed)
answers after its own latency. The cascade is `gpt-4o-mini` -> `gemini-2.5-flash` -> `claude-sonnet-4-5`, judged
by `gpt-4o-mini`, through the real SDKs. Three kinds of query: accepted at the first stage, escalated once,
escalated twice. For each mode, the time until the first text of the answer that is still on show at the end
(after any reset), and until the end; beside it, the same vendors' SDKs streaming the answering model directly
(no cascade, no judge), and the flagship alone. Median of the repeats.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

try:
    import cascade  # noqa: F401
except ModuleNotFoundError:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cascade import Cascade
from cascade.policy import Policy
from cascade.streaming import Final, Reset, TextDelta
from cascade.testing import FakeVendorServer, wire
from cascade.testing.fake_server import RecordedRequest
from cascade.testing.wire import FakeReply

STAGES = (
    ("mini", "openai", "gpt-4o-mini"),
    ("flash", "google", "gemini-2.5-flash"),
    ("sonnet", "anthropic", "claude-sonnet-4-5"),
)
# Seconds to the first byte of a streamed answer, per stage's model, and of the judge's verdict.
FIRST_TOKEN_S = {"gpt-4o-mini": 0.30, "gemini-2.5-flash": 0.40, "claude-sonnet-4-5": 0.80}
JUDGE_S = 0.35
BYTE_S = 0.00002  # the body trickles: about a second for a streamed answer of 60 pieces
ANSWER = [f"word{i} " for i in range(60)]
KEY = "bench-key-not-a-secret"


@dataclass(frozen=True)
class Case:
    name: str
    accepted_at: int  # the stage whose judge accepts (2: the last stage answers)


CASES = (Case("accepted at stage 1", 0), Case("escalated once", 1), Case("escalated twice", 2))


class Vendors:
    """Streams every answer, judges each stage's answer by the case: a low score until the accepting stage."""

    def __init__(self) -> None:
        self.case = CASES[0]

    def __call__(self, request: RecordedRequest) -> FakeReply:
        body = request.body
        if request.vendor == "openai" and "<<<ANSWER " in json.dumps(body):
            stage = next(i for i, (name, _, _) in enumerate(STAGES) if f"[{name}]" in json.dumps(body))
            score = 9 if stage >= self.case.accepted_at else 2
            reply = wire.openai_chat(
                json.dumps({"score": score, "reason": "bench"}), prompt_tokens=300, completion_tokens=12
            )
            reply.delay_s = JUDGE_S
            return reply
        model = request.model or body.get("model")
        name = next(n for n, _, m in STAGES if m == model)
        texts = [f"[{name}] ", *ANSWER]
        streamed = body.get("stream") is True or "stream" in request.path.lower()
        if not streamed:  # `final` mode asks the earlier stages whole
            return _whole(request.vendor, model, texts)
        reply = _streamed(request.vendor, model, texts)
        reply.delay_s, reply.trickle_s, reply.trickle_headers = FIRST_TOKEN_S[model], BYTE_S, False
        return reply


def _streamed(vendor: str, model: str, texts: list[str]) -> FakeReply:
    if vendor == "openai":
        return wire.openai_stream(texts, prompt_tokens=20, completion_tokens=61, model=model)
    if vendor == "anthropic":
        return wire.anthropic_stream(texts, input_tokens=20, output_tokens=61, model=model)
    return wire.gemini_stream(texts, prompt_tokens=20, output_tokens=61, model=model)


def _whole(vendor: str, model: str, texts: list[str]) -> FakeReply:
    """The answer unstreamed: it comes when the stream of it would have ended (a model writes as fast either way)."""
    text = "".join(texts)
    if vendor == "openai":
        reply = wire.openai_chat(text, prompt_tokens=20, completion_tokens=61, model=model)
    elif vendor == "anthropic":
        reply = wire.anthropic_message(text, input_tokens=20, output_tokens=61, model=model)
    else:
        reply = wire.gemini_content(text, prompt_tokens=20, output_tokens=61, model=model)
    body = _streamed(vendor, model, texts).body
    reply.delay_s = FIRST_TOKEN_S[model] + len(body if isinstance(body, str | bytes) else str(body)) * BYTE_WAIT_S
    return reply


def _byte_wait() -> float:
    """What one byte of a trickled reply really takes here: the server waits `BYTE_S` per byte, and a wait that short
    costs more than it asks for."""
    import threading

    stop, start, n = threading.Event(), time.perf_counter(), 2000
    for _ in range(n):
        stop.wait(BYTE_S)
    return (time.perf_counter() - start) / n


BYTE_WAIT_S = _byte_wait()


def policy(server: FakeVendorServer) -> Policy:
    stages = [
        {"name": n, "provider": p, "model": m, "retries": 0, **({"threshold": 0.8} if i < 2 else {})}
        for i, (n, p, m) in enumerate(STAGES)
    ]
    providers = {
        "openai": {"base_url": server.url + "/v1"},
        "google": {"base_url": server.url},
        "anthropic": {"base_url": server.url},
    }
    judge = {"provider": "openai", "model": "gpt-4o-mini", "retries": 0}
    return Policy.from_dict(
        {"name": "bench-stream", "version": "1", "stages": stages, "judge": judge, "providers": providers}
    )


def through_cascade(router: Cascade, mode: str) -> tuple[float, float]:
    """(seconds to the first text of the answer on show at the end, seconds to the end)."""
    start = time.perf_counter()
    first: float | None = None
    for event in router.stream("bench", mode=mode):  # type: ignore[arg-type]
        now = time.perf_counter() - start
        if isinstance(event, Reset):
            first = None
        elif isinstance(event, TextDelta) and first is None:
            first = now
        elif isinstance(event, Final):
            return (first if first is not None else now), now
    raise AssertionError("no Final event")


def direct(server: FakeVendorServer, stage: int) -> tuple[float, float]:
    """The answering model streamed with its own SDK, no cascade: (first text, end)."""
    _, provider, model = STAGES[stage]
    start = time.perf_counter()
    first: float | None = None

    def saw(text: str | None) -> None:
        nonlocal first
        if text and first is None:
            first = time.perf_counter() - start

    if provider == "openai":
        import openai

        client = openai.OpenAI(api_key=KEY, base_url=server.url + "/v1", max_retries=0)
        for chunk in client.chat.completions.create(
            model=model,
            messages=[{"role": "user", "content": "bench"}],
            stream=True,
            stream_options={"include_usage": True},
        ):
            saw(chunk.choices[0].delta.content if chunk.choices else None)
    elif provider == "anthropic":
        import anthropic

        client_a = anthropic.Anthropic(api_key=KEY, base_url=server.url, max_retries=0)
        for event in client_a.messages.create(
            model=model, max_tokens=256, messages=[{"role": "user", "content": "bench"}], stream=True
        ):
            delta = getattr(event, "delta", None)
            saw(getattr(delta, "text", None))
    else:
        from google import genai
        from google.genai import types

        client_g = genai.Client(api_key=KEY, http_options=types.HttpOptions(base_url=server.url, api_version="v1"))
        for chunk in client_g.models.generate_content_stream(model=model, contents="bench"):
            saw(chunk.text)
    end = time.perf_counter() - start
    return (first if first is not None else end), end


def median(samples: list[tuple[float, float]]) -> tuple[float, float]:
    return statistics.median(s[0] for s in samples), statistics.median(s[1] for s in samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    repeats = parser.parse_args().repeats
    os.environ.setdefault("OPENAI_API_KEY", KEY)
    os.environ.setdefault("ANTHROPIC_API_KEY", KEY)
    os.environ.setdefault("GEMINI_API_KEY", KEY)
    vendors = Vendors()
    rows: list[tuple[str, str, float, float]] = []
    with FakeVendorServer(vendors) as server:
        router = Cascade(policy(server))
        for case in CASES:
            vendors.case = case
            for mode in ("buffered", "speculative", "final"):
                through_cascade(router, mode)  # warm the connections
                rows.append((case.name, mode, *median([through_cascade(router, mode) for _ in range(repeats)])))
            rows.append(
                (
                    case.name,
                    f"direct SDK ({STAGES[case.accepted_at][2]})",
                    *median([direct(server, case.accepted_at) for _ in range(repeats)]),
                )
            )
        rows.append(
            ("-", f"direct SDK, flagship alone ({STAGES[2][2]})", *median([direct(server, 2) for _ in range(repeats)]))
        )
    cpu = platform.processor() or platform.machine()
    print(f"machine: {cpu}, {os.cpu_count()} CPUs, Python {platform.python_version()}")
    print(f"simulated vendors: first token {FIRST_TOKEN_S} s, judge {JUDGE_S} s; median of {repeats}")
    print(f"an answer streams a byte per {BYTE_WAIT_S * 1e6:.0f} us; unstreamed, it arrives when its stream would end")
    print()
    print(f"| {'query':<20} | {'how':<44} | first token of the answer (s) | end (s) |")
    print(f"|{'-' * 22}|{'-' * 46}|-------------------------------|---------|")
    for case, how, first, end in rows:
        print(f"| {case:<20} | {how:<44} | {first:29.2f} | {end:7.2f} |")


if __name__ == "__main__":
    main()
