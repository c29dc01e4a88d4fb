"""`cascade serve` through its real entry point: a server in a child process, and what stops it before it starts."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from cascade.policy import load_policy
from cascade.testing import FakeVendorServer, wire
from cascade.testing.fake_server import RecordedRequest
from tests.cli.fakes import invoke

ENTRY = [sys.executable, "-c", "from cascade.cli import main; main()"]
LIVE = load_policy("current-models")


def three_vendors(request: RecordedRequest) -> wire.FakeReply:
    """Every vendor answers; the OpenAI judge is sure (a score token of 9)."""
    if request.vendor == "openai" and "<<<ANSWER " in json.dumps(request.body):
        return wire.openai_chat("9", prompt_tokens=300, completion_tokens=1, top_logprobs={"9": 0.0})
    if request.vendor == "openai":
        return wire.openai_chat("Canberra.", prompt_tokens=20, completion_tokens=2, model=request.body["model"])
    if request.vendor == "google":
        return wire.gemini_content("Canberra.", prompt_tokens=20, output_tokens=2)
    return wire.anthropic_message("Canberra.", input_tokens=20, output_tokens=2)


@pytest.fixture
def vendor_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[FakeVendorServer, dict[str, str]]]:
    with FakeVendorServer(responder=three_vendors) as fake:
        env = {
            "OPENAI_BASE_URL": fake.url + "/v1",
            "ANTHROPIC_BASE_URL": fake.url,
            "GOOGLE_GEMINI_BASE_URL": fake.url,
            "OPENAI_API_KEY": "local-test-key",
            "ANTHROPIC_API_KEY": "local-test-key",
            "GEMINI_API_KEY": "local-test-key",
        }
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        monkeypatch.delenv("CASCADE_SERVER_KEYS", raising=False)
        yield fake, env


def test_serve_runs_the_live_policy_by_default_behind_its_keys_and_stops_on_ctrl_c(
    vendor_env: tuple[FakeVendorServer, dict[str, str]], tmp_path: Path
) -> None:
    fake, env = vendor_env
    keys = tmp_path / "keys.txt"
    keys.write_text("# who may call\nteam-key-0123456789\n")
    child = subprocess.Popen(
        [*ENTRY, "serve", "--port", "0", "--keys-file", str(keys)],
        stderr=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, **env},
    )
    try:
        assert child.stderr is not None
        line = child.stderr.readline()
        assert line.startswith("serving cascade/current-models on http://127.0.0.1:"), line
        assert "(1 server key(s))" in line
        url = line.split(" on ", 1)[1].split()[0]
        client = openai.OpenAI(api_key="team-key-0123456789", base_url=url + "/v1", max_retries=0, timeout=30)
        stranger = openai.OpenAI(api_key="local-test-key", base_url=url + "/v1", max_retries=0)
        assert [m.id for m in client.models.list()] == ["cascade/current-models"]
        answer = client.chat.completions.create(
            model="cascade/current-models", messages=[{"role": "user", "content": "Capital of Australia?"}]
        )
        assert answer.choices[0].message.content == "Canberra." and answer.model == LIVE.stages[0].model
        assert {r.body.get("model") for r in fake.requests} == {LIVE.stages[0].model, LIVE.judge.model}
        with pytest.raises(openai.AuthenticationError):
            stranger.models.list()
        client.close()
        stranger.close()
    finally:
        child.send_signal(signal.SIGINT)
        stdout, stderr = child.communicate(timeout=30)
    assert child.returncode == 130 and "stopped" in stderr
    assert "Traceback" not in stdout + stderr


def test_serve_is_in_the_help_and_imports_no_server_until_it_runs() -> None:
    assert "serve" in invoke("--help").output
    code = "import sys; from cascade.cli import app; print([m for m in ('starlette', 'uvicorn') if m in sys.modules])"
    ran = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert ran.stdout.strip() == "[]"


def test_listening_beyond_this_machine_needs_server_keys(vendor_env: tuple[FakeVendorServer, dict[str, str]]) -> None:
    result = invoke("serve", "--host", "0.0.0.0", "--port", "0")
    assert result.exit_code == 2 and "CASCADE_SERVER_KEYS" in result.output and "--no-keys-on-network" in result.output


def test_server_keys_that_hold_no_key_are_an_error(
    vendor_env: tuple[FakeVendorServer, dict[str, str]], tmp_path: Path
) -> None:
    result = invoke("serve", "--port", "0", env={"CASCADE_SERVER_KEYS": " , "})
    assert result.exit_code == 2 and "CASCADE_SERVER_KEYS is set but holds no key" in result.output
    empty = tmp_path / "keys.txt"
    empty.write_text("# nobody yet\n\n")
    result = invoke("serve", "--port", "0", "--keys-file", str(empty))
    assert result.exit_code == 2 and "holds no key" in result.output


def test_a_missing_vendor_key_stops_it_before_it_listens(
    vendor_env: tuple[FakeVendorServer, dict[str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    result = invoke("serve", "--port", "0")
    assert result.exit_code == 2 and "no API key for anthropic: set ANTHROPIC_API_KEY" in result.output
    assert "serving" not in result.output


def test_two_policies_of_one_name_and_a_taken_port_are_usage_errors(
    vendor_env: tuple[FakeVendorServer, dict[str, str]],
) -> None:
    same = invoke("serve", "--policy", "current-models", "--policy", "current-models", "--port", "0")
    assert same.exit_code == 2 and "same name" in same.output
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        result = invoke("serve", "--port", port)
    assert result.exit_code == 2 and f"cannot listen on 127.0.0.1:{port}" in result.output


def test_without_the_serve_extra_the_hint_installs_it() -> None:
    code = "import sys; sys.modules['uvicorn'] = None; from cascade.cli import main; main()"
    ran = subprocess.run([sys.executable, "-c", code, "serve"], capture_output=True, text=True, timeout=60)
    assert ran.returncode == 2 and "pip install 'cascade-router[serve]'" in ran.stderr
