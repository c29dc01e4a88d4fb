"""The Starlette app behind `cascade serve`: OpenAI's chat-completions API in front of a `Cascade`.

`create_app(router, config)` takes a router you built (injected providers, your own policies), so tests and
embedders serve exactly what they would call. Each request runs `router.arun` (or, with `stream: true`,
`router.astream`: `cascade.serve.stream`) on the server's event loop; the router's async clients are closed when
the app shuts down.

Statuses: 200 an answer; 400 a request that cannot be answered as sent (the field is named in `error.param`);
401 a missing or wrong server key; 404 a model (policy) not served; 413 a body over the size limit; 429 over the
concurrency limit (with Retry-After); 502 no tier answered (every tier failed, or the budget allowed none), with
the query id and `x-should-retry: false` (the policy's own retries were made); 500 a fault of the server, which
says only the query id to look up in the server's events, never a traceback. Every error is OpenAI-shaped JSON;
once a stream has started, an error is its last event, with the same body.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import AsyncIterator
from contextlib import ExitStack, asynccontextmanager
from dataclasses import dataclass, field

from cascade.errors import (
    BudgetExhaustedError,
    CascadeExhausted,
    InvalidArgumentError,
    InvalidQueryError,
    MissingDependencyError,
    redact,
)
from cascade.events import Events

try:
    from starlette.applications import Starlette
    from starlette.exceptions import HTTPException
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route
except ModuleNotFoundError as exc:  # pragma: no cover - the serve extra is part of the dev install
    if exc.name != "starlette":
        raise
    raise MissingDependencyError("serve", "serve", "starlette") from exc

from cascade.engine import Cascade
from cascade.serve.api_error import APIError
from cascade.serve.auth import BearerAuth
from cascade.serve.limits import InFlightLimit, read_body
from cascade.serve.shapes import (
    ChatRequest,
    completion_body,
    model_body,
    models_body,
    no_answer_error,
    parse_chat_request,
    summary_headers,
)
from cascade.serve.stream import open_stream

DEFAULT_MAX_BODY_BYTES = 1024 * 1024  # about 250,000 tokens of text
DEFAULT_MAX_CONCURRENCY = 64


@dataclass(frozen=True)
class ServeConfig:
    """The server's settings: its keys (none: no key needed), the request size limit and the concurrency limit."""

    keys: frozenset[str] = field(default=frozenset(), repr=False)
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    max_concurrency: int = DEFAULT_MAX_CONCURRENCY

    def __post_init__(self) -> None:
        if self.max_body_bytes < 1 or self.max_concurrency < 1:
            raise InvalidArgumentError("max_body_bytes and max_concurrency are at least 1")


def create_app(router: Cascade, config: ServeConfig | None = None) -> Starlette:
    """The ASGI app serving every policy of `router` as a model named `cascade/<policy name>`."""
    server = _Server(router, config or ServeConfig())
    routes = [
        Route("/v1/chat/completions", server.chat, methods=["POST"]),
        Route("/v1/models", server.models, methods=["GET"]),
        Route("/v1/models/{model:path}", server.model, methods=["GET"]),
        Route("/health", server.health, methods=["GET"]),
    ]
    handlers = {APIError: _api_error, HTTPException: _http_error, Exception: _internal_error}
    app = Starlette(routes=routes, lifespan=server.lifespan, exception_handlers=handlers)
    app.state.limit = server.limit  # for a caller that watches the requests in flight
    return app


class _Server:
    """The routes of one app, and what they share: the router, the key check and the concurrency limit."""

    def __init__(self, router: Cascade, config: ServeConfig) -> None:
        self.router = router
        self.auth = BearerAuth(config.keys)
        self.limit = InFlightLimit(config.max_concurrency)
        self.max_body_bytes = config.max_body_bytes
        self.started = int(time.time())

    @asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await self.router.aclose()  # on the loop that opened the async connections

    def check_key(self, request: Request) -> None:
        if not self.auth.allows(request.headers.get("authorization")):
            given = "authorization" in request.headers
            raise APIError(
                401,
                "the server key is wrong" if given else "a server key is required: send Authorization: Bearer <key>",
                code="invalid_api_key",
                headers={"www-authenticate": "Bearer"},
            )

    async def chat(self, request: Request) -> Response:
        self.check_key(request)
        query_id = secrets.token_hex(8)
        with ExitStack() as slot:  # a stream takes the slot over, and gives it back when it ends
            slot.enter_context(self.limit.slot())
            chat = parse_chat_request(await read_body(request, self.max_body_bytes), self.router.policies)
            try:
                return await self._answer(chat, query_id, slot)
            except APIError:
                raise
            except Exception as exc:  # a fault of the server: the caller gets the query id, the events get the rest
                Events(query_id=query_id).emit(
                    "cascade.serve.failed", error=type(exc).__name__, message=redact(str(exc))
                )
                raise APIError(500, f"internal error (query id {query_id})", extra={"query_id": query_id}) from None

    async def _answer(self, chat: ChatRequest, query_id: str, slot: ExitStack) -> Response:
        try:
            if chat.stream:
                return await open_stream(self.router, chat, query_id, slot)
            result = await self.router.arun(chat.messages, **chat.run_options(query_id))
        except InvalidQueryError as exc:
            raise APIError(400, str(exc), param="messages", code="invalid_query") from None
        except (CascadeExhausted, BudgetExhaustedError) as exc:
            raise no_answer_error(exc, chat.trace) from None
        return JSONResponse(completion_body(result, int(time.time()), chat.trace), headers=summary_headers(result))

    async def models(self, request: Request) -> Response:
        self.check_key(request)
        return JSONResponse(models_body(self.router.policies, self.started))

    async def model(self, request: Request) -> Response:
        self.check_key(request)
        model = request.path_params["model"]
        for name in self.router.policies:
            if model == f"cascade/{name}":
                return JSONResponse(model_body(name, self.started))
        raise APIError(404, f"the model {model!r} is not served here", code="model_not_found")

    async def health(self, request: Request) -> Response:
        return JSONResponse({"status": "ok"})


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, APIError)
    return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)


async def _http_error(request: Request, exc: Exception) -> Response:
    """Starlette's own errors (no such route, a method not allowed) in OpenAI's shape."""
    assert isinstance(exc, HTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code)
    message = f"{request.method} {request.url.path}: {exc.detail}"
    body = APIError(exc.status_code, message, code=code).body()
    return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)


async def _internal_error(request: Request, exc: Exception) -> Response:
    """Whatever escaped a route: 500 in OpenAI's shape, with nothing of the exception in it."""
    Events().emit("cascade.serve.failed", error=type(exc).__name__, message=redact(str(exc)))
    return JSONResponse(APIError(500, "internal error").body(), status_code=500)
