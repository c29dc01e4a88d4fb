"""Named providers: a vLLM and an Ollama endpoint beside OpenAI in one policy, through `Cascade.run` and `arun`.

Each endpoint is its own `FakeVendorServer` on 127.0.0.1, answering with replies shaped as that server's
OpenAI-compatible layer writes them (vLLM's `ChatCompletionResponse`, Ollama's `openai.ChatCompletion`); the real
openai SDK does the calls. Nothing here leaves the machine.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from cascade import Cascade
from cascade.errors import MissingAPIKeyError, redact
from cascade.policy import Policy
from cascade.providers.base import NO_KEY
from cascade.result import CascadeResult
from cascade.testing import FakeVendorServer, RecordedRequest, judge_json, wire
from cascade.testing.wire import FakeReply

OPENAI_KEY = "sk-test-CANARY0123"  # the vendor's, named by the policy
VLLM_KEY = "vllm-test-CANARY4567"  # the vLLM server's own (`vllm serve --api-key ...`)
ENV_CANARY = "sk-test-CANARY-ENV-89ab"  # in OPENAI_API_KEY: must never reach a local endpoint
OLLAMA_MODEL = "llama3.2:3b"
VLLM_MODEL = "Qwen/Qwen2.5-7B-Instruct"
# A self-hosted model priced at nothing, one priced at what its GPUs cost: both from the policy, per million tokens.
VLLM_PRICE = {"input": 0.2, "output": 0.6}
QUESTION = "What is the capital of Australia?"


def vllm_chat(
    text: str, *, prompt_tokens: int, completion_tokens: int, reasoning: str | None = None, model: str = VLLM_MODEL
) -> FakeReply:
    """A reply as vLLM's OpenAI server writes it: its own fields beside OpenAI's (`stop_reason`, `prompt_logprobs`,
    `kv_transfer_params`, the reasoning parser's `reasoning_content`), an empty `tool_calls` list, and no
    `prompt_tokens_details` unless the server is started with --enable-prompt-tokens-details."""
    body = {
        "id": "chatcmpl-5d8e1c0f2a9b4e7c8d6f3a1b0c9e8d7f",
        "object": "chat.completion",
        "created": 1764547200,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "reasoning_content": reasoning, "content": text, "tool_calls": []},
                "logprobs": None,
                "finish_reason": "stop",
                "stop_reason": None,
            }
        ],
        "service_tier": None,
        "system_fingerprint": None,
        "usage": {
            "prompt_tokens": prompt_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
            "completion_tokens": completion_tokens,
            "prompt_tokens_details": None,
        },
        "prompt_logprobs": None,
        "kv_transfer_params": None,
    }
    return FakeReply(200, body, {"content-type": "application/json", "server": "uvicorn"})


def vllm_error(status: int, type_: str, message: str) -> FakeReply:
    """vLLM's error body: an `ErrorResponse` at the top level (`object: error`), not under an `error` key."""
    body = {"object": "error", "message": message, "type": type_, "param": None, "code": status}
    return FakeReply(status, body, {"content-type": "application/json", "server": "uvicorn"})


def ollama_chat(text: str, *, prompt_tokens: int, completion_tokens: int, model: str = OLLAMA_MODEL) -> FakeReply:
    """A reply as Ollama's OpenAI layer writes it: `system_fingerprint: fp_ollama`, a short numeric id, no
    `logprobs`, and usage with the three counts only (no `prompt_tokens_details`)."""
    body = {
        "id": "chatcmpl-417",
        "object": "chat.completion",
        "created": 1764547200,
        "model": model,
        "system_fingerprint": "fp_ollama",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }
    return FakeReply(200, body, {"content-type": "application/json; charset=utf-8"})


def ollama_error(status: int, message: str) -> FakeReply:
    """Ollama's OpenAI-shaped error (`openai.NewError`): under `error`, with a type and no code."""
    type_ = "not_found_error" if status == 404 else "api_error"
    body = {"error": {"message": message, "type": type_, "param": None, "code": None}}
    return FakeReply(status, body, {"content-type": "application/json; charset=utf-8"})


def openai_judge(score: int) -> FakeReply:
    return wire.openai_chat(judge_json(score), prompt_tokens=210, completion_tokens=12)


class Endpoints:
    """Three fake servers: OpenAI itself, a vLLM server and an Ollama server."""

    def __init__(self) -> None:
        self.openai, self.vllm, self.ollama = FakeVendorServer(), FakeVendorServer(), FakeVendorServer()

    def __iter__(self) -> Iterator[FakeVendorServer]:
        return iter((self.openai, self.vllm, self.ollama))

    def policy(self, **changes: Any) -> Policy:
        data: dict[str, Any] = {
            "name": "local-first",
            "version": "1",
            "stages": [
                {"name": "ollama-small", "provider": "ollama", "model": OLLAMA_MODEL, "threshold": 0.8, "retries": 0},
                {"name": "vllm-mid", "provider": "vllm", "model": VLLM_MODEL, "threshold": 0.8, "retries": 0},
                {"name": "flagship", "provider": "openai", "model": "gpt-4o-mini", "retries": 0},
            ],
            "judge": {"provider": "openai", "model": "gpt-4o-mini", "retries": 0},
            "providers": {
                "openai": {"base_url": self.openai.url + "/v1", "api_key_env": "CASCADE_TEST_OPENAI_KEY"},
                "vllm": {
                    "kind": "openai-compatible",
                    "base_url": self.vllm.url + "/v1",
                    "api_key_env": "CASCADE_TEST_VLLM_KEY",
                },
                "ollama": {"kind": "openai-compatible", "base_url": self.ollama.url + "/v1"},
            },
            "prices": {OLLAMA_MODEL: {"input": 0, "output": 0}, VLLM_MODEL: VLLM_PRICE},
            **changes,
        }
        return Policy.from_dict(data)


@pytest.fixture
def endpoints(monkeypatch: pytest.MonkeyPatch) -> Iterator[Endpoints]:
    monkeypatch.setenv("CASCADE_TEST_OPENAI_KEY", OPENAI_KEY)
    monkeypatch.setenv("CASCADE_TEST_VLLM_KEY", VLLM_KEY)
    # The vendor's own variables, set as a careless machine has them: a local endpoint must read neither.
    monkeypatch.setenv("OPENAI_API_KEY", ENV_CANARY)
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    for var in ("OPENAI_ORG_ID", "OPENAI_PROJECT_ID", "OPENAI_ADMIN_KEY"):
        monkeypatch.delenv(var, raising=False)
    found = Endpoints()
    for server in found:
        server.start()
    try:
        yield found
    finally:
        for server in found:
            server.stop()


@pytest.fixture(params=["run", "arun"])
def ask(request: pytest.FixtureRequest) -> Any:
    """`Cascade.run`, or `Cascade.arun` on a fresh event loop (closing its clients after)."""

    def sync(router: Cascade, query: str) -> CascadeResult:
        return router.run(query)

    def async_(router: Cascade, query: str) -> CascadeResult:
        async def go() -> CascadeResult:
            try:
                return await router.arun(query)
            finally:
                await router.aclose()

        return asyncio.run(go())

    return sync if request.param == "run" else async_


def _bodies(server: FakeVendorServer) -> list[tuple[str, str]]:
    return [(r.path, r.body["model"]) for r in server.requests]


def _auth(request: RecordedRequest) -> str | None:
    return request.headers.get("authorization")


def test_a_query_climbs_from_ollama_to_vllm_to_openai(endpoints: Endpoints, ask: Any) -> None:
    endpoints.ollama.script("openai", ollama_chat("Sydney.", prompt_tokens=31, completion_tokens=3))
    endpoints.vllm.script(
        "openai", vllm_chat("Canberra, I think.", prompt_tokens=40, completion_tokens=6, reasoning="Sydney? No.")
    )
    endpoints.openai.script(
        "openai", openai_judge(2), openai_judge(6), wire.openai_chat("Canberra.", prompt_tokens=25, completion_tokens=3)
    )
    result = ask(Cascade(endpoints.policy(), retry_backoff_s=0.0), QUESTION)

    assert (result.answer, result.stage, result.provider, result.escalations) == ("Canberra.", "flagship", "openai", 2)
    assert [(a.stage, a.role, a.provider, a.model) for a in result.attempts] == [
        ("ollama-small", "answer", "ollama", OLLAMA_MODEL),
        ("ollama-small", "judge", "openai", "gpt-4o-mini"),
        ("vllm-mid", "answer", "vllm", VLLM_MODEL),
        ("vllm-mid", "judge", "openai", "gpt-4o-mini"),
        ("flagship", "answer", "openai", "gpt-4o-mini"),
    ]
    # Each server got exactly its own calls, and each its own key: none for Ollama, never the environment's.
    assert _bodies(endpoints.ollama) == [("/v1/chat/completions", OLLAMA_MODEL)]
    assert _bodies(endpoints.vllm) == [("/v1/chat/completions", VLLM_MODEL)]
    assert _bodies(endpoints.openai) == [("/v1/chat/completions", "gpt-4o-mini")] * 3
    assert [_auth(r) for r in endpoints.ollama.requests] == [None]  # no key of any kind is sent
    assert [_auth(r) for r in endpoints.vllm.requests] == [f"Bearer {VLLM_KEY}"]
    assert {_auth(r) for r in endpoints.openai.requests} == {f"Bearer {OPENAI_KEY}"}
    # The judge saw vLLM's answer, not its reasoning.
    vllm_judged = endpoints.openai.requests[1].body["messages"][-1]["content"]
    assert "Canberra, I think." in vllm_judged and "Sydney? No." not in vllm_judged


def test_costs_come_from_the_policy_prices(endpoints: Endpoints, ask: Any) -> None:
    endpoints.ollama.script("openai", ollama_chat("Sydney.", prompt_tokens=31, completion_tokens=3))
    endpoints.vllm.script("openai", vllm_chat("Canberra.", prompt_tokens=40_000, completion_tokens=10_000))
    endpoints.openai.script("openai", openai_judge(2), openai_judge(9))
    result = ask(Cascade(endpoints.policy(), retry_backoff_s=0.0), QUESTION)

    assert (result.stage, result.accepted) == ("vllm-mid", True)
    ollama, _, vllm, _ = result.attempts
    assert (ollama.input_tokens, ollama.output_tokens, ollama.cached_input_tokens) == (31, 3, 0)
    assert ollama.cost_usd == 0.0
    assert ollama.price is not None and (ollama.price.source, ollama.price.input) == ("policy override", 0.0)
    assert vllm.served_by == VLLM_MODEL
    assert vllm.cost_usd == pytest.approx((40_000 * 0.2 + 10_000 * 0.6) / 1e6)
    judges = sum(a.cost_usd for a in result.attempts if a.role == "judge")
    assert judges > 0
    assert result.cost_usd == pytest.approx(vllm.cost_usd + judges)


def test_a_judge_on_a_local_endpoint_asks_for_json_whatever_its_method(endpoints: Endpoints, ask: Any) -> None:
    endpoints.ollama.script("openai", ollama_chat("Canberra.", prompt_tokens=31, completion_tokens=3))
    endpoints.vllm.script("openai", vllm_chat(judge_json(9, "correct"), prompt_tokens=180, completion_tokens=14))
    judge = {"provider": "vllm", "model": VLLM_MODEL, "method": "logprobs", "retries": 0}
    result = ask(Cascade(endpoints.policy(judge=judge), retry_backoff_s=0.0), QUESTION)

    assert (result.stage, result.accepted, result.confidence) == ("ollama-small", True, 0.9)
    assert [(a.role, a.provider) for a in result.attempts] == [("answer", "ollama"), ("judge", "vllm")]
    (sent,) = endpoints.vllm.requests
    assert "logprobs" not in sent.body and "top_logprobs" not in sent.body
    assert endpoints.openai.requests == []


def test_errors_name_the_endpoint_that_failed(endpoints: Endpoints, ask: Any) -> None:
    endpoints.ollama.script("openai", ollama_error(404, f'model "{OLLAMA_MODEL}" not found, try pulling it first'))
    endpoints.vllm.script("openai", vllm_error(400, "BadRequestError", "max_tokens is too large: 1024 > 512"))
    endpoints.openai.script("openai", wire.openai_chat("Canberra.", prompt_tokens=25, completion_tokens=3))
    result = ask(Cascade(endpoints.policy(), retry_backoff_s=0.0), QUESTION)

    assert (result.answer, result.stage) == ("Canberra.", "flagship")
    ollama, vllm, _ = result.attempts
    assert (ollama.provider, ollama.error and ollama.error.status_code) == ("ollama", 404)
    assert ollama.error is not None and ollama.error.message.startswith(f'ollama HTTP 404: model "{OLLAMA_MODEL}"')
    assert vllm.error is not None and vllm.error.message == "vllm HTTP 400: max_tokens is too large: 1024 > 512"
    assert "openai" not in ollama.error.message + vllm.error.message


def test_a_dropped_connection_names_the_endpoint(endpoints: Endpoints, ask: Any) -> None:
    endpoints.ollama.script("openai", FakeReply(drop=True))
    endpoints.vllm.script("openai", vllm_chat("Canberra.", prompt_tokens=40, completion_tokens=3))
    endpoints.openai.script("openai", openai_judge(9))
    result = ask(Cascade(endpoints.policy(), retry_backoff_s=0.0), QUESTION)

    assert result.stage == "vllm-mid"
    failed = result.attempts[0]
    assert failed.error is not None and failed.error.type == "VendorConnectionError"
    assert failed.error.message.startswith("ollama: could not connect")


def test_two_endpoints_of_one_kind_are_two_clients(endpoints: Endpoints) -> None:
    router = Cascade(endpoints.policy())
    policy = router.default_policy
    vllm, ollama = router._provider(policy, "vllm"), router._provider(policy, "ollama")
    assert vllm is not ollama
    assert (vllm.name, ollama.name) == ("vllm", "ollama")
    assert vllm.settings.resolve_base_url() == endpoints.vllm.url + "/v1"
    assert ollama.settings.resolve_base_url() == endpoints.ollama.url + "/v1"
    assert router._provider(policy, "vllm") is vllm  # and each is built once


def test_an_unset_key_variable_is_named_before_anything_is_sent(
    endpoints: Endpoints, monkeypatch: pytest.MonkeyPatch, ask: Any
) -> None:
    monkeypatch.delenv("CASCADE_TEST_VLLM_KEY")
    router = Cascade(endpoints.policy())
    with pytest.raises(MissingAPIKeyError) as info:
        router.check_ready()
    assert (info.value.provider, info.value.env_vars) == ("vllm", ("CASCADE_TEST_VLLM_KEY",))
    assert "no API key for vllm: set CASCADE_TEST_VLLM_KEY" in str(info.value)

    # A query stops at the vLLM stage with the same usage error, after Ollama's answer was judged too low.
    endpoints.ollama.script("openai", ollama_chat("Sydney.", prompt_tokens=31, completion_tokens=3))
    endpoints.openai.script("openai", openai_judge(2))
    with pytest.raises(MissingAPIKeyError, match="CASCADE_TEST_VLLM_KEY"):
        ask(router, QUESTION)
    assert endpoints.vllm.requests == []


def test_an_endpoint_without_a_key_needs_none_and_the_placeholder_is_no_secret(
    endpoints: Endpoints, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY")
    stages = [{"name": "only", "provider": "ollama", "model": OLLAMA_MODEL}]
    router = Cascade(endpoints.policy(stages=stages, judge={"provider": "ollama", "model": OLLAMA_MODEL}))
    router.check_ready()  # no variable set anywhere, and nothing to complain about
    endpoints.ollama.script("openai", ollama_chat("Canberra.", prompt_tokens=31, completion_tokens=3))
    assert router.run(QUESTION).answer == "Canberra."
    assert redact(f"sent {NO_KEY} as the key") == f"sent {NO_KEY} as the key"  # not masked: it is not a key
    assert repr(router._provider(router.default_policy, "ollama").settings).endswith(
        "async_http='httpx', key_required=False)"
    )


def test_a_key_given_in_python_goes_to_the_endpoint_of_that_name(endpoints: Endpoints) -> None:
    stages = [{"name": "only", "provider": "ollama", "model": OLLAMA_MODEL}]
    router = Cascade(endpoints.policy(stages=stages), api_keys={"ollama": "ollama-test-CANARY0001"})
    endpoints.ollama.script("openai", ollama_chat("Canberra.", prompt_tokens=31, completion_tokens=3))
    router.run(QUESTION)
    assert [_auth(r) for r in endpoints.ollama.requests] == ["Bearer ollama-test-CANARY0001"]
    assert "ollama-test-CANARY0001" not in redact("the key ollama-test-CANARY0001")


def test_a_rate_limit_holds_for_an_endpoint_by_its_name(endpoints: Endpoints) -> None:
    limits = {"rate": {"vllm": {"requests_per_minute": 1}}}
    stages = [
        {"name": "vllm-mid", "provider": "vllm", "model": VLLM_MODEL, "threshold": 0.8, "retries": 0},
        {"name": "flagship", "provider": "openai", "model": "gpt-4o-mini", "retries": 0},
    ]
    router = Cascade(endpoints.policy(stages=stages, limits=limits), retry_backoff_s=0.0)
    endpoints.vllm.script("openai", vllm_chat("Canberra.", prompt_tokens=40, completion_tokens=3))
    endpoints.openai.script(
        "openai", openai_judge(9), wire.openai_chat("Canberra.", prompt_tokens=25, completion_tokens=3)
    )

    assert router.run(QUESTION).stage == "vllm-mid"
    second = router.run(QUESTION)
    assert second.stage == "flagship"  # vLLM had no turn left this minute: its stage was passed over
    assert second.attempts[0].provider == "vllm" and second.attempts[0].error is not None
    assert "vllm: no turn under the rate limit" in second.attempts[0].error.message
    assert len(endpoints.vllm.requests) == 1


def test_a_second_anthropic_account_under_a_name_of_its_own(
    endpoints: Endpoints, monkeypatch: pytest.MonkeyPatch, ask: Any
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test-CANARY-main")
    monkeypatch.setenv("CASCADE_TEST_EU_KEY", "sk-ant-test-CANARY-eu01")
    # The gateway is one of the fake servers (each speaks all three vendors' APIs).
    eu = {"kind": "anthropic", "base_url": endpoints.vllm.url, "api_key_env": "CASCADE_TEST_EU_KEY"}
    stages = [{"name": "eu", "provider": "anthropic-eu", "model": "claude-3-5-haiku-20241022", "retries": 0}]
    endpoints.vllm.script(
        "anthropic", wire.anthropic_message("Canberra.", input_tokens=20, output_tokens=3, model="claude-3-5-haiku")
    )
    result = ask(Cascade(endpoints.policy(stages=stages, providers={"anthropic-eu": eu})), QUESTION)

    assert (result.answer, result.provider) == ("Canberra.", "anthropic-eu")
    assert result.attempts[0].cost_usd > 0  # the vendor's own prices: it is Anthropic's API
    (sent,) = endpoints.vllm.requests
    assert sent.path == "/v1/messages" and _auth(sent) == "Bearer sk-ant-test-CANARY-eu01"
