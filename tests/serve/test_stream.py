"""`stream: true` through the real `openai` client (sync, async, and its stream helper): chunks, resets, errors."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx2
import openai
import pytest

from cascade import Cascade
from cascade.errors import ServerError, StreamInterruptedError
from cascade.providers.base import CompletionRequest
from cascade.serve import ServeConfig, create_app
from cascade.streaming import StreamEvent, TextDelta
from cascade.testing import Streamed, judge_json
from tests.serve.conftest import Running, scripted, three_router

ASK = [{"role": "user", "content": "Tell me about Canberra."}]
PIECES = ["Canberra ", "is the ", "capital ", "of Australia."]


def is_judge(request: CompletionRequest) -> bool:
    return "<<<ANSWER " in request.messages[-1].content


def only_the_last_stage_is_trusted(request: CompletionRequest) -> Any:
    """The judge rejects mini's and flash's answers; sonnet (the last stage, not judged) streams in pieces."""
    if is_judge(request):
        return judge_json(2)
    if request.model == "claude-sonnet-4-5":
        return Streamed(PIECES)
    return Streamed([f"draft from {request.model}"])


def mini_is_doubted(request: CompletionRequest) -> Any:
    """The judge doubts mini (3/10) and trusts flash (9/10); both stream in pieces."""
    if is_judge(request):
        return judge_json(3 if "draft from gpt-4o-mini" in request.messages[-1].content else 9)
    if request.model == "gpt-4o-mini":
        return Streamed(["draft from ", "gpt-4o-mini"])
    return Streamed(PIECES)


def chunks_of(stream: Any) -> list[Any]:
    return list(stream)


def test_streamed_text_equals_the_answer_and_the_chunks_are_openai_s() -> None:
    vendors = scripted(only_the_last_stage_is_trusted)
    with Running(create_app(three_router(vendors))) as running:
        client = running.client()
        whole = client.chat.completions.create(model="cascade/three", messages=ASK)
        stream = client.chat.completions.create(
            model="cascade/three", messages=ASK, stream=True, stream_options={"include_usage": True}
        )
        headers = stream.response.headers
        chunks = chunks_of(stream)
    assert headers["content-type"].startswith("text/event-stream") and headers["cache-control"] == "no-cache"
    *answer, ending, usage = chunks
    assert answer[0].choices[0].delta.role == "assistant" and answer[0].choices[0].delta.content == ""
    texts = [c.choices[0].delta.content for c in answer[1:]]
    # The last stage streams straight through, piece by piece, and the pieces make the unstreamed answer.
    assert texts == PIECES and "".join(texts) == whole.choices[0].message.content
    assert all(
        c.object == "chat.completion.chunk" and c.id == f"chatcmpl-{headers['x-cascade-query-id']}" for c in chunks
    )
    # Until the end the answering model is not known: chunks name the policy; the end names who answered.
    assert {c.model for c in answer} == {"cascade/three"}
    assert ending.model == usage.model == whole.model == "claude-sonnet-4-5"
    assert ending.choices[0].finish_reason == "stop" and ending.choices[0].delta.content is None
    assert ending.model_extra is not None
    summary = ending.model_extra["cascade"]
    assert summary["stage"] == "sonnet" and summary["stages_tried"] == ["mini", "flash", "sonnet"]
    assert summary["query_id"] == headers["x-cascade-query-id"] and summary["escalations"] == 2
    assert "attempts" not in summary  # the whole trace only when asked for
    assert usage.choices == [] and usage.usage is not None and whole.usage is not None
    assert usage.usage.prompt_tokens == whole.usage.prompt_tokens > 0
    assert usage.usage.total_tokens == whole.usage.total_tokens
    assert all(c.usage is None for c in chunks[:-1])


def test_without_include_usage_there_is_no_usage_chunk_and_the_trace_comes_when_asked() -> None:
    vendors = scripted(only_the_last_stage_is_trusted)
    with Running(create_app(three_router(vendors))) as running:
        stream = running.client().chat.completions.create(
            model="cascade/three", messages=ASK, stream=True, extra_body={"cascade": {"trace": True}}
        )
        chunks = chunks_of(stream)
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert chunks[-1].model_extra is not None
    attempts = chunks[-1].model_extra["cascade"]["attempts"]
    assert [(a["stage"], a["role"]) for a in attempts] == [
        ("mini", "answer"),
        ("mini", "judge"),
        ("flash", "answer"),
        ("flash", "judge"),
        ("sonnet", "answer"),
    ]


def test_buffered_by_default_a_rejected_answer_is_never_sent() -> None:
    vendors = scripted(mini_is_doubted)
    with Running(create_app(three_router(vendors))) as running:
        raw = httpx2.post(
            running.url + "/v1/chat/completions", json={"model": "cascade/three", "messages": ASK, "stream": True}
        )
    assert raw.status_code == 200 and "gpt-4o-mini" not in raw.text and "reset" not in raw.text
    events = [line.removeprefix("data: ") for line in raw.text.split("\n\n") if line]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text == "".join(PIECES)  # flash's answer, released whole once its judge accepted it


def test_speculative_mode_sends_a_reset_chunk_the_sdk_reads() -> None:
    vendors = scripted(mini_is_doubted)
    with Running(create_app(three_router(vendors))) as running:
        stream = running.client().chat.completions.create(
            model="cascade/three", messages=ASK, stream=True, extra_body={"cascade": {"stream_mode": "speculative"}}
        )
        chunks = chunks_of(stream)
    resets = [i for i, c in enumerate(chunks) if c.model_extra and "reset" in c.model_extra.get("cascade", {})]
    assert len(resets) == 1
    reset = chunks[resets[0]]
    assert reset.choices == [] and reset.model_extra is not None
    assert reset.model_extra["cascade"]["reset"]["stage"] == "mini"
    assert "below the threshold" in reset.model_extra["cascade"]["reset"]["reason"]

    def text(part: list[Any]) -> str:
        return "".join(c.choices[0].delta.content or "" for c in part if c.choices)

    # Before the reset: mini's draft (withdrawn); after it: flash's answer, which the end chunk names.
    assert text(chunks[: resets[0]]) == "draft from gpt-4o-mini"
    assert text(chunks[resets[0] + 1 :]) == "".join(PIECES)
    assert chunks[-1].model == "gemini-2.0-flash" and chunks[-1].choices[0].finish_reason == "stop"


def test_the_sdk_stream_helper_reads_every_chunk_reset_included() -> None:
    vendors = scripted(mini_is_doubted)
    with (
        Running(create_app(three_router(vendors))) as running,
        running.client().chat.completions.stream(
            model="cascade/three", messages=ASK, extra_body={"cascade": {"stream_mode": "speculative"}}
        ) as stream,
    ):
        kinds = [event.type for event in stream]
        final = stream.get_final_completion()
    # The role chunk, mini's 2 pieces, the reset, flash's 4 pieces and the end: none is dropped or refused.
    assert kinds.count("chunk") == 1 + 2 + 1 + 4 + 1 and "content.done" in kinds
    # A plain client cannot withdraw text: it keeps the withdrawn draft in front of the answer (the README says so).
    assert final.choices[0].message.content == "draft from gpt-4o-mini" + "".join(PIECES)
    assert final.choices[0].finish_reason == "stop"


def test_the_async_client_streams_the_same_text() -> None:
    vendors = scripted(only_the_last_stage_is_trusted)

    async def main(url: str) -> tuple[str, list[str | None]]:
        async with openai.AsyncOpenAI(api_key="none", base_url=url + "/v1", max_retries=0) as client:
            whole = await client.chat.completions.create(model="cascade/three", messages=ASK)
            stream = await client.chat.completions.create(model="cascade/three", messages=ASK, stream=True)
            texts = [c.choices[0].delta.content async for c in stream if c.choices]
            return whole.choices[0].message.content or "", texts

    with Running(create_app(three_router(vendors))) as running:
        whole, texts = asyncio.run(main(running.url))
    assert texts[0] == "" and texts[-1] is None  # the role chunk, and the finishing chunk
    assert "".join(t or "" for t in texts) == whole == "".join(PIECES)


def test_a_query_failing_after_the_stream_started_ends_with_an_error_the_sdk_raises() -> None:
    """Buffered mode's remaining case: the last stage streams straight through, and its stream breaks."""

    def breaks(request: CompletionRequest) -> Any:
        if request.model == "claude-sonnet-4-5":
            cut = StreamInterruptedError("anthropic stream ended early", provider="anthropic", model=request.model)
            return Streamed(["Canberra is", " the"], then=cut)
        return ServerError("down", provider="openai", model=request.model, status_code=500)

    vendors = scripted(breaks)
    seen: list[Any] = []
    with Running(create_app(three_router(vendors))) as running:
        stream = running.client().chat.completions.create(model="cascade/three", messages=ASK, stream=True)
        query_id = stream.response.headers["x-cascade-query-id"]
        with pytest.raises(openai.APIError) as raised:
            for chunk in stream:
                seen.append(chunk)
    error = raised.value
    assert not isinstance(error, openai.APIStatusError)  # the status (200) went out with the first chunk
    assert error.code == "cascade_exhausted" and query_id in error.message
    assert isinstance(error.body, dict) and error.body["query_id"] == query_id
    assert error.body["type"] == "upstream_error" and "StreamInterruptedError" in error.message
    # What was shown, then its withdrawal (which a plain client does not act on), then the error.
    assert "".join(c.choices[0].delta.content or "" for c in seen if c.choices) == "Canberra is the"
    assert seen[-1].choices == [] and seen[-1].model_extra is not None
    assert seen[-1].model_extra["cascade"]["reset"]["stage"] == "sonnet"


