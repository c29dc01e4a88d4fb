"""Real Redis servers for the fleet tests, on 127.0.0.1.

`redis_server`: the server `.ci/run` started (its URL in CASCADE_TEST_REDIS_URL), else one started here at a free
port. `own_redis_server`: always one of our own, for the tests that stop and restart it. `.ci/run` installs
`redis-server` from the system's packages; where it cannot (no package manager), these tests are skipped, and
the summary says so.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

BINARY = shutil.which("redis-server")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class RedisServer:
    """One redis-server process on loopback; `stop` and `start` again on the same port (a restart)."""

    def __init__(self, workdir: Path) -> None:
        assert BINARY is not None
        self.binary = BINARY
        self.workdir = workdir
        self.port = _free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        command = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.workdir)]
        # An append-only file, fsynced on every write: a restart keeps what the fleet has spent.
        command += ["--save", "", "--appendonly", "yes", "--appendfsync", "always", "--protected-mode", "no"]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        end = time.monotonic() + 10
        while time.monotonic() < end:
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.process.returncode} on port {self.port}")
            try:
                if self.client().ping():
                    return
            except Exception:
                time.sleep(0.02)
        raise RuntimeError(f"redis-server did not answer on port {self.port} within 10 s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
        self.process = None

    def restart(self, down_s: float = 0.0) -> None:
        self.stop()
        time.sleep(down_s)
        self.start()

    def client(self) -> Any:
        import redis

        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=2)


@pytest.fixture(scope="session")
def redis_binary() -> str:
    if BINARY is None:
        message = "no redis-server on this machine: `apt-get install redis-server` (README, Install)"
        pytest.skip(message)
    return BINARY


class ExternalRedis:
    """A server someone else runs (`.ci/run`): used, emptied, never stopped."""

    def __init__(self, url: str) -> None:
        self.url = url

    def client(self) -> Any:
        import redis

        return redis.Redis.from_url(self.url, socket_timeout=2)


# What a test that only talks to Redis gets.
Server = ExternalRedis | RedisServer


@pytest.fixture(scope="session")
def _session_redis(redis_binary: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def own_redis_server(_session_redis: RedisServer) -> Iterator[RedisServer]:
    """A server of this test session, emptied for each test; a test may stop and restart it."""
    if _session_redis.process is None:
        _session_redis.start()
    _session_redis.client().flushall()
    yield _session_redis
    if _session_redis.process is None:
        _session_redis.start()


@pytest.fixture
def redis_server(request: pytest.FixtureRequest) -> Server:
    """The server `.ci/run` started, else one of this session's; emptied for each test."""
    url = os.environ.get("CASCADE_TEST_REDIS_URL")
    if not url:
        server: RedisServer = request.getfixturevalue("own_redis_server")
        return server
    external = ExternalRedis(url)
    external.client().flushall()
    return external
