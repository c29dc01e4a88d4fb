from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from cascade.providers.base import Completion, CompletionRequest


@pytest.fixture(params=["sync", "async"])
def complete(request: pytest.FixtureRequest) -> Callable[[Any, CompletionRequest], Awaitable[Completion]]:
    """`provider.complete` or `await provider.acomplete`: every adapter test runs through both paths."""

    async def run(provider: Any, completion_request: CompletionRequest) -> Completion:
        if request.param == "sync":
            completion: Completion = provider.complete(completion_request)
            return completion
        return await provider.acomplete(completion_request)

    return run
