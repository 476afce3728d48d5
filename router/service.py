"""Assemble and run the service: `firstline serve` (HTTP, worker and performer in one
process) and `firstline worker` (worker and performer, no HTTP).

The scope note is loaded once at start (an invalid one stops the start with its
`path:line:` problems) and again on SIGHUP; a reload that fails keeps the note in force.
SIGTERM (and SIGINT) stop the process gracefully: no new deliveries are taken (uvicorn
closes its socket and finishes the requests in flight), the worker finishes its batch,
the performer its lanes' current actions, and what it held goes back to the outbox.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from datetime import UTC, datetime

from fastapi import FastAPI

from adapters.base import OutboundAdapter
from router.db.engine import (
    DatabaseInUse,
    hold_sqlite_file,
    make_engine,
    pending_migrations,
    upgrade_engine,
)
from router.db.outbox import release_all
from router.http.api import read_api
from router.http.app import create_app
from router.http.pages import mount_pages
from router.scope.holder import ScopeHolder
from router.settings import Settings
from router.work.metrics import Metrics
from router.work.runner import Background

log = logging.getLogger("firstline.service")

GRACE_S = 8  # for requests in flight at SIGTERM; the loops get router.work.runner's


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


_HELD: list[object] = []  # SQLite files this process holds, until it exits


def own_database(settings: Settings) -> None:
    """Before a process decides or performs: on SQLite, lock the file for this process
    until it exits (refusing a second one) and take back the actions a killed
    predecessor had claimed."""
    engine = make_engine(settings.database_url)
    try:
        held = hold_sqlite_file(engine)
        if held is not None:
            _HELD.append(held)
            with engine.begin() as conn:
                if released := release_all(conn, datetime.now(UTC)):
                    log.warning("took back %d actions claimed by a process that is gone",
                                released)
    except DatabaseInUse as exc:
        raise DatabaseNotReady(str(exc)) from exc
    finally:
        engine.dispose()


def build_service(settings: Settings, run_worker: bool = True,
                  adapters: Mapping[str, OutboundAdapter] | None = None,
                  clock: Callable[[], datetime] | None = None) -> FastAPI:
    """Return the app and read API, with the worker and outbox performer running as
    threads of this process while it serves, unless `run_worker` is false. `adapters`
    replaces the vendors' outbound sides (stand-ins, staging); `clock` is the dashboard's
    "now" (tests show a fixed week)."""
    holder = ScopeHolder(settings)
    metrics = Metrics()

    @asynccontextmanager
    async def background(app: FastAPI) -> AsyncIterator[None]:
        work = Background(settings, holder, adapters, metrics)
        app.state.runtime.writer.on_commit = work.worker.wake  # stored: decide it now
        app.state.worker_beat = lambda: work.worker.last_beat
        work.start()
        try:
            yield
        finally:
            await asyncio.to_thread(work.stop)

    engine = make_engine(settings.database_url)
    app = create_app(settings, lifespan_hooks=[background] if run_worker else [],
                     routers=[read_api(settings, engine, holder)], metrics=metrics)
    app.state.scope = holder
    app.state.pages = mount_pages(app, settings, engine, holder,
                                  **({"clock": clock} if clock else {}))
    return app


def serve(settings: Settings, host: str, port: int, run_worker: bool = True) -> int:
    """Serve HTTP with uvicorn in this process, the worker and performer beside it unless
    `run_worker` is false; return the exit status once stopped (1: could not start)."""
    import uvicorn

    app = build_service(settings, run_worker)
    from uvicorn.config import LOGGING_CONFIG

    config = uvicorn.Config(app, host=host, port=port, log_level="info", access_log=False,
                            lifespan="on", timeout_graceful_shutdown=GRACE_S,
                            # JSON logs: uvicorn's loggers hand their lines to ours
                            log_config=None if settings.log_format == "json" else LOGGING_CONFIG)
    server = uvicorn.Server(config)
    _on_signals(app.state.scope)
    try:
        server.run()
    except SystemExit:  # uvicorn could not start (the port is taken, say): it said why
        return 1
    return 0 if server.started else 1


def work(settings: Settings) -> int:
    """Run the worker and performer (no HTTP) until SIGTERM or SIGINT."""
    holder = ScopeHolder(settings)
    background = Background(settings, holder)
    stop = threading.Event()
    _on_signals(holder, stop)
    background.start()
    while not stop.wait(3600):
        pass
    background.stop()
    return 0


def _on_signals(holder: ScopeHolder, stop: threading.Event | None = None) -> None:
    """SIGHUP reloads the scope note; SIGTERM and SIGINT set `stop`. Without `stop`,
    uvicorn handles those two while it serves, and re-raises them once stopped: this
    handler then swallows them, so a stop asked for exits 0."""
    signal.signal(signal.SIGHUP, lambda *_: holder.reload())
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set() if stop is not None else None)
