"""What the benchmarks share: the machine, the benchmark policies, vendor replies and in-process transports.

Every benchmark runs the same three-stage cascade per vendor: every stage and every judge on that vendor's
adapter, the judge scoring 3/10 so that each query goes answer, judge, escalate, answer, judge, escalate, answer:
five vendor calls (the escalations are decisions, not calls). Replies are the vendors' wire format
(`cascade.testing.wire`), served either in process (an httpx2 `MockTransport`, or a `requests` adapter for the
legacy Gemini SDK) or by the local server in `benchmarks/slow_server.py`.
"""

from __future__ import annotations

import io
import json
import logging
import os
import platform
import sys
from collections.abc import Callable, Generator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
try:
    import cascade  # noqa: F401  (the installed one, or the one PYTHONPATH names: to compare two trees)
except ModuleNotFoundError:  # `python benchmarks/x.py` from a checkout without an installed cascade
    sys.path.insert(0, str(ROOT))

# Adapters measured: the three vendors, and the legacy Gemini SDK (reported apart).
VENDORS = ("openai", "anthropic", "google", "google-legacy")
PROVIDER = {"openai": "openai", "anthropic": "anthropic", "google": "google", "google-legacy": "google"}
BACKEND = {"google": "genai", "google-legacy": "generativeai"}
KEY = "bench-key-not-a-secret"
# Never resolved: the in-process transports answer before any DNS lookup.
IN_PROCESS_URL = "http://cascade-bench.invalid"

STAGES: dict[str, tuple[str, str, str]] = {
    "openai": ("gpt-4o-mini", "gpt-4.1-mini", "gpt-4o"),
    "anthropic": ("claude-3-5-haiku-20241022", "claude-haiku-4-5", "claude-sonnet-4-6"),
    "google": ("gemini-2.0-flash", "gemini-2.5-flash-lite", "gemini-2.5-flash"),
}
JUDGE = {"openai": "gpt-4o-mini", "anthropic": "claude-3-5-haiku-20241022", "google": "gemini-2.0-flash"}
THRESHOLDS = (0.8, 0.7)
MAX_OUTPUT_TOKENS = (1024, 2048, 4096)
TIMEOUTS_S = (30.0, 45.0, 90.0)
JUDGE_MAX_OUTPUT_TOKENS = 100
JUDGE_TIMEOUT_S = 30.0
TEMPERATURE = 0.2
CALLS_PER_QUERY = 5

QUERY = "What is the capital of Australia? Answer in one sentence."
ANSWER = "The capital of Australia is Canberra."
JUDGE_REPLY = '{"score": 3, "reason": "Correct, but the judge is told to doubt it so the query escalates."}'


