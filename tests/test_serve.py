"""`firstline serve` as users run it: the worker in the main process, the HTTP side in a
child; signals, readiness and failures of either half, over real HTTP and real signals."""

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
        """The HTTP side and the performers (multiprocessing's resource tracker is a child
        too: not counted)."""
        path = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        pids = [int(p) for p in path.read_text().split()] if path.exists() else []
        return [p for p in pids if b"spawn_main" in Path(f"/proc/{p}/cmdline").read_bytes()]

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


def test_serve_runs_the_worker_beside_the_http_side(serve: Serve) -> None:
    def names() -> list[str]:  # the HTTP side and a performer; the worker is main
        return sorted(Path(f"/proc/{pid}/comm").read_text().strip()
                      for pid in serve.children())

    _eventually(lambda: names() == ["firstline-act0", "firstline-http"],  # as `top` shows them
          f"the children's names (now {names()})")
    ready = httpx.get(f"{serve.base}/readyz").json()
    assert ready["status"] == "ready" and "worker_seconds_since_beat" in ready["detail"]
    deliver(serve, "serve-1")
    decision = _eventually(lambda: decided(serve, "serve-1"), "the decision")
    assert decision["source"] == "github"
    metrics = _eventually(lambda: "firstline_decisions_total{" in (
        text := httpx.get(f"{serve.base}/metrics").text) and text, "worker metrics")
    assert 'firstline_decisions_total{outcome="' + decision["outcome"] + '"} 1.0' in metrics


def test_sighup_reloads_the_note_in_both_processes(serve: Serve) -> None:
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


def gone(pid: int) -> bool:
    stat = Path(f"/proc/{pid}/stat")
    try:
        return stat.read_text().rsplit(")", 1)[1].split()[0] == "Z"  # exited, unreaped
    except FileNotFoundError:
        return True


def test_sigterm_stops_every_process(serve: Serve) -> None:
    children = serve.children()
    serve.process.send_signal(signal.SIGTERM)
    assert serve.process.wait(timeout=WAIT_S) == 0
    _eventually(lambda: all(gone(c) for c in children), "the children to exit")


def test_no_child_outlives_a_killed_worker(serve: Serve) -> None:
    children = serve.children()
    serve.process.kill()
    serve.process.wait(timeout=WAIT_S)
    _eventually(lambda: all(gone(c) for c in children), "the children to exit")


def test_a_killed_serve_leaves_no_runtime_directory_behind(tmp_path: Path, db_url: str
                                                          ) -> None:
    """Its wake-up sockets live in a directory of its own in TMPDIR; SIGKILL leaves that
    behind, so the next `serve` removes those of processes that are gone and that have
    not changed for a minute (only those)."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    a_while_ago = time.time() - 120
    mine = tmp / f"firstline-serve-{os.getpid()}-alive"  # a live process's: kept
    mine.mkdir()
    recent = tmp / "firstline-serve-999999999-recent"  # no such pid, but just changed: kept
    recent.mkdir()

    def runtimes(serve: Serve) -> list[Path]:
        return list(tmp.glob(f"firstline-serve-{serve.process.pid}-*"))

    with running(start(tmp_path, db_url, TMPDIR=str(tmp))) as first:
        killed = runtimes(first)
        assert len(killed) == 1 and (killed[0] / "wake.sock").exists()
        children = first.children()
        first.process.kill()
        first.process.wait(timeout=WAIT_S)
        # the children unlink their sockets as they exit: done before the clock is set back
        _eventually(lambda: all(gone(c) for c in children), "the children to exit")
    assert killed[0].exists()
    for path in (mine, killed[0]):
        os.utime(path, (a_while_ago, a_while_ago))
    with running(start(tmp_path, db_url, TMPDIR=str(tmp))) as second:
        assert not killed[0].exists() and mine.exists() and recent.exists()
        assert len(runtimes(second)) == 1
    assert runtimes(second) == [] and mine.exists()  # SIGTERM: it removed its own


def test_a_performer_that_dies_stops_serve(serve: Serve) -> None:
    http, performer = serve.children()
    os.kill(performer, signal.SIGKILL)
    assert serve.process.wait(timeout=WAIT_S) == 1
    _eventually(lambda: gone(http), "the HTTP side to exit")
    assert "the firstline-performer-0 process exited with status -9" in serve.log.read_text()


@pytest.mark.parametrize("performers", ["0", "2"])
def test_serve_acts_through_its_performers(tmp_path: Path, db_url: str,
                                           performers: str) -> None:
    """Enforce mode: a GitHub issue handed to the CTO is reassigned and commented on by
    a performer (in a process of its own, or in the worker's with 0), exactly once."""
    standin = subprocess.Popen([sys.executable, str(ROOT / "bench" / "e2e_standin.py"),
                                "--token", "gh-token"], stdout=subprocess.PIPE, text=True)
    try:
        assert standin.stdout is not None
        github = f"http://127.0.0.1:{standin.stdout.readline().split()[-1]}"
        httpx.post(f"{github}/_bench/issues", json={
            "repo": "Codertocat/Hello-World", "first": 1, "count": 1,
            "assignees": ["dreyes"]}).raise_for_status()
        with running(start(tmp_path, db_url, mode="enforce",
                           extra=("--performers", performers),
                           FIRSTLINE_GITHUB_API_URL=github,
                           FIRSTLINE_GITHUB_TOKEN="gh-token")) as serve:
            assert len(serve.children()) == 1 + int(performers)
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


def test_serve_exits_when_the_http_side_cannot_start(tmp_path: Path, db_url: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        running = start(tmp_path, db_url, port=taken.getsockname()[1])
        assert running.process.wait(timeout=WAIT_S) == 1
    log = running.log.read_text()
    assert "address already in use" in log.lower()
    assert "the firstline-http process exited with status" in log


def test_a_negative_performer_count_is_refused_in_one_line(tmp_path: Path, db_url: str) -> None:
    env = {**os.environ, "FIRSTLINE_DATABASE_URL": db_url}
    run = subprocess.run([sys.executable, "-m", "router.cli", "serve", "--rules",
                          str(EXAMPLE_SCOPE), "--performers", "-1"], env=env, cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 1
    assert "--performers -1: give 0 or more" in run.stderr
    assert "Traceback" not in run.stderr
