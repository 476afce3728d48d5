"""Wake a sleeping loop from any thread or process: new deliveries wake the worker, new
actions the performer, so neither waits out a poll interval (the poll stays as a
fallback). `firstline serve` runs ingest in one process and the worker in another; a
datagram on a Unix socket carries the wake-up between them."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger("firstline.wake")


class Waker:
    """An asyncio.Event that threads may set; bound to the loop that sleeps on it.

    `wake` says there is new work; `nudge` (from the loop's own thread) only interrupts
    the sleep, so the sleeper can tell a wake-up from its own bookkeeping.
    """

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._event: asyncio.Event | None = None
        self._woken = False

    def bind(self) -> None:
        """Attach to the running loop (call from the coroutine that will sleep)."""
        self._loop = asyncio.get_running_loop()
        self._event = asyncio.Event()
        self._woken = False

    def wake(self) -> None:
        """Wake the sleeper now; safe from any thread, a no-op before `bind`."""
        if self._loop is None or self._event is None:
            return
        try:
            here = asyncio.get_running_loop() is self._loop
        except RuntimeError:  # another thread
            here = False
        if here:  # from the loop itself (a wake-up datagram): no self-pipe write
            self._set()
            return
        with contextlib.suppress(RuntimeError):  # the loop has closed: nobody sleeps
            self._loop.call_soon_threadsafe(self._set)

    def nudge(self) -> None:
        """Interrupt the sleep without a wake-up; call from the loop's own thread."""
        if self._event is not None:
            self._event.set()

    def _set(self) -> None:
        assert self._event is not None
        self._woken = True
        self._event.set()

    async def sleep(self, seconds: float) -> bool:
        """Sleep until woken, nudged or `seconds` pass; tell whether it was woken (now or
        while the caller was busy)."""
        assert self._event is not None, "bind() first"
        if not self._event.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._event.wait(), max(0.0, seconds))
        self._event.clear()
        woken, self._woken = self._woken, False
        return woken


class WakeSender:
    """Wake a loop in another process of this service (ingest -> the worker) with one
    datagram on a Unix socket; costs a syscall, never blocks, never fails the caller."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.setblocking(False)

    def wake(self) -> None:
        # Not bound yet (the worker is starting), gone, or its queue is full (wake-ups
        # are pending anyway): the receiver's idle poll covers every case.
        with contextlib.suppress(OSError):
            self._sock.sendto(b"!", self.path)

    def close(self) -> None:
        self._sock.close()


def listen_for_wakes(path: Path, waker: Waker) -> Callable[[], None]:
    """Bind `path` and wake `waker` whenever datagrams arrive; return a function that
    stops listening. Call from the running loop. A socket that cannot be bound leaves
    the loop on its idle poll, with a warning."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        sock.bind(str(path))
    except OSError as exc:
        sock.close()
        log.warning("no wake-ups from the HTTP process (%s: %s); polling instead", path, exc)
        return lambda: None
    sock.setblocking(False)
    loop = asyncio.get_running_loop()

    def readable() -> None:
        with contextlib.suppress(BlockingIOError):
            while sock.recv(64):  # many deliveries, one wake-up
                pass
        waker.wake()

    loop.add_reader(sock.fileno(), readable)

    def close() -> None:
        loop.remove_reader(sock.fileno())
        sock.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)

    return close
