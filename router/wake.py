"""Wake a sleeping loop from any thread: new deliveries wake the worker, new actions the
performer, so neither waits out a poll interval (the poll stays as a fallback)."""

from __future__ import annotations

import asyncio
import contextlib


class Waker:
    """An asyncio.Event that threads may set; bound to the loop that sleeps on it."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._event: asyncio.Event | None = None

    def bind(self) -> None:
        """Attach to the running loop (call from the coroutine that will sleep)."""
        self._loop = asyncio.get_running_loop()
        self._event = asyncio.Event()

    def wake(self) -> None:
        """Wake the sleeper now; safe from any thread, a no-op before `bind`."""
        if self._loop is not None and self._event is not None:
            with contextlib.suppress(RuntimeError):  # the loop has closed: nobody sleeps
                self._loop.call_soon_threadsafe(self._event.set)

    async def sleep(self, seconds: float) -> None:
        """Sleep until woken or `seconds` pass."""
        assert self._event is not None, "bind() first"
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._event.wait(), seconds)
        self._event.clear()
