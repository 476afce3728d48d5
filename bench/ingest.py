"""Benchmark webhook ingest: accepted/s and latency, A/B interleaved in one run.

    .venv/bin/python bench/ingest.py [--duration 8] [--connections 32] [--rounds 2]
                                     [--baseline main] [--db sqlite,postgresql]
                                     [--targets NAME,...]

One command, loopback only, nothing outside the project: the load generator is
bench/loadgen.py (asyncio, standard library, its own process), PostgreSQL a throwaway
server from scripts/pg-test-server. Each round runs every target once, in turn, on each
database, so a slow spell of a shared machine hits them all; it prints the median round
and each target's ratio to its baseline. The targets, each on 127.0.0.1:

- `baseline`: the ingest of the git revision `--baseline` (default `main`, checked out
  in a temporary worktree), as that revision's bench ran it: `uvicorn --workers 2
  --factory router.http.app:app_from_env`, or `firstline serve` where it has no such
  factory. The goal: `serve` within 10 % of it, or better.
- `serve`: this checkout's real entry point, `firstline serve` (SQLite: one process that
  also decides what it stores; PostgreSQL: `serve --no-worker`).
- `ingest`: this checkout's ingest alone (router.http.app `create_app`, one uvicorn
  process): the reference for the fast paths below.
- `fastapi-route`: the same checks behind a plain FastAPI route instead of the raw ASGI
  route (router.http.webhooks); the route's figure is `ingest` / `fastapi-route`.
- `insert-per-request`: one SQLAlchemy INSERT and commit per request in a thread instead
  of the group commit (router.db.group_commit); its figure is `ingest` / this.
- `granian`: `ingest` served by granian instead of uvicorn (when granian is installed:
  `.venv/bin/pip install granian`). Not adopted: median of 3 rounds, 2 shared cores, it
  took 1.28x the accepted/s on SQLite and 1.50x on PostgreSQL, but rounds overlapped
  (SQLite 896-1653/s against uvicorn's 1053-1717/s) and it spent 14-24 % more CPU per
  request: its Rust threads parse HTTP beside the interpreter, which in the one-process
  runtime is the worker's CPU. Ingest at ~1,000/s is not what limits end to end.
- `bare-fastapi`: FastAPI answering 202 without looking at the request (a yardstick).

Each target is loaded for 2 s (warm-up), then `--duration` seconds over `--connections`
keep-alive connections, each sending a signed real GitHub `issues` delivery with a fresh
X-GitHub-Delivery and waiting for its answer. It checks that the database holds every
delivery answered 202.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import secrets
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from ingest_servers import free_port, pg_server, process, process_cpu

ROOT = Path(__file__).resolve().parent.parent
BENCH = Path(__file__).resolve().parent
BODY = ROOT / "tests" / "fixtures" / "vendor" / "github" / "issues.opened.json"
BIN = Path(sys.executable).parent
TARGETS = ("baseline", "serve", "ingest", "fastapi-route", "insert-per-request", "granian",
           "bare-fastapi")
UVICORN = [sys.executable, "-m", "uvicorn", "--host", "127.0.0.1", "--no-access-log",
           "--log-level", "warning"]


@dataclass
class Run:
    accepted: int
    refused: int
    seconds: float
    p50_ms: float
    p99_ms: float
    cpu_us: float  # server CPU per accepted request
    ids: list[int] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.accepted / self.seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=8.0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--baseline", default="main", help="git revision to compare with")
    parser.add_argument("--db", default="sqlite,postgresql")
    parser.add_argument("--targets", default=",".join(TARGETS))
    args = parser.parse_args()
    targets = [t for t in args.targets.split(",") if t != "granian" or shutil.which(
        "granian", path=str(BIN))]
    work = Path(tempfile.mkdtemp(prefix="firstline-ingest-"))
    work.chmod(0o755)  # the PostgreSQL server runs as `postgres` and lives in here
    secret = secrets.token_hex(16)
    signature = "sha256=" + hmac.new(secret.encode(), BODY.read_bytes(),
                                     hashlib.sha256).hexdigest()
    runs: dict[tuple[str, str], list[Run]] = {}
    failed: list[str] = []
    try:
        with baseline_tree(args.baseline, work) as old, pg_server(work / "pg") as (pg_url, _):
            for round_no in range(args.rounds):
                for db in args.db.split(","):
                    for name in targets:
                        url = (f"sqlite:///{work / f'{db}-{name}-{round_no}.db'}"
                               if db == "sqlite" else
                               pg_database(pg_url, f"b_{name.replace('-', '_')}_{round_no}"))
                        env = {"FIRSTLINE_DATABASE_URL": url, "FIRSTLINE_RULES":
                               str(ROOT / "examples" / "scope.yaml"),
                               "FIRSTLINE_GITHUB_WEBHOOK_SECRET": secret}
                        tdir = work / f"{db}-{name}-{round_no}"
                        tdir.mkdir()
                        with server(name, db, env, tdir, old) as (base, pid):
                            run = drive(base, signature, pid, args, tdir)
                        missing = set(run.ids) - stored(url)
                        if missing:
                            failed.append(f"{db} {name}: {len(missing)} acknowledged, not stored")
                        runs.setdefault((db, name), []).append(run)
                        print(f"  round {round_no + 1} {db:10} {name:20} {run.rate:8.0f}/s",
                              file=sys.stderr)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report(runs, args, targets)
    for line in failed:
        print("CHECK FAILED:", line)
    return 1 if failed else 0


@contextmanager
def baseline_tree(revision: str, work: Path) -> Iterator[Path]:
    """Check `revision` out in a temporary worktree (removed afterwards)."""
    tree = work / "baseline"
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(tree), revision],
                   check=True, capture_output=True)
    try:
        yield tree
    finally:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)],
                       check=False, capture_output=True)


def server(name: str, db: str, env: dict[str, str], work: Path,
           old: Path) -> AbstractContextManager[tuple[str, int]]:
    """Start target `name`; yield its base URL and pid once /healthz answers."""
    port = free_port()
    migrate(env["FIRSTLINE_DATABASE_URL"], old if name == "baseline" else ROOT)
    health = f"http://127.0.0.1:{port}/healthz"
    app_dir = ["--app-dir", str(BENCH), "--port", str(port), "--factory"]
    if name == "baseline":
        has_factory = "def app_from_env" in (old / "router/http/app.py").read_text()
        cmd = ([*UVICORN, "--workers", "2", "--port", str(port), "--factory",
                "router.http.app:app_from_env"] if has_factory else
               [sys.executable, "-m", "router.cli", "serve", "--port", str(port),
                *(["--no-worker"] if db != "sqlite" else [])])
        return process(cmd, health, {**env, "PYTHONPATH": str(old)}, work / "server.log",
                       cwd=old)
    if name == "serve":
        cmd = [str(BIN / "firstline"), "serve", "--port", str(port),
               *(["--no-worker"] if db != "sqlite" else [])]
    elif name == "granian":
        cmd = [str(BIN / "granian"), "--interface", "asgi", "--host", "127.0.0.1", "--port",
               str(port), "--workers", "1", "--no-ws", "--log-level", "warning",
               "--working-dir", str(BENCH), "--factory", "ingest_servers:ingest_only"]
    else:
        factory = {"ingest": "ingest_only", "fastapi-route": "fastapi_route",
                   "insert-per-request": "insert_per_request",
                   "bare-fastapi": "bare_fastapi"}[name]
        cmd = [*UVICORN, *app_dir, f"ingest_servers:{factory}"]
    return process(cmd, health, env, work / "server.log")


def migrate(url: str, tree: Path) -> None:
    subprocess.run([sys.executable, "-c", "import sys; from router.db.engine import upgrade; "
                    "upgrade(sys.argv[1])", url], check=True, cwd=tree,
                   env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(tree)})


def drive(base: str, signature: str, pid: int, args: argparse.Namespace, work: Path) -> Run:
    def load(seconds: float) -> dict[str, object]:
        out = subprocess.run([sys.executable, str(BENCH / "loadgen.py"),
                              f"{base}/webhooks/github", str(BODY), signature, str(seconds),
                              str(args.connections), secrets.token_hex(6)],
                             check=True, capture_output=True, text=True).stdout
        return dict(json.loads(out))

    warm = load(2.0)
    cpu = process_cpu(pid)
    got = load(args.duration)
    cpu = process_cpu(pid) - cpu
    statuses: dict[str, int] = got["statuses"]  # type: ignore[assignment]
    accepted = statuses.get("202", 0)
    ids = [*warm["ids"], *got["ids"]]  # type: ignore[misc]
    return Run(accepted, sum(statuses.values()) - accepted, float(got["seconds"]),  # type: ignore[arg-type]
               float(got["p50_ms"]), float(got["p99_ms"]),  # type: ignore[arg-type]
               cpu * 1e6 / max(accepted, 1), ids)


def pg_database(server_url: str, name: str) -> str:
    import psycopg

    with psycopg.connect(server_url.replace("+psycopg", ""), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return server_url.rsplit("/", 1)[0] + f"/{name}"


def stored(url: str) -> set[int]:
    if url.startswith("sqlite"):
        lite = sqlite3.connect(url.removeprefix("sqlite:///"))
        ids = {row[0] for row in lite.execute("SELECT id FROM inbox")}
        lite.close()
        return ids
    import psycopg

    with psycopg.connect(url.replace("+psycopg", "")) as conn:
        return {row[0] for row in conn.execute("SELECT id FROM inbox")}


def report(runs: dict[tuple[str, str], list[Run]], args: argparse.Namespace,
           targets: list[str]) -> None:
    def median(db: str, name: str) -> Run | None:
        found = sorted(runs.get((db, name), []), key=lambda r: r.rate)
        return found[len(found) // 2] if found else None

    print(f"\n{args.connections} connections, {args.duration:g} s after a 2 s warm-up, median "
          f"of {args.rounds} round(s); baseline = {args.baseline}\n")
    print(f"{'database':11}{'target':21}{'accepted/s':>11}{'p50 ms':>8}{'p99 ms':>8}"
          f"{'CPU/req':>10}{'refused':>9}")
    for db in args.db.split(","):
        for name in targets:
            r = median(db, name)
            if r is not None:
                print(f"{db:11}{name:21}{r.rate:11.0f}{r.p50_ms:8.2f}{r.p99_ms:8.2f}"
                      f"{r.cpu_us:7.0f} us{r.refused:9d}")
    print()
    ratios = [("serve / baseline (goal >= 0.90)", "serve", "baseline"),
              ("raw ASGI route: ingest / fastapi-route (keep if >= 1.20)", "ingest",
               "fastapi-route"),
              ("group commit: ingest / insert-per-request (keep if >= 1.20)", "ingest",
               "insert-per-request"),
              ("granian / uvicorn (adopt if clearly > 1)", "granian", "ingest"),
              ("ingest / bare FastAPI", "ingest", "bare-fastapi")]
    for db in args.db.split(","):
        for label, a, b in ratios:
            ra, rb = median(db, a), median(db, b)
            if ra and rb:
                print(f"{db:11}{label:60}{ra.rate / rb.rate:6.2f}")
    if args.rounds > 1:
        print("\naccepted/s per round:", json.dumps(
            {f"{db} {name}": [round(r.rate) for r in v] for (db, name), v in runs.items()}))


if __name__ == "__main__":
    raise SystemExit(main())
