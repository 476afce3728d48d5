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

from fastapi import FastAPI

from adapters import outbound_adapters
from adapters.base import OutboundAdapter
from router.act import Actor
from router.api import read_api
from router.app import create_app
from router.db import make_engine, pending_migrations, upgrade_engine
from router.scope import Scope, ScopeError, load_scope
from router.settings import Settings
from router.worker import Worker, utcnow, worker_engine
from router.worker_metrics import WorkerCollector

RUN_WORKER_ENV = "FIRSTLINE_RUN_WORKER"  # `serve --no-worker` sets it to false

log = logging.getLogger("firstline.service")


class ScopeHolder:
    """The scope note in force; `reload()` swaps it only when the new one is valid."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.current = self._load()

    def _load(self) -> Scope:
        scope, warnings = load_scope(self.settings.rules, self.settings.pagerduty_service_id)
        for warning in warnings:
            log.warning("%s", warning)
        return scope

    def __call__(self) -> Scope:
        return self.current

    def reload(self) -> None:
        try:
            self.current = self._load()
        except ScopeError as exc:
            log.error("scope note not reloaded, keeping %s:\n%s", self.current.hash, exc)
            return
        log.info("scope note reloaded: %s (%s)", self.current.path, self.current.hash)


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
    """Return the app with its worker and outbox performer (unless `run_worker` is false)
    and read API. `adapters` replaces the vendors' outbound sides (stand-ins, staging)."""
    holder = ScopeHolder(settings)
    engine = make_engine(settings.database_url)
    worker = Worker(worker_engine(settings.database_url), holder)
    registry: dict[str, OutboundAdapter] = dict(adapters or {})

    def outbound() -> dict[str, OutboundAdapter]:
        if not registry:  # first action: build the clients (they connect on first call)
            registry.update(outbound_adapters(settings))
        return registry

    actor = Actor(worker.engine, outbound, utcnow)

    @asynccontextmanager
    async def background(app: FastAPI) -> AsyncIterator[None]:
        app.state.worker = worker
        app.state.worker_running = run_worker
        if run_worker:
            app.state.runtime.registry.register(WorkerCollector(worker, engine))
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        # Outside the main thread (tests) there is no signal handler; reload() still works.
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(signal.SIGHUP, holder.reload)
        tasks = [asyncio.create_task(worker.run(stop)),
                 asyncio.create_task(actor.run(stop))] if run_worker else []
        app.state.actor = actor
        if run_worker:  # wake-ups: stored deliveries wake the worker, decisions the performer
            app.state.runtime.writer.on_commit = worker.waker.wake
            worker.on_batch = actor.waker.wake
        try:
            yield
        finally:
            stop.set()
            worker.waker.wake()
            actor.waker.wake()
            for task in tasks:
                await task
            worker.engine.dispose()

    app = create_app(settings, lifespan_hooks=[background],
                     routers=[read_api(settings, engine, holder)])
    app.state.scope = holder
    return app


def app_from_env() -> FastAPI:
    """Build the service from `FIRSTLINE_*` variables (for `uvicorn --factory`)."""
    return build_service(Settings(), run_worker=os.environ.get(RUN_WORKER_ENV) != "false")
