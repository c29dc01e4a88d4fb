"""`cascade serve`: policies behind an OpenAI-compatible endpoint (`cascade.serve`), on uvicorn.

Only Typer is imported here; Starlette, uvicorn and the engine load when the command runs. Everything that can be
wrong (a policy, a vendor's key or SDK, the server keys, the port) is checked before the server starts, exit 2.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from cascade.cli import common
from cascade.cli.common import DEFAULT_POLICY, EXIT_INTERRUPTED, EXIT_USAGE, Verbose, configure_logging, fail

KEYS_ENV = "CASCADE_SERVER_KEYS"  # cascade.serve.SERVER_KEYS_ENV, spelled out so that --help imports nothing


def serve(
    policies: Annotated[
        list[str] | None,
        typer.Option(
            "--policy",
            "-p",
            help="A policy to serve, as model cascade/<name>: a shipped policy's name or a file. Repeat for more.",
        ),
    ] = None,
    host: Annotated[str, typer.Option(help="Address to listen on; 127.0.0.1 is this machine only.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port to listen on (0: any free port).")] = 8000,
    keys_file: Annotated[
        Path | None, typer.Option("--keys-file", help=f"Server keys, one a line (added to ${KEYS_ENV}).")
    ] = None,
    max_concurrency: Annotated[
        int, typer.Option("--max-concurrency", min=1, help="Requests answered at once; more get 429.")
    ] = 64,
    max_body_bytes: Annotated[
        int, typer.Option("--max-body-bytes", min=1, help="Largest request body; larger ones get 413.")
    ] = 1024 * 1024,
    open_to_network: Annotated[
        bool,
        typer.Option(
            "--no-keys-on-network",
            help="Listen beyond this machine without server keys: anyone who reaches it spends your vendor credit.",
        ),
    ] = False,
    verbose: Verbose = False,
) -> None:
    """Serve policies as an OpenAI-compatible API: POST /v1/chat/completions, GET /v1/models, GET /health."""
    configure_logging(verbose)
    import importlib.util

    if not all(importlib.util.find_spec(name) for name in ("starlette", "uvicorn")):
        raise fail("cascade serve needs starlette and uvicorn: pip install 'cascade-router[serve]'", EXIT_USAGE)
    from cascade.cli.preflight import check_vendors
    from cascade.engine import Cascade
    from cascade.errors import UsageError
    from cascade.serve import ServeConfig, create_app, load_server_keys
    from cascade.serve.run import address_of, bind, is_loopback
    from cascade.serve.run import serve as run_server

    names = policies or [DEFAULT_POLICY]
    try:
        keys = load_server_keys(os.environ.get(KEYS_ENV), keys_file)
        if not keys and not is_loopback(host) and not open_to_network:
            raise UsageError(
                f"--host {host} without server keys would let anyone who reaches it spend your vendor credit: "
                f"set {KEYS_ENV} or --keys-file (or pass --no-keys-on-network to do it anyway)"
            )
        router = Cascade(*names)
        if len(router.policies) < len(names):
            raise UsageError("two of the policies have the same name: each is served as cascade/<its name>")
    except UsageError as exc:
        raise fail(str(exc), EXIT_USAGE) from None
    for name in router.policies:
        check_vendors(router, name)
    config = ServeConfig(keys=keys, max_body_bytes=max_body_bytes, max_concurrency=max_concurrency)
    app = create_app(router, config)
    try:
        sock = bind(host, port)
    except UsageError as exc:
        raise fail(str(exc), EXIT_USAGE) from None
    served = ", ".join(f"cascade/{name}" for name in router.policies)
    auth = f"{len(keys)} server key(s)" if keys else "no server key"
    common.console(stderr=True).print(
        f"serving {served} on {address_of(sock)} ({auth}); Ctrl-C stops", markup=False, highlight=False
    )
    try:
        run_server(app, sock, verbose=verbose)
    except KeyboardInterrupt:  # uvicorn has finished the requests in flight and passes the Ctrl-C on
        common.console(stderr=True).print("stopped", markup=False, highlight=False)
        raise typer.Exit(EXIT_INTERRUPTED) from None
    finally:
        sock.close()


def register(app: typer.Typer) -> None:
    """Add `serve` to the `cascade` app."""
    app.command()(serve)
