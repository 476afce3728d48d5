"""The servers bench/ingest.py measures: start, wait until ready, stop; their CPU time.

Also the apps the servers load from here (`--app-dir bench`): a bare FastAPI endpoint
answering 202 without looking at the request (a yardstick), firstline's ingest as it is
(`ingest_only`: raw ASGI route, group commit), and the plain library ways its fast paths
are measured against: the same checks in a FastAPI route (`fastapi_route`), and one
INSERT and commit per request through SQLAlchemy in a thread (`insert_per_request`).
They read FIRSTLINE_* settings from the environment. Every server listens on 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import Response

ROOT = Path(__file__).resolve().parent.parent
UVICORN = [sys.executable, "-m", "uvicorn", "--host", "127.0.0.1", "--no-access-log",
           "--log-level", "warning"]


@contextmanager
def pg_server(data: Path) -> Iterator[tuple[str, int]]:
    """Run a throwaway PostgreSQL with its durable defaults; yield its URL and pid."""
    script = ROOT / "scripts" / "pg-test-server"
    url = subprocess.run([str(script), "start", str(data)], check=True, capture_output=True,
                         text=True).stdout.strip()
    try:
        pid = int((data / "data" / "postmaster.pid").read_text().split()[0])
        yield url, pid
    finally:
        subprocess.run([str(script), "stop", str(data)], check=False)


@contextmanager
def process(cmd: list[str], health: str, env: dict[str, str], log: Path,
            cwd: Path = ROOT) -> Iterator[tuple[str, int]]:
    """Start a server in its own process group, wait for `health`, stop it afterwards;
    yield its base URL and pid."""
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, env={**os.environ, **env}, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True, cwd=cwd)
        try:
            wait_ready(health, proc)
            yield health.rsplit("/", 1)[0], proc.pid
        finally:
            with contextlib.suppress(ProcessLookupError):  # it exited on its own
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited with {proc.returncode}; see its log")
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {timeout} s")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def process_cpu(pid: int | None) -> float:
    """Sum the user+system CPU seconds of a process and its descendants (Linux /proc)."""
    return sum(process_cpu_parts(pid).values())


def process_cpu_parts(pid: int | None, root: str = "main") -> dict[str, float]:
    """CPU seconds of a process and its descendants, by part: a descendant whose name
    (/proc/PID/comm) starts with "firstline-" starts a part, the rest count toward the
    part they descend from, and the process itself is `root`."""
    if pid is None:
        return {}
    children: dict[int, list[int]] = {}
    ticks: dict[int, int] = {}
    names: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # exited meanwhile
            continue
        name, fields = stat[stat.index("(") + 1:stat.rindex(")")], stat.rsplit(")", 1)[1].split()
        ticks[int(entry.name)] = int(fields[11]) + int(fields[12])
        children.setdefault(int(fields[1]), []).append(int(entry.name))
        names[int(entry.name)] = name
    parts: dict[str, float] = {}
    todo = [(pid, root)]
    while todo:
        current, part = todo.pop()
        if current != pid and names.get(current, "").startswith("firstline-"):
            part = names[current]
        parts[part] = parts.get(part, 0.0) + ticks.get(current, 0) / os.sysconf("SC_CLK_TCK")
        todo += [(child, part) for child in children.get(current, [])]
    return parts


def bare_fastapi() -> Any:
    """Build the yardstick the issue names: FastAPI answering 202 and nothing else."""
    from fastapi import FastAPI

    app = FastAPI()

    @app.post("/webhooks/github", status_code=202)
    async def receive() -> dict[str, str]:
        return {"status": "accepted"}

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app


def ingest_only() -> Any:
    """firstline's ingest as `serve --no-worker` runs it: raw ASGI route, group commit."""
    from router.http.app import create_app
    from router.settings import Settings

    return create_app(Settings())


def fastapi_route() -> Any:
    """The same checks and group commit, behind a plain FastAPI route (the fast path's
    alternative: FastAPI's router, request object and middleware)."""
    from router.http.app import _lifespan

    app = ingest_only()
    ingest = app.ingest

    async def receive(source: str, request: Request) -> Response:
        adapter = ingest._adapters[source]
        status, body = await ingest._handle(source, adapter, request.scope, request.receive)
        return Response(body, status, media_type="application/json")

    routed = FastAPI(lifespan=_lifespan)  # FastAPI itself: no shortcut for /webhooks/
    routed.state.runtime = app.state.runtime
    routed.state.lifespan_hooks = []
    routed.state.worker_beat = None
    routed.add_api_route("/webhooks/{source}", receive, methods=["POST"])
    routed.add_api_route("/healthz", lambda: {"status": "ok"}, methods=["GET"])
    return routed


class _InsertPerRequest:
    """The group commit's alternative: each request INSERTs and commits on its own, with
    SQLAlchemy, in a worker thread (the event loop must not block on the database)."""

    def __init__(self, engine: Any) -> None:
        self._engine = engine
        self.on_commit = None

    async def save(self, delivery: Any) -> Any:
        import asyncio

        from router.db.group_commit import StorageUnavailable
        from router.db.inbox import insert_delivery

        def insert() -> Any:
            with self._engine.begin() as conn:
                stored = insert_delivery(conn, delivery)
                if stored.id is not None and conn.dialect.name == "postgresql":
                    conn.exec_driver_sql("NOTIFY firstline_inbox")
                return stored

        try:
            return await asyncio.to_thread(insert)
        except Exception as exc:
            raise StorageUnavailable() from exc

    async def aclose(self) -> None:
        pass


def insert_per_request() -> Any:
    """firstline's ingest with an INSERT and a commit per request instead of group commit."""
    from router.db.engine import make_engine

    app = ingest_only()
    engine = make_engine(app.state.runtime.engine.url.render_as_string(hide_password=False),
                         pool_size=40, max_overflow=0)
    app.ingest._writer = _InsertPerRequest(engine)
    return app


def plain_asgi() -> Any:
    """Build uvicorn's floor: an ASGI callable that reads the body and answers 202."""
    headers = [(b"content-type", b"application/json"), (b"content-length", b"23")]

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        more = True
        while more:
            more = (await receive()).get("more_body", False)
        await send({"type": "http.response.start", "status": 202, "headers": headers})
        await send({"type": "http.response.body", "body": b'{"status": "accepted"}\n'})

    return app
