"""Load with faults: many queries at once through `Cascade.arun_many`, the real SDK adapters of all three vendors
and the local vendor server, with a seeded 10% of calls failing (429, 500, 503, 529, a stall, a dropped
connection).

Every query must end once, as a `CascadeResult` or a typed `CascadeError` carrying its trace, within its deadline;
every fault the server served must be in a trace; afterwards the process holds no more sockets, threads or tasks
than before. The default run is small; `CASCADE_LOAD_FULL=1` runs 2,000 queries at concurrency 200 and prints the
figures that docs/reliability.md reports (run with `-s` to see them).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import re
import sys
import threading
import time
from collections import Counter
from typing import Any

from structlog.testing import capture_logs

from cascade import Cascade
from cascade.errors import BudgetExhaustedError, CascadeError, CascadeExhausted
from cascade.policy import Policy
from cascade.result import CascadeResult
from cascade.testing import FakeReply, FakeVendorServer, RecordedRequest, wire

FULL = os.environ.get("CASCADE_LOAD_FULL") == "1"
QUERIES, CONCURRENCY = (2000, 200) if FULL else (200, 50)
SEED = 20261106
FAULT_RATE = 0.10
TIMEOUT_S = 2.0  # every stage and the judge
STALL_S = 3.0  # a stalled reply comes after the timeout
DEADLINE_S = 6.0  # the whole query: less than five calls' timeouts, so the deadline can bind
# The async driver cancels a call 1 s after its own timeout (capped by what is left of the deadline), plus what a
# saturated event loop adds: measured up to 1.28 s past the deadline at concurrency 200 on 2 cores.
SLACK_S = 1.5
# The error each fault must leave in a trace.
FAULT_ERRORS = {
    "429": "RateLimitedError",
    "500": "ServerError",
    "503": "OverloadedError",
    "529": "OverloadedError",
    "stall": "VendorTimeoutError",
    "drop": "VendorConnectionError",
}
KEYS = {"openai": "load-openai-key", "anthropic": "load-anthropic-key", "google": "load-google-key"}
QUERY_NUMBER = re.compile(r"Q(\d+): what is")
# Threads that are not ours to account for while the loop runs: the fake server's, and the loop's default
# executor (the openai and anthropic SDKs run `get_platform` there with `asyncio.to_thread`).
NOT_OURS = re.compile(r"process_request_thread|fake-vendor|^asyncio_\d+$")


class FaultyVendors:
    """The server's responder. Each call's fate is drawn from an RNG seeded by (seed, query, vendor, role, n-th
    call of that kind), so a run is the same whatever order the requests arrive in."""

    def __init__(self, seed: int, rate: float, kinds: tuple[str, ...] = tuple(FAULT_ERRORS)) -> None:
        self.seed, self.rate, self.kinds = seed, rate, sorted(kinds)
        self.faults: Counter[str] = Counter()
        self.calls = 0
        self._seen: Counter[tuple[Any, ...]] = Counter()
        self._lock = threading.Lock()

    def __call__(self, request: RecordedRequest) -> FakeReply:
        text = json.dumps(request.body)
        number = int(QUERY_NUMBER.search(text).group(1))  # type: ignore[union-attr]
        role = "judge" if "<<<ANSWER" in text else "answer"
        key = (number, request.vendor, role)
        with self._lock:
            nth, self._seen[key] = self._seen[key], self._seen[key] + 1
            self.calls += 1
        rng = random.Random(f"{self.seed}:{number}:{request.vendor}:{role}:{nth}")
        if rng.random() < self.rate:
            fault = rng.choice(self.kinds)
            with self._lock:
                self.faults[fault] += 1
            return fault_reply(request.vendor, fault)
        if role == "judge":
            verdict = json.dumps({"score": rng.choice([3, 9]), "reason": "Scripted."})
            return wire.openai_chat(verdict, prompt_tokens=300, completion_tokens=15, model="gpt-4o-mini")
        return answer_reply(request.vendor, f"A{number} from {request.model}.", request.model or "")


def answer_reply(vendor: str, text: str, model: str) -> FakeReply:
    if vendor == "openai":
        return wire.openai_chat(text, prompt_tokens=20, completion_tokens=6, model=model)
    if vendor == "anthropic":
        return wire.anthropic_message(text, input_tokens=20, output_tokens=6, model=model)
    return wire.gemini_content(text, prompt_tokens=20, output_tokens=6, model=model)


def fault_reply(vendor: str, fault: str) -> FakeReply:
    if fault == "stall":
        return FakeReply(200, {}, delay_s=STALL_S)
    if fault == "drop":
        return FakeReply(drop=True)
    status = int(fault)
    retry_after = 0.05 if status == 429 else None
    if vendor == "openai":
        return wire.openai_error(status, f"error {status}", type_="server_error", code=None, retry_after=retry_after)
    if vendor == "anthropic":
        return wire.anthropic_error(status, "api_error", f"error {status}", retry_after=retry_after)
    grpc = {429: "RESOURCE_EXHAUSTED", 500: "INTERNAL"}.get(status, "UNAVAILABLE")
    return wire.gemini_error(status, grpc, f"error {status}", retry_delay_s=retry_after)


def load_policy(url: str) -> Policy:
    stage = {"retries": 1, "timeout_s": TIMEOUT_S, "max_output_tokens": 64}
    judged = {**stage, "threshold": 0.7}
    return Policy.from_dict(
        {
            "name": "load",
            "version": "1",
            "stages": [
                {"name": "nano", "provider": "openai", "model": "gpt-4.1-nano", **judged},
                {"name": "flash", "provider": "google", "model": "gemini-2.0-flash", **judged},
                {"name": "haiku", "provider": "anthropic", "model": "claude-haiku-4-5", **stage},
            ],
            "judge": {"provider": "openai", "model": "gpt-4o-mini", "retries": 1, "timeout_s": TIMEOUT_S},
            "providers": {
                "openai": {"base_url": url + "/v1"},
                "anthropic": {"base_url": url},
                "google": {"base_url": url},
            },
            "budget": {"deadline_s": DEADLINE_S},
        }
    )


class TimedCascade(Cascade):
    """Times each query from the moment `arun_many` starts it (past its semaphore) to its end."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.elapsed: dict[str, float] = {}

    async def arun(self, query: Any, **kwargs: Any) -> CascadeResult:
        start = time.monotonic()
        try:
            return await super().arun(query, **kwargs)
        finally:
            self.elapsed[str(query)] = time.monotonic() - start


