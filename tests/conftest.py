"""Cassette replay for every test that is marked `@pytest.mark.vcr`.

Three modes, one set of tests:
- replay (default, CI): record mode `none`; a request that is not in the cassette fails the test.
- re-record against the real vendors: `pytest tests/recorded tests/engine --record-mode=rewrite` with real keys
  in OPENAI_API_KEY, ANTHROPIC_API_KEY and GEMINI_API_KEY.
- synthesize (how the shipped cassettes were made, having no vendor access): `CASCADE_SYNTHESIZE=1 pytest
  tests/recorded tests/engine --record-mode=rewrite`. Each test's `@pytest.mark.fake_vendor(...)` replies are
  served by `cascade.testing.FakeVendorServer`, and the recorded requests are rewritten to the vendors' real
  hosts, so the cassettes replay exactly as real recordings would.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cascade.testing import cassettes

ROOT = Path(__file__).resolve().parent.parent
CASSETTES = ROOT / "cassettes"
SYNTHESIZE = os.environ.get("CASCADE_SYNTHESIZE") == "1"

# Keys used while replaying: plain words, so that nothing key-shaped ever lands in a cassette or a log.
REPLAY_KEYS = {
    "OPENAI_API_KEY": "replay-openai-key",
    "ANTHROPIC_API_KEY": "replay-anthropic-key",
    "GEMINI_API_KEY": "replay-gemini-key",
}
BASE_URL_VARS = ("OPENAI_BASE_URL", "ANTHROPIC_BASE_URL", "GOOGLE_GEMINI_BASE_URL")


@pytest.fixture(scope="session")
def vcr_config() -> dict[str, Any]:
    return cassettes.vcr_config()


# Re-recording rewrites cassettes from the real vendors: it only starts when every one of them can be reached.
# CASCADE_VENDOR_HOSTS overrides the list (the test of this check points it at a host that cannot exist).
VENDOR_HOSTS = tuple(
    os.environ.get("CASCADE_VENDOR_HOSTS", "api.openai.com,api.anthropic.com,generativelanguage.googleapis.com").split(
        ","
    )
)


def pytest_sessionstart(session: pytest.Session) -> None:
    mode = session.config.getoption("--record-mode", default="none")
    if mode in (None, "none") or os.environ.get("CASCADE_SYNTHESIZE") == "1":
        return
    unreachable = [host for host in VENDOR_HOSTS if not _reachable(host)]
    if unreachable:
        pytest.exit(
            f"--record-mode={mode} would rewrite cassettes, but {', '.join(unreachable)} cannot be reached from "
            "here: stopped before any cassette was touched",
            returncode=2,
        )


def _reachable(host: str) -> bool:
    import socket

    try:
        socket.create_connection((host, 443), timeout=3).close()
    except OSError:
        return False
    return True


def pytest_recording_configure(config: Any, vcr: Any) -> None:
    vcr.register_matcher("method_ci", cassettes.method_ci)


@pytest.fixture(scope="module")
def vcr_cassette_dir(request: pytest.FixtureRequest) -> str:
    module = Path(str(request.node.fspath)).stem.removeprefix("test_")
    return str(CASSETTES / module)


@pytest.fixture(autouse=True)
def _vendor_environment(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Replay keys and default hosts for cassette tests; a scripted fake vendor in synthesize mode."""
    if request.node.get_closest_marker("vcr") is None:
        yield
        return
    for var in BASE_URL_VARS:
        monkeypatch.delenv(var, raising=False)
    real_recording = not SYNTHESIZE and request.config.getoption("--record-mode") not in ("none", None)
    if not real_recording:
        for var, value in REPLAY_KEYS.items():
            monkeypatch.setenv(var, value)
    _fail_on_cassette_miss(monkeypatch)
    if not SYNTHESIZE:
        yield
        return
    from cascade.testing import FakeVendorServer

    with FakeVendorServer() as server:
        for marker in request.node.iter_markers("fake_vendor"):
            vendor, *replies = marker.args
            server.script(vendor, *replies)
        monkeypatch.setenv("OPENAI_BASE_URL", server.url + "/v1")
        monkeypatch.setenv("ANTHROPIC_BASE_URL", server.url)
        monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", server.url)
        yield
        assert server.pending() == 0, "a scripted reply was never requested"


def _fail_on_cassette_miss(monkeypatch: pytest.MonkeyPatch) -> None:
    """The SDKs wrap vcrpy's miss in a connection error (and would escalate past it): fail loudly instead.

    `Provider.error_for` sees every exception a vendor call raises before it is translated."""
    from vcr.errors import CannotOverwriteExistingCassetteException

    from cascade.providers.base import Provider

    original = Provider.error_for

    def error_for(self: Provider, exc: Exception, request: Any) -> Any:
        cause: BaseException | None = exc
        while cause is not None:
            if isinstance(cause, CannotOverwriteExistingCassetteException):
                pytest.fail(f"cassette miss: {cause}", pytrace=False)
            cause = cause.__cause__ or cause.__context__
        return original(self, exc, request)

    monkeypatch.setattr(Provider, "error_for", error_for)
