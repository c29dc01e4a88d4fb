"""The real `openai` client, sync and async, pointed at `cascade serve` on 127.0.0.1 with scripted vendors behind."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx2
import openai
import pytest

from cascade import Cascade, CascadeResult
from cascade.errors import ServerError
from cascade.providers.base import CompletionRequest
from cascade.serve import ServeConfig, create_app
from cascade.testing import judge_json
from tests.serve.conftest import Running, scripted, three_router

ASK = [{"role": "system", "content": "Answer in one word."}, {"role": "user", "content": "Capital of Australia?"}]


def doubting_mini(request: CompletionRequest) -> str:
    """The judge doubts the first stage's answer (3/10) and trusts the second's (9/10)."""
    text = request.messages[-1].content
    if "<<<ANSWER " in text:
        return judge_json(3 if "answer from gpt-4o-mini" in text else 9)
    return f"answer from {request.model}"


def test_an_answer_is_a_chat_completion_with_the_trace_in_headers(vendors: dict[str, Any]) -> None:
    with Running(create_app(three_router(vendors))) as running:
        raw = running.client().chat.completions.with_raw_response.create(model="cascade/three", messages=ASK)
    completion = raw.parse()
    assert completion.object == "chat.completion" and len(completion.choices) == 1
    assert completion.choices[0].message.content == "answer from gpt-4o-mini"
    assert completion.choices[0].finish_reason == "stop" and completion.model == "gpt-4o-mini"
    assert completion.model_extra == {}  # the trace field only when asked for
    headers = raw.headers
    assert headers["x-cascade-stage"] == "mini" and headers["x-cascade-stages-tried"] == "mini"
    assert headers["x-cascade-confidence"] == "0.9" and headers["x-cascade-accepted"] == "true"
    assert headers["x-cascade-policy"] == "three@1" and headers["x-cascade-escalations"] == "0"
    assert float(headers["x-cascade-savings-usd"]) > 0 and float(headers["x-cascade-cost-usd"]) > 0
    assert completion.id == f"chatcmpl-{headers['x-cascade-query-id']}"
    # The system prompt reached the vendor as the system prompt.
    assert vendors["openai"].requests[0].system == "Answer in one word."


def test_usage_is_summed_over_the_cascade_and_the_trace_field_holds_every_call() -> None:
    vendors = scripted(doubting_mini)
    with Running(create_app(three_router(vendors))) as running:
        raw = running.client().chat.completions.with_raw_response.create(
            model="cascade/three", messages=ASK, extra_body={"cascade": {"trace": True}}
        )
    completion = raw.parse()
    assert completion.choices[0].message.content == "answer from gemini-2.0-flash"
    assert completion.model == "gemini-2.0-flash" and raw.headers["x-cascade-stages-tried"] == "mini,flash"
    assert completion.model_extra is not None
    summary = completion.model_extra["cascade"]
    attempts = summary["attempts"]
    assert [(a["stage"], a["role"]) for a in attempts] == [
        ("mini", "answer"),
        ("mini", "judge"),
        ("flash", "answer"),
        ("flash", "judge"),
    ]
    assert completion.usage is not None
    assert completion.usage.prompt_tokens == sum(a["input_tokens"] for a in attempts) > 0
    assert completion.usage.completion_tokens == sum(a["output_tokens"] for a in attempts) > 0
    assert completion.usage.total_tokens == completion.usage.prompt_tokens + completion.usage.completion_tokens
    assert summary["stages_tried"] == ["mini", "flash"] and summary["escalations"] == 1
    assert summary["cost_usd"] == pytest.approx(sum(a["cost_usd"] for a in attempts))
    assert summary["confidence"] == 0.9 and summary["query_id"] == raw.headers["x-cascade-query-id"]


def test_the_async_client_lists_models_and_answers_many_at_once() -> None:
    vendors = scripted(delay_s=0.02)
    router = Cascade(three_router(vendors).default_policy, _other_policy(), providers=vendors, retry_backoff_s=0)

    async def main(url: str) -> tuple[list[str], str, list[str | None]]:
        async with openai.AsyncOpenAI(api_key="none", base_url=url + "/v1", max_retries=0) as async_client:
            models = [m.id async for m in async_client.models.list()]
            one = await async_client.models.retrieve("cascade/other")
            replies = await asyncio.gather(
                *(
                    async_client.chat.completions.create(
                        model="cascade/other" if i % 2 else "cascade/three",
                        messages=[{"role": "user", "content": f"question {i}"}],
                    )
                    for i in range(20)
                )
            )
            return models, one.id, [r.choices[0].message.content for r in replies]

    with Running(create_app(router)) as running:
        models, retrieved, answers = asyncio.run(main(running.url))
    assert models == ["cascade/three", "cascade/other"] and retrieved == "cascade/other"
    assert answers == [f"answer from {'claude-sonnet-4-5' if i % 2 else 'gpt-4o-mini'}" for i in range(20)]
    assert max(v.max_in_flight for v in vendors.values()) > 1  # the server answered them concurrently


def _other_policy() -> Any:
    from cascade.policy import Policy

    stage = {"name": "only", "provider": "anthropic", "model": "claude-sonnet-4-5", "retries": 0}
    return Policy.from_dict({"name": "other", "version": "2", "stages": [stage]})


@pytest.mark.parametrize(
    ("kwargs", "param"),
    [
        ({"stream_options": {"include_usage": True}}, "stream_options"),  # without stream
        ({"temperature": 0.2}, "temperature"),
        ({"max_tokens": 10}, "max_tokens"),
        ({"n": 2}, "n"),
        ({"messages": [{"role": "user", "content": "  "}]}, "messages"),
        ({"messages": [{"role": "tool", "content": "x", "tool_call_id": "1"}]}, "messages[0].tool_call_id"),
        (
            {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]},
            "messages[0].content[0]",
        ),
        ({"extra_body": {"cascade": {"max_cost_usd": -1}}}, "cascade.max_cost_usd"),
    ],
)
def test_bad_input_is_a_400_naming_the_field(vendors: dict[str, Any], kwargs: dict[str, Any], param: str) -> None:
    request: dict[str, Any] = {"model": "cascade/three", "messages": ASK, **kwargs}
    with Running(create_app(three_router(vendors))) as running, pytest.raises(openai.BadRequestError) as raised:
        running.client().chat.completions.create(**request)
    assert raised.value.status_code == 400 and raised.value.param == param
    assert all(not v.requests for v in vendors.values())


def test_a_model_that_is_not_served_is_404_listing_what_is(vendors: dict[str, Any]) -> None:
    with Running(create_app(three_router(vendors))) as running:
        with pytest.raises(openai.NotFoundError) as raised:
            running.client().chat.completions.create(model="gpt-4o", messages=ASK)
        assert raised.value.code == "model_not_found" and "cascade/three" in raised.value.message
        with pytest.raises(openai.NotFoundError):
            running.client().models.retrieve("cascade/nope")


def test_server_keys_are_required_when_set(vendors: dict[str, Any]) -> None:
    app = create_app(three_router(vendors), ServeConfig(keys=frozenset({"key-one", "key-two"})))
    with Running(app) as running:
        with pytest.raises(openai.AuthenticationError) as raised:
            running.client("key-three").chat.completions.create(model="cascade/three", messages=ASK)
        assert raised.value.status_code == 401 and raised.value.code == "invalid_api_key"
        with pytest.raises(openai.AuthenticationError):
            running.client("key-three").models.list()
        assert all(not v.requests for v in vendors.values())
        for key in ("key-one", "key-two"):
            answer = running.client(key).chat.completions.create(model="cascade/three", messages=ASK)
            assert answer.choices[0].message.content == "answer from gpt-4o-mini"
        bare = httpx2.post(running.url + "/v1/chat/completions", json={"model": "cascade/three", "messages": ASK})
        assert bare.status_code == 401 and bare.headers["www-authenticate"] == "Bearer"
        assert "a server key is required" in bare.json()["error"]["message"]
        assert httpx2.get(running.url + "/health").json() == {"status": "ok"}  # a health check needs no key


def test_when_every_tier_fails_it_is_a_502_with_the_query_id_and_no_client_retry() -> None:
    def down(request: CompletionRequest) -> Any:
        return ServerError("The server had an error.", provider=request.model, model=request.model, status_code=500)

    vendors = scripted(down)
    with Running(create_app(three_router(vendors))) as running:
        retrying = running.client(max_retries=2)
        with pytest.raises(openai.InternalServerError) as raised:
            retrying.chat.completions.create(model="cascade/three", messages=ASK)
    error = raised.value
    assert error.status_code == 502 and error.code == "cascade_exhausted"
    query_id = error.response.headers["x-cascade-query-id"]
    assert isinstance(error.body, dict) and error.body["query_id"] == query_id and query_id in error.message
    assert "ServerError" in error.message and error.response.headers["x-cascade-stages-tried"] == "mini,flash,sonnet"
    # x-should-retry: false: the client did not run the whole cascade again (one call per stage in all).
    assert error.response.headers["x-should-retry"] == "false"
    assert sum(len(v.requests) for v in vendors.values()) == 3


def test_over_the_concurrency_limit_is_a_429_with_retry_after() -> None:
    vendors = scripted(delay_s=0.3)
    app = create_app(three_router(vendors), ServeConfig(max_concurrency=2))

    async def main(url: str) -> list[Any]:
        async with openai.AsyncOpenAI(api_key="none", base_url=url + "/v1", max_retries=0) as async_client:
            calls = [async_client.chat.completions.create(model="cascade/three", messages=ASK) for _ in range(5)]
            return await asyncio.gather(*calls, return_exceptions=True)

    with Running(app) as running:
        outcomes = asyncio.run(main(running.url))
    refused = [o for o in outcomes if isinstance(o, openai.RateLimitError)]
    answered = [o for o in outcomes if not isinstance(o, Exception)]
    assert len(answered) == 2 and len(refused) == 3
    assert all(r.response.headers["retry-after"] == "1" and r.code == "concurrency_limit" for r in refused)
    assert app.state.limit.peak == 2 and app.state.limit.in_flight == 0


def test_a_body_over_the_size_limit_is_413(vendors: dict[str, Any]) -> None:
    app = create_app(three_router(vendors), ServeConfig(max_body_bytes=2_000))
    big = [{"role": "user", "content": "x" * 3_000}]
    with Running(app) as running:
        with pytest.raises(openai.APIStatusError) as raised:
            running.client().chat.completions.create(model="cascade/three", messages=big)
        assert raised.value.status_code == 413 and raised.value.code == "too_large"
        # Without a Content-Length the limit holds too (a chunked body is cut off as it passes it).
        chunks = (
            b'{"model": "cascade/three", "messages": [{"role": "user", "content": "' + b"x" * 500 for _ in range(6)
        )
        chunked = httpx2.post(running.url + "/v1/chat/completions", content=chunks)
        assert chunked.status_code == 413
    assert all(not v.requests for v in vendors.values())


def test_a_server_fault_is_a_500_with_the_query_id_and_nothing_else(vendors: dict[str, Any]) -> None:
    class Broken(Cascade):
        async def arun(self, *args: Any, **kwargs: Any) -> CascadeResult:
            raise RuntimeError("internal detail: /srv/secret/path sk-proj-CANARYdetail01")

    router = Broken(three_router(vendors).default_policy, providers=vendors)
    with Running(create_app(router)) as running:
        raw = httpx2.post(running.url + "/v1/chat/completions", json={"model": "cascade/three", "messages": ASK})
    assert raw.status_code == 500
    error = raw.json()["error"]
    assert error["message"] == f"internal error (query id {error['query_id']})" and error["type"] == "server_error"
    assert "Traceback" not in raw.text and "secret" not in raw.text and "RuntimeError" not in raw.text


def test_routes_methods_and_bodies_that_are_not_the_api_get_openai_shaped_errors(vendors: dict[str, Any]) -> None:
    with Running(create_app(three_router(vendors))) as running:
        missing = httpx2.get(running.url + "/v1/embeddings")
        wrong_method = httpx2.get(running.url + "/v1/chat/completions")
        not_json = httpx2.post(running.url + "/v1/chat/completions", content=b"{not json")
        not_object = httpx2.post(running.url + "/v1/chat/completions", json=[1, 2])
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    assert wrong_method.status_code == 405 and wrong_method.json()["error"]["code"] == "method_not_allowed"
    assert not_json.status_code == 400 and not_json.json()["error"]["code"] == "invalid_json"
    assert not_object.status_code == 400 and "JSON object" in not_object.json()["error"]["message"]


def test_the_sync_client_and_the_library_give_the_same_answer(vendors: dict[str, Any]) -> None:
    router = three_router(vendors)
    direct = router.run(ASK)
    with Running(create_app(router)) as running:
        served = running.client().chat.completions.create(model="cascade/three", messages=ASK)
    assert served.choices[0].message.content == direct.answer
    assert served.usage is not None and served.usage.prompt_tokens == sum(a.input_tokens for a in direct.attempts)
