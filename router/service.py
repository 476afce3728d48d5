"""Assemble the running service: scope note, ingest app, worker, read API (`firstline serve`).

The scope note is loaded once at start (an invalid one stops the start with its
`path:line:` problems) and again on SIGHUP; a reload that fails keeps the note in force.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI

from adapters.base import OutboundAdapter
from router.db.engine import make_engine, pending_migrations, upgrade_engine
from router.http.api import read_api
from router.http.app import create_app
from router.scope.holder import ScopeHolder
from router.settings import Settings
from router.work.background import STATS_FILE, WAKE_SOCKET, build_loops, run_loops, runtime_dir
from router.work.metrics import WorkerCollector, read_stats
from router.work.wake import WakeSender

RUN_WORKER_ENV = "FIRSTLINE_RUN_WORKER"  # `serve --no-worker` sets it to false

log = logging.getLogger("firstline.service")


class DatabaseNotReady(RuntimeError):
    """The database cannot be reached or lacks migrations; the message says what to do."""


def prepare_database(settings: Settings) -> None:
    """Check the database before serving; on SQLite apply migrations, else ask for them."""
    engine = make_engine(settings.database_url)
    try:
        if engine.dialect.name == "sqlite":
            upgrade_engine(engine)
        elif pending_migrations(engine):
            raise DatabaseNotReady("the database lacks migrations: run `firstline db upgrade`")
    except DatabaseNotReady:
        raise
    except Exception as exc:
        raise DatabaseNotReady(f"cannot use the database: {type(exc).__name__}: "
                               f"{str(exc).splitlines()[0] if str(exc) else ''}") from exc
    finally:
        engine.dispose()


def build_service(settings: Settings, run_worker: bool = True,
                  adapters: Mapping[str, OutboundAdapter] | None = None) -> FastAPI:
    """Return the app and read API, with the worker and outbox performer in this process
    unless `run_worker` is false. `adapters` replaces the vendors' outbound sides
    (stand-ins, staging).

    Without its own worker the app wakes and reports the one `serve` runs beside it
    (router.work.background), when FIRSTLINE_RUNTIME_DIR names their runtime directory.
    """
    runtime = runtime_dir()
    holder = ScopeHolder(settings, warn=run_worker or runtime is None)
    engine = make_engine(settings.database_url)

    @asynccontextmanager
    async def background(app: FastAPI) -> AsyncIterator[None]:
        loop = asyncio.get_running_loop()
        # Outside the main thread (tests) there is no signal handler; reload() still works.
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(signal.SIGHUP, holder.reload)
        if not run_worker:
            from_elsewhere(app, runtime)
            yield
            return
        worker, actor = build_loops(settings, holder, adapters)
        app.state.worker_stats = lambda: worker.stats
        app.state.runtime.registry.register(WorkerCollector(app.state.worker_stats, engine))
        app.state.runtime.writer.on_commit = worker.waker.wake  # stored: decide it now
        stop = asyncio.Event()
        loops = asyncio.create_task(run_loops(worker, actor, stop))
        try:
            yield
        finally:
            stop.set()
            await loops

    app = create_app(settings, lifespan_hooks=[background],
                     routers=[read_api(settings, engine, holder)])
    app.state.scope = holder
    return app


def from_elsewhere(app: FastAPI, runtime: Path | None) -> None:
    """Wire the app to a worker in another process: wake it after each stored batch and
    read its counters, when `serve` gave both a runtime directory."""
    if runtime is None:  # `serve --no-worker`: the worker runs apart, unknown to us
        return
    sender = WakeSender(runtime / WAKE_SOCKET)
    app.state.runtime.writer.on_commit = sender.wake
    app.state.worker_stats = lambda: read_stats(runtime / STATS_FILE)
    app.state.runtime.registry.register(WorkerCollector(app.state.worker_stats,
                                                        app.state.runtime.engine))


def app_from_env() -> FastAPI:
    """Build the service from `FIRSTLINE_*` variables (for `uvicorn --factory`)."""
    return build_service(Settings(), run_worker=os.environ.get(RUN_WORKER_ENV) != "false")


def run_http(host: str, port: int, workers: int) -> None:
    """Serve the app (router.service.app_from_env) with uvicorn, in this process."""
    import uvicorn

    uvicorn.run("router.service:app_from_env", factory=True, host=host, port=port,
                workers=workers, log_level="info", access_log=False)
