"""`Cascade`: the public entry point. Two small drivers run the one step machine in `cascade.flow`.

The sync driver calls the vendors' sync SDK clients and never touches asyncio, so `run` works anywhere,
inside a running event loop (a notebook, a FastAPI handler) included. The async driver awaits the async
clients and bounds every call with `asyncio.timeout`.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import AsyncIterator, Generator, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, TypedDict, TypeVar, Unpack

from cascade.batch import Batch
from cascade.calls import Call, Outcome, Sleep, Step
from cascade.capabilities import missing
from cascade.context import BACKOFF_BASE_S, QueryContext, QuerySpec
from cascade.errors import (
    BatchError,
    CascadeError,
    InvalidArgumentError,
    InvalidQueryError,
    MalformedResponseError,
    ProviderError,
    VendorTimeoutError,
)
from cascade.fleet.guard import Fleet
from cascade.flow import cascade_flow
from cascade.monitor.observer import Monitor
from cascade.policy import Policy, load_policy
from cascade.providers import DEFAULT_BASE_URL_ENV, DEFAULT_KEY_ENV, get_provider_class
from cascade.providers.base import OutputSchema, Provider, ProviderSettings
from cascade.query import Query, estimate_input_tokens, normalize_query
from cascade.result import CascadeResult
from cascade.stream_drive import adrive_stream, drive_stream
from cascade.streaming import STREAM_MODES, Final, Showing, StreamEvent, StreamMode
from cascade.structured import OutputType
from cascade.tools import normalize_tool_choice, normalize_tools

T = TypeVar("T")


class QueryOptions(TypedDict, total=False):
    """What `run`, `arun`, `run_many` and `arun_many` take besides the query."""

    system: str | None  # a system prompt (joined after a `system` message in the query, if both)
    policy: str | None  # the name of another policy loaded into the same `Cascade`
    max_cost_usd: float | None  # a cost limit for this query, instead of the policy's
    query_id: str | None  # the id in the result and the events (a random one by default)
    tenant: str | None  # whose query, for the policy's per-tenant spend limits (`limits.spend.tenant`)
    output_type: Any  # a pydantic model class or a JSON Schema dict: the structure every answer must fit
    tools: Any  # function definitions (OpenAI's shape) every stage is offered
    tool_choice: Any  # auto, required, none, or the name of one of `tools`


# Slack on top of a call's own timeout before the async driver cancels it. The SDKs' timeouts bound each read, not
# the call, so a vendor that trickles bytes is stopped here; the slack lets an SDK that does time out report it
# itself, and it is most of how late past its deadline a query can end (docs/reliability.md).
_ASYNC_TIMEOUT_GRACE_S = 0.1


class Cascade:
    """Route queries through one or more policies.

    >>> router = Cascade.from_policy("policies/default.yaml")
    >>> result = router.run("Is this review positive? 'Great phone'")

    `providers` injects adapters by provider name (test doubles, or clients you built yourself);
    `api_keys` gives keys explicitly instead of reading the environment; `retry_backoff_s` is the first
    wait before retrying an error that came without a Retry-After (doubling, jittered); `monitor` says where
    spans and metrics go and seeds shadow sampling (`cascade.monitor.Monitor`; the policy's `monitor:` block
    says what is traced and sampled).
    """

    def __init__(
        self,
        policy: Policy | str | Path,
        *more_policies: Policy | str | Path,
        providers: Mapping[str, Provider] | None = None,
        api_keys: Mapping[str, str] | None = None,
        retry_backoff_s: float = BACKOFF_BASE_S,
        monitor: Monitor | None = None,
    ) -> None:
        loaded = [p if isinstance(p, Policy) else load_policy(p) for p in (policy, *more_policies)]
        self.policies: dict[str, Policy] = {p.name: p for p in loaded}
        self.default_policy = loaded[0]
        self._prices = {p.name: p.price_table() for p in loaded}
        # A policy's `output:` schema, read once (and its request form: the strict variant is worked out once).
        self._outputs = {p.name: _policy_output(p) for p in loaded}
        self._injected = dict(providers or {})
        self._api_keys = dict(api_keys or {})
        self._providers: dict[tuple[Any, ...], Provider] = {}
        self._lock = threading.Lock()
        self.retry_backoff_s = retry_backoff_s
        # Breakers, spend and rate limits shared by this router's queries (and, with `state: {redis: ...}`, by
        # every worker pointed at the same Redis).
        self.fleet = Fleet(loaded)
        self.monitor = monitor if monitor is not None else Monitor()

    @classmethod
    def from_policy(cls, policy: Policy | str | Path, *more: Policy | str | Path, **kwargs: Any) -> Cascade:
        """`Cascade(...)` under the name the docs use: policies by path, shipped name or `Policy`; the first is
        the default."""
        return cls(policy, *more, **kwargs)

    def __repr__(self) -> str:
        return f"Cascade(policies={list(self.policies)!r})"

    # -- public API -------------------------------------------------------------------------------

    def run(self, query: Query, **options: Unpack[QueryOptions]) -> CascadeResult:
        """Answer one query (a string or a list of chat messages) with the cheapest accepted tier.

        Options (`QueryOptions`): `system=`, `policy=` (the name of a loaded policy), `max_cost_usd=`, `query_id=`,
        `tenant=` (whose query, for per-tenant spend limits), `output_type=` (a pydantic model or a JSON Schema:
        `result.output` is the validated answer), `tools=` and `tool_choice=` (`result.tool_calls`).
        """
        ctx = self.context(query, **options)
        with self.monitor.query(self, ctx) as watch:
            return watch.done(self.drive(watch.flow(cascade_flow(ctx)), ctx.policy))

    async def arun(self, query: Query, **options: Unpack[QueryOptions]) -> CascadeResult:
        """The async twin of `run`."""
        ctx = self.context(query, **options)
        with self.monitor.query(self, ctx) as watch:
            return watch.done(await self.adrive(watch.flow(cascade_flow(ctx)), ctx.policy))

    def run_many(
        self,
        queries: Iterable[Query],
        *,
        concurrency: int = 16,
        return_exceptions: bool = False,
        **options: Unpack[QueryOptions],
    ) -> list[Any]:
        """Answer many queries on up to `concurrency` threads; one outcome per query, in input order.

        Every query runs to its end whatever another one does. If any failed, one `BatchError` is raised once
        all have ended, and its `outcomes` holds every result and every error, in input order; with
        `return_exceptions=True` the list is returned instead, each failed query's exception in its place.
        `options` (`system=`, `policy=`, `max_cost_usd=`, `tenant=`) apply to every query. To have each outcome as
        it ends (to save it), run the batch yourself:
        `cascade.batch.Batch(16, on_result=save).map(router.run, queries)`.
        """
        outcomes = Batch(concurrency).map(lambda query: self.run(query, **options), list(queries))
        return _settle(outcomes, return_exceptions)

    def stream(
        self, query: Query, *, mode: StreamMode | None = None, **options: Unpack[QueryOptions]
    ) -> Iterator[StreamEvent]:
        """Answer one query, yielding the answer as it may be shown: `TextDelta`s (and `ToolCallDelta`s), a `Reset`
        when what was shown is withdrawn, and `Final` with the whole result last (see `cascade.streaming`).

        `mode`: `buffered` (the policy's `stream.mode` by default), `speculative` or `final`. A query that fails
        on every tier raises, as `run` does, after a `Reset` of anything it showed.
        """
        ctx = self.context(query, **options)
        showing = ctx.showing = Showing(_stream_mode(mode, ctx.policy))
        with self.monitor.query(self, ctx) as watch:
            for event in drive_stream(self, watch.flow(cascade_flow(ctx)), ctx.policy, showing):
                if isinstance(event, Final):
                    event = Final(watch.done(event.result))
                yield event

    async def astream(
        self, query: Query, *, mode: StreamMode | None = None, **options: Unpack[QueryOptions]
    ) -> AsyncIterator[StreamEvent]:
        """The async twin of `stream`."""
        ctx = self.context(query, **options)
        showing = ctx.showing = Showing(_stream_mode(mode, ctx.policy))
        with self.monitor.query(self, ctx) as watch:
            async for event in adrive_stream(self, watch.flow(cascade_flow(ctx)), ctx.policy, showing):
                if isinstance(event, Final):
                    event = Final(watch.done(event.result))
                yield event

    async def arun_many(
        self,
        queries: Iterable[Query],
        *,
        concurrency: int = 16,
        return_exceptions: bool = False,
        **options: Unpack[QueryOptions],
    ) -> list[Any]:
        """The async twin of `run_many`, on the running loop with at most `concurrency` queries in flight.

        Cancelling it cancels every query it started; it leaves no task behind. Outcomes as they end:
        `await cascade.batch.Batch(16, on_result=save).amap(router.arun, queries)`.
        """
        outcomes = await Batch(concurrency).amap(lambda query: self.arun(query, **options), list(queries))
        return _settle(outcomes, return_exceptions)

    def check_ready(self, policy: str | None = None, *, also: Iterable[str] = ()) -> None:
        """Raise now what the first query would raise for a vendor that cannot be called, and send nothing.

        Every vendor the policy (the default one unless named) may call is checked: its routing classifier, its
        stages and their judges; `also` adds vendors called outside the policy's stages (an LLM grader's). Each
        adapter is built as a query would build it, importing its SDK (`MissingDependencyError`), and its key is
        resolved from `api_keys=` or the environment (`MissingAPIKeyError`). Providers injected with `providers=`
        are the caller's and are not checked.
        """
        chosen = self._policy(policy)
        names = [chosen.routing.classifier.provider] if chosen.routing.classifier else []
        names += [stage.provider for stage in chosen.stages]
        judged = chosen.stages if chosen.judge_last_stage else chosen.stages[:-1]
        names += [chosen.judge_for(stage).provider for stage in judged]
        for name in dict.fromkeys([*names, *also]):
            if name not in self._injected:
                self._provider(chosen, name).settings.resolve_key(name)

    async def aclose(self) -> None:
        """Wait for the shadow queries still queued, then close every vendor client this router opened (call it on
        the loop that made the async calls)."""
        await self.monitor.aflush()
        with self._lock:
            providers = list(self._providers.values())
        for provider in providers:
            await provider.aclose()

    async def __aenter__(self) -> Cascade:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- query set-up -----------------------------------------------------------------------------

    def context(self, query: Query, **options: Unpack[QueryOptions]) -> QueryContext:
        """Check a query and set up its context (raises `InvalidQueryError` before any call)."""
        system, max_cost, query_id = options.get("system"), options.get("max_cost_usd"), options.get("query_id")
        policy = self._policy(options.get("policy"))
        messages, system_prompt = normalize_query(query, system)
        given = options.get("output_type")
        output, output_schema = self._outputs[policy.name] if given is None else _asked_output(given)
        tools = normalize_tools(options.get("tools"))
        tool_choice = normalize_tool_choice(options.get("tool_choice"), tools)
        prices = self._prices[policy.name]
        tokens = estimate_input_tokens(messages, system_prompt)
        windows = [p.context_window for s in policy.stages if (p := prices.find(s.model)) and p.context_window]
        if windows and tokens > max(windows):
            raise InvalidQueryError(
                f"query is about {tokens} tokens, beyond every stage's context window (largest {max(windows)})"
            )
        if max_cost is not None and max_cost <= 0:
            raise InvalidArgumentError(f"max_cost_usd must be positive, got {max_cost}")
        spec = QuerySpec(
            policy=policy,
            prices=prices,
            messages=messages,
            system=system_prompt,
            query_id=query_id or os.urandom(6).hex(),
            max_cost_usd=max_cost,
            backoff_base_s=self.retry_backoff_s,
            output=output,
            output_schema=output_schema,
            tools=tools,
            tool_choice=tool_choice,
        )
        unable = (
            [missing(s, spec.features, policy.provider_kind(s.provider)) for s in policy.stages]
            if spec.features
            else []
        )
        if unable and all(unable):
            why = "; ".join(filter(None, unable))
            raise InvalidQueryError(f"no stage of policy {policy.name} can serve this query ({why})")
        ctx = QueryContext(spec)
        ctx.fleet = self.fleet.join(policy, options.get("tenant"), ctx.event)
        return ctx

    def _policy(self, name: str | None) -> Policy:
        if name is None:
            return self.default_policy
        try:
            return self.policies[name]
        except KeyError:
            raise InvalidArgumentError(f"no policy named {name!r}; loaded: {', '.join(self.policies)}") from None

    def _provider(self, policy: Policy, name: str) -> Provider:
        if name in self._injected:
            return self._injected[name]
        config = policy.providers.get(name)
        # What the provider speaks: a vendor (under its own name or another), or openai-compatible. An endpoint of
        # your own never falls back on a vendor's variables: OPENAI_API_KEY is not sent to a local server.
        kind = policy.provider_kind(name)
        compatible = kind == "openai-compatible"
        if config and config.api_key_env:
            key_env: tuple[str, ...] = (config.api_key_env,)
        else:
            key_env = () if compatible else DEFAULT_KEY_ENV[kind]
        backend = config.backend if config else None
        async_http = config.async_http if config else "httpx"
        settings = ProviderSettings(
            api_key=self._api_keys.get(name),
            api_key_env=key_env,
            base_url=config.base_url if config else None,
            base_url_env=None if compatible else DEFAULT_BASE_URL_ENV[kind],
            backend=backend,
            async_http=async_http,
            # vLLM and Ollama take no key unless told to: without a variable named, none is asked for.
            key_required=not compatible or bool(key_env),
        )
        # By name first: two endpoints of one kind (two openai-compatible servers) are two adapters.
        cache_key = (name, kind, backend, key_env, settings.base_url, async_http)
        with self._lock:
            provider = self._providers.get(cache_key)
            if provider is None:
                provider = get_provider_class(kind, backend)(settings)
                # Its errors then say `vllm`, not `openai` (the key lookup and each call read the name).
                provider.name = name
                self._providers[cache_key] = provider
        return provider

    # -- drivers ----------------------------------------------------------------------------------

    def drive(self, flow: Generator[Step, Outcome, T], policy: Policy) -> T:
        """Run a step machine (`cascade.flow`) to its end with the sync SDK clients."""
        outcome: Outcome = None
        try:
            while True:
                step = flow.send(outcome)
                if isinstance(step, Sleep):
                    time.sleep(step.seconds)
                    outcome = None
                else:
                    outcome = self._execute_sync(policy, step)
        except StopIteration as stop:
            result: T = stop.value
            return result
        finally:
            flow.close()

    def _execute_sync(self, policy: Policy, call: Call) -> Outcome:
        provider = self._provider(policy, call.provider)
        try:
            return provider.complete(call.request)
        except Exception as exc:
            return _as_provider_error(exc, call)

    async def adrive(self, flow: Generator[Step, Outcome, T], policy: Policy) -> T:
        """Run a step machine (`cascade.flow`) to its end with the async SDK clients."""
        outcome: Outcome = None
        try:
            while True:
                step = flow.send(outcome)
                if isinstance(step, Sleep):
                    await asyncio.sleep(step.seconds)
                    outcome = None
                else:
                    outcome = await self._execute_async(policy, step)
        except StopIteration as stop:
            result: T = stop.value
            return result
        finally:
            flow.close()

    async def _execute_async(self, policy: Policy, call: Call) -> Outcome:
        provider = self._provider(policy, call.provider)
        limit = call.request.timeout_s + _ASYNC_TIMEOUT_GRACE_S
        try:
            async with asyncio.timeout(limit):
                return await provider.acomplete(call.request)
        except TimeoutError:
            return VendorTimeoutError(
                f"{call.provider} gave no reply within {call.request.timeout_s:.1f}s",
                provider=call.provider,
                model=call.request.model,
            )
        except Exception as exc:
            return _as_provider_error(exc, call)


def _as_provider_error(exc: Exception, call: Call) -> ProviderError:
    """Whatever an adapter raises is one failed call (recorded, escalated), never the end of the query.

    Adapters translate their SDK's errors; this catches what slipped past one (a bug, or an SDK surprise), and
    a usage error (a missing key or SDK) stays what it is so the caller can fix it.
    """
    if isinstance(exc, ProviderError):
        return exc
    if isinstance(exc, CascadeError):
        raise exc
    # Not chained: an unknown exception's attributes are not known to be free of keys (the message is redacted).
    return MalformedResponseError(
        f"{call.provider} call failed: {type(exc).__name__}: {exc}", provider=call.provider, model=call.request.model
    )


def _stream_mode(mode: Any, policy: Policy) -> StreamMode:
    """The call's streaming mode, else the policy's."""
    if mode is None:
        return policy.stream.mode
    if mode not in STREAM_MODES:
        raise InvalidArgumentError(f"mode must be one of {', '.join(STREAM_MODES)}, not {mode!r}")
    chosen: StreamMode = mode
    return chosen


def _asked_output(given: Any) -> tuple[OutputType, OutputSchema]:
    """A call's `output_type=` and what the adapters are sent for it."""
    output = OutputType.of(given)
    return output, output.request()


def _policy_output(policy: Policy) -> tuple[OutputType | None, OutputSchema | None]:
    """The structure a policy's `output:` asks of every query (none without one)."""
    return _asked_output(policy.output.json_schema) if policy.output is not None else (None, None)


def _settle(outcomes: list[Any], return_exceptions: bool) -> list[Any]:
    """The batch's outcomes, or one `BatchError` carrying all of them when a query failed."""
    failed = next((item for item in outcomes if isinstance(item, BaseException)), None)
    if failed is not None and not return_exceptions:
        raise BatchError(outcomes) from failed
    return outcomes
