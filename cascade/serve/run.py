"""Running the app: a listening socket bound before anything starts, and uvicorn serving the app on it.

Binding first means a port that is taken is a usage error said before the server starts, and that `--port 0` (any
free port) can say which port it got.
"""

from __future__ import annotations

import ipaddress
import socket

from starlette.applications import Starlette

from cascade.errors import InvalidArgumentError


def is_loopback(host: str) -> bool:
    """Whether `host` is reachable from this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:  # a host name other than localhost: it may resolve to anything
        return False


def bind(host: str, port: int) -> socket.socket:
    """A TCP socket bound to `host:port`; `InvalidArgumentError` when it cannot be (taken, or no such address)."""
    address = host.strip("[]")
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    # The protocol said, not left 0: asyncio turns Nagle's algorithm off (TCP_NODELAY) only on sockets that say they
    # are TCP, and with it on, a reply written in two parts waits for the client's delayed ACK (40 ms a request).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((address, port))
    except OSError as exc:
        sock.close()
        raise InvalidArgumentError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return sock


def address_of(sock: socket.socket) -> str:
    """`http://host:port` of a bound socket, as a client would write it."""
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def serve(app: Starlette, sock: socket.socket, *, verbose: bool = False) -> None:
    """Serve `app` on `sock` until SIGINT or SIGTERM; uvicorn finishes the requests in flight first."""
    import uvicorn

    config = uvicorn.Config(
        app,
        log_level="info" if verbose else "warning",
        access_log=verbose,
        server_header=False,  # no server software and version in every reply
        timeout_graceful_shutdown=30,
    )
    uvicorn.Server(config).run(sockets=[sock])