def machine() -> dict[str, str]:
    """Platform, CPUs, Python and the versions of every package the figures depend on."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            cpu = next((line.split(":", 1)[1].strip() for line in info if line.startswith("model name")), cpu)
    except OSError:
        pass
    packages = []
    for name in (
        "cascade-router",
        "openai",
        "anthropic",
        "google-genai",
        "google-generativeai",
        "httpx2",
        "aiohttp",
        "requests",
        "pydantic",
        "structlog",
        "typer",
        "rich",
        "numpy",
    ):
        try:
            packages.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            packages.append(f"{name} (absent)")
    return {
        "platform": platform.platform(),
        "cpu": f"{cpu}, {os.cpu_count()} CPUs",
        "python": f"{platform.python_implementation()} {platform.python_version()} ({sys.executable})",
        "packages": ", ".join(packages),
    }


def quiet_logs(events: str = "off", cache: bool = False) -> None:
    """Configure structlog as an application would. Unconfigured, structlog prints every event to stdout.

    events="off": drop them (the filtering logger of `cascade run` without --verbose);
    events="json": render every event as a JSON line with a timestamp, written to /dev/null.
    """
    import structlog

    if events == "off":
        structlog.configure(
            wrapper_class=structlog.make_filtering_bound_logger(logging.CRITICAL), cache_logger_on_first_use=cache
        )
    else:
        structlog.configure(
            processors=[
                structlog.processors.add_log_level,
                structlog.processors.TimeStamper(fmt="iso"),
                structlog.processors.JSONRenderer(),
            ],
            wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
            logger_factory=structlog.PrintLoggerFactory(open(os.devnull, "w")),  # noqa: SIM115
            cache_logger_on_first_use=cache,
        )


def policy_dict(vendor: str, base_url: str | None = IN_PROCESS_URL, async_http: str = "httpx") -> dict[str, Any]:
    """The benchmark cascade for one adapter, with the routing rules of policies/default.yaml (none match).

    `async_http`: the policy's provider setting of that name ("httpx", the default, or "aiohttp").
    """
    provider = PROVIDER[vendor]
    family = provider
    models = STAGES[family]
    stages = []
    for i, (name, model) in enumerate(zip(("cheap", "middle", "flagship"), models, strict=True)):
        stage: dict[str, Any] = {
            "name": name,
            "provider": provider,
            "model": model,
            "max_output_tokens": MAX_OUTPUT_TOKENS[i],
            "timeout_s": TIMEOUTS_S[i],
            "retries": 2,
        }
        if provider != "anthropic":  # the anthropic adapter sends no temperature
            stage["temperature"] = TEMPERATURE
        if i < 2:
            stage["threshold"] = THRESHOLDS[i]
        stages.append(stage)
    config: dict[str, Any] = {}
    if base_url:
        config["base_url"] = base_url + ("/v1" if provider == "openai" else "")
    if vendor in BACKEND:
        config["backend"] = BACKEND[vendor]
    if async_http != "httpx":
        config["async_http"] = async_http
    return {
        "name": f"bench-{vendor}",
        "version": "1",
        "stages": stages,
        "judge": {
            "provider": provider,
            "model": JUDGE[family],
            "method": "json",
            "max_output_tokens": JUDGE_MAX_OUTPUT_TOKENS,
            "timeout_s": JUDGE_TIMEOUT_S,
        },
        "routing": {
            "rules": [
                {
                    "name": "multi-file-coding",
                    "stage": "flagship",
                    "keywords": ["refactor", "repository", "codebase", "multiple files", "across files", "module"],
                    "min_keywords": 2,
                },
                {"name": "mathematics", "stage": "flagship", "regex": r"\b(prove|proof|theorem|integral|lemma)\b"},
            ]
        },
        "budget": {"max_cost_usd": 0.10, "deadline_s": 120},
        "providers": {provider: config} if config else {},
    }


def policy_for(vendor: str, base_url: str | None = IN_PROCESS_URL, async_http: str = "httpx") -> Any:
    from cascade.policy import Policy

    return Policy.from_dict(policy_dict(vendor, base_url, async_http), source=f"bench-{vendor}")


# -- replies ---------------------------------------------------------------------------------------------


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    payload: bytes


@dataclass
class Replies:
    """The two replies one vendor gives: an answer, or (for a judge prompt) a low score. Records requests on demand."""

    vendor: str
    answer: Reply
    judge: Reply
    recorded: list[tuple[str, Any]] | None = None
    calls: int = 0

    def pick(self, path: str, body: bytes) -> Reply:
        self.calls += 1
        if self.recorded is not None:
            self.recorded.append((path.split("?", 1)[0], json.loads(body)))
        return self.judge if b"<<<ANSWER " in body else self.answer


def replies_for(vendor: str) -> Replies:
    from cascade.testing import wire

    provider = PROVIDER[vendor]
    if provider == "openai":
        answer = wire.openai_chat(ANSWER, prompt_tokens=21, completion_tokens=9)
        judge = wire.openai_chat(JUDGE_REPLY, prompt_tokens=233, completion_tokens=21)
    elif provider == "anthropic":
        answer = wire.anthropic_message(ANSWER, input_tokens=21, output_tokens=9)
        judge = wire.anthropic_message(JUDGE_REPLY, input_tokens=233, output_tokens=21)
    else:
        legacy = vendor == "google-legacy"  # its REST transport asks for enums as numbers
        answer = wire.gemini_content(ANSWER, prompt_tokens=21, output_tokens=9, int_enums=legacy)
        judge = wire.gemini_content(JUDGE_REPLY, prompt_tokens=233, output_tokens=21, int_enums=legacy)

    def reply(fake: Any) -> Reply:
        headers = {"content-type": "application/json", **fake.headers}
        return Reply(fake.status, headers, json.dumps(fake.body).encode())

    return Replies(vendor, reply(answer), reply(judge))


# -- in-process transports -------------------------------------------------------------------------------


def httpx_transport(replies: Replies) -> Any:
    """An httpx2 transport answering instantly (for sync and async clients)."""
    import httpx2

    def handle(request: httpx2.Request) -> httpx2.Response:
        reply = replies.pick(request.url.path, request.content)
        return httpx2.Response(reply.status, headers=reply.headers, content=reply.payload)

    return httpx2.MockTransport(handle)


def requests_adapter(replies: Replies) -> Any:
    """A `requests` transport adapter answering instantly (the legacy Gemini SDK speaks REST through requests)."""
    import requests
    from requests.adapters import BaseAdapter
    from requests.structures import CaseInsensitiveDict

    class InProcess(BaseAdapter):
        def send(self, request: Any, **kwargs: Any) -> requests.Response:
            body = request.body if isinstance(request.body, bytes) else (request.body or "").encode()
            reply = replies.pick(request.path_url, body)
            response = requests.Response()
            response.status_code = reply.status
            response.headers = CaseInsensitiveDict(reply.headers)
            response.raw = io.BytesIO(reply.payload)
            response.encoding = "utf-8"
            response.url = request.url
            response.request = request
            response.reason = "OK"
            return response

        def close(self) -> None:
            pass

    return InProcess()


def sync_client(vendor: str, replies: Replies | None, base_url: str = IN_PROCESS_URL) -> Any:
    """The vendor's sync SDK client, built as the adapter builds it, over the in-process transport (or real HTTP)."""
    provider = PROVIDER[vendor]
    if provider == "openai":
        import httpx2
        import openai

        http = httpx2.Client(transport=httpx_transport(replies)) if replies else None
        return openai.OpenAI(api_key=KEY, base_url=base_url + "/v1", max_retries=0, http_client=http)
    if provider == "anthropic":
        import anthropic
        import httpx2

        http = httpx2.Client(transport=httpx_transport(replies)) if replies else None
        return anthropic.Anthropic(api_key=KEY, base_url=base_url, max_retries=0, http_client=http)
    if vendor == "google":
        return genai_client(replies, base_url)
    return legacy_client(replies, base_url)


