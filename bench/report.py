"""Benchmark the monthly review against a plain count of the same rows, in one run.

    .venv/bin/python bench/report.py [--decisions 50000] [--pg-url URL]

Seeds a month (November 2026) of deliveries made from the real vendor fixtures (each copy
with its own item, time and sometimes a label that routes it to a line or fires a
trigger) and decides them with the real worker, its clock following the deliveries'
own times, until the month holds `--decisions` decisions; then times, on SQLite and (with
`--pg-url` or FIRSTLINE_TEST_PG_URL) on PostgreSQL in a schema of its own:

  count      SELECT count(*) FROM decisions WHERE event_at in the month (the baseline)
  computed   the whole monthly review, as a request reads it when the month's records
             changed since it was last read: the fingerprint, then every figure
             (router.reviews.kept, router.reviews.monthly)
  kept       the same request when nothing the review reads has changed: the
             fingerprint, then the review kept in memory
  log        the exception log of the same month

and prints each as the median of several runs and as a ratio of the count. Goal: the
report under 1 s and at most 10x the count. The machine's load moves all figures
together; the ratios are the comparable part.
"""

from __future__ import annotations

import argparse
import copy
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import func, select, text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.decide import FIXTURES, GITHUB_TYPES, VARY  # noqa: E402
from router.db.engine import make_engine, upgrade, worker_engine  # noqa: E402
from router.db.inbox import Delivery, insert_deliveries  # noqa: E402
from router.db.tables import decisions, inbox  # noqa: E402
from router.reviews.exceptions import exception_log  # noqa: E402
from router.reviews.figures import in_month, owner_minutes  # noqa: E402
from router.reviews.kept import fingerprint, month_review  # noqa: E402
from router.reviews.monthly import monthly_report  # noqa: E402
from router.reviews.periods import month_span  # noqa: E402
from router.scope.load import Scope, load_scope  # noqa: E402
from router.work.backfill import EventClock  # noqa: E402
from router.work.worker import Worker  # noqa: E402
from tests.support import pg_schema  # noqa: E402

# Tracker events outnumber incidents; most work routes quietly, a few labels reach lines
# of their own or fire triggers, and most Jira tickets are of medium priority.
SOURCES = [("jira", 0.40), ("github", 0.30), ("linear", 0.25), ("pagerduty", 0.05)]
LABELS = [(None, 0.80), ("bug", 0.08), ("architecture", 0.05), ("cloud-bill", 0.03),
          ("vendor", 0.02), ("payments", 0.01), ("security", 0.005), ("outage", 0.005)]
EVENTS_PER_ITEM = 3
RUNS = 7


def corpus(count: int, month_start: datetime, seed: int = 11) -> list[tuple[str, str | None,
                                                                              bytes]]:
    """Return `count` deliveries (source, GitHub event, body) spread over 29 days; an
    item's events come from consecutive templates of its source."""
    rng = random.Random(seed)
    templates: dict[str, list[tuple[str | None, Any]]] = {}
    for source in VARY:
        for path in sorted((FIXTURES / source).glob("*.json")):
            event = path.name.split(".")[0] if source == "github" else None
            templates.setdefault(source, []).append(
                (event if event in GITHUB_TYPES else None, orjson.loads(path.read_bytes())))
    step = timedelta(days=29) / count
    sources, source_weights = zip(*SOURCES, strict=True)
    labels, label_weights = zip(*LABELS, strict=True)
    out = []
    item = 0
    while len(out) < count:
        source = rng.choices(sources, source_weights)[0]
        label = rng.choices(labels, label_weights)[0]
        first = rng.randrange(len(templates[source]))
        item += 1
        for k in range(EVENTS_PER_ITEM):
            event, template = templates[source][(first + k) % len(templates[source])]
            payload: dict[str, Any] = copy.deepcopy(template)
            VARY[source](payload, item, month_start + step * (len(out) + 1), label)
            if source == "jira" and rng.random() < 0.85:
                _priority(payload, "Medium")
            out.append((source, event, orjson.dumps(payload)))
    return out[:count]


def _priority(payload: dict[str, Any], name: str) -> None:
    fields = (payload.get("issue") or {}).get("fields") or {}
    if isinstance(fields.get("priority"), dict):
        fields["priority"]["name"] = name


