"""Benchmark the dashboard: each page's p50/p95 next to the JSON API call that reads the
same data, on a month of 50,000 decisions, in one run.

    .venv/bin/python bench/pages.py [--decisions 50000] [--db sqlite|postgresql|both]
                                    [--rounds 40] [--keep]

Per database (SQLite in a temp dir; PostgreSQL a throwaway server from
scripts/pg-test-server, durable defaults):

1. seed: `--decisions` deliveries made from the real vendor fixtures (varied as
   bench/decide.py varies them: about a tenth as many items, each sent about ten times
   through its vendor's fixtures in turn, one in ten labelled for a trigger or an owner
   line) spread over the 30 days up to now, stored in the inbox and decided by the real
   worker a day at a time, its clock at the end of each day (so hours, escalations and
   timers fall where they would);
2. serve: `firstline serve` on 127.0.0.1 with the example scope note (on PostgreSQL
   `--no-worker`, the HTTP side alone; SQLite serves one process, whose worker then
   finds everything decided);
3. measure: log in through the form, then `--rounds` sequential requests per URL
   (after 3 unmeasured) over one keep-alive connection, each page and its API twin
   alternating so load drifts hit both alike; p50 and p95 of the wall time per request,
   and the page's p50 as a multiple of its twin's. The first, unmeasured request of each
   URL is shown apart (`first`): for the monthly review it is the one that computes the
   review, which later requests find kept while the month's records do not change
   (router.reviews.kept). A what-if over the last 7 days (a
   POST that replays thousands of deliveries twice) is timed once, apart: it is bounded
   by its own deadline, not by the 300 ms goal of a page.

Goal: every page under 300 ms (p95) with the month loaded. Loopback only; processes run in
their own sessions and are stopped, and the temp dir removed, on exit.
"""

from __future__ import annotations

import argparse
import copy
import random
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import orjson
from sqlalchemy import func, select

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from decide import FIXTURES, GITHUB_TYPES, LABELS, VARY  # noqa: E402  (bench/ is this folder)
from e2e import child_env, pct, postgres, stop_group, wait_http  # noqa: E402
from ingest_servers import free_port  # noqa: E402

from router.db.engine import upgrade, worker_engine  # noqa: E402
from router.db.inbox import Delivery, insert_deliveries  # noqa: E402
from router.db.tables import decisions, escalations  # noqa: E402
from router.scope.load import load_scope  # noqa: E402
from router.work.worker import Worker  # noqa: E402

SCOPE = ROOT / "examples" / "scope.yaml"
BIN = Path(sys.executable).parent
TOKEN = "bench-pages-token"
GOAL_MS = 300.0
DAYS = 30


