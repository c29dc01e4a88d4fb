"""The server's pure parts, without a server: request checks, the reply's headers, server keys."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from cascade.errors import InvalidArgumentError
from cascade.result import Attempt, CascadeResult, PolicyRef
from cascade.serve import ServeConfig
from cascade.serve.auth import BearerAuth, load_server_keys
from cascade.serve.shapes import APIError, completion_body, parse_chat_request, summary_headers

SERVED = ("three", "other")
USER = {"role": "user", "content": "hello"}


def parse(**body: Any) -> Any:
    return parse_chat_request(json.dumps({"model": "cascade/three", "messages": [USER], **body}).encode(), SERVED)


def refused(raw: bytes | dict[str, Any]) -> APIError:
    data = raw if isinstance(raw, bytes) else json.dumps(raw).encode()
    with pytest.raises(APIError) as raised:
        parse_chat_request(data, SERVED)
    return raised.value


def test_a_request_becomes_the_policy_and_cascade_s_messages() -> None:
    messages = [
        {"role": "developer", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "first"}, {"type": "text", "text": "second"}]},
    ]
    chat = parse(messages=messages, stream=False, n=1, user="u-1", cascade={"trace": True, "max_cost_usd": 0.01})
    assert chat.policy == "three" and chat.trace is True and chat.max_cost_usd == 0.01
    assert chat.messages == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "first\nsecond"}]
    # Nulls are what some clients send for "not given".
    assert parse(stream=None, n=None, user=None, cascade=None).messages == [USER]


@pytest.mark.parametrize(
    ("body", "status", "param"),
    [
        ({"model": "cascade/three", "messages": [USER], "stream": "yes"}, 400, "stream"),
        ({"model": "cascade/three", "messages": [USER], "tools": []}, 400, "tools"),
        ({"model": "cascade/three", "messages": [USER], "user": 7}, 400, "user"),
        ({"messages": [USER]}, 400, "model"),
        ({"model": "three", "messages": [USER]}, 404, None),
        ({"model": "cascade/nope", "messages": [USER]}, 404, None),
        ({"model": "cascade/three"}, 400, "messages"),
        ({"model": "cascade/three", "messages": []}, 400, "messages"),
        ({"model": "cascade/three", "messages": ["hello"]}, 400, "messages[0]"),
        ({"model": "cascade/three", "messages": [{"role": "function", "content": "x"}]}, 400, "messages[0].role"),
        ({"model": "cascade/three", "messages": [{**USER, "name": "bob"}]}, 400, "messages[0].name"),
        ({"model": "cascade/three", "messages": [{"role": "user", "content": None}]}, 400, "messages[0].content"),
        (
            {
                "model": "cascade/three",
                "messages": [{"role": "user", "content": [{"type": "text", "text": "a", "x": 1}]}],
            },
            400,
            "messages[0].content[0]",
        ),
        ({"model": "cascade/three", "messages": [USER], "cascade": []}, 400, "cascade"),
        ({"model": "cascade/three", "messages": [USER], "cascade": {"budget": 1}}, 400, "cascade.budget"),
        ({"model": "cascade/three", "messages": [USER], "cascade": {"trace": 1}}, 400, "cascade.trace"),
        (
            {"model": "cascade/three", "messages": [USER], "cascade": {"max_cost_usd": True}},
            400,
            "cascade.max_cost_usd",
        ),
        ({"model": "cascade/three", "messages": [USER], "cascade": {"max_cost_usd": 0}}, 400, "cascade.max_cost_usd"),
    ],
)
def test_what_cannot_be_answered_as_sent_is_refused_naming_the_field(
    body: dict[str, Any], status: int, param: str | None
) -> None:
    error = refused(body)
    assert (error.status, error.param) == (status, param)
    assert set(error.body()["error"]) == {"message", "type", "param", "code"}


def test_bodies_that_are_not_json_objects() -> None:
    assert refused(b"\xff\xfe not utf-8").code == "invalid_json"
    assert refused(b"[" * 100_000).code == "invalid_json"  # too deep to parse is not a server fault
    assert refused(b'"text"').status == 400


def result(**fields: Any) -> CascadeResult:
    attempt = Attempt(stage="mini", role="answer", provider="openai", model="gpt-4o-mini", served_by="gpt-4o-mini-x")
    base: dict[str, Any] = {
        "query_id": "q1",
        "answer": "hi",
        "stage": "mini",
        "provider": "openai",
        "model": "gpt-4o-mini",
        "confidence": 0.9,
        "accepted": True,
        "cost_usd": 0.0008536500000000001,
        "flagship_cost_usd": 0.0020000000000000005,
        "latency_s": 0.1,
        "escalations": 0,
        "entry_stage": "mini",
        "route": "default",
        "policy": PolicyRef(name="three", version="1"),
        "attempts": [attempt],
    }
    return CascadeResult(**{**base, **fields})


def test_headers_are_ascii_and_money_has_no_float_noise() -> None:
    headers = summary_headers(result(route="rule:naïve\r\nX-Injected: 1"))
    assert headers["x-cascade-cost-usd"] == "0.00085365" and headers["x-cascade-savings-usd"] == "0.00114635"
    assert headers["x-cascade-route"] == "rule:na\\u00efve\\u000d\\u000aX-Injected: 1"
    assert all(value.isascii() and value.isprintable() for value in headers.values())


def test_the_model_is_the_one_the_vendor_says_answered() -> None:
    assert completion_body(result(), 0, trace=False)["model"] == "gpt-4o-mini-x"


def test_server_keys_from_the_variable_and_the_file(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    keys.write_text("# team A\nkey-from-file\n\n  key-two  \n")
    assert load_server_keys(None) == frozenset()
    assert load_server_keys(" a-key , b-key,,") == {"a-key", "b-key"}
    assert load_server_keys("a-key", keys) == {"a-key", "key-from-file", "key-two"}


@pytest.mark.parametrize(
    ("env", "file_text", "message"),
    [
        ("", None, "holds no key"),
        (" , ", None, "holds no key"),
        (None, "# only a comment\n", "holds no key"),
        ("a key", None, "a space or a control character"),
    ],
)
def test_server_keys_that_cannot_work_are_refused(
    tmp_path: Path, env: str | None, file_text: str | None, message: str
) -> None:
    path = None
    if file_text is not None:
        path = tmp_path / "keys"
        path.write_text(file_text)
    with pytest.raises(InvalidArgumentError, match=message):
        load_server_keys(env, path)
    with pytest.raises(InvalidArgumentError, match="cannot read"):
        load_server_keys(None, tmp_path / "missing")


def test_the_bearer_check() -> None:
    auth = BearerAuth({"key-one", "key-two"})
    assert auth.required and auth.allows("Bearer key-one") and auth.allows("bearer  key-two ")
    for header in (None, "", "Bearer", "Bearer key-three", "Basic key-one", "key-one", "Bearer key-one2"):
        assert not auth.allows(header), header
    assert "key-one" not in repr(auth)
    assert BearerAuth(()).allows(None) and not BearerAuth(()).required


def test_a_server_config_hides_its_keys_and_refuses_limits_below_one() -> None:
    assert "secret-server-key" not in repr(ServeConfig(keys=frozenset({"secret-server-key"})))
    for limits in ({"max_concurrency": 0}, {"max_body_bytes": 0}):
        with pytest.raises(InvalidArgumentError):
            ServeConfig(**limits)