def sockets() -> set[str]:
    found = set()
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):  # the listing's own fd is gone by now
            found.add(os.readlink(f"/proc/self/fd/{fd}"))
    return {target for target in found if target.startswith("socket:")}


def snapshot() -> dict[str, Any]:
    """Open fds, open sockets (by inode) and live threads. Threads and sockets of an earlier test's server may
    still be ending: the leak checks are "nothing new is left", not equality."""
    return {"fds": len(os.listdir("/proc/self/fd")), "sockets": sockets(), "threads": set(threading.enumerate())}


def trace_of(item: Any) -> CascadeResult:
    if isinstance(item, CascadeResult):
        return item
    assert isinstance(item, CascadeExhausted | BudgetExhaustedError), f"untyped outcome {item!r}"
    assert item.result.attempts, "a failed query carries its trace"
    return item.result


async def run_and_close(router: Cascade, queries: list[str]) -> tuple[list[Any], set[Any], set[threading.Thread]]:
    """Run the load, close the router on this loop; return the outcomes, the tasks left and our threads left."""
    try:
        outcomes = await router.arun_many(queries, concurrency=CONCURRENCY, return_exceptions=True)
    finally:
        await router.aclose()
    current = asyncio.current_task()
    end = time.monotonic() + 1.0
    while asyncio.all_tasks() - {current} and time.monotonic() < end:
        await asyncio.sleep(0.02)
    threads = {t for t in threading.enumerate() if not NOT_OURS.search(t.name)}
    return outcomes, asyncio.all_tasks() - {current}, threads


