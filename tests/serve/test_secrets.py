"""Vendor keys never leave the server: not in an answer, an error, a trace, a header, whatever a vendor echoes.

Behind the server is `FakeVendorServer` on 127.0.0.1, reached by the real OpenAI adapter with the key from the
environment, as in production; the fake vendor echoes the key it was sent in its error messages.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx2
import pytest

from cascade import Cascade
from cascade.policy import Policy
from cascade.serve import ServeConfig, create_app
from cascade.testing import FakeVendorServer, judge_json, wire
from cascade.testing.fake_server import RecordedRequest
from tests.serve.conftest import Running

# One key of a familiar shape, one of none: each must be masked (the second only because cascade was given it).
KEYS = ("sk-proj-CANARYserve0123", "vendor-credential-that-stays-home")
ASK = {"model": "cascade/echo", "messages": [{"role": "user", "content": "Capital of Australia?"}]}


class EchoingVendor:
    """A fake OpenAI that puts the key it was sent into every error it returns (vendors do: "Incorrect API key
    provided: sk-...")."""

    def __init__(self) -> None:
        self.fail = True

    def __call__(self, request: RecordedRequest) -> wire.FakeReply:
        sent = request.headers.get("authorization", "").removeprefix("Bearer ")
        if self.fail:
            message = f"Incorrect API key provided: {sent}. You passed {sent!r} in the Authorization header."
            return wire.openai_error(401, message, type_="invalid_request_error", code="invalid_api_key")
        # A model's own text cannot hold the key (the model never sees it): only the vendor's errors can.
        text = request.body["messages"][-1]["content"]
        reply = judge_json(9) if "<<<ANSWER " in text else "Canberra."
        return wire.openai_chat(reply, prompt_tokens=20, completion_tokens=5)


@pytest.fixture(params=KEYS, ids=["key-shaped", "plain"])
def key(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("OPENAI_API_KEY", request.param)
    return str(request.param)


@pytest.fixture
def served(key: str) -> Iterator[tuple[Running, EchoingVendor, FakeVendorServer]]:
    vendor = EchoingVendor()
    with FakeVendorServer(responder=vendor) as fake:
        stages = [
            {"name": "mini", "provider": "openai", "model": "gpt-4o-mini", "threshold": 0.8, "retries": 0},
            {"name": "big", "provider": "openai", "model": "gpt-4o", "retries": 0},
        ]
        providers = {"openai": {"base_url": fake.url + "/v1"}}
        policy = Policy.from_dict({"name": "echo", "version": "1", "stages": stages, "providers": providers})
        app = create_app(Cascade(policy, retry_backoff_s=0), ServeConfig(keys=frozenset({"server-key-1"})))
        with Running(app) as running:
            yield running, vendor, fake


def leaks(key: str, response: httpx2.Response) -> list[str]:
    """The pieces of `key` found anywhere in the response: its body or any header."""
    seen = response.text + "\n" + "\n".join(f"{k}: {v}" for k, v in response.headers.items())
    pieces = [key, key[-12:], key[8:20]]
    return [piece for piece in pieces if piece in seen]


def post(running: Running, body: dict[str, Any], server_key: str = "server-key-1") -> httpx2.Response:
    headers = {"authorization": f"Bearer {server_key}"}
    return httpx2.post(running.url + "/v1/chat/completions", json=body, headers=headers, timeout=30)


def test_a_vendor_echoing_the_key_in_its_errors_does_not_put_it_in_the_502(
    key: str, served: tuple[Running, EchoingVendor, FakeVendorServer]
) -> None:
    running, _, fake = served
    response = post(running, {**ASK, "cascade": {"trace": True}})
    assert response.status_code == 502, response.text
    assert fake.requests and all(r.headers["authorization"] == f"Bearer {key}" for r in fake.requests)
    error = response.json()["error"]
    assert "Incorrect API key provided" in response.text and len(error["cascade"]["attempts"]) == 2
    assert leaks(key, response) == []


def test_answers_traces_and_the_other_routes_do_not_carry_the_key(
    key: str, served: tuple[Running, EchoingVendor, FakeVendorServer]
) -> None:
    running, vendor, _ = served
    vendor.fail = False
    answered = post(running, {**ASK, "cascade": {"trace": True}})
    assert answered.status_code == 200, answered.text
    assert answered.json()["choices"][0]["message"]["content"] == "Canberra."
    refused = post(running, ASK, server_key=key)  # a vendor key is no server key
    others = [
        answered,
        refused,
        httpx2.get(running.url + "/v1/models", headers={"authorization": "Bearer server-key-1"}),
        httpx2.get(running.url + "/health"),
        httpx2.get(running.url + "/nowhere"),
        post(running, {**ASK, "temperature": 1}),
    ]
    assert [r.status_code for r in others] == [200, 401, 200, 200, 404, 400]
    # A refusal does not say back the token it was sent.
    assert [leaks(key, response) for response in others[1:]] == [[]] * 5
    assert leaks(key, answered) == []