def month(count: int, start: datetime, repeat: int = 10, seed: int = 11) \
        -> list[tuple[str, str | None, bytes]]:
    """Return `count` deliveries (source, GitHub event type, body) over DAYS from `start`:
    about `count / repeat` items, each sent about `repeat` times days apart, going
    through its vendor's recorded fixtures in turn (created, updated, resolved ...), one
    in ten carrying a label a trigger or an owner line looks for."""
    rng = random.Random(seed)
    by_source: dict[str, list[tuple[str | None, Any]]] = {}
    for source in VARY:
        for path in sorted((FIXTURES / source).glob("*.json")):
            event_type = path.name.split(".")[0] if source == "github" else None
            if event_type is not None and event_type not in GITHUB_TYPES:
                event_type = None
            by_source.setdefault(source, []).append((event_type, orjson.loads(path.read_bytes())))
    sources = list(by_source)
    items = max(1, count // repeat)
    labels = [rng.choice(LABELS) if rng.random() < 0.1 else None for _ in range(items)]
    step = timedelta(days=DAYS) / count
    out = []
    for n in range(count):
        item, turn = n % items, n // items
        source = sources[item % len(sources)]
        event_type, template = by_source[source][turn % len(by_source[source])]
        payload = copy.deepcopy(template)
        VARY[source](payload, item, start + step * n, labels[item])
        out.append((source, event_type, orjson.dumps(payload)))
    return out


def seed(db_url: str, count: int, now: datetime) -> dict[str, object]:
    """Store and decide a month of deliveries; return ids and keys to ask for."""
    start = now - timedelta(days=DAYS)
    corpus = month(count, start)
    scope = load_scope(SCOPE)[0]
    engine = worker_engine(db_url)
    per_day = -(-count // DAYS)
    try:
        for day in range(DAYS):
            chunk = corpus[day * per_day:(day + 1) * per_day]
            received = start + timedelta(days=day + 1)
            with engine.begin() as conn:
                insert_deliveries(conn, [
                    Delivery(source, f"bench-{day}-{n}", event_type, "{}", body, received)
                    for n, (source, event_type, body) in enumerate(chunk)])
            Worker(engine, lambda: scope, lambda at=received: at).drain()
        with engine.connect() as conn:
            total = conn.execute(select(func.count()).select_from(decisions)).scalar_one()
            middle = conn.execute(select(decisions.c.id, decisions.c.item_key).where(
                decisions.c.item_key.is_not(None)).order_by(decisions.c.id)
                .offset(total // 2).limit(1)).one()
            escalation = conn.execute(select(func.max(escalations.c.id))).scalar_one()
    finally:
        engine.dispose()
    return {"decisions": total, "decision": middle.id, "key": middle.item_key,
            "escalation": escalation}


@contextmanager
def serve(work: Path, db_url: str) -> Iterator[str]:
    env = child_env({"FIRSTLINE_DATABASE_URL": db_url, "FIRSTLINE_RULES": str(SCOPE),
                     "FIRSTLINE_API_TOKEN": TOKEN})
    port = free_port()
    log = work / "serve.log"
    with open(log, "wb") as out:
        alone = [] if db_url.startswith("sqlite") else ["--no-worker"]
        proc = subprocess.Popen([str(BIN / "firstline"), "serve", *alone, "--host",
                                 "127.0.0.1", "--port", str(port)], env=env, cwd=work,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_http(f"{base}/readyz", proc, log)
        yield base
    finally:
        stop_group(proc)


def pairs(facts: dict[str, object], now: datetime) -> list[tuple[str, str]]:
    """Return (page, API twin) URLs that read the same data."""
    day = (now - timedelta(days=3)).date().isoformat()
    key = quote(str(facts["key"]))
    since = f"{day}T00:00:00Z"
    return [
        ("/", "/api/v1/escalations?limit=50"),
        ("/decisions", "/api/v1/decisions?limit=50"),
        ("/decisions?source=jira&outcome=escalate",
         "/api/v1/decisions?limit=50&source=jira&outcome=escalate"),
        ("/decisions?trigger=revenue-path", "/api/v1/decisions?limit=50&outcome=escalate"),
        (f"/decisions?since={day}&until={day}", f"/api/v1/decisions?limit=50&since={since}"),
        (f"/decisions?q={key}", f"/api/v1/decisions?limit=50&item={key}"),
        (f"/decisions/{facts['decision']}", f"/api/v1/decisions/{facts['decision']}"),
        ("/escalations", "/api/v1/escalations?limit=50"),
        (f"/escalations/{facts['escalation']}", f"/api/v1/escalations/{facts['escalation']}"),
        ("/scope", "/api/v1/scope"),
        # The last complete month: most of the seeded 30 days.
        ("/month", "/api/v1/reports/monthly"),
    ]


def login(client: httpx.Client) -> None:
    form = client.get("/login").text
    nonce = re.search(r'name="csrf" value="([^"]+)"', form)
    assert nonce, "no login form"
    answer = client.post("/login", data={"token": TOKEN, "csrf": nonce.group(1)})
    assert answer.status_code == 303, answer.text


def timed(client: httpx.Client, url: str, headers: dict[str, str]) -> float:
    began = time.perf_counter()
    answer = client.get(url, headers=headers)
    elapsed = time.perf_counter() - began
    if answer.status_code != 200:
        raise RuntimeError(f"GET {url}: {answer.status_code} {answer.text[:200]}")
    return elapsed * 1000


def measure(base: str, facts: dict[str, object], now: datetime, rounds: int) -> list[str]:
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    out = [f"{'page':<44} {'p50':>7} {'p95':>7} {'first':>7}   {'API twin':<52} {'p50':>7} "
           f"{'p95':>7} {'first':>7} {'x API':>6}"]
    worst = 0.0
    with httpx.Client(base_url=base, timeout=60) as client:
        login(client)
        for page, api in pairs(facts, now):
            # The first request of each, apart: it computes what later ones may find kept
            # (the monthly review: router.reviews.kept), and warms the plans.
            first, api_first = timed(client, page, {}), timed(client, api, bearer)
            for _ in range(2):
                timed(client, page, {})
                timed(client, api, bearer)
            page_ms, api_ms = [], []
            for _ in range(rounds):
                page_ms.append(timed(client, page, {}))
                api_ms.append(timed(client, api, bearer))
            p50, p95, a50, a95 = (pct(page_ms, 50), pct(page_ms, 95), pct(api_ms, 50),
                                  pct(api_ms, 95))
            worst = max(worst, p95)
            out.append(f"{page[:44]:<44} {p50:7.1f} {p95:7.1f} {first:7.1f}   {api[:52]:<52} "
                       f"{a50:7.1f} {a95:7.1f} {api_first:7.1f} {p50 / a50:6.2f}")
        out.append(f"slowest page p95: {worst:.1f} ms (goal < {GOAL_MS:.0f} ms): "
                   f"{'met' if worst < GOAL_MS else 'NOT met'}")
        out.append(what_if(client))
    return out


def what_if(client: httpx.Client) -> str:
    page = client.get("/scope").text
    csrf = re.search(r'name="csrf" value="([^"]+)"', page)
    assert csrf
    note = SCOPE.read_text().replace("ad_hoc_hours_per_week: 6", "ad_hoc_hours_per_week: 8")
    began = time.perf_counter()
    answer = client.post("/scope/what-if", data={"csrf": csrf.group(1), "note": note,
                                                 "days": "7"})
    seconds = time.perf_counter() - began
    found = re.search(r"replaying\s+([\d,]+) deliveries", answer.text)
    changed = re.search(r"<strong>(\d+)</strong> decisions? would change", answer.text)
    if answer.status_code != 200 or not found or not changed:
        error = re.search(r'<p class="error" role="alert">([^<]+)</p>', answer.text)
        return (f"what-if over 7 days: {answer.status_code} after {seconds:.1f} s: "
                f"{error.group(1) if error else answer.text[:300]}")
    return (f"what-if over 7 days ({found.group(1)} deliveries, replayed under both notes): "
            f"{seconds:.2f} s, {changed.group(1)} decisions change")


def run_one(db: str, args: argparse.Namespace, work: Path) -> list[str]:
    now = datetime.now(UTC)
    with database(db, work) as db_url:
        upgrade(db_url)
        began = time.perf_counter()
        facts = seed(db_url, args.decisions, now)
        seeded = time.perf_counter() - began
        with serve(work, db_url) as base:
            lines = measure(base, facts, now, args.rounds)
    head = (f"{db}: {facts['decisions']:,} decisions over {DAYS} days (seeded by the worker "
            f"in {seeded:.0f} s); {args.rounds} requests per URL, milliseconds")
    return [head, *lines]


@contextmanager
def database(db: str, work: Path) -> Iterator[str]:
    if db == "sqlite":
        yield f"sqlite:///{work / 'bench.db'}"
        return
    with postgres(work) as (url, _pid):
        yield url


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--decisions", type=int, default=50_000)
    parser.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--keep", action="store_true", help="keep the temp dir")
    args = parser.parse_args()
    dbs = ["sqlite", "postgresql"] if args.db == "both" else [args.db]
    work_root = Path(tempfile.mkdtemp(prefix="firstline-bench-pages-"))
    work_root.chmod(0o755)  # PostgreSQL runs as `postgres` (when we are root) in here
    try:
        for db in dbs:
            work = work_root / db
            work.mkdir(mode=0o755)
            print("\n".join(run_one(db, args, work)), flush=True)
            print(flush=True)
    finally:
        if not args.keep:
            subprocess.run(["rm", "-rf", str(work_root)], check=False)
        else:
            print(f"kept {work_root}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
