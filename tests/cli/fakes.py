"""A fake OpenAI on 127.0.0.1 for the command-line tests, and helpers to write and read JSON lines."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from cascade.cli import app
from cascade.testing import FakeVendorServer, judge_json, wire
from cascade.testing.fake_server import RecordedRequest


@dataclass
class Vendor:
    """A local fake OpenAI: answers `answer to <query>`, judges 9/10; queries holding a word in `down` get a 500."""

    server: FakeVendorServer
    policy: Path
    down: set[str] = field(default_factory=set)
    error: str = "The server had an error."
    delay_s: float = 0.0

    def reply(self, request: RecordedRequest) -> wire.FakeReply:
        text = request.body["messages"][-1]["content"]
        if "<<<ANSWER " in text:
            return wire.openai_chat(judge_json(9), prompt_tokens=300, completion_tokens=12)
        if any(word in text for word in self.down):
            return wire.openai_error(500, self.error, type_="server_error", code=None)
        answer = wire.openai_chat(f"answer to {text}", prompt_tokens=20, completion_tokens=5)
        return wire.FakeReply(answer.status, answer.body, answer.headers, delay_s=self.delay_s)

    def answers(self) -> int:
        """How many answer calls (not judge calls) the vendor received."""
        return sum("<<<ANSWER " not in r.body["messages"][-1]["content"] for r in self.server.requests)


def write_policy(path: Path, url: str) -> Path:
    path.write_text(
        "name: local\nversion: '1'\n"
        "stages:\n"
        "  - {name: mini, provider: openai, model: gpt-4o-mini, threshold: 0.8, retries: 0}\n"
        "  - {name: big, provider: openai, model: gpt-4o, retries: 0}\n"
        f"providers:\n  openai: {{base_url: '{url}/v1'}}\n"
    )
    return path


def write_rows(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def read_rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_bytes().split(b"\n") if line.strip()]


def invoke(*args: str, env: dict[str, str] | None = None) -> Any:
    return CliRunner().invoke(app, list(args), env={"COLUMNS": "200", **(env or {})})