def async_client(
    vendor: str, replies: Replies | None, base_url: str = IN_PROCESS_URL, async_http: str = "httpx"
) -> Any:
    """The vendor's async SDK client (call inside the event loop that will use it).

    `async_http="aiohttp"`: the SDK's own aiohttp backend, as the adapter builds it for that policy setting
    (over real HTTP only: the in-process transports are httpx2's).
    """
    provider = PROVIDER[vendor]
    if async_http == "aiohttp" and replies is not None:
        raise ValueError("aiohttp clients speak real HTTP: pass replies=None and a server's base_url")
    if provider == "openai":
        import httpx2
        import openai

        if async_http == "aiohttp":
            http = openai.DefaultAioHttpClient()
        else:
            http = httpx2.AsyncClient(transport=httpx_transport(replies)) if replies else None
        return openai.AsyncOpenAI(api_key=KEY, base_url=base_url + "/v1", max_retries=0, http_client=http)
    if provider == "anthropic":
        import anthropic
        import httpx2

        if async_http == "aiohttp":
            http = anthropic.DefaultAioHttpClient()
        else:
            http = httpx2.AsyncClient(transport=httpx_transport(replies)) if replies else None
        return anthropic.AsyncAnthropic(api_key=KEY, base_url=base_url, max_retries=0, http_client=http)
    if vendor == "google":
        return genai_client(replies, base_url, async_http).aio
    raise ValueError("the legacy Gemini SDK has no working async REST call")


def genai_client(replies: Replies | None, base_url: str = IN_PROCESS_URL, async_http: str = "httpx") -> Any:
    import google.genai as genai
    import httpx2
    from google.genai import types

    more: dict[str, Any] = {}
    if replies is not None:
        transport = httpx_transport(replies)
        client_args = {"transport": transport}
        async_args = {"transport": transport}
    elif async_http == "aiohttp":
        # No transport: the SDK picks aiohttp. One attempt, as the adapter sets it (no hidden connection retry).
        client_args, async_args = {}, {}
        more["retry_options"] = types.HttpRetryOptions(attempts=1)
    else:
        client_args, async_args = {}, {"transport": httpx2.AsyncHTTPTransport()}
    options = types.HttpOptions(
        base_url=base_url, api_version="v1", client_args=client_args, async_client_args=async_args, **more
    )
    return genai.Client(api_key=KEY, vertexai=False, http_options=options)


