"""`firstline serve` as users run it: one process that receives, decides and acts;
signals, readiness and refusals, over real HTTP and real signals."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import select
from vendors import SECRETS, VENDOR, signed_headers

from router.db.engine import make_engine
from router.db.tables import decisions
from tests.support import EXAMPLE_SCOPE, ROOT, WAIT_S, eventually, github_assigned_to_cto

GITHUB_BODY = (VENDOR / "github" / "issues.opened.json").read_bytes()
TOKEN = "serve-test-token"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# The service may be starting or stopping: a refused connection means not yet.
_eventually = partial(eventually, ignore=(httpx.TransportError,))


@dataclass
class Serve:
    process: subprocess.Popen[str]
    base: str
    db_url: str
    rules: Path
    log: Path

    def children(self) -> list[int]:
        path = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        return [int(p) for p in path.read_text().split()] if path.exists() else []

    def api(self, path: str) -> Any:
        response = httpx.get(f"{self.base}{path}", headers={"Authorization": f"Bearer {TOKEN}"})
        response.raise_for_status()
        return response.json()


def start(tmp_path: Path, db_url: str, port: int | None = None, mode: str = "shadow",
          extra: tuple[str, ...] = (), **env_extra: str) -> Serve:
    rules = tmp_path / "scope.yaml"
    rules.write_text(EXAMPLE_SCOPE.read_text().replace("mode: shadow", f"mode: {mode}", 1))
    port = port or free_port()
    log = tmp_path / "serve.log"
    env = {**os.environ, "FIRSTLINE_DATABASE_URL": db_url, "FIRSTLINE_API_TOKEN": TOKEN,
           "FIRSTLINE_GITHUB_WEBHOOK_SECRET": SECRETS["github"], **env_extra}
    process = subprocess.Popen(
        [sys.executable, "-m", "router.cli", "serve", "--rules", str(rules),
         "--port", str(port), *extra], env=env, cwd=ROOT, stdout=log.open("w"),
        stderr=subprocess.STDOUT, text=True)
    return Serve(process, f"http://127.0.0.1:{port}", db_url, rules, log)


@contextmanager
def running(serve: Serve) -> Iterator[Serve]:
    try:
        _eventually(lambda: httpx.get(f"{serve.base}/readyz").status_code == 200, "/readyz")
        yield serve
    finally:
        if serve.process.poll() is None:  # as a supervisor stops it: SIGTERM, then SIGKILL
            serve.process.terminate()
            try:
                serve.process.wait(timeout=WAIT_S)
            except subprocess.TimeoutExpired:
                serve.process.kill()
                serve.process.wait(timeout=WAIT_S)


@pytest.fixture
def serve(tmp_path: Path, db_url: str) -> Iterator[Serve]:
    with running(start(tmp_path, db_url)) as serve:
        yield serve


def deliver(serve: Serve, delivery_id: str) -> None:
    headers = signed_headers("github", GITHUB_BODY, "issues", delivery_id=delivery_id)
    response = httpx.post(f"{serve.base}/webhooks/github", content=GITHUB_BODY,
                          headers=headers)
    assert response.status_code == 202, response.text


def decided(serve: Serve, delivery_id: str) -> dict[str, Any] | None:
    items = serve.api("/api/v1/decisions")["items"]
    return next((d for d in items if d["delivery_id"] == delivery_id), None)


def test_one_serve_process_receives_decides_and_reports(serve: Serve) -> None:
    assert serve.children() == []  # threads of one interpreter, no child processes
    ready = httpx.get(f"{serve.base}/readyz").json()
    assert ready["status"] == "ready" and "worker_seconds_since_beat" in ready["detail"]
    deliver(serve, "serve-1")
    decision = _eventually(lambda: decided(serve, "serve-1"), "the decision")
    assert decision["source"] == "github"
    metrics = httpx.get(f"{serve.base}/metrics").text
    assert 'firstline_decisions_total{outcome="' + decision["outcome"] + '"} 1.0' in metrics
    assert "firstline_decision_latency_seconds_count 1.0" in metrics
    assert "_seconds_total" not in metrics and "_count_total" not in metrics


def test_sighup_reloads_the_note_for_the_api_and_the_worker(serve: Serve) -> None:
    before = serve.api("/api/v1/scope")["hash"]
    serve.rules.write_text(EXAMPLE_SCOPE.read_text().replace(
        "ad_hoc_hours_per_week: 6", "ad_hoc_hours_per_week: 4"))
    serve.process.send_signal(signal.SIGHUP)
    after = _eventually(lambda: (h := serve.api("/api/v1/scope")["hash"]) != before and h,
                  "the HTTP side's reload")
    deliver(serve, "after-reload")
    _eventually(lambda: decided(serve, "after-reload"), "the decision")
    engine = make_engine(serve.db_url)
    with engine.connect() as conn:
        used = conn.execute(select(decisions.c.scope_hash).where(
            decisions.c.delivery_id == "after-reload")).scalar_one()
    engine.dispose()
    assert used == after != before  # the worker reloaded too


def test_sigterm_stops_the_process(serve: Serve) -> None:
    serve.process.send_signal(signal.SIGTERM)
    assert serve.process.wait(timeout=WAIT_S) == 0


def test_serve_acts_exactly_once(tmp_path: Path, db_url: str) -> None:
    """Enforce mode: a GitHub issue handed to the CTO is reassigned and commented on by
    the performer, exactly once."""
    standin = subprocess.Popen([sys.executable, str(ROOT / "bench" / "e2e_standin.py"),
                                "--token", "gh-token"], stdout=subprocess.PIPE, text=True)
    try:
        assert standin.stdout is not None
        github = f"http://127.0.0.1:{standin.stdout.readline().split()[-1]}"
        httpx.post(f"{github}/_bench/issues", json={
            "repo": "Codertocat/Hello-World", "first": 1, "count": 1,
            "assignees": ["dreyes"]}).raise_for_status()
        with running(start(tmp_path, db_url, mode="enforce",
                           FIRSTLINE_GITHUB_API_URL=github,
                           FIRSTLINE_GITHUB_TOKEN="gh-token")) as serve:
            body = orjson.dumps(github_assigned_to_cto())
            response = httpx.post(f"{serve.base}/webhooks/github", content=body,
                                  headers=signed_headers("github", body, "issues", "act-1"))
            assert response.status_code == 202
            issue = _eventually(lambda: (i := httpx.get(f"{github}/_bench/results").json()[
                "issues"]["1"])["comments"] and i, "the comment")
            time.sleep(0.5)  # anything doubled would arrive now
            results = httpx.get(f"{github}/_bench/results").json()
        issue = results["issues"]["1"]
        assert issue["assignees"] == ["Codertocat"] and len(issue["comments"]) == 1
        assert results["counts"] == {"GET issue": 1, "DELETE issue/assignees": 1,
                                     "POST issue/assignees": 1, "POST issue/comments": 1}
    finally:
        standin.kill()
        standin.wait()


def test_serve_exits_when_its_port_is_taken(tmp_path: Path, db_url: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        running = start(tmp_path, db_url, port=taken.getsockname()[1])
        assert running.process.wait(timeout=WAIT_S) == 1
    assert "address already in use" in running.log.read_text().lower()


def test_sqlite_serves_one_process(tmp_path: Path) -> None:
    """A second serve (or worker) on the same SQLite file is refused in one line, and so
    is `serve --no-worker`, which needs workers in other processes."""
    url = f"sqlite:///{tmp_path / 'one.db'}"
    with running(start(tmp_path, url)) as first:
        env = {**os.environ, "FIRSTLINE_DATABASE_URL": url}
        for command in (["serve", "--port", str(free_port())], ["worker"],
                        ["serve", "--no-worker", "--port", str(free_port())]):
            refused = subprocess.run([sys.executable, "-m", "router.cli", *command, "--rules",
                                      str(first.rules)], env=env, cwd=ROOT,
                                     capture_output=True, text=True, timeout=60)
            assert refused.returncode == 1, (command, refused.stderr)
            assert "SQLite serves one process" in refused.stderr
            assert "Traceback" not in refused.stderr
        assert first.process.poll() is None
