"""`cascade serve`: an OpenAI-compatible HTTP endpoint in front of a `Cascade`, for callers that are not Python.

    POST /v1/chat/completions   {"model": "cascade/<policy name>", "messages": [...]}
    GET  /v1/models             the policies served, as models
    GET  /health                200 while the server runs (no key needed)

The pieces: `app` (the Starlette app and its routes: `create_app(router, ServeConfig(...))`), `shapes` (OpenAI's
request and response bodies from and to cascade's; `messages` and `features` check a request's messages, tools
and response format), `stream` and `chunks` (`stream: true`: server-sent events in OpenAI's chunk format),
`api_error` (the OpenAI-shaped error), `auth` (server keys and the bearer-token check) and `limits` (request size
and requests in flight). The command (`cascade serve`) runs the app on uvicorn; docs/serve.md says
what is accepted and what each status means.

Starlette and uvicorn come with the `serve` extra; `import cascade` imports neither.
"""

from __future__ import annotations

from cascade.serve.app import ServeConfig, create_app
from cascade.serve.auth import SERVER_KEYS_ENV, load_server_keys

__all__ = ["SERVER_KEYS_ENV", "ServeConfig", "create_app", "load_server_keys"]
