"""Shadow sampling: rows in the trace format, calls reused, a bounded queue, its own budget, vendor faults."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from cascade.errors import MissingAPIKeyError, OverloadedError
from cascade.monitor import Monitor
from cascade.providers.base import CompletionRequest
from cascade.tuning.traces import read_traces
from tests.monitor.conftest import FLASH, MINI, SONNET, Otel, Vendors, router

QUERY = "Is 'great phone' a positive review?"


def shadowing(path: Path, **monitor: Any) -> dict[str, Any]:
    return {"monitor": {"shadow_rate": 1.0, "traces": str(path), **monitor}}


class Gate:
    """Holds a vendor call until opened; says when a call is waiting (no sleeps, no timing)."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.opened = threading.Event()

    def __call__(self, request: CompletionRequest) -> None:
        self.entered.set()
        assert self.opened.wait(30), "the gate was never opened"


def test_a_sampled_query_is_traced_through_every_stage_reusing_its_live_calls(tmp_path: Path) -> None:
    vendors = Vendors(scores={"mini": 9, "flash": 6, "sonnet": 8})
    r = router(vendors, Monitor(seed=0), **shadowing(tmp_path / "shadow.jsonl"))
    result = r.run(QUERY, query_id="q1")
    assert result.stage == "mini" and result.accepted
    assert r.monitor.flush(30)

    (trace,) = read_traces(tmp_path / "shadow.jsonl")  # the `collect` format: eval, tune and drift read it
    assert trace.id.startswith("q1-") and trace.query == QUERY
    assert {n: (s.answer, s.confidence) for n, s in trace.stages.items()} == {
        "mini": ("mini: yes", 0.9),
        "flash": ("flash: yes", 0.6),
        "sonnet": ("sonnet: yes", 0.8),  # the last stage is judged too
    }
    # mini's answer and verdict came from the live query: the shadow did not ask again.
    assert vendors.count(MINI, "answer") == 1 and vendors.calls.count((MINI, "judge")) == 3
    assert vendors.count(FLASH, "answer") == 1 and vendors.count(SONNET, "answer") == 1
    assert trace.stages["mini"].cost_usd == pytest.approx(result.cost_usd)  # the stage's true (live) cost
    live = trace.model_extra["live"]
    assert (live["query_id"], live["stage"], live["accepted"], live["policy"]) == ("q1", "mini", True, "default")
    stats = r.monitor.shadow_stats()[str(tmp_path / "shadow.jsonl")]
    assert (stats.sampled, stats.written, stats.dropped, stats.failed) == (1, 1, 0, 0)
    # What the shadow spent is the new calls only: the row's cost less what the live query had paid.
    assert stats.spent_usd == pytest.approx(sum(s.cost_usd for s in trace.stages.values()) - result.cost_usd)


def test_sampling_is_near_its_rate(tmp_path: Path) -> None:
    path = tmp_path / "shadow.jsonl"
    r = router(Vendors(), Monitor(seed=7), **shadowing(path, shadow_rate=0.25))
    for _ in range(200):
        r.run(QUERY)
    assert r.monitor.flush(60)
    written = len(read_traces(path))
    assert r.monitor.shadow_stats()[str(path)].sampled == written
    assert 25 <= written <= 75  # Binomial(200, 0.25): 50 +- 25 is beyond four standard deviations


def test_same_seed_same_sample(tmp_path: Path) -> None:
    chosen = []
    for run in range(2):
        r = router(Vendors(), Monitor(seed=3), **shadowing(tmp_path / f"{run}.jsonl", shadow_rate=0.3))
        ids = [f"q{i}" for i in range(40)]
        for query_id in ids:
            r.run(QUERY, query_id=query_id)
        assert r.monitor.flush(60)
        chosen.append(sorted(t.model_extra["live"]["query_id"] for t in read_traces(tmp_path / f"{run}.jsonl")))
    assert chosen[0] == chosen[1] and 0 < len(chosen[0]) < 40


def test_the_answer_never_waits_for_shadow_work(tmp_path: Path) -> None:
    gate = Gate()
    vendors = Vendors(hooks={SONNET: gate})  # only the shadow asks the last stage
    r = router(vendors, Monitor(seed=0), **shadowing(tmp_path / "shadow.jsonl"))
    result = r.run(QUERY)  # returns while its shadow run is held at the last stage
    assert result.answer == "mini: yes"
    assert gate.entered.wait(30)
    assert not r.monitor.flush(0.01)  # still in flight
    gate.opened.set()
    assert r.monitor.flush(30) and len(read_traces(tmp_path / "shadow.jsonl")) == 1


