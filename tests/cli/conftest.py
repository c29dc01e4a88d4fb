from __future__ import annotations

from collections.abc import Iterator

import pytest
import structlog


@pytest.fixture(autouse=True)
def _restore_structlog() -> Iterator[None]:
    """The CLI configures structlog (it is an application); later tests get the defaults back."""
    yield
    structlog.reset_defaults()
