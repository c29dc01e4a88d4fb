"""What the adapters' streaming tests share: one stream drained, sync or async, and its outcome."""

from __future__ import annotations

import asyncio

from cascade.errors import ProviderError
from cascade.providers.base import Completion, CompletionRequest, Provider, StreamPiece


def drain(
    adapter: Provider, request: CompletionRequest, *, asynchronous: bool
) -> tuple[list[StreamPiece | Completion], ProviderError | None]:
    """What one stream yielded, and the error it ended with (None: it ended cleanly); the adapter is closed after."""
    items: list[StreamPiece | Completion] = []

    async def run() -> None:
        try:
            if asynchronous:
                async for item in adapter.astream(request):
                    items.append(item)
            else:
                items.extend(adapter.stream(request))
        finally:
            await adapter.aclose()

    try:
        asyncio.run(run())
    except ProviderError as error:
        return items, error
    return items, None