def test_a_server_fault_mid_stream_is_an_error_event_with_only_the_query_id() -> None:
    class Broken(Cascade):
        async def astream(self, *args: Any, **kwargs: Any) -> AsyncIterator[StreamEvent]:
            yield TextDelta("mini", "so far")
            raise RuntimeError("internal detail: /srv/secret/path sk-proj-CANARYdetail01")

    vendors = scripted()
    router = Broken(three_router(vendors).default_policy, providers=vendors)
    with Running(create_app(router)) as running:
        raw = httpx2.post(
            running.url + "/v1/chat/completions", json={"model": "cascade/three", "messages": ASK, "stream": True}
        )
        with pytest.raises(openai.APIError) as raised:
            list(running.client().chat.completions.create(model="cascade/three", messages=ASK, stream=True))
    assert raw.status_code == 200 and "so far" in raw.text and "[DONE]" not in raw.text
    assert "secret" not in raw.text and "RuntimeError" not in raw.text
    last = json.loads(raw.text.strip().split("\n\n")[-1].removeprefix("data: "))
    assert last["error"]["type"] == "server_error"
    assert last["error"]["message"] == f"internal error (query id {raw.headers['x-cascade-query-id']})"
    assert raised.value.message.startswith("internal error (query id ")


def test_a_query_failing_before_anything_was_sent_is_the_usual_502() -> None:
    def down(request: CompletionRequest) -> Any:
        return ServerError("down", provider="openai", model=request.model, status_code=500)

    vendors = scripted(down)
    with Running(create_app(three_router(vendors))) as running, pytest.raises(openai.InternalServerError) as raised:
        running.client().chat.completions.create(model="cascade/three", messages=ASK, stream=True)
    assert raised.value.status_code == 502 and raised.value.code == "cascade_exhausted"
    assert raised.value.response.headers["x-cascade-stages-tried"] == "mini,flash,sonnet"
    assert raised.value.response.headers["content-type"] == "application/json"


