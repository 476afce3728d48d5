"""Real worker processes: killed with SIGKILL mid-batch, and two side by side on PostgreSQL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest
from sqlalchemy import Engine, func, select

from router.db.engine import make_engine
from router.db.inbox import Delivery, insert_deliveries
from router.db.tables import decisions, inbox
from tests.support import EXAMPLE_SCOPE, fixture_bytes

FIRSTLINE = [sys.executable, "-m", "router.cli"]


def backlog(engine: Engine, count: int) -> None:
    """Store `count` distinct Jira deliveries about count/4 items (so items repeat)."""
    base = orjson.loads(fixture_bytes("jira", "issue_updated.labels"))
    received = datetime.now(UTC)
    batch = []
    for n in range(count):
        body = orjson.loads(orjson.dumps(base))
        body["issue"]["id"] = str(100000 + n // 4)
        body["issue"]["key"] = f"LOAD-{n // 4}"
        body["timestamp"] += n
        batch.append(Delivery("jira", f"load-{n}", None, "{}", orjson.dumps(body),
                                    received))
    with engine.begin() as conn:
        assert all(s.status == "accepted" for s in insert_deliveries(conn, batch))


def counts(engine: Engine) -> tuple[int, int, int]:
    """Return (decisions for deliveries, distinct deliveries decided, pending deliveries)."""
    with engine.connect() as conn:
        total = conn.execute(select(func.count()).where(
            decisions.c.inbox_id.is_not(None))).scalar_one()
        distinct = conn.execute(
            select(func.count(func.distinct(decisions.c.inbox_id)))).scalar_one()
        pending = conn.execute(select(func.count()).where(
            inbox.c.status == "pending")).scalar_one()
    return int(total), int(distinct), int(pending)


def start_worker(url: str, tmp: Path, name: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "FIRSTLINE_DATABASE_URL": url, "FIRSTLINE_RULES": str(EXAMPLE_SCOPE)}
    log = (tmp / f"{name}.log").open("wb")
    return subprocess.Popen([*FIRSTLINE, "worker"], env=env, stdout=log, stderr=log,
                            cwd=Path(__file__).resolve().parent.parent)


def wait_until(check: object, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise AssertionError("timed out")


def test_worker_killed_mid_batch_loses_and_doubles_nothing(db_url: str, tmp_path: Path) -> None:
    url = db_url
    engine = make_engine(url)
    backlog(engine, 1500)
    worker = start_worker(url, tmp_path, "first")
    wait_until(lambda: counts(engine)[0] > 0, 60)
    worker.send_signal(signal.SIGKILL)
    worker.wait(10)
    decided, distinct, pending = counts(engine)
    assert decided == distinct and pending > 0, "killed after the backlog was done: grow it"
    restarted = subprocess.run([*FIRSTLINE, "worker", "--once"], capture_output=True,
                               env={**os.environ, "FIRSTLINE_DATABASE_URL": url,
                                    "FIRSTLINE_RULES": str(EXAMPLE_SCOPE)}, timeout=300)
    assert restarted.returncode == 0, restarted.stderr.decode()[-2000:]
    assert counts(engine) == (1500, 1500, 0)
    engine.dispose()


def test_two_workers_share_a_backlog_without_deciding_anything_twice(
        db_url: str, tmp_path: Path) -> None:
    if not db_url.startswith("postgresql"):
        pytest.skip("several workers side by side is a PostgreSQL deployment")
    pg_url = db_url
    engine = make_engine(pg_url)
    backlog(engine, 5000)
    workers = [start_worker(pg_url, tmp_path, f"w{i}") for i in range(2)]
    try:
        wait_until(lambda: counts(engine)[2] == 0, 240)
    finally:
        for w in workers:
            w.send_signal(signal.SIGTERM)
        for w in workers:
            w.wait(30)
    assert counts(engine) == (5000, 5000, 0)
    logs = [(tmp_path / f"w{i}.log").read_text() for i in range(2)]
    assert not any("Traceback" in log for log in logs), logs
    engine.dispose()
