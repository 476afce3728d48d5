"""Benchmark scale-out: throughput of 1, 2 and 3 `firstline serve` replicas on one PostgreSQL.

    .venv/bin/python bench/scaleout.py [--replicas 1,2,3] [--deliveries 1200] [--senders 24]

One command, loopback only, needing nothing outside the project. It starts a throwaway
PostgreSQL (scripts/pg-test-server, durable defaults) and, for each replica count, a fresh
database, a fresh GitHub stand-in (bench/e2e_standin.py) and that many `firstline serve`
processes in enforce mode (a copy of examples/scope.yaml). It sends `--deliveries` signed
deliveries of the real tests/fixtures/vendor/github/issues.assigned.json (issue n assigned
to the CTO by someone else, as bench/e2e.py makes them), as fast as `--senders` keep-alive
connections take them, spread over the replicas in turn, and stops the clock when the
stand-in has seen every issue's comment: each delivery is decided (`reassign`) and its two
actions performed (`assign`, then `comment`) by whichever replica claims them.

It prints per run: deliveries/s end to end (first send to last comment) and its ratio to
the 1-replica run of the same invocation (the baseline: compare ratios, not figures, across
machines), deliveries/s stored (all answered), and the time backends spent waiting for
firstline's two PostgreSQL advisory locks, sampled from pg_locks every 10 ms: the ledger
lock every worker batch takes (router.work.worker LEDGER_LOCK) and the lock every outbox
claim takes before its `FOR UPDATE SKIP LOCKED` select (router.db.outbox CLAIM_LOCK); in
backend-seconds and as a share of the run. SKIP LOCKED itself never waits: rows another
replica holds are skipped. It also checks that every issue got exactly one comment and the
right assignee. Mind the machine: replicas on fewer cores than processes share them.
"""

from __future__ import annotations

import argparse
import http.client
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from e2e import (
    BIN,
    OWNER,
    REPO,
    SCOPE,
    SECRET,
    TOKEN,
    Deliveries,
    child_env,
    control,
    loadavg,
    postgres,
    standin,
    stop_group,
    wait_http,
)
from ingest_servers import free_port
from sqlalchemy import make_url, text

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from router.db.engine import make_engine
from router.db.outbox import CLAIM_LOCK
from router.work.worker import LEDGER_LOCK

SAMPLE_S = 0.01
# A one-key advisory lock shows in pg_locks as classid = high 32 bits, objid = low 32 bits.
_WAITING = text("SELECT objid::bigint, count(*) FROM pg_locks WHERE locktype = 'advisory' "
                "AND NOT granted AND classid = 0 AND objsubid = 1 GROUP BY objid")


@dataclass
class Run:
    replicas: int
    deliveries: int
    seconds: float = 0.0  # first send to last comment
    stored_seconds: float = 0.0  # first send to last answer
    ledger_wait: float = 0.0  # backend-seconds waiting for the ledger lock
    claim_wait: float = 0.0  # backend-seconds waiting for the claim lock
    wrong: int = 0  # issues without exactly one comment or with the wrong assignee
    refused: int = 0  # deliveries not answered 202
    load: str = ""


def sample_locks(db_url: str, stop: threading.Event, run: Run) -> None:
    """Add up, every SAMPLE_S, the backends waiting for each of firstline's locks."""
    engine = make_engine(db_url)
    try:
        with engine.connect() as conn:
            conn = conn.execution_options(isolation_level="AUTOCOMMIT")
            while not stop.wait(SAMPLE_S):
                for lock, waiting in conn.execute(_WAITING):
                    if lock == LEDGER_LOCK:
                        run.ledger_wait += waiting * SAMPLE_S
                    elif lock == CLAIM_LOCK:
                        run.claim_wait += waiting * SAMPLE_S
    finally:
        engine.dispose()


