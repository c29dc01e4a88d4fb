"""The listening socket: bound before the server starts, TCP said explicitly, loopback told apart."""

from __future__ import annotations

import socket
import time

import httpx2
import pytest

from cascade.errors import InvalidArgumentError
from cascade.serve import create_app
from cascade.serve.run import address_of, bind, is_loopback
from tests.serve.conftest import Running, scripted, three_router


def test_loopback_hosts() -> None:
    assert all(is_loopback(h) for h in ("127.0.0.1", "127.0.0.2", "localhost", "::1", "[::1]"))
    assert not any(is_loopback(h) for h in ("0.0.0.0", "::", "10.0.0.5", "example.com"))


def test_a_bound_socket_says_where_and_a_taken_port_is_a_usage_error() -> None:
    sock = bind("127.0.0.1", 0)
    try:
        sock.listen()
        assert sock.proto == socket.IPPROTO_TCP
        port = sock.getsockname()[1]
        assert address_of(sock) == f"http://127.0.0.1:{port}"
        with pytest.raises(InvalidArgumentError, match=f"cannot listen on 127.0.0.1:{port}"):
            bind("127.0.0.1", port)
    finally:
        sock.close()


def test_keep_alive_requests_do_not_wait_for_delayed_acks() -> None:
    # With Nagle's algorithm left on, each reply (headers and body written apart) waited for the client's delayed
    # ACK: 40 ms a request, so 30 requests took over 1.2 s. Without it they take milliseconds; the bound is generous.
    with Running(create_app(three_router(scripted()))) as running, httpx2.Client() as client:
        client.get(running.url + "/health")
        start = time.perf_counter()
        for _ in range(30):
            assert client.get(running.url + "/health").status_code == 200
        assert time.perf_counter() - start < 0.8