def seed(url: str, scope: Scope, deliveries: list[tuple[str, str | None, bytes]],
         month_start: datetime) -> int:
    """Store the deliveries and decide them with the worker, its clock at the time of
    each batch's newest delivery (a worker keeping up); return the decisions made."""
    step = timedelta(days=29) / len(deliveries)
    engine = worker_engine(url)
    try:
        with engine.begin() as conn:
            insert_deliveries(conn, [
                Delivery(source, uuid.uuid4().hex, event, "{}", body, month_start + step * (n + 1))
                for n, (source, event, body) in enumerate(deliveries)])
        clock = EventClock(month_start)
        worker = Worker(engine, lambda: scope, clock)
        pending = select(func.count()).select_from(inbox).where(inbox.c.status == "pending")
        while True:
            with engine.connect() as conn:
                done = len(deliveries) - int(conn.execute(pending).scalar_one())
            if done == len(deliveries):
                break
            clock.advance(month_start + step * min(done + worker.batch, len(deliveries)))
            worker.run_once()
        clock.advance(month_start + timedelta(days=30))
        worker.drain()
        with engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(decisions)).scalar_one())
    finally:
        engine.dispose()


def median_seconds(fn: Callable[[], object]) -> float:
    fn()  # warm the caches and the plans
    runs = []
    for _ in range(RUNS):
        began = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - began)
    return statistics.median(runs)


def measure(name: str, url: str, scope: Scope, count: int) -> None:
    month_start = datetime(2026, 11, 1, tzinfo=scope.tz).astimezone(UTC)
    month = month_span(2026, 11, scope.tz, scope.week_starts)
    print(f"{name}: seeding {count:,} deliveries ...", file=sys.stderr)
    made = seed(url, scope, corpus(count, month_start), month_start)
    engine = make_engine(url)
    try:
        if engine.dialect.name == "postgresql":
            # What autovacuum keeps up in a running service: statistics for the planner
            # and the visibility map that lets index-only scans skip the table.
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.execute(text("VACUUM ANALYZE"))
        with engine.connect() as conn:
            counted = select(func.count()).select_from(decisions).where(in_month(month))
            rows = conn.execute(counted).scalar_one()
            count_s = median_seconds(lambda: conn.execute(counted).scalar_one())
            # What a request costs when the month's records changed since the review was
            # kept (router.reviews.kept): the fingerprint, then every figure.
            computed_s = median_seconds(lambda: (
                fingerprint(conn, month),
                monthly_report(conn, scope, month, owner_minutes(conn, month))))
            kept_s = median_seconds(lambda: month_review(conn, scope, month))
            log_s = median_seconds(lambda: exception_log(conn, scope, month))
            report = month_review(conn, scope, month).report
    finally:
        engine.dispose()
    print(f"{name}: {made:,} decisions stored, {rows:,} in {month.label}; "
          f"{len(report.escalations)} escalations, {report.handed_back} hand-backs")
    print(f"  {'query':<28} {'ms':>8} {'x count':>8}")
    for label, seconds in (("count(*) of the month", count_s),
                           ("monthly review, computed", computed_s),
                           ("monthly review, kept", kept_s), ("exception log", log_s)):
        print(f"  {label:<28} {seconds * 1000:8.1f} {seconds / count_s:8.1f}")

    def verdict(ok: bool) -> str:
        return "met" if ok else "NOT met"

    print(f"  goal, the review under 1 s: {verdict(computed_s < 1.0)} when computed, "
          f"{verdict(kept_s < 1.0)} when kept")
    print(f"  goal, the review at most 10x the count: {verdict(computed_s <= 10 * count_s)} "
          f"when computed, {verdict(kept_s <= 10 * count_s)} when kept (the month unchanged)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--decisions", type=int, default=50_000,
                        help="deliveries to seed (timers add a few decisions)")
    parser.add_argument("--rules", default=str(ROOT / "examples" / "scope.yaml"))
    parser.add_argument("--pg-url", default=os.environ.get("FIRSTLINE_TEST_PG_URL"))
    args = parser.parse_args()
    scope = load_scope(args.rules)[0]
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{folder}/report.db"
        upgrade(url)
        measure("SQLite", url, scope, args.decisions)
    if args.pg_url:
        with pg_schema(args.pg_url) as url:
            upgrade(url)
            measure("PostgreSQL", url, scope, args.decisions)
    else:
        print("PostgreSQL: skipped (give --pg-url or set FIRSTLINE_TEST_PG_URL)")


if __name__ == "__main__":
    main()
