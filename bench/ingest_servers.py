"""The servers bench/ingest.py measures: start, wait until ready, stop; their CPU time.

Also the two yardstick apps uvicorn loads from here (`--app-dir bench`): a bare FastAPI
endpoint and a plain ASGI callable, both answering 202 without looking at the request.
Every server listens on 127.0.0.1 only.
"""

from __future__ import annotations

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

ROOT = Path(__file__).resolve().parent.parent
UVICORN = [sys.executable, "-m", "uvicorn", "--host", "127.0.0.1", "--no-access-log",
           "--log-level", "warning"]


@contextmanager
def uvicorn_app(work: Path, workers: int, factory: str,
                env: dict[str, str]) -> Iterator[tuple[str, int]]:
    """Serve `factory` with uvicorn; yield the webhook URL and the server's pid."""
    if "FIRSTLINE_DATABASE_URL" in env:
        subprocess.run([sys.executable, "-c", "import sys; from router.db.engine import upgrade; "
                        "upgrade(sys.argv[1])", env["FIRSTLINE_DATABASE_URL"]],
                       check=True, cwd=ROOT)
    port = free_port()
    cmd = [*UVICORN, "--port", str(port), "--workers", str(workers), "--app-dir",
           str(Path(__file__).parent), "--factory", factory]
    with process(cmd, f"http://127.0.0.1:{port}/healthz", env, work / "server.log") as pid:
        yield f"http://127.0.0.1:{port}/webhooks/github", pid


@contextmanager
def alertmanager(work: Path) -> Iterator[tuple[str, int]]:
    """Run Alertmanager with one receiver and no integrations, so it measures ingest."""
    config = work / "alertmanager.yml"
    config.write_text("route:\n  receiver: blackhole\nreceivers:\n  - name: blackhole\n")
    port = free_port()
    cmd = ["prometheus-alertmanager", f"--config.file={config}",
           f"--storage.path={work / 'data'}", f"--web.listen-address=127.0.0.1:{port}",
           "--cluster.listen-address="]  # no gossip port: loopback HTTP only
    with process(cmd, f"http://127.0.0.1:{port}/-/ready", {}, work / "server.log") as pid:
        yield f"http://127.0.0.1:{port}/api/v2/alerts", pid


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
def process(cmd: list[str], health: str, env: dict[str, str], log: Path) -> Iterator[int]:
    """Start a server in its own process group, wait for `health`, stop it afterwards."""
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, env={**os.environ, **env}, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True, cwd=ROOT)
        try:
            wait_ready(health, proc)
            yield proc.pid
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
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
