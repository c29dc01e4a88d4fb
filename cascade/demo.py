"""`cascade demo`: twenty realistic queries through the design's `default` policy, every vendor reply replayed.

The demo runs the real engine and the real vendor SDKs; only the HTTP is replayed, from the shipped cassette
`cassettes/demo/default_policy.yaml`. That cassette was synthesized (we have no vendor access) from the script
in `cascade/data/demo.yaml` by `python -m cascade.demo --synthesize`, which serves the script from the local
fake vendor server and records the SDKs' real requests and the vendors' wire-format replies.
"""

from __future__ import annotations

import json
import math
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from cascade._paths import shipped
from cascade.errors import MissingDependencyError
from cascade.policy import Policy, load_policy
from cascade.result import CascadeResult

CASSETTE = "cassettes/demo/default_policy.yaml"
# Keys for replay only: the SDKs insist on one, the cassette never sees it.
DEMO_KEYS = {"openai": "demo-openai-key", "anthropic": "demo-anthropic-key", "google": "demo-gemini-key"}
VENDOR_HOSTS = {
    "openai": "https://api.openai.com/v1",
    "anthropic": "https://api.anthropic.com",
    "google": "https://generativelanguage.googleapis.com",
}
STAGE_OF_VENDOR = {"openai": "mini", "google": "flash", "anthropic": "sonnet"}
SERVED_BY = {
    "openai": "gpt-4o-mini-2024-07-18",
    "google": "gemini-1.5-flash-002",
    "anthropic": "claude-3-5-sonnet-20241022",
}


@dataclass(frozen=True)
class DemoQuery:
    id: str
    category: str
    query: str
    replies: dict[str, dict[str, Any]]
    faults: dict[str, int] = field(default_factory=dict)


def demo_queries() -> list[DemoQuery]:
    text = resources.files("cascade").joinpath("data/demo.yaml").read_text(encoding="utf-8")
    return [DemoQuery(**item) for item in yaml.safe_load(text)]


def demo_policy(hosts: dict[str, str] | None = None) -> Policy:
    """The default policy, pinned to the vendors' hosts so a user's *_BASE_URL cannot redirect the replay."""
    policy = load_policy(shipped("policies/default.yaml"))
    providers = {name: {"base_url": url} for name, url in (hosts or VENDOR_HOSTS).items()}
    return Policy.from_dict({**policy.model_dump(exclude_none=True), "providers": providers}, source="demo")


def run_demo(cassette: Path | None = None) -> tuple[Policy, list[tuple[DemoQuery, CascadeResult]]]:
    """Answer every demo query from the cassette. Raises if a request is missing from it."""
    try:
        from cascade.testing.cassettes import vcr_instance

        recorder = vcr_instance(record_mode="none")
    except ModuleNotFoundError as exc:
        if exc.name != "vcr":
            raise
        # The `demo` extra brings vcrpy (whose module is `vcr`) and the three vendor SDKs the replay drives.
        raise MissingDependencyError("demo", "demo", "vcrpy") from exc
    from cascade.engine import Cascade

    policy = demo_policy()
    router = Cascade(policy, api_keys=DEMO_KEYS)
    path = cassette or shipped(CASSETTE)
    with recorder.use_cassette(str(path)):
        return policy, [(q, router.run(q.query, query_id=q.id)) for q in demo_queries()]


# -- synthesis -------------------------------------------------------------------------------------


def _strings(node: Any) -> Iterator[str]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for value in node.values():
            yield from _strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from _strings(value)


def _tokens(text: str) -> int:
    return max(1, math.ceil(len(text) / 4))


class _Script:
    """Answers the fake server's requests from `demo.yaml`, in each vendor's wire format."""

    def __init__(self, queries: list[DemoQuery]) -> None:
        self.by_query = {q.query: q for q in queries}
        self.faults_served: set[tuple[str, str]] = set()

    def __call__(self, request: Any) -> Any:
        from cascade.testing import wire

        texts = [s for s in _strings(request.body) if len(s) > 1]
        prompt_tokens = sum(_tokens(t) for t in texts) + 4 * len(texts)
        joined = "\n".join(texts)
        if request.vendor == "openai" and "<<<ANSWER " in joined:
            return self._judge(joined, prompt_tokens)
        query = next((self.by_query[t] for t in texts if t in self.by_query), None)
        if query is None:
            raise AssertionError(f"demo script has no query for request {joined[:80]!r}")
        stage = STAGE_OF_VENDOR[request.vendor]
        status = query.faults.get(stage)
        if status and (query.id, stage) not in self.faults_served:
            self.faults_served.add((query.id, stage))
            return wire.openai_error(
                status,
                "Rate limit reached for gpt-4o-mini on requests per min (RPM): Limit 500, Used 500, Requested 1.",
                type_="requests",
                code="rate_limit_exceeded",
                retry_after=0.2,
            )
        answer = query.replies[stage]["answer"]
        model = SERVED_BY[request.vendor]
        out = _tokens(answer)
        if request.vendor == "openai":
            return wire.openai_chat(answer, prompt_tokens=prompt_tokens, completion_tokens=out, model=model)
        if request.vendor == "google":
            return wire.gemini_content(answer, prompt_tokens=prompt_tokens, output_tokens=out, model=model)
        return wire.anthropic_message(answer, input_tokens=prompt_tokens, output_tokens=out, model=model)

    def _judge(self, prompt: str, prompt_tokens: int) -> Any:
        from cascade.testing import wire

        q = re.search(r"<<<QUERY (\w+)>>>\n(.*?)\n<<<END QUERY \1>>>", prompt, re.DOTALL)
        a = re.search(r"<<<ANSWER (\w+)>>>\n(.*?)\n<<<END ANSWER \1>>>", prompt, re.DOTALL)
        assert q and a, "judge prompt without delimited query and answer"
        query = self.by_query[q.group(2)]
        reply = next(r for r in query.replies.values() if r["answer"] == a.group(2))
        text = reply.get("judge_reply") or json.dumps({"score": reply["score"], "reason": reply["reason"]})
        return wire.openai_chat(
            text, prompt_tokens=prompt_tokens, completion_tokens=_tokens(text), model=SERVED_BY["openai"]
        )


def synthesize(cassette: Path) -> None:
    """Write the demo cassette by running the demo against the fake vendor server."""
    from cascade.engine import Cascade
    from cascade.testing import FakeVendorServer
    from cascade.testing.cassettes import vcr_instance

    queries = demo_queries()
    cassette.unlink(missing_ok=True)
    with FakeVendorServer(responder=_Script(queries)) as server:
        hosts = {"openai": server.url + "/v1", "anthropic": server.url, "google": server.url}
        router = Cascade(demo_policy(hosts), api_keys=DEMO_KEYS)
        with vcr_instance(record_mode="all").use_cassette(str(cassette)):
            for q in queries:
                router.run(q.query, query_id=q.id)


if __name__ == "__main__":
    if sys.argv[1:] == ["--synthesize"]:
        target = Path(__file__).resolve().parent.parent / CASSETTE
        target.parent.mkdir(parents=True, exist_ok=True)
        synthesize(target)
        print(f"wrote {target}")
    else:
        print("usage: python -m cascade.demo --synthesize   (to run the demo: cascade demo)")
        sys.exit(2)
