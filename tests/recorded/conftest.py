"""Recorded tests send every query through `Cascade`, once for each adapter, sync and async.

- `vendor` runs a test once per adapter in `vendors.VENDORS`; `@pytest.mark.vendors(...)` on a test or a module
  narrows that to the vendors a fact belongs to.
- `mode` runs it through `run` / `run_many` ("sync") and through `arun` / `arun_many` ("async").
- `@pytest.mark.replies(make)`: `make(vendor)` lists what that vendor answers, in order. A cassette is synthesized
  from it (`CASCADE_SYNTHESIZE=1`, see tests/conftest.py), and tests check the adapter against it.
- `replay` (`harness.Replay`) asks `Cascade` on a one-stage policy and keeps what the adapter gave back for each
  call; `server` is a local fake of the vendor, for what cannot be recorded.
- Cassettes: `cassettes/<vendor>/<test>[<mode>].yaml`, so a test's name must be unique across tests/recorded.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from cascade.providers import DEFAULT_BASE_URL_ENV, DEFAULT_KEY_ENV
from cascade.testing import FakeVendorServer
from tests.recorded.harness import Replay
from tests.recorded.vendors import VENDORS, Vendor

CASSETTES = Path(__file__).resolve().parents[2] / "cassettes"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "vendors(*vendors): run the test only for these vendors")
    config.addinivalue_line("markers", "replies(make): make(vendor) lists the replies a cassette is made of")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "vendor" in metafunc.fixturenames:
        chosen = metafunc.definition.get_closest_marker("vendors")
        replies = metafunc.definition.get_closest_marker("replies")
        params = [
            pytest.param(
                vendor,
                id=vendor.id,
                marks=[pytest.mark.fake_vendor(vendor.provider, *replies.args[0](vendor))] if replies else [],
            )
            for vendor in (chosen.args if chosen else VENDORS)
        ]
        metafunc.parametrize("vendor", params)
    if "mode" in metafunc.fixturenames:
        metafunc.parametrize("mode", ["sync", "async"])


@pytest.fixture
def vcr_cassette_dir(request: pytest.FixtureRequest) -> str:
    if "vendor" not in request.fixturenames:
        return str(CASSETTES)
    vendor: Vendor = request.getfixturevalue("vendor")
    return str(CASSETTES / vendor.id)


@pytest.fixture
def default_cassette_name(request: pytest.FixtureRequest) -> str:
    name: str = request.node.originalname
    return f"{name}[{request.getfixturevalue('mode')}]" if "mode" in request.fixturenames else name


@pytest.fixture
async def replay(
    request: pytest.FixtureRequest, vendor: Vendor, mode: str, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Replay]:
    replies = request.node.get_closest_marker("replies")
    replay = Replay(vendor, mode, replies.args[0](vendor) if replies else [], monkeypatch)
    yield replay
    await replay.adapter.aclose()  # in the test's own event loop, which owns the async connections


@pytest.fixture
def server(vendor: Vendor, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeVendorServer]:
    """A local fake of the vendor, for what cannot be recorded (timeouts, dropped connections, request bodies)."""
    with FakeVendorServer() as fake:
        monkeypatch.setenv(DEFAULT_BASE_URL_ENV[vendor.provider], vendor.base_url(fake))
        monkeypatch.setenv(DEFAULT_KEY_ENV[vendor.provider][0], "local-test-key")
        yield fake
        assert fake.pending() == 0, "a scripted reply was never requested"
