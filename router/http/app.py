"""The HTTP service: webhook ingest, health, readiness, metrics (SPEC §6).

`create_app()` builds everything from one `Settings`; nothing reads the environment per
request. Later parts plug in without touching this file's routes:

- background work (the worker, timers) goes in `app.state.lifespan_hooks`: each hook
  is an async context manager factory, entered at startup after the database engine
  exists and left, in reverse order, at shutdown;
- the read API (`/api/v1/...`) is an `APIRouter` passed as `routers=` (or included on
  the returned app before it starts).

The service assembles it with its worker and read API (router.service); `firstline serve`
runs that.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError
from starlette.types import Receive, Scope, Send

from adapters import ADAPTERS
from adapters.base import InboundAdapter
from router.core.model import SOURCES
from router.db.engine import make_engine, migration_state
from router.db.group_commit import InboxWriter
from router.db.reads.health import readiness_detail
from router.http.webhooks import OPENAPI_PATHS, WebhookIngest, webhook_source
from router.settings import Settings, clients
from router.work.metrics import Metrics

LifespanHook = Callable[[FastAPI], AbstractAsyncContextManager[None]]
RESULTS = ("accepted", "duplicate", "unauthorized", "bad_request", "too_large", "unavailable")


@dataclass(frozen=True, slots=True)
class Runtime:
    """What the routes and the lifespan hooks share, kept on `app.state.runtime`."""

    settings: Settings
    engine: Engine
    writer: InboxWriter
    metrics: Metrics


class FirstlineApp(FastAPI):
    """FastAPI, except that /webhooks/{source} goes straight to the ingest ASGI app.

    Skipping FastAPI's middleware and router for that one path saves about a third of
    the cost of a request (bench/ingest.py); middleware added to this app therefore does
    not see webhook requests.
    """

    ingest: WebhookIngest

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            source = webhook_source(scope)
            if source is not None:
                await self.ingest.handle(source, scope, receive, send)
                return
        await super().__call__(scope, receive, send)

    def openapi(self) -> dict[str, Any]:
        """Add the webhook route, which FastAPI does not know about, to /openapi.json."""
        if self.openapi_schema is None:
            schema = super().openapi()
            schema["paths"] = {**OPENAPI_PATHS, **schema.get("paths", {})}
        return self.openapi_schema or {}


def create_app(
    settings: Settings,
    *,
    adapters: Mapping[str, InboundAdapter] | None = None,
    lifespan_hooks: Iterable[LifespanHook] = (),
    routers: Sequence[APIRouter] = (),
    metrics: Metrics | None = None,
) -> FastAPI:
    """Build the service for one configuration; the database is opened lazily."""
    if adapters is None:
        adapters = _registered_adapters()
    engine = make_engine(settings.database_url)
    metrics = metrics or Metrics()
    metrics.read_database(engine)
    writer = InboxWriter(engine)
    runtime = Runtime(settings, engine, writer, metrics)
    app = FirstlineApp(title="firstline", version="0.1.0", lifespan=_lifespan)
    app.state.runtime = runtime
    app.state.lifespan_hooks = list(lifespan_hooks)
    app.state.worker_beat = None  # when this process runs the worker: its last loop's time
    app.ingest = WebhookIngest(settings, adapters, writer, _delivery_counter(metrics))
    app.include_router(_service_routes(runtime))
    for router in routers:
        app.include_router(router)
    return app


def _registered_adapters() -> dict[str, InboundAdapter]:
    """Return the adapter registry keyed by plain strings, as URL paths are."""
    return {source: adapter for source, adapter in ADAPTERS.items()}


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Run the plugged-in hooks while serving; close the writer and engine afterwards."""
    runtime: Runtime = app.state.runtime
    try:
        async with AsyncExitStack() as stack:
            for hook in app.state.lifespan_hooks:
                await stack.enter_async_context(hook(app))
            yield
    finally:
        await runtime.writer.aclose()
        runtime.engine.dispose()


def _delivery_counter(metrics: Metrics) -> Callable[[str, str], None]:
    """Return the function that counts webhook requests by source and result."""
    children: dict[tuple[str, str], Any] = {
        (s, r): metrics.webhooks.labels(s, r) for s in SOURCES for r in RESULTS
    }

    def record(source: str, result: str) -> None:
        child = children.get((source, result))
        if child is not None:
            child.inc()

    return record


WORKER_STALE_S = 60.0  # a worker loop beats at least every idle interval plus one batch


def clients_detail(settings: Settings) -> dict[str, list[dict[str, Any]]]:
    """Return, per tracker, which vendor clients are configured and the settings the
    others lack (names, never values), for /readyz."""
    out: dict[str, list[dict[str, Any]]] = {}
    for client in clients(settings):
        out.setdefault(client.tracker, []).append(
            {"client": client.name, "configured": client.configured,
             "missing": list(client.missing)})
    return out


def _service_routes(runtime: Runtime) -> APIRouter:
    """Liveness, readiness and metrics. Sync handlers: FastAPI runs them off the event loop."""
    router = APIRouter()
    configured = clients_detail(runtime.settings)  # settings never change while running

    @router.get("/healthz")
    def healthz() -> dict[str, str]:
        """Answer while the process serves requests; says nothing about the database."""
        return {"status": "ok"}

    @router.get("/readyz", responses={503: {"description": "database unreachable or behind"}})
    def readyz(request: Request) -> JSONResponse:
        """Answer 200 when the database is reachable and has this code's migrations (newer
        ones, from the next release in a rolling upgrade, are fine) and the worker (if
        this process runs one) is looping; the backlog, the dead actions and which vendor
        clients are configured are in the detail but do not fail it (SPEC §6)."""
        try:
            migrations = migration_state(runtime.engine)
            if migrations.missing:
                return JSONResponse({"detail": "database has pending migrations: run "
                                               "`firstline db upgrade`"}, status_code=503)
            detail = {**readiness_detail(runtime.engine, migrations.unknown),
                      "clients": configured}
        except SQLAlchemyError as exc:
            problem = f"database unreachable: {type(getattr(exc, 'orig', exc)).__name__}"
            return JSONResponse({"detail": problem}, status_code=503)
        beat = request.app.state.worker_beat
        if beat is not None:  # this process runs the worker
            silent = time.time() - beat()
            detail["worker_seconds_since_beat"] = round(silent, 1)
            if silent > WORKER_STALE_S:
                return JSONResponse({"status": "worker stalled", "detail": detail},
                                    status_code=503)
        return JSONResponse({"status": "ready", "detail": detail})

    @router.get("/metrics", response_class=Response)
    def metrics() -> Response:
        """Expose Prometheus metrics in the text format."""
        return Response(generate_latest(runtime.metrics.registry),
                        media_type=CONTENT_TYPE_LATEST)

    return router
