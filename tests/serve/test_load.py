"""Load: 500 requests at concurrency 100 through the real async OpenAI client, vendors failing in several ways.

Every request must end as an answer (200), a 502 (every tier failed) or a 429 (over the server's limit of 80 at
once), each as its query's script says; the server must hold no request afterwards, and its memory must stay flat
(resident memory measured after a warm-up round and after the 500; a generous bound, as allocators keep pages).
"""

from __future__ import annotations

import asyncio
import gc
import re
from pathlib import Path
from typing import Any

import openai
import pytest

from cascade.errors import RateLimitedError, ServerError, VendorTimeoutError
from cascade.providers.base import CompletionRequest
from cascade.serve import ServeConfig, create_app
from cascade.testing import judge_json
from tests.serve.conftest import Running, scripted, three_router

REQUESTS = 500
CONCURRENCY = 100
SERVER_LIMIT = 80
MAX_GROWTH_MIB = 40
STATUS = Path("/proc/self/status")


def faulty(request: CompletionRequest) -> Any:
    """By query number: 0 mod 10 every tier fails; 3 the first stage is rate limited; 5 the first judge's reply
    is unreadable; 7 the first stage times out; the rest are answered by the first stage."""
    text = request.messages[-1].content
    number = int(re.findall(r"query (\d+)", text)[0])
    kind = number % 10
    first = request.model == "gpt-4o-mini"
    if "<<<ANSWER " in text:
        return "no verdict here" if kind == 5 and "answer from gpt-4o-mini" in text else judge_json(9)
    where = {"provider": "scripted", "model": request.model}
    if kind == 0:
        return ServerError("The server had an error.", status_code=500, **where)
    if kind == 3 and first:
        return RateLimitedError("Rate limit reached.", status_code=429, retry_after=0.0, **where)
    if kind == 7 and first:
        return VendorTimeoutError("no reply within 30.0s", **where)
    return f"answer from {request.model} to {number}"


def expected(number: int) -> tuple[int, str | None]:
    kind = number % 10
    if kind == 0:
        return 502, None
    model = "gemini-2.0-flash" if kind in (3, 5, 7) else "gpt-4o-mini"
    return 200, f"answer from {model} to {number}"


def rss_mib() -> float:
    kib = next(int(line.split()[1]) for line in STATUS.read_text().splitlines() if line.startswith("VmRSS:"))
    return kib / 1024


async def fire(url: str, numbers: range, *, stream: bool = False) -> dict[int, tuple[int, str | None]]:
    gate = asyncio.Semaphore(CONCURRENCY)
    outcomes: dict[int, tuple[int, str | None]] = {}
    async with openai.AsyncOpenAI(api_key="none", base_url=url + "/v1", max_retries=0, timeout=60) as client:

        async def one(number: int) -> None:
            async with gate:
                messages = [{"role": "user", "content": f"query {number}: what is {number} squared?"}]
                try:
                    if stream:
                        chunks = await client.chat.completions.create(
                            model="cascade/three", messages=messages, stream=True
                        )
                        text = "".join([c.choices[0].delta.content or "" async for c in chunks if c.choices])
                    else:
                        reply = await client.chat.completions.create(model="cascade/three", messages=messages)
                        text = reply.choices[0].message.content or ""
                except openai.APIStatusError as exc:
                    assert exc.body and isinstance(exc.body, dict) and exc.body["message"], exc  # OpenAI-shaped
                    outcomes[number] = (exc.status_code, None)
                else:
                    outcomes[number] = (200, text)

        await asyncio.gather(*(one(n) for n in numbers))
    return outcomes


@pytest.mark.skipif(not STATUS.exists(), reason="reads resident memory from /proc")
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_500_requests_at_concurrency_100_all_end_cleanly_and_memory_stays_flat(stream: bool) -> None:
    """Streamed (buffered mode): a query whose every tier fails has shown nothing, so it is still a 502."""
    vendors = scripted(faulty, delay_s=0.002)
    app = create_app(three_router(vendors), ServeConfig(max_concurrency=SERVER_LIMIT))
    with Running(app) as running:
        asyncio.run(fire(running.url, range(REQUESTS, REQUESTS + 100), stream=stream))  # warm-up: pools, caches
        gc.collect()
        before = rss_mib()
        outcomes = asyncio.run(fire(running.url, range(REQUESTS), stream=stream))
        gc.collect()
        after = rss_mib()
        assert app.state.limit.in_flight == 0
    assert len(outcomes) == REQUESTS
    refused = [n for n, (status, _) in outcomes.items() if status == 429]
    assert len(refused) < REQUESTS / 2 and app.state.limit.peak == SERVER_LIMIT
    assert {n: outcome for n, outcome in outcomes.items() if n not in refused} == {
        n: expected(n) for n in range(REQUESTS) if n not in refused
    }
    assert after - before < MAX_GROWTH_MIB, f"resident memory grew {after - before:.1f} MiB over {REQUESTS} requests"