def legacy_client(replies: Replies | None, base_url: str = IN_PROCESS_URL) -> Any:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        import google.generativeai as legacy_genai
        from google.ai import generativelanguage as glm
        from google.api_core.client_options import ClientOptions
        from google.api_core.gapic_v1.client_info import ClientInfo

    client = glm.GenerativeServiceClient(
        transport="rest",
        client_options=ClientOptions(api_key=KEY, api_endpoint=base_url),
        client_info=ClientInfo(user_agent=f"genai-py/{legacy_genai.__version__}"),
    )
    if replies is not None:
        # The legacy SDK takes no session or transport: its REST transport's own requests session is the only place
        # to mount one.
        client.transport._session.mount("http://", requests_adapter(replies))
    return client


# -- routers ---------------------------------------------------------------------------------------------


@dataclass
class Bench:
    """A router for one adapter."""

    vendor: str
    router: Any


def bench_router(
    vendor: str, replies: Replies | None, base_url: str = IN_PROCESS_URL, async_http: str = "httpx"
) -> Bench:
    """A `Cascade` on the benchmark policy.

    With `replies`, its adapter is given SDK clients over the in-process transport, built as the adapter builds its
    own (`sync_client`, `async_client`: the same the direct calls use). Without, the router builds the adapter
    from the policy, for real HTTP at `base_url`; `async_http="aiohttp"` needs that.
    """
    from cascade.engine import Cascade

    policy = policy_for(vendor, base_url, async_http)
    if replies is None:
        return Bench(vendor, Cascade(policy, api_keys={PROVIDER[vendor]: KEY}))
    return Bench(vendor, Cascade(policy, providers={PROVIDER[vendor]: adapter_over(vendor, replies)}))


def adapter_over(vendor: str, replies: Replies) -> Any:
    """The vendor's adapter, given SDK clients over the in-process transport."""
    from cascade.providers import get_provider_class

    adapter_class: Any = get_provider_class(PROVIDER[vendor], BACKEND.get(vendor))
    if PROVIDER[vendor] in ("openai", "anthropic"):
        return adapter_class(client=sync_client(vendor, replies), async_client=async_client(vendor, replies))
    return adapter_class(client=sync_client(vendor, replies))  # the Google adapters: one client, sync and async


# -- the same calls, made directly with the SDKs -------------------------------------------------------


def judge_prompt() -> str:
    """The judge prompt the cascade sends, computed once (a hand-written cascade gets its prompt for free)."""
    from cascade.judge import build_judge_prompt

    return build_judge_prompt(QUERY, ANSWER, instructions=None, method="json")


def direct_calls(vendor: str, client: Any) -> Callable[[str], str]:
    """A hand-written cascade: the same five SDK calls, the request arguments built as a direct caller would."""
    create, steps = _direct(vendor, client)

    def run(query: str) -> str:
        calls = steps(query)
        try:
            arguments = next(calls)
            while True:
                arguments = calls.send(create(**arguments))
        except StopIteration as done:
            return str(done.value)

    return _keeping(run, client)


def async_direct_calls(vendor: str, client: Any) -> Callable[[str], Any]:
    """The async twin of `direct_calls` (openai, anthropic, google-genai)."""
    create, steps = _direct(vendor, client)

    async def run(query: str) -> str:
        calls = steps(query)
        try:
            arguments = next(calls)
            while True:
                arguments = calls.send(await create(**arguments))
        except StopIteration as done:
            return str(done.value)

    return _keeping(run, client)


Steps = Callable[[str], Generator[dict[str, Any], Any, str]]


