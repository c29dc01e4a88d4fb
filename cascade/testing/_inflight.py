"""A thread-safe count of calls in progress, shared by the fake server and the scripted provider."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager


class InFlight:
    """How many calls are in progress (`now`) and the most there have been at once (`peak`)."""

    def __init__(self) -> None:
        self.now = 0
        self.peak = 0
        self._lock = threading.Lock()

    @contextmanager
    def track(self) -> Iterator[None]:
        """Count the block as one call in progress."""
        with self._lock:
            self.now += 1
            self.peak = max(self.peak, self.now)
        try:
            yield
        finally:
            with self._lock:
                self.now -= 1
