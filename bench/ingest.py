"""Benchmark webhook ingest against a bare FastAPI endpoint and Prometheus Alertmanager.

    .venv/bin/python bench/ingest.py [--duration 10] [--connections 32] [--rounds 3]

One command, bounded in time (about 15 s per target and round: 3 rounds take about
4 minutes), loopback only. Each round starts, one after another, on 127.0.0.1:

- firstline on SQLite and on PostgreSQL (a throwaway server from scripts/pg-test-server,
  with PostgreSQL's durable defaults): `uvicorn --workers 2 --factory
  router.app:app_from_env`, the ingest app without the worker;
- a bare FastAPI endpoint that only answers 202, under the same uvicorn settings, and a
  plain ASGI callable that only answers 202 (uvicorn's own floor, for reference);
- Prometheus Alertmanager from apt, with one receiver and no integrations;

and drives each with wrk for `--duration` seconds over `--connections` connections, after
a 2 s warm-up. firstline and the Python endpoints get a signed real GitHub `issues`
delivery with a fresh X-GitHub-Delivery per request, so nothing is a duplicate;
Alertmanager gets single-alert POSTs to /api/v2/alerts. It prints accepted/s, p50/p99
latency and CPU per request (median round), the ratios, what the work firstline must do
costs on this machine, and checks that the database holds every delivery firstline
acknowledged (the ids of all 202 answers). Missing wrk or Alertmanager are installed
with apt-get when running as root.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import os
import secrets
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import timeit
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from ingest_servers import alertmanager, pg_server, process_cpu, uvicorn_app

ROOT = Path(__file__).resolve().parent.parent
BODY = ROOT / "tests" / "fixtures" / "vendor" / "github" / "issues.opened.json"
ALERT = b'[{"labels": {"alertname": "FirstlineBench", "service": "checkout"}}]'
TARGETS = ("firstline SQLite", "firstline PostgreSQL", "bare FastAPI", "Alertmanager",
           "plain ASGI")

# One wrk script for every target, so the load generator costs the same everywhere:
# each request gets a unique delivery id; each accepted answer's id is written out
# (the files are flushed when wrk exits).
LUA = r"""
wrk.method = "POST"
local f = io.open("%(body)s", "rb"); wrk.body = f:read("*a"); f:close()
wrk.headers["Content-Type"] = "application/json"
wrk.headers["User-Agent"] = "GitHub-Hookshot/bench"
wrk.headers["X-GitHub-Event"] = "issues"
wrk.headers["X-Hub-Signature-256"] = "%(sig)s"
local threads = {}
function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end
function init(args)
  tid = wrk.thread:get("tid")
  counter, accepted, other = 0, 0, 0
  ids = io.open("%(out)s" .. tid, "w")
end
function request()
  counter = counter + 1
  wrk.headers["X-GitHub-Delivery"] = "%(run)s-" .. tid .. "-" .. counter
  return wrk.format()
end
function response(status, headers, body)
  if status == %(status)d then
    accepted = accepted + 1
    local id = string.match(body, '"id":(%%d+)')
    if id then ids:write(id, "\n") end
  else
    other = other + 1
  end
end
function done(summary, latency, requests)
  local a, o = 0, 0
  for _, t in ipairs(threads) do a = a + t:get("accepted"); o = o + t:get("other") end
  local e = summary.errors
  io.write(string.format("RESULT %%d %%d %%d %%d %%d %%d\n", a, o, summary.duration,
    latency:percentile(50), latency:percentile(99), e.connect + e.read + e.write + e.timeout))
