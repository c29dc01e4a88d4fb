"""`cascade serve` under test: the app on uvicorn in a thread on 127.0.0.1, a router of scripted vendors behind it.

The vendors are `ScriptedProvider`s injected into the `Cascade` the app serves (no HTTP at all behind the server),
or, where what travels to a vendor matters, `FakeVendorServer` on 127.0.0.1.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import openai
import pytest
import uvicorn
from starlette.applications import Starlette

from cascade import Cascade
from cascade.policy import Policy
from cascade.providers.base import CompletionRequest
from cascade.serve.run import address_of, bind
from cascade.testing import ScriptedProvider, judge_json

VENDORS = ("openai", "google", "anthropic")
THREE = {
    "name": "three",
    "version": "1",
    "stages": [
        {"name": "mini", "provider": "openai", "model": "gpt-4o-mini", "threshold": 0.8, "retries": 0},
        {"name": "flash", "provider": "google", "model": "gemini-2.0-flash", "threshold": 0.7, "retries": 0},
        {"name": "sonnet", "provider": "anthropic", "model": "claude-sonnet-4-5", "retries": 0},
    ],
}


class Running:
    """uvicorn serving `app` in a thread, on a free port of 127.0.0.1, until the block ends."""

    def __init__(self, app: Starlette) -> None:
        self.sock = bind("127.0.0.1", 0)
        self.url = address_of(self.sock)
        config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)
        self.clients: list[openai.OpenAI] = []

    def client(self, key: str = "no-key-needed", **kwargs: Any) -> openai.OpenAI:
        """A sync OpenAI client for this server (no retries unless told), closed when the block ends."""
        made = openai.OpenAI(api_key=key, base_url=self.url + "/v1", **{"max_retries": 0, **kwargs})
        self.clients.append(made)
        return made

    def __enter__(self) -> Running:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        for made in self.clients:
            made.close()
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.sock.close()


def sure_judge(request: CompletionRequest) -> str:
    """Every stage answers `answer from <model>`; the judge gives 9/10."""
    text = request.messages[-1].content
    return judge_json(9) if "<<<ANSWER " in text else f"answer from {request.model}"


def scripted(script: Callable[[CompletionRequest], Any] = sure_judge, delay_s: float = 0.0) -> dict[str, Any]:
    return {name: ScriptedProvider(name, script, delay_s=delay_s) for name in VENDORS}


def three_router(providers: dict[str, Any], **policy: Any) -> Cascade:
    return Cascade(Policy.from_dict({**THREE, **policy}), providers=providers, retry_backoff_s=0.0)


@pytest.fixture
def vendors() -> dict[str, Any]:
    return scripted()
