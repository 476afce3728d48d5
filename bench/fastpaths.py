"""Measure two of firstline's hand-written fast paths against the plain library way,
A/B interleaved in one run, and print the ratios (keep a fast path only at >= 1.20).

    .venv/bin/python bench/fastpaths.py [--rounds 5] [--calls 400] [--deliveries 400]

- adapters/stdlib_http.py (GitHub calls on an http.client pool) against httpx's own
  transport and against `httpx.Client`: CPU per call to the GitHub stand-in
  (bench/e2e_standin.py, its own process), a GET of an issue as the adapter sends it.
- router/db/bulk.py (a batch's rows as one JSON parameter per table, PostgreSQL) against
  SQLAlchemy's insertmanyvalues: wall time (PostgreSQL's work included) of the worker
  deciding `--deliveries` stored real
  GitHub deliveries, batch after batch, on a throwaway PostgreSQL (scripts/pg-test-server).

Each round runs A then B (then C), so a slow spell of a shared machine hits both.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from ingest_servers import pg_server  # noqa: E402

from adapters import stdlib_http  # noqa: E402


def cpu(fn: Callable[[], None]) -> float:
    start = time.process_time()
    fn()
    return time.process_time() - start


def wall(fn: Callable[[], None]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def http_paths(args: argparse.Namespace) -> None:
    standin = subprocess.Popen([sys.executable, str(ROOT / "bench" / "e2e_standin.py"),
                                "--token", "t"], stdout=subprocess.PIPE, text=True)
    try:
        assert standin.stdout is not None
        base = f"http://127.0.0.1:{standin.stdout.readline().split()[-1]}"
        httpx.post(f"{base}/_bench/issues", json={"repo": "o/r", "first": 1, "count": 1,
                                                  "assignees": ["a"]}).raise_for_status()
        url = f"{base}/repos/o/r/issues/1"
        headers = {"Authorization": "Bearer t", "Accept": "application/vnd.github+json"}
        timeouts = httpx.Timeout(10.0).as_dict()
        ways: dict[str, Callable[[], None]] = {}
        for name, transport in (("stdlib_http", stdlib_http.transport()),
                                ("httpx transport", httpx.HTTPTransport())):
            def calls(t: httpx.HTTPTransport = transport) -> None:
                for _ in range(args.calls):
                    response = t.handle_request(httpx.Request(
                        "GET", url, headers=headers, extensions={"timeout": timeouts}))
                    response.read()
                    response.close()
            ways[name] = calls
        client = httpx.Client(headers=headers, timeout=10.0)

        def with_client() -> None:
            for _ in range(args.calls):
                client.get(url).read()

        ways["httpx.Client"] = with_client
        for fn in ways.values():
            fn()  # warm: connections open
        spent: dict[str, list[float]] = {name: [] for name in ways}
        for _ in range(args.rounds):
            for name, fn in ways.items():
                spent[name].append(cpu(fn) / args.calls * 1e6)
        print("GitHub call, CPU per call (median of rounds):")
        for name, values in spent.items():
            print(f"  {name:18} {statistics.median(values):7.0f} us")
        mine = statistics.median(spent["stdlib_http"])
        for other in ("httpx transport", "httpx.Client"):
            print(f"  {other} / stdlib_http = {statistics.median(spent[other]) / mine:.2f} "
                  "(keep stdlib_http if >= 1.20 against httpx.Client)")
    finally:
        standin.kill()
        standin.wait()


def bulk_paths(args: argparse.Namespace) -> None:
    from router.db import bulk
    from router.scope.load import load_scope

    def plain_insert_rows(conn, table, rows, on_conflict=None):  # type: ignore[no-untyped-def]
        if not rows:
            return
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        stmt = (table.insert() if on_conflict is None
                else bulk._on_conflict(pg_insert(table), on_conflict))
        conn.execute(stmt, list(rows))

    def plain_returning(conn, table, rows):  # type: ignore[no-untyped-def]
        if not rows:
            return []
        stmt = table.insert().returning(table.c.id, sort_by_parameter_order=True)
        return [int(i) for i in conn.execute(stmt, list(rows)).scalars()]

    ways = {"bulk.py JSON": (bulk.insert_rows, bulk.insert_returning_ids),
            "insertmanyvalues": (plain_insert_rows, plain_returning)}
    scope = load_scope(ROOT / "examples" / "scope.yaml")[0]
    body = orjson.loads((ROOT / "tests/fixtures/vendor/github/issues.assigned.json").read_bytes())
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp).chmod(0o755)  # PostgreSQL runs as `postgres` and lives in here
        bulk_rounds(args, ways, scope, body, Path(tmp))


def bulk_rounds(args: argparse.Namespace, ways: dict[str, Any], scope: Any, body: Any,
                tmp: Path) -> None:
    import router.db.ledger as ledger_module
    from router.db import bulk
    from router.db.engine import make_engine, upgrade, worker_engine
    from router.db.inbox import Delivery, insert_deliveries
    from router.work.worker import Worker

    with pg_server(tmp / "pg") as (url, _):
        spent: dict[str, list[float]] = {name: [] for name in ways}
        for round_no in range(args.rounds):
            for name, (rows_fn, ids_fn) in ways.items():
                db = f"{url.rsplit('/', 1)[0]}/postgres"
                admin = make_engine(db)
                schema = f"r{round_no}_{name.split()[0].replace('.', '_')}"
                with admin.begin() as conn:
                    conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
                admin.dispose()
                target = f"{db}?options=-csearch_path%3D{schema}"
                upgrade(target)
                engine = make_engine(target)
                batch = []
                for n in range(args.deliveries):
                    payload = {**body, "issue": {**body["issue"], "id": 10_000 + n,
                                                 "number": n}}
                    batch.append(Delivery("github", f"d-{n}", "issues", "{}",
                                          orjson.dumps(payload), datetime.now(UTC)))
                with engine.begin() as conn:
                    insert_deliveries(conn, batch)
                engine.dispose()
                ledger_module.insert_rows, ledger_module.insert_returning_ids = rows_fn, ids_fn
                worker = Worker(worker_engine(target), lambda: scope)
                spent[name].append(wall(lambda w=worker: w.drain() and None)
                                   / args.deliveries * 1e6)
                worker.engine.dispose()
        ledger_module.insert_rows = bulk.insert_rows
        ledger_module.insert_returning_ids = bulk.insert_returning_ids
    print("worker on PostgreSQL, wall time per decided delivery, database included "
          "(median of rounds):")
    for name, values in spent.items():
        print(f"  {name:18} {statistics.median(values):7.0f} us")
    ratio = statistics.median(spent["insertmanyvalues"]) / statistics.median(
        spent["bulk.py JSON"])
    print(f"  insertmanyvalues / bulk.py = {ratio:.2f} (keep bulk.py if >= 1.20)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=400)
    parser.add_argument("--deliveries", type=int, default=400)
    parser.add_argument("--only", choices=("http", "bulk"), default=None)
    args = parser.parse_args()
    if args.only in (None, "http"):
        http_paths(args)
    if args.only in (None, "bulk"):
        bulk_paths(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
