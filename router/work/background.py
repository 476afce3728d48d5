"""The service's background work: decide deliveries and timers, perform the outbox.

`firstline serve` runs it in its main process and the HTTP side (ingest, read API) in a
child process, so the two never share a GIL: in one process the HTTP side, the worker
and the performer took turns on one core and fell behind at 200 deliveries/s. The HTTP
process wakes the worker with a datagram on `wake.sock` after each stored batch and
reads the worker's counters (for /metrics and /readyz) from `worker.json`, both in a
runtime directory that `serve` makes and names in FIRSTLINE_RUNTIME_DIR.

The performer runs in processes of its own too (`serve --performers N`, default 1): on
this machine one performer process reaches about 240 GitHub reassignments a second at a
full core, four vendor calls each through httpx; the worker wakes them the same way.
`firstline worker` runs both loops in one process (beside `serve --no-worker`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable, Mapping
from pathlib import Path

from sqlalchemy import Engine

from adapters import outbound_adapters
from adapters.base import OutboundAdapter
from router.db.engine import worker_engine
from router.scope.load import Scope
from router.settings import Settings
from router.work.metrics import publish_stats
from router.work.outbox import Actor
from router.work.wake import listen_for_wakes
from router.work.worker import Worker, utcnow

RUNTIME_ENV = "FIRSTLINE_RUNTIME_DIR"
WAKE_SOCKET = "wake.sock"
STATS_FILE = "worker.json"
PUBLISH_EVERY_S = 1.0


def runtime_dir() -> Path | None:
    """The runtime directory `serve` named for its processes, if any."""
    value = os.environ.get(RUNTIME_ENV)
    return Path(value) if value else None


def build_worker(settings: Settings, scope: Callable[[], Scope]) -> Worker:
    """Return the worker on its own engine (router.worker.worker_engine)."""
    return Worker(worker_engine(settings.database_url), scope)


def build_actor(settings: Settings, engine: Engine | None = None,
                adapters: Mapping[str, OutboundAdapter] | None = None) -> Actor:
    """Return an outbox performer; its vendor clients are built on its first action (none
    connects before it is needed)."""
    registry: dict[str, OutboundAdapter] = dict(adapters or {})

    def outbound() -> dict[str, OutboundAdapter]:
        if not registry:
            registry.update(outbound_adapters(settings))
        return registry

    return Actor(engine or worker_engine(settings.database_url), outbound, utcnow,
                 concurrency=settings.outbox_concurrency)


def build_loops(settings: Settings, scope: Callable[[], Scope],
                adapters: Mapping[str, OutboundAdapter] | None = None) -> tuple[Worker, Actor]:
    """Return the worker and a performer sharing its engine, the worker waking it."""
    worker = build_worker(settings, scope)
    actor = build_actor(settings, worker.engine, adapters)
    worker.on_batch = actor.waker.wake  # decided batches may have queued actions
    return worker, actor


async def run_loops(worker: Worker | None, actor: Actor | None, stop: asyncio.Event,
                    runtime: Path | None = None, wake_socket: str = WAKE_SOCKET) -> None:
    """Run the worker and/or the performer until `stop` is set. With `runtime`, take
    wake-ups on `wake_socket` there (for the worker if there is one, else the performer)
    and publish the worker's counters."""
    tasks = [asyncio.create_task(loop.run(stop)) for loop in (worker, actor) if loop]
    woken = worker.waker if worker is not None else actor.waker if actor is not None else None
    close = listen_for_wakes(runtime / wake_socket, woken) if runtime and woken else None
    try:
        while not stop.is_set():
            if runtime is not None and worker is not None:
                with contextlib.suppress(OSError):
                    publish_stats(worker.stats, runtime / STATS_FILE)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), PUBLISH_EVERY_S)
    finally:
        stop.set()
        for loop in (worker, actor):
            if loop is not None:
                loop.waker.wake()
        await asyncio.gather(*tasks)
        if close is not None:
            close()
        for loop in (worker, actor):
            if loop is not None:
                loop.engine.dispose()


def performer_socket(k: int) -> str:
    """The wake-up socket of serve's k-th performer process."""
    return f"act-{k}.sock"