def _direct(vendor: str, client: Any) -> tuple[Callable[..., Any], Steps]:
    """The SDK method a direct caller calls, and the cascade written against it: a generator that yields each
    call's arguments and is sent the SDK's reply (so the sync and the async side share it)."""
    prompt = judge_prompt()
    provider = PROVIDER[vendor]
    models = STAGES[provider]
    last = len(models) - 1
    create, answer, judge, text_of = _vendor_calls(vendor, client, prompt)

    def steps(query: str) -> Generator[dict[str, Any], Any, str]:
        for i in range(len(models)):
            text = text_of((yield answer(i, query)))
            if i == last or json.loads(text_of((yield judge)))["score"] / 10 >= THRESHOLDS[i]:
                return text
        raise AssertionError("unreachable")

    return create, steps


def _vendor_calls(vendor: str, client: Any, prompt: str) -> tuple[Any, Any, dict[str, Any], Any]:
    """Per vendor: the SDK method, the arguments of stage i's answer, those of the judge call, and a reply's text."""
    provider = PROVIDER[vendor]
    models = STAGES[provider]
    judge_model = JUDGE[provider]
    if provider == "openai":

        def openai_answer(i: int, query: str) -> dict[str, Any]:
            return {
                "model": models[i],
                "messages": [{"role": "user", "content": query}],
                "max_completion_tokens": MAX_OUTPUT_TOKENS[i],
                "temperature": TEMPERATURE,
                "timeout": TIMEOUTS_S[i],
            }

        judge = {
            "model": judge_model,
            "messages": [{"role": "user", "content": prompt}],
            "max_completion_tokens": JUDGE_MAX_OUTPUT_TOKENS,
            "temperature": 0.0,
            "timeout": JUDGE_TIMEOUT_S,
        }
        return client.chat.completions.create, openai_answer, judge, lambda reply: reply.choices[0].message.content

    if provider == "anthropic":

        def anthropic_answer(i: int, query: str) -> dict[str, Any]:
            return {
                "model": models[i],
                "max_tokens": MAX_OUTPUT_TOKENS[i],
                "messages": [{"role": "user", "content": query}],
                "timeout": TIMEOUTS_S[i],
            }

        judge = {
            "model": judge_model,
            "max_tokens": JUDGE_MAX_OUTPUT_TOKENS,
            "messages": [{"role": "user", "content": prompt}],
            "timeout": JUDGE_TIMEOUT_S,
        }
        return client.messages.create, anthropic_answer, judge, lambda reply: reply.content[0].text

    if vendor == "google":
        from google.genai import types

        def config(max_tokens: int, temperature: float, timeout_s: float) -> Any:
            # The options the adapter sets: one request per call, a timeout, no function-calling loop.
            return types.GenerateContentConfig(
                max_output_tokens=max_tokens,
                temperature=temperature,
                http_options=types.HttpOptions(timeout=round(timeout_s * 1000)),
                automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True),
                automatic_continuation=False,
            )

        # A direct caller builds its constant configs once.
        configs = [config(MAX_OUTPUT_TOKENS[i], TEMPERATURE, TIMEOUTS_S[i]) for i in range(len(models))]
        judge = {
            "model": judge_model,
            "contents": prompt,
            "config": config(JUDGE_MAX_OUTPUT_TOKENS, 0.0, JUDGE_TIMEOUT_S),
        }
        return (
            client.models.generate_content,
            lambda i, query: {"model": models[i], "contents": query, "config": configs[i]},
            judge,
            lambda reply: reply.text,
        )

    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        from google.generativeai import protos

    def request(model: str, text: str, max_tokens: int, temperature: float) -> Any:
        return protos.GenerateContentRequest(
            model=f"models/{model}",
            contents=[protos.Content(role="user", parts=[protos.Part(text=text)])],
            generation_config=protos.GenerationConfig(max_output_tokens=max_tokens, temperature=temperature),
        )

    def legacy_answer(i: int, query: str) -> dict[str, Any]:
        return {
            "request": request(models[i], query, MAX_OUTPUT_TOKENS[i], TEMPERATURE),
            "retry": None,
            "timeout": TIMEOUTS_S[i],
        }

    judge = {
        "request": request(judge_model, prompt, JUDGE_MAX_OUTPUT_TOKENS, 0.0),
        "retry": None,
        "timeout": JUDGE_TIMEOUT_S,
    }
    return client.generate_content, legacy_answer, judge, lambda reply: reply.candidates[0].content.parts[0].text


def _keeping(run: Any, client: Any) -> Any:
    # A google-genai client closes its HTTP clients when collected: the closure must keep it alive.
    run.client = client
    return run
