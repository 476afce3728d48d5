"""The service's background work: decide deliveries and timers, perform the outbox.

`firstline serve` runs it in its main process and the HTTP side (ingest, read API) in a
child process, so the two never share a GIL: in one process the HTTP side, the worker
and the performer took turns on one core and fell behind at 200 deliveries/s. The HTTP
process wakes the worker with a datagram on `wake.sock` after each stored batch and
reads the worker's counters (for /metrics and /readyz) from `worker.json`, both in a
runtime directory that `serve` makes and names in FIRSTLINE_RUNTIME_DIR.

`firstline worker` runs the same loops alone (beside `serve --no-worker`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable, Mapping
from pathlib import Path

from adapters import outbound_adapters
from adapters.base import OutboundAdapter
from router.act import Actor
from router.scope import Scope
from router.settings import Settings
from router.wake import listen_for_wakes
from router.worker import Worker, utcnow, worker_engine
from router.worker_metrics import publish_stats

RUNTIME_ENV = "FIRSTLINE_RUNTIME_DIR"
WAKE_SOCKET = "wake.sock"
STATS_FILE = "worker.json"
PUBLISH_EVERY_S = 1.0

def runtime_dir() -> Path | None:
    """The runtime directory `serve` named for its processes, if any."""
    value = os.environ.get(RUNTIME_ENV)
    return Path(value) if value else None


def build_loops(settings: Settings, scope: Callable[[], Scope],
                adapters: Mapping[str, OutboundAdapter] | None = None) -> tuple[Worker, Actor]:
    """Return the worker and the outbox performer on one engine; the performer's vendor
    clients are built on its first action (none connects before it is needed)."""
    worker = Worker(worker_engine(settings.database_url), scope)
    registry: dict[str, OutboundAdapter] = dict(adapters or {})

    def outbound() -> dict[str, OutboundAdapter]:
        if not registry:
            registry.update(outbound_adapters(settings))
        return registry

    actor = Actor(worker.engine, outbound, utcnow, concurrency=settings.outbox_concurrency)
    worker.on_batch = actor.waker.wake  # decided batches may have queued actions
    return worker, actor


async def run_loops(worker: Worker, actor: Actor, stop: asyncio.Event,
                    runtime: Path | None = None) -> None:
    """Run the worker and the performer until `stop` is set; with `runtime`, also take
    wake-ups from the HTTP process and publish the counters there."""
    tasks = [asyncio.create_task(worker.run(stop)), asyncio.create_task(actor.run(stop))]
    close = listen_for_wakes(runtime / WAKE_SOCKET, worker.waker) if runtime else None
    try:
        while not stop.is_set():
            if runtime is not None:
                with contextlib.suppress(OSError):
                    publish_stats(worker.stats, runtime / STATS_FILE)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), PUBLISH_EVERY_S)
    finally:
        stop.set()
        worker.waker.wake()
        actor.waker.wake()
        await asyncio.gather(*tasks)
        if close is not None:
            close()
        worker.engine.dispose()