def test_a_stream_holds_its_slot_until_it_ends_and_a_client_that_leaves_ends_it() -> None:
    many = [f"word{i} " for i in range(100)]

    def slow_last_stage(request: CompletionRequest) -> Any:
        if is_judge(request):
            return judge_json(2)
        return Streamed(many, delay_s=0.05) if request.model == "claude-sonnet-4-5" else "draft"

    vendors = scripted(slow_last_stage)
    app = create_app(three_router(vendors), ServeConfig(max_concurrency=1))
    with Running(app) as running:
        client = running.client()
        stream = client.chat.completions.create(model="cascade/three", messages=ASK, stream=True)
        next(stream), next(stream)  # the role chunk and the first word: the last stage is streaming
        assert app.state.limit.in_flight == 1
        with pytest.raises(openai.RateLimitError):  # the stream still holds the one slot
            client.chat.completions.create(model="cascade/three", messages=ASK)
        stream.close()
        started = time.monotonic()
        while app.state.limit.in_flight or vendors["anthropic"]._in_flight.now:
            assert time.monotonic() - started < 2, "the stream went on after its client left"
            time.sleep(0.02)
    # The vendor stream was closed well before its 100 pieces (5 s) were out.
    assert time.monotonic() - started < 2


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"stream_options": {"include_usage": True}}, "stream_options"),
        ({"stream": True, "stream_options": {"include_obfuscation": True}}, "stream_options.include_obfuscation"),
        ({"stream": True, "stream_options": {"include_usage": "yes"}}, "stream_options.include_usage"),
        ({"cascade": {"stream_mode": "buffered"}}, "cascade.stream_mode"),
        ({"stream": True, "cascade": {"stream_mode": "eager"}}, "cascade.stream_mode"),
    ],
)
def test_stream_options_that_cannot_be_served_are_a_400(body: dict[str, Any], param: str) -> None:
    vendors = scripted()
    with Running(create_app(three_router(vendors))) as running:
        raw = httpx2.post(
            running.url + "/v1/chat/completions", json={"model": "cascade/three", "messages": ASK, **body}
        )
    assert raw.status_code == 400 and raw.json()["error"]["param"] == param
    assert all(not v.requests for v in vendors.values())
