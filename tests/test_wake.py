"""Wake-ups between serve's processes: a datagram on a Unix socket wakes the worker."""

from __future__ import annotations

import asyncio
from pathlib import Path

from router.work.wake import Waker, WakeSender, listen_for_wakes


def test_a_datagram_from_another_socket_wakes_the_sleeper(tmp_path: Path) -> None:
    path = tmp_path / "wake.sock"

    async def scenario() -> tuple[bool, bool]:
        waker = Waker()
        waker.bind()
        close = listen_for_wakes(path, waker)
        sender = WakeSender(path)
        try:
            quiet = await waker.sleep(0.05)  # nothing sent yet: times out
            for _ in range(100):  # a burst of deliveries: wake-ups coalesce
                sender.wake()
            woken = await waker.sleep(30)
            return quiet, woken
        finally:
            sender.close()
            close()

    quiet, woken = asyncio.run(scenario())
    assert (quiet, woken) == (False, True)
    assert not path.exists()  # the listener removes its socket


def test_waking_nobody_is_harmless(tmp_path: Path) -> None:
    sender = WakeSender(tmp_path / "nobody.sock")
    sender.wake()  # the worker is not listening (yet, or any more): no error
    sender.close()


def test_a_socket_that_cannot_be_bound_leaves_the_poll(tmp_path: Path) -> None:
    async def scenario() -> None:
        waker = Waker()
        waker.bind()
        close = listen_for_wakes(tmp_path / "missing-dir" / "wake.sock", waker)
        close()  # nothing was bound; closing is still safe

    asyncio.run(scenario())


def test_a_nudge_interrupts_the_sleep_but_is_no_wake_up() -> None:
    async def scenario() -> list[bool]:
        waker = Waker()
        waker.bind()
        told = []
        asyncio.get_running_loop().call_later(0.01, waker.nudge)
        told.append(await waker.sleep(30))  # nudged: back at once, not woken
        waker.wake()  # a wake-up while nobody sleeps is kept for the next sleep
        told.append(await waker.sleep(30))
        waiting = asyncio.get_running_loop().run_in_executor(None, waker.wake)
        told.append(await waker.sleep(30))  # from another thread
        await waiting
        waker.nudge()
        waker.wake()
        told.append(await waker.sleep(30))  # both: the wake-up is not lost
        return told

    assert asyncio.run(asyncio.wait_for(scenario(), 10)) == [False, True, True, True]