def test_a_full_queue_drops_and_counts_never_blocks(tmp_path: Path) -> None:
    gate = Gate()
    vendors = Vendors(hooks={SONNET: gate})
    path = tmp_path / "shadow.jsonl"
    r = router(vendors, Monitor(seed=0), **shadowing(path, queue_size=1, workers=1))
    r.run(QUERY)
    assert gate.entered.wait(30)  # the one worker is busy
    with capture_logs() as events:
        for _ in range(3):  # one waits in the queue, two find it full
            assert r.run(QUERY).answer == "mini: yes"
    stats = r.monitor.shadow_stats()[str(path)]
    assert (stats.sampled, stats.dropped) == (2, 2)
    dropped = [e for e in events if e["event"] == "cascade.shadow"]
    assert [e["outcome"] for e in dropped] == ["dropped", "dropped"]
    gate.opened.set()
    assert r.monitor.flush(30)
    assert len(read_traces(path)) == 2 and r.monitor.shadow_stats()[str(path)].written == 2


def test_vendor_faults_are_recorded_in_the_row_and_other_failures_counted(tmp_path: Path) -> None:
    path = tmp_path / "shadow.jsonl"
    down = OverloadedError("anthropic HTTP 529: overloaded", provider="anthropic", model=SONNET, status_code=529)
    vendors = Vendors(answers={MINI: "mini: yes", FLASH: "flash: yes", SONNET: down})
    r = router(vendors, Monitor(seed=0), **shadowing(path))
    r.run(QUERY)
    assert r.monitor.flush(30)
    (trace,) = read_traces(path)
    assert trace.stages["sonnet"].answer is None and "OverloadedError" in (trace.stages["sonnet"].error or "")

    # A shadow run that raises (here a usage error surfacing mid-run) is counted; the worker goes on.
    vendors.answers[SONNET] = MissingAPIKeyError("anthropic", ("ANTHROPIC_API_KEY",))
    r.run(QUERY)
    assert r.monitor.flush(30)
    vendors.answers[SONNET] = "sonnet: yes"
    r.run(QUERY)
    assert r.monitor.flush(30)
    stats = r.monitor.shadow_stats()[str(path)]
    assert (stats.sampled, stats.written, stats.failed) == (3, 2, 1)
    assert [t.stages["sonnet"].answer for t in read_traces(path)] == [None, "sonnet: yes"]


def test_a_row_that_cannot_be_written_is_counted_as_failed(tmp_path: Path) -> None:
    (tmp_path / "taken").mkdir()
    r = router(Vendors(), Monitor(seed=0), **shadowing(tmp_path / "taken"))  # a directory, not a file
    assert r.run(QUERY).answer == "mini: yes"
    assert r.monitor.flush(30)
    stats = r.monitor.shadow_stats()[str(tmp_path / "taken")]
    assert (stats.written, stats.failed) == (0, 1)


def test_the_shadow_budget_per_query(tmp_path: Path) -> None:
    path = tmp_path / "shadow.jsonl"
    # Enough for flash and its judge on top of what the live query paid, not for sonnet's 1024 output tokens.
    r = router(Vendors(), Monitor(seed=0), **shadowing(path, shadow_max_cost_usd=0.001))
    r.run(QUERY)
    assert r.monitor.flush(30)
    (trace,) = read_traces(path)
    assert trace.stages["flash"].answer == "flash: yes" and trace.stages["sonnet"].answer is None
    assert r.monitor.shadow_stats()[str(path)].spent_usd <= 0.001


def test_the_shadow_budget_per_hour(tmp_path: Path) -> None:
    now = [0.0]
    path = tmp_path / "shadow.jsonl"
    r = router(Vendors(), Monitor(seed=0, clock=lambda: now[0]), **shadowing(path, shadow_usd_per_hour=1e-9))
    r.run(QUERY)
    assert r.monitor.flush(30)
    r.run(QUERY)  # the first shadow run spent the hour's budget
    now[0] = 3601.0
    r.run(QUERY)  # an hour later it is free again
    assert r.monitor.flush(30)
    stats = r.monitor.shadow_stats()[str(path)]
    assert (stats.sampled, stats.over_budget, stats.written) == (2, 1, 2)