def test_every_query_is_accounted_for_under_faults_and_nothing_leaks() -> None:
    # A loop of its own, closed by asyncio.run (with its default executor) before the leak count.
    before = snapshot()
    responder = FaultyVendors(SEED, FAULT_RATE)
    queries = [f"Q{i}: what is {i} plus {i}?" for i in range(QUERIES)]
    with FakeVendorServer(responder=responder) as server, capture_logs() as events:
        router = TimedCascade(load_policy(server.url), api_keys=KEYS, retry_backoff_s=0.0)
        start = time.monotonic()
        outcomes, tasks_left, threads_left = asyncio.run(run_and_close(router, queries))
        wall = time.monotonic() - start
    assert not tasks_left
    assert threads_left == {t for t in before["threads"] if not NOT_OURS.search(t.name)}
    # The server's handler threads end once their connection is closed (a stalled one after its stall).
    end = time.monotonic() + STALL_S + 1
    while not set(threading.enumerate()) <= before["threads"] and time.monotonic() < end:
        time.sleep(0.02)
    after = snapshot()

    # Every query ended once, in its own slot, typed, with its trace, within its deadline.
    traces = [trace_of(item) for item in outcomes]
    assert len(outcomes) == len(queries)
    assert len({t.query_id for t in traces}) == len(queries)
    done = [e["query_id"] for e in events if e["event"] == "cascade.done"]
    assert sorted(done) == sorted(t.query_id for t in traces)
    answered = [(i, item) for i, item in enumerate(outcomes) if isinstance(item, CascadeResult)]
    assert all(item.answer and item.answer.startswith(f"A{i} from ") for i, item in answered)
    assert sorted(router.elapsed) == sorted(queries)
    assert max(router.elapsed.values()) <= DEADLINE_S + SLACK_S
    # Every fault served is in a trace as its error type, or as a timeout: a fault served just before its call's
    # deadline can reach the client after the driver gave up on the call (0.1 s past its timeout, under load).
    errors = Counter(a.error.type for t in traces for a in t.attempts if a.error)
    expected: Counter[str] = Counter()
    for fault, count in responder.faults.items():
        expected[FAULT_ERRORS[fault]] += count
    assert set(errors) <= set(FAULT_ERRORS.values())
    exact = sorted(set(expected) - {"VendorTimeoutError"})
    assert all(errors[k] <= expected[k] for k in exact), (errors, expected)
    overtaken = sum(expected[k] - errors[k] for k in exact)
    assert errors["VendorTimeoutError"] >= expected["VendorTimeoutError"] + overtaken
    calls = sum(len(t.attempts) for t in traces)
    assert responder.calls <= calls  # every call the server saw is in a trace
    # Nothing leaked.
    assert after["threads"] <= before["threads"]
    assert after["sockets"] <= before["sockets"]
    assert after["fds"] <= before["fds"]

    elapsed = sorted(router.elapsed.values())
    failed = Counter(type(item).__name__ for item in outcomes if isinstance(item, CascadeError))
    print(
        f"\nload: {len(queries)} queries at concurrency {CONCURRENCY}, seed {SEED}: {len(traces)} accounted for, "
        f"{len(answered)} answered ({sum(t.accepted for t in traces)} accepted), failed {dict(failed)}; "
        f"{calls} calls in traces, {responder.calls} received by the server; "
        f"faults served {dict(sorted(responder.faults.items()))} ({sum(responder.faults.values())}); "
        f"errors in traces {dict(sorted(errors.items()))}; wall {wall:.1f} s; "
        f"query time p50 {elapsed[len(elapsed) // 2]:.2f} s, p95 {elapsed[len(elapsed) * 95 // 100]:.2f} s, "
        f"max {elapsed[-1]:.2f} s (deadline {DEADLINE_S} s); "
        f"fds {before['fds']}->{after['fds']}, sockets {len(before['sockets'])}->{len(after['sockets'])}, "
        f"threads {len(before['threads'])}->{len(after['threads'])}, tasks left {len(tasks_left)}; "
        f"nproc {os.cpu_count()}, python {sys.version.split()[0]}"
    )
