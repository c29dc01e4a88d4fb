"""Simulated vendors for the example: three classifiers of different skill and a judge, in the real wire formats.

Nothing here is a real model. Each "model" gets a ticket right, wrong, or (the cheapest one, now and then) answers
with a category outside the schema, decided by a hash of the ticket and the model, so every run is the same. The
judge scores right answers higher than wrong ones, with overlap, as a real judge does. Replies are sent by
`cascade.testing.FakeVendorServer` and read by the vendors' own SDKs.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

from cascade.testing import wire
from cascade.testing.fake_server import RecordedRequest
from cascade.testing.wire import FakeReply

# How often each model is right, wrong, or off the schema (the rest of the time): a share of tickets.
SKILL = {
    "gpt-5.4-nano": {"right": 0.55, "wrong": 0.30},  # off the schema 15% of the time
    "gemini-3.8-flash": {"right": 0.85, "wrong": 0.15},
    "claude-sonnet-4-6": {"right": 0.97, "wrong": 0.03},
}
SERVED_BY = {"gpt-5.4-nano": "gpt-5.4-nano-2026-03-05", "gpt-4.1-nano": "gpt-4.1-nano-2025-04-14"}
_CONFUSED = {"billing": "account", "account": "billing", "bug": "feature_request", "feature_request": "bug"}
_NEXT_PRIORITY = {"low": "normal", "normal": "high", "high": "normal"}
_BLOCK = re.compile(r"<<<(QUERY|ANSWER) (\w+)>>>\n(.*?)\n<<<END \1 \2>>>", re.DOTALL)


def _chance(*parts: str) -> float:
    """A number in [0, 1) fixed by `parts`: the same ticket and model always draw the same."""
    digest = hashlib.sha256("\x00".join(parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


class Vendors:
    """A `FakeVendorServer` responder: `Vendors(tickets_file)` knows each ticket's right answer."""

    def __init__(self, tickets: Path) -> None:
        rows = [json.loads(line) for line in tickets.read_text().splitlines() if line.strip()]
        self.truth = {row["query"]: row["reference"] for row in rows}

    def __call__(self, request: RecordedRequest) -> FakeReply:
        prompt, model = _prompt_and_model(request)
        if "<<<ANSWER " in prompt:
            return _reply(request.vendor, model, json.dumps(self._verdict(prompt)), len(prompt) // 4)
        return _reply(request.vendor, model, json.dumps(self._classify(prompt, model)), len(prompt) // 4 + 150)

    def _classify(self, ticket: str, model: str) -> dict[str, str]:
        right = self.truth[ticket]
        draw, skill = _chance(ticket, model), SKILL[model]
        if draw < skill["right"]:
            return dict(right)
        if draw < skill["right"] + skill["wrong"]:
            if _chance(ticket, model, "which") < 0.5:
                return {"category": _CONFUSED[right["category"]], "priority": right["priority"]}
            return {"category": right["category"], "priority": _NEXT_PRIORITY[right["priority"]]}
        return {"category": "refund", "priority": right["priority"]}  # not a Category: fails validation

    def _verdict(self, prompt: str) -> dict[str, Any]:
        blocks = {kind: text for kind, _, text in _BLOCK.findall(prompt)}
        ticket, answer = blocks["QUERY"], json.loads(blocks["ANSWER"])
        noise = _chance(ticket, blocks["ANSWER"], "judge")
        if answer == self.truth[ticket]:
            return {"score": 6 + round(4 * noise), "reason": "category and priority fit the ticket"}
        return {"score": 2 + round(6 * noise), "reason": "the category or the priority looks off"}


def _prompt_and_model(request: RecordedRequest) -> tuple[str, str]:
    """The last user text of a request, in each vendor's format, and the model asked for."""
    body = request.body
    if request.vendor == "google":
        parts = body["contents"][-1]["parts"]
        return "".join(p.get("text", "") for p in parts), str(request.model)
    content = body["messages"][-1]["content"]
    if isinstance(content, list):  # anthropic content blocks
        content = "".join(block.get("text", "") for block in content)
    return content, str(body["model"])


def _reply(vendor: str, model: str, text: str, input_tokens: int) -> FakeReply:
    output_tokens = max(1, len(text) // 4)
    served = SERVED_BY.get(model, model)
    if vendor == "openai":
        return wire.openai_chat(text, prompt_tokens=input_tokens, completion_tokens=output_tokens, model=served)
    if vendor == "anthropic":
        return wire.anthropic_message(text, input_tokens=input_tokens, output_tokens=output_tokens, model=served)
    return wire.gemini_content(text, prompt_tokens=input_tokens, output_tokens=output_tokens, model=served)