end
"""


@dataclass
class Run:
    """One measured wrk run against one target."""

    accepted: int
    refused: int
    seconds: float
    p50_ms: float
    p99_ms: float
    server_cpu_us: float  # per accepted request, the server's own processes
    db_cpu_us: float = 0.0  # per accepted request, the PostgreSQL server
    ids: list[int] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.accepted / self.seconds


@dataclass
class Results:
    runs: dict[str, list[Run]] = field(default_factory=dict)
    checks: list[tuple[str, dict[str, int]]] = field(default_factory=list)

    def median(self, name: str) -> Run:
        ordered = sorted(self.runs[name], key=lambda r: r.rate)
        return ordered[len(ordered) // 2]

    @property
    def stored_ok(self) -> bool:
        return all(c["missing"] == 0 and c["acknowledged"] > 0 for _, c in self.checks)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per measured run")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--workers", type=int, default=2, help="uvicorn workers")
    parser.add_argument("--rounds", type=int, default=3,
                        help="run every target this many times, in turn; report medians")
    args = parser.parse_args()
    ensure_tools()
    work = Path(tempfile.mkdtemp(prefix="firstline-bench-"))
    work.chmod(0o755)  # the PostgreSQL server runs as `postgres` and lives in here
    try:
        work_costs = measure_work(work)
        results = run_all(args, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report(results, work_costs, args)
    return 0 if results.stored_ok else 1


def ensure_tools() -> None:
    """Install wrk and Alertmanager from apt when missing (as root), else explain."""
    missing = [p for p in ("wrk", "prometheus-alertmanager") if shutil.which(p) is None]
    if not missing:
        return
    if os.geteuid() != 0:
        sys.exit(f"missing {', '.join(missing)}: apt-get install {' '.join(missing)}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-q"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-q", "--no-install-recommends", *missing],
                   check=True, env=env)


def run_all(args: argparse.Namespace, work: Path) -> Results:
    """Run every target `args.rounds` times, in turn, so a slow spell hits all of them."""
    secret = secrets.token_hex(16)
    signature = "sha256=" + hmac.new(secret.encode(), BODY.read_bytes(),
                                     hashlib.sha256).hexdigest()
    alert_file = work / "alert.json"
    alert_file.write_bytes(ALERT)
    results = Results()
    with pg_server(work / "pg") as (pg_url, pg_pid):
        for round_no in range(args.rounds):
            for name in ("bare FastAPI", "firstline SQLite", "firstline PostgreSQL",
                         "Alertmanager", "plain ASGI"):
                target = work / f"r{round_no}-{name.replace(' ', '-')}"
                target.mkdir()
                body, status, sig, db_pid = BODY, 202, signature, None
                db_url = ""
                server: AbstractContextManager[tuple[str, int]]
                if name == "Alertmanager":
                    server, body, status, sig = alertmanager(target), alert_file, 200, ""
                elif name.startswith("firstline"):
                    db_url = (f"sqlite:///{target / 'firstline.db'}" if "SQLite" in name
                              else pg_database(pg_url, f"bench_{round_no}"))
                    db_pid = pg_pid if "PostgreSQL" in name else None
                    env = {"FIRSTLINE_DATABASE_URL": db_url,
                           "FIRSTLINE_GITHUB_WEBHOOK_SECRET": secret}
                    server = uvicorn_app(target, args.workers, "router.http.app:app_from_env", env)
                else:
                    factory = "bare_fastapi" if name == "bare FastAPI" else "plain_asgi"
                    server = uvicorn_app(target, args.workers, f"ingest_servers:{factory}", {})
                with server as (url, pid):
                    run = drive(args, target, url, body, status, sig, pid, db_pid)
                if db_url:
                    results.checks.append((f"{name}, round {round_no + 1}",
                                           check_stored(db_url, run)))
                results.runs.setdefault(name, []).append(run)
                print(f"  round {round_no + 1}  {name:22} {run.rate:8.0f}/s", file=sys.stderr)
    return results


def drive(args: argparse.Namespace, work: Path, url: str, body: Path, status: int,
          signature: str, server_pid: int, db_pid: int | None) -> Run:
    """Warm up for 2 s, then load `url` for the duration; return what wrk measured."""
    def wrk(seconds: int) -> str:
        # A script per run: each run's delivery ids are new, so none is a duplicate.
        script = work / f"load-{seconds}.lua"
        script.write_text(LUA % {"body": body, "status": status, "out": work / "ids-",
                                 "sig": signature, "run": secrets.token_hex(6)})
        return subprocess.run(
            ["wrk", f"-t{args.threads}", f"-c{args.connections}", f"-d{seconds}s",
             "--timeout", "10s", "-s", str(script), url],
            check=True, capture_output=True, text=True,
        ).stdout

    wrk(2)
    ids = read_ids(work)
    server_cpu, db_cpu = process_cpu(server_pid), process_cpu(db_pid)
    out = wrk(args.duration)
    server_cpu, db_cpu = process_cpu(server_pid) - server_cpu, process_cpu(db_pid) - db_cpu
    line = next(x for x in out.splitlines() if x.startswith("RESULT"))
    accepted, other, micros, p50, p99, errors = (int(v) for v in line.split()[1:])
    per = 1e6 / max(accepted, 1)
    return Run(accepted, other + errors, micros / 1e6, p50 / 1000, p99 / 1000,
               server_cpu * per, db_cpu * per, ids + read_ids(work))


def read_ids(work: Path) -> list[int]:
    ids = []
    for path in work.glob("ids-*"):
        ids += [int(x) for x in path.read_text().split()]
        path.unlink()
    return ids


def pg_database(server_url: str, name: str) -> str:
    """Create an empty database on the benchmark's PostgreSQL server; return its URL."""
    import psycopg

    with psycopg.connect(server_url.replace("+psycopg", ""), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return server_url.rsplit("/", 1)[0] + f"/{name}"


def check_stored(db_url: str, run: Run) -> dict[str, int]:
    """Check that every id firstline answered 202 with is a stored inbox row."""
    if db_url.startswith("sqlite"):
        lite = sqlite3.connect(db_url.removeprefix("sqlite:///"))
        stored = {row[0] for row in lite.execute("SELECT id FROM inbox")}
        lite.close()
    else:
        import psycopg

        with psycopg.connect(db_url.replace("+psycopg", "")) as conn:
            stored = {row[0] for row in conn.execute("SELECT id FROM inbox")}
    acknowledged = set(run.ids)
    return {"acknowledged": len(acknowledged), "stored": len(stored),
            "missing": len(acknowledged - stored)}


def measure_work(work: Path) -> dict[str, float]:
    """Time, in this process, the work each delivery needs (µs): the floor it adds."""
    import orjson

    from router.db.engine import make_engine, upgrade
    from router.db.inbox import Delivery, plan_insert

    body, key = BODY.read_bytes(), secrets.token_bytes(16)
    url = f"sqlite:///{work / 'cost.db'}"
    upgrade(url)
    conn = make_engine(url).raw_connection()
    conn.execute("PRAGMA wal_autocheckpoint=0")  # as the ingest writer: no checkpoints
    batches = iter(range(10**9))

    def insert16() -> None:
        n = next(batches)
        rows = [Delivery("github", f"{n}-{i}", "issues", "{}", body, datetime.now(UTC))
                for i in range(16)]
        for sql, params in plan_insert("sqlite", rows).statements:
            conn.execute(sql, params).fetchall()
        conn.commit()

    def cost(fn: Callable[[], object], number: int, per: int = 1) -> float:
        return min(timeit.repeat(fn, number=number, repeat=3)) / number / per * 1e6

    costs = {
        "orjson.loads (the JSON check)": cost(lambda: orjson.loads(body), 2000),
        "HMAC-SHA256 (the signature)": cost(
            lambda: hmac.new(key, body, hashlib.sha256).digest(), 2000),
        "SQLite insert + commit, per row": cost(insert16, 100, 16),
    }
    conn.close()
    return costs


def report(results: Results, costs: dict[str, float], args: argparse.Namespace) -> None:
    """Print the table, the ratios, the cost of firstline's work and the storage checks."""
    print(f"\nwrk {args.threads} threads, {args.connections} connections, {args.duration} s "
          f"after a 2 s warm-up, median of {args.rounds} round(s); uvicorn --workers "
          f"{args.workers}; {os.cpu_count()} CPUs shared by the servers, PostgreSQL and wrk; "
          f"body {BODY.stat().st_size} bytes\n")
    print(f"{'target':22}{'accepted/s':>11}{'p50 ms':>8}{'p99 ms':>8}{'server CPU':>12}"
          f"{'DB CPU':>9}{'refused':>9}")
    for name in TARGETS:
        r = results.median(name)
        db = f"{r.db_cpu_us:.0f} us" if r.db_cpu_us else ""
        print(f"{name:22}{r.rate:11.0f}{r.p50_ms:8.2f}{r.p99_ms:8.2f}"
              f"{r.server_cpu_us:9.0f} us{db:>9}{r.refused:9d}")
    print("(CPU: per accepted request; 'plain ASGI' is uvicorn answering 202 from a bare "
          "ASGI callable, the floor for any Python endpoint here)\n")
    bare, am = results.median("bare FastAPI").rate, results.median("Alertmanager").rate
    for db in ("SQLite", "PostgreSQL"):
        mine = results.median(f"firstline {db}").rate
        print(f"firstline {db:10} / bare FastAPI = {mine / bare:5.2f}   (goal >= 1.0)")
        print(f"firstline {db:10} / Alertmanager = {mine / am:5.2f}   (goal >= 0.5)")
    print("\nwork firstline adds to each request, timed alone in this process:")
    for label, micros in costs.items():
        print(f"  {label:34} {micros:6.1f} us")
    print()
    for label, check in results.checks:
        verdict = "ok" if check["missing"] == 0 and check["acknowledged"] else "FAILED"
        print(f"{label}: {check['acknowledged']} acknowledged, {check['stored']} stored, "
              f"{check['missing']} acknowledged but missing: {verdict}")
    if args.rounds > 1:
        rates = {n: [round(r.rate) for r in results.runs[n]] for n in TARGETS}
        print("\naccepted/s per round:", json.dumps(rates))


if __name__ == "__main__":
    raise SystemExit(main())
