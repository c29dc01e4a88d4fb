from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from cascade.testing import FakeVendorServer
from tests.cli.fakes import Vendor, write_policy


@pytest.fixture(autouse=True)
def _restore_structlog() -> Iterator[None]:
    """The CLI configures structlog (it is an application); later tests get the defaults back."""
    yield
    structlog.reset_defaults()


@pytest.fixture
def vendor(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Vendor]:
    monkeypatch.setenv("OPENAI_API_KEY", "local-test-key")
    server = FakeVendorServer()
    found = Vendor(server, tmp_path / "policy.yaml")
    server.responder = found.reply
    with server:
        write_policy(found.policy, server.url)
        yield found