def send_all(bases: list[str], deliveries: Deliveries, count: int, senders: int) -> int:
    """Send deliveries 1..count over `senders` connections, replicas in turn; return how
    many were not answered 202."""
    refused = [0]
    lock = threading.Lock()
    todo = iter(range(1, count + 1))

    def sender(base: str) -> None:
        host, port = base.removeprefix("http://").split(":")
        conn = http.client.HTTPConnection(host, int(port), timeout=60)
        while True:
            with lock:
                n = next(todo, None)
            if n is None:
                break
            body, headers = deliveries.make(n)
            conn.request("POST", "/webhooks/github", body, headers)
            answer = conn.getresponse()
            answer.read()
            if answer.status != 202:
                with lock:
                    refused[0] += 1
        conn.close()

    threads = [threading.Thread(target=sender, args=(bases[i % len(bases)],))
               for i in range(senders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return refused[0]


def run_one(replicas: int, admin_url: str, work: Path, count: int, senders: int) -> Run:
    """Start `replicas` serve processes on a fresh database; send; wait; measure."""
    work.mkdir()
    name = f"scaleout_{replicas}"
    admin = make_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"CREATE DATABASE {name}"))
    admin.dispose()
    db_url = make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    rules = work / "scope.yaml"
    rules.write_text(SCOPE.read_text().replace("mode: shadow", "mode: enforce", 1))
    run = Run(replicas, count)
    with ExitStack() as stack:
        github, _ = stack.enter_context(standin(work))
        control(github, "POST", "/_bench/issues",
                {"repo": REPO, "first": 1, "count": count, "assignees": ["dreyes"]})
        env = child_env({"FIRSTLINE_DATABASE_URL": db_url, "FIRSTLINE_RULES": str(rules),
                         "FIRSTLINE_GITHUB_API_URL": github, "FIRSTLINE_GITHUB_TOKEN": TOKEN,
                         "FIRSTLINE_GITHUB_WEBHOOK_SECRET": SECRET})
        subprocess.run([str(BIN / "firstline"), "db", "upgrade"], env=env, cwd=work,
                       check=True, capture_output=True)
        bases = []
        for n in range(replicas):
            port, log = free_port(), work / f"serve-{n}.log"
            with open(log, "wb") as out:
                proc = subprocess.Popen(
                    [str(BIN / "firstline"), "serve", "--host", "127.0.0.1", "--port",
                     str(port)], env=env, cwd=work, stdout=out, stderr=subprocess.STDOUT,
                    start_new_session=True)
            stack.callback(stop_group, proc)
            wait_http(f"http://127.0.0.1:{port}/readyz", proc, log)
            bases.append(f"http://127.0.0.1:{port}")
        stop = threading.Event()
        sampler = threading.Thread(target=sample_locks, args=(db_url, stop, run))
        sampler.start()
        started = time.monotonic()
        run.refused = send_all(bases, Deliveries(f"r{replicas}"), count, senders)
        run.stored_seconds = time.monotonic() - started
        while control(github, "GET", "/_bench/progress")["commented"] < count:
            if time.monotonic() - started > 600:
                break
            time.sleep(0.05)
        run.seconds = time.monotonic() - started
        stop.set()
        sampler.join()
        run.load = loadavg()
        issues = control(github, "GET", "/_bench/results")["issues"]
        run.wrong = sum(1 for i in issues.values()
                        if len(i["comments"]) != 1 or i["assignees"] != [OWNER])
    return run


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replicas", default="1,2,3",
                        type=lambda v: [int(x) for x in v.split(",")],
                        help="replica counts to run, comma-separated; the first is the baseline")
    parser.add_argument("--deliveries", type=int, default=1200, help="deliveries per run")
    parser.add_argument("--senders", type=int, default=24, help="connections sending at once")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="firstline-scaleout-"))
    work.chmod(0o755)  # PostgreSQL runs as `postgres` (when we are root) and lives in here
    runs: list[Run] = []
    try:
        with postgres(work / "pg") as (admin_url, _):
            for replicas in args.replicas:
                runs.append(run_one(replicas, admin_url, work / f"r{replicas}",
                                    args.deliveries, args.senders))
                report(runs)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 1 if any(r.wrong or r.refused for r in runs) else 0


def report(runs: list[Run]) -> None:
    """Print the table so far (each run adds a row): a long run shows progress. Lock waits
    are backend-seconds (several backends may wait at once) and their share of the run."""
    base = runs[0].deliveries / runs[0].seconds
    print(f"\n{'replicas':>8} {'deliv/s':>8} {'ratio':>6} {'stored/s':>9} "
          f"{'ledger lock wait':>17} {'claim lock wait':>16} {'wrong':>6} {'refused':>8}  load")
    for r in runs:
        rate = r.deliveries / r.seconds
        print(f"{r.replicas:>8} {rate:>8.1f} {rate / base:>6.2f} "
              f"{r.deliveries / r.stored_seconds:>9.1f} "
              f"{r.ledger_wait:>7.1f} s ({r.ledger_wait / r.seconds:>4.0%}) "
              f"{r.claim_wait:>6.1f} s ({r.claim_wait / r.seconds:>4.0%}) "
              f"{r.wrong:>6} {r.refused:>8}  {r.load}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