async def test_aclose_flushes_the_queue(tmp_path: Path) -> None:
    path = tmp_path / "shadow.jsonl"
    vendors = Vendors()
    r = router(vendors, Monitor(seed=0), **shadowing(path))
    for _ in range(3):
        await r.arun(QUERY)
    await r.aclose()
    assert len(read_traces(path)) == 3 and vendors.count(SONNET, "answer") == 3


def test_shadow_spans_are_roots_linked_to_the_live_query(tmp_path: Path, otel: Otel) -> None:
    r = router(Vendors(), otel.monitor(), **shadowing(tmp_path / "shadow.jsonl"))
    r.run(QUERY)
    assert r.monitor.flush(30)
    spans = otel.finished()
    (live,) = [s for s in spans if s.name == "cascade default"]
    (shadow,) = [s for s in spans if s.name == "cascade.shadow default"]
    assert shadow.parent is None and [link.context.span_id for link in shadow.links] == [live.context.span_id]
    assert shadow.attributes["cascade.shadow.outcome"] == "written"
    children = [s for s in spans if s.parent is not None and s.parent.span_id == shadow.context.span_id]
    # Only the calls the live query did not make: flash answer and judge, sonnet answer and judge.
    assert sorted((c.attributes["cascade.stage"], c.attributes["cascade.role"]) for c in children) == [
        ("flash", "answer"), ("flash", "judge"), ("sonnet", "answer"), ("sonnet", "judge"),
    ]  # fmt: skip
    (written,) = [p for p in otel.points("cascade.shadow.queries")]
    assert written.attributes["cascade.shadow.outcome"] == "written" and written.value == 1


def test_pid_in_the_path_gives_each_process_its_own_file(tmp_path: Path) -> None:
    r = router(Vendors(), Monitor(seed=0), **shadowing(tmp_path / "shadow-{pid}.jsonl"))
    r.run([{"role": "system", "content": "Be brief."}, {"role": "user", "content": QUERY}])
    assert r.monitor.flush(30)
    (trace,) = read_traces(tmp_path / f"shadow-{os.getpid()}.jsonl")
    assert trace.query == QUERY and trace.model_extra["system"] == "Be brief."
    row = json.loads((tmp_path / f"shadow-{os.getpid()}.jsonl").read_text())
    assert row["query"] == QUERY  # one user message: the text, as `cascade collect` takes it


def test_a_policy_without_a_traces_file_cannot_sample() -> None:
    from cascade.errors import PolicyError
    from tests.monitor.conftest import policy

    with pytest.raises(PolicyError, match=r"monitor\.traces"):
        policy(monitor={"shadow_rate": 0.1})


def test_a_structured_query_with_tools_is_shadowed_with_what_it_asked(tmp_path: Path) -> None:
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    tools = [{"name": "lookup", "parameters": {"type": "object", "properties": {"id": {"type": "string"}}}}]
    answers = {MINI: '{"n": 1}', FLASH: '{"n": 2}', SONNET: '{"n": 3}'}
    vendors = Vendors(answers=answers, scores={"mini": 9, "flash": 6, "sonnet": 8})
    r = router(vendors, Monitor(seed=0), **shadowing(tmp_path / "shadow.jsonl"))
    conversation = [
        {"role": "user", "content": "Count it."},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"id": "c1", "function": {"name": "lookup", "arguments": '{"id": "x"}'}}],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "found 1"},
    ]
    result = r.run(conversation, output_type=schema, tools=tools, tool_choice="auto")
    assert result.output == {"n": 1}
    assert r.monitor.flush(30)
    stats = r.monitor.shadow_stats()[str(tmp_path / "shadow.jsonl")]
    assert (stats.written, stats.failed) == (1, 0)
    (trace,) = read_traces(tmp_path / "shadow.jsonl")
    assert {n: s.output for n, s in trace.stages.items()} == {"mini": {"n": 1}, "flash": {"n": 2}, "sonnet": {"n": 3}}
    row = trace.model_extra
    # The row can be collected again as it is: the query, the tools and the schema it asked with.
    assert row["output_schema"] == schema and row["tool_choice"] == "auto"
    assert row["tools"][0]["function"]["name"] == "lookup"
    assert trace.query is None or isinstance(trace.query, str)
    assert row["messages"][1]["tool_calls"][0]["function"]["name"] == "lookup"
    assert vendors.count(MINI, "answer") == 1  # the live answer was reused
