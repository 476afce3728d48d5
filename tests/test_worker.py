"""The worker on a real database: stored deliveries in, one decision each, timers fired."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import Engine, func, select

from router.db.engine import worker_engine
from router.db.inbox import Delivery, insert_deliveries, insert_delivery
from router.db.tables import decisions, escalations, inbox, items, timers
from router.work.periodic import analyze_busy_tables
from router.work.worker import Worker
from tests.support import example_scope, fixture_bytes, fixture_event

SCOPE = example_scope()


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    """The worker's own engine on a fresh database (SQLite, and PostgreSQL when set)."""
    engine = worker_engine(db_url)
    yield engine
    engine.dispose()


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def put(engine: Engine, source: str, name: str, delivery_id: str, received: datetime,
        event_type: str | None = None, body: bytes | None = None) -> None:
    with engine.begin() as conn:
        stored = insert_delivery(conn, Delivery(
            source, delivery_id, event_type, "{}", body or fixture_bytes(source, name),
            received))
    assert stored.status == "accepted"


def rows(engine: Engine, table: object, *columns: object) -> list[tuple[object, ...]]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(select(*columns))]  # type: ignore[call-overload]


def test_every_fixture_is_decided_exactly_once(engine: Engine) -> None:
    from tests.support import FIXTURES

    received = datetime.fromisoformat("2026-11-21T10:00:00+00:00")
    n = 0
    for path in sorted(FIXTURES.glob("*/*.json")):
        source = path.parent.name
        event_type = path.name.split(".")[0] if source == "github" else None
        put(engine, source, path.stem, f"d-{n}", received, event_type)
        n += 1
    worker = Worker(engine, lambda: SCOPE, Clock(received))
    assert worker.drain() >= n
    got = rows(engine, decisions, decisions.c.delivery_id, decisions.c.outcome)
    delivered = [d for d, _ in got if d is not None]
    assert sorted(delivered) == sorted(f"d-{i}" for i in range(n))
    with engine.connect() as conn:
        pending = conn.execute(select(func.count()).where(
            inbox.c.status != "done")).scalar_one()
    assert pending == 0
    # each outcome the example scope gives these fixtures is represented
    assert {o for _, o in got} >= {"escalate", "reassign", "keep", "ignore"}


def test_timer_fires_when_due_and_the_decision_has_no_delivery(engine: Engine) -> None:
    event = fixture_event("jira", "issue_created")  # sev2, unassigned: no-owner pending
    assert event.item is not None
    created = event.item.created_at
    clock = Clock(created + timedelta(minutes=1))
    put(engine, "jira", "issue_created", "jira-1", clock.now)
    worker = Worker(engine, lambda: SCOPE, clock)
    worker.drain()
    assert rows(engine, timers, timers.c.trigger_id, timers.c.due_at, timers.c.armed) == [
        ("no-owner", created + timedelta(minutes=15), True)]
    clock.now = created + timedelta(minutes=14)
    assert worker.drain() == 0
    clock.now = created + timedelta(minutes=16)
    worker.drain()
    got = rows(engine, decisions, decisions.c.delivery_id, decisions.c.outcome,
               decisions.c.triggers)
    assert got == [("jira-1", "reassign", "[]"), (None, "escalate", '["no-owner"]')]
    assert rows(engine, escalations, escalations.c.dedup_key, escalations.c.status) == [
        ("firstline/no-owner/jira:10040", "open")]


def test_due_timers_are_looked_for_at_most_once_a_second(engine: Engine) -> None:
    """A timer that comes due between two looks fires at the next look, a second after
    the last one, however many batches run in between."""
    event = fixture_event("jira", "issue_created")
    assert event.item is not None
    due = event.item.created_at + timedelta(minutes=15)
    clock = Clock(due - timedelta(milliseconds=500))
    put(engine, "jira", "issue_created", "jira-1", clock.now)
    worker = Worker(engine, lambda: SCOPE, clock)
    assert worker.run_once() == 1  # the delivery, which arms the timer; and a look
    clock.now = due + timedelta(milliseconds=300)  # due now, 0.8 s after that look
    put(engine, "github", "issues.opened", "gh-1", clock.now, "issues")
    assert worker.run_once() == 1  # the delivery only: too soon to look again
    assert rows(engine, timers, timers.c.armed) == [(True,)]
    clock.now = due + timedelta(milliseconds=500)  # a second after the last look
    assert worker.run_once() == 1  # the timer
    assert rows(engine, timers, timers.c.armed) == [(False,)]


def test_out_of_order_delivery_keeps_the_newest_state(engine: Engine) -> None:
    now = datetime.fromisoformat("2026-11-21T10:00:00+00:00")
    newer = orjson.loads(fixture_bytes("jira", "issue_updated.resolved"))
    put(engine, "jira", "", "new", now, body=orjson.dumps(newer))
    older = orjson.loads(fixture_bytes("jira", "issue_updated.issue_assigned"))
    older["timestamp"] = newer["timestamp"] - 60_000
    put(engine, "jira", "", "old", now, body=orjson.dumps(older))
    Worker(engine, lambda: SCOPE, Clock(now)).drain()
    got = dict(rows(engine, decisions, decisions.c.delivery_id, decisions.c.outcome))
    assert got == {"new": "keep", "old": "ignore"}
    state = rows(engine, items, items.c.state)
    assert len(state) == 1 and orjson.loads(str(state[0][0]))["status"] == "resolved"


@pytest.mark.parametrize("first", ["remove", "update"])
def test_a_linear_removal_and_the_update_before_it_end_resolved_in_either_order(
        engine: Engine, first: str) -> None:
    """The real pair, the update stamped as the removal keeps it (the removal's own
    `updatedAt` is the last update's; only `archivedAt` is later): whichever arrives
    first, the issue ends removed, and a late update is stale."""
    now = datetime.fromisoformat("2026-11-21T10:00:00+00:00")
    remove = orjson.loads(fixture_bytes("linear", "Issue.remove"))
    update = orjson.loads(fixture_bytes("linear", "Issue.update"))
    update["data"]["updatedAt"] = remove["data"]["updatedAt"]
    bodies = {"remove": remove, "update": update}
    for name in (first, "update" if first == "remove" else "remove"):
        put(engine, "linear", "", name, now, body=orjson.dumps(bodies[name]))
    Worker(engine, lambda: SCOPE, Clock(now)).drain()
    got = {d: (o, r) for d, o, r in rows(engine, decisions, decisions.c.delivery_id,
                                         decisions.c.outcome, decisions.c.reason)}
    assert got["remove"] == ("keep", "The item is deleted: nothing to route.")
    if first == "remove":
        assert got["update"][0] == "ignore" and got["update"][1].startswith("stale delivery")
    else:
        assert got["update"][0] != "ignore"
    [(state,)] = rows(engine, items, items.c.state)
    assert orjson.loads(str(state))["status"] == "resolved"


def test_grouped_escalations_page_once_across_many_deliveries(engine: Engine) -> None:
    base = orjson.loads(fixture_bytes("jira", "issue_created"))
    now = datetime.fromisoformat("2026-11-21T10:00:00+00:00")
    for n in range(20):
        body = orjson.loads(orjson.dumps(base))
        body["issue"]["id"] = str(50000 + n)
        body["issue"]["key"] = f"TES-{500 + n}"
        body["issue"]["fields"]["labels"] = ["checkout"]
        put(engine, "jira", "", f"storm-{n}", now, body=orjson.dumps(body))
    Worker(engine, lambda: SCOPE, Clock(now), batch=7).drain()
    outcomes = rows(engine, decisions, decisions.c.outcome)
    assert outcomes == [("escalate",)] * 20
    assert rows(engine, escalations, escalations.c.dedup_key) == [
        ("firstline/revenue-path/TES",)]


def test_undecidable_payload_is_decided_ignore_not_lost(engine: Engine) -> None:
    now = datetime.fromisoformat("2026-11-21T10:00:00+00:00")
    put(engine, "linear", "", "garbage", now, body=b'{"hello": "world"}')
    Worker(engine, lambda: SCOPE, Clock(now)).drain()
    got = rows(engine, decisions, decisions.c.delivery_id, decisions.c.outcome,
               decisions.c.reason)
    assert got[0][:2] == ("garbage", "ignore")
    assert "not an event firstline understands" in str(got[0][2])


def test_replay_from_db_decides_what_the_service_received(engine: Engine, db_url: str) -> None:
    import os
    import subprocess
    import sys

    from tests.support import EXAMPLE_SCOPE, ROOT

    received = datetime.fromisoformat("2026-11-21T10:00:00+00:00")
    put(engine, "jira", "issue_created", "a", received)
    put(engine, "github", "ping", "b", received, event_type="ping")
    put(engine, "linear", "", "c", received, body=b'{"not": "linear"}')
    env = {**os.environ, "FIRSTLINE_DATABASE_URL": db_url}
    run = subprocess.run([sys.executable, "-m", "router.cli", "replay", "--from-db", "--json",
                          "--rules", str(EXAMPLE_SCOPE)], env=env, cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    rows = [orjson.loads(line) for line in run.stdout.splitlines()]
    by_file = {r["file"]: r["outcome"] for r in rows}
    assert by_file.pop(None) == "escalate"  # the no-owner timer of the Jira ticket
    assert sorted(by_file.values()) == ["ignore", "ignore", "reassign"]
    assert all(f.startswith("inbox:") for f in by_file)
    since = subprocess.run([sys.executable, "-m", "router.cli", "replay", "--from-db",
                            "--since", "2030-01-01", "--rules", str(EXAMPLE_SCOPE)], env=env,
                           cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert since.returncode == 0 and "totals: 0 decisions" in since.stdout


def test_a_delivery_that_keeps_failing_is_parked_not_lost(engine: Engine) -> None:
    """A row the worker cannot decide (here: a source no adapter has) is retried, then kept
    as `failed` with its error, and never blocks the deliveries behind it."""
    from router.work.worker import MAX_ATTEMPTS

    now = datetime.fromisoformat("2026-11-21T10:00:00+00:00")
    with engine.begin() as conn:
        insert_delivery(conn, Delivery("gitlab", "odd", None, "{}", b"{}", now))
    put(engine, "github", "ping", "fine", now, event_type="ping")
    worker = Worker(engine, lambda: SCOPE, Clock(now))
    worker.drain()
    rows = inbox_by_delivery(engine)
    assert rows["odd"].status == "failed" and rows["odd"].attempts == MAX_ATTEMPTS
    assert "unknown source 'gitlab'" in rows["odd"].error
    assert rows["fine"].status == "done" and worker.metrics.registry.get_sample_value(
        "firstline_deliveries_failed_total") == 1
    decided = [d for (d,) in rows_of_decisions(engine)]
    assert decided == ["fine"]


def inbox_by_delivery(engine: Engine) -> dict[str, Any]:
    with engine.connect() as conn:
        return {r.delivery_id: r for r in conn.execute(select(inbox))}


def rows_of_decisions(engine: Engine) -> list[tuple[object]]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(select(decisions.c.delivery_id))]


def reset_decisions(engine: Engine) -> None:
    """Forget every decision and its effects; put every delivery back in line."""
    from router.db.tables import charges, escalation_items, outbox

    with engine.begin() as conn:
        for table in (outbox, charges, escalation_items, escalations, timers, items, decisions):
            conn.execute(table.delete())
        conn.execute(inbox.update().values(status="pending", processed_at=None))


def snapshot(engine: Engine) -> dict[str, list[tuple[object, ...]]]:
    """Every recorded row, without the ids a database hands out."""
    from router.db.tables import charges, escalation_items, outbox

    ids = {"id", "decision_id", "escalation_id", "inbox_id"}
    out = {}
    with engine.connect() as conn:
        for table in (decisions, items, timers, escalations, escalation_items, charges,
                      outbox):
            columns = [c for c in table.c if c.name not in ids]
            out[table.name] = sorted((tuple(r) for r in conn.execute(select(*columns))),
                                     key=repr)
        # a page's charge is keyed by its escalation's id: name the page instead
        keys = {str(i): k for i, k in conn.execute(select(escalations.c.id,
                                                          escalations.c.dedup_key))}
        out["charges"] = sorted(((w, s, keys[i] if s == "page" else i, h)
                                 for w, s, i, h in out["charges"]), key=repr)
    return out


def test_a_batch_writes_what_one_delivery_at_a_time_writes(engine: Engine) -> None:
    """Batched writes are an optimisation only: deciding every example delivery (and the
    timers they arm) in batches of 100 records exactly what batches of one record."""
    from tests.support import ROOT

    # Just after the examples' 2026 tickets were opened: their timed triggers are pending.
    received = datetime.fromisoformat("2026-11-16T09:01:00+00:00")
    paths = sorted((ROOT / "examples" / "deliveries").glob("*/*.json"))
    for n, path in enumerate(paths):
        source = path.parent.name
        event_type = path.name.split(".")[0] if source == "github" else None
        put(engine, source, "", f"ex-{n}", received, event_type, body=path.read_bytes())
    runs = []
    for batch in (100, 1):
        clock = Clock(received)
        worker = Worker(engine, lambda: SCOPE, clock, batch=batch)
        worker.drain()
        clock.now = received + timedelta(days=3)  # every armed timer comes due
        worker.drain()
        runs.append(snapshot(engine))
        reset_decisions(engine)
    batched, single = runs
    assert len(batched["decisions"]) > len(paths)  # timers fired too
    assert batched["escalations"] and batched["timers"] and batched["outbox"]
    assert batched == single


def test_a_delivery_that_breaks_its_batch_is_found_and_parked(engine: Engine,
                                                              db_url: str) -> None:
    """When the database refuses one delivery's decision, the batch is decided again one
    delivery at a time: the others are decided, the broken one is parked as failed."""
    from router.work.worker import MAX_ATTEMPTS

    with engine.begin() as conn:
        if engine.dialect.name == "sqlite":
            conn.exec_driver_sql(
                "CREATE TRIGGER poison BEFORE INSERT ON decisions "
                "WHEN NEW.delivery_id = 'poison' BEGIN SELECT RAISE(ABORT, 'poisoned'); END")
        else:
            conn.exec_driver_sql(
                "CREATE FUNCTION poison() RETURNS trigger AS $$ BEGIN "
                "IF NEW.delivery_id = 'poison' THEN RAISE EXCEPTION 'poisoned'; END IF; "
                "RETURN NEW; END $$ LANGUAGE plpgsql")
            conn.exec_driver_sql("CREATE TRIGGER poison BEFORE INSERT ON decisions "
                                 "FOR EACH ROW EXECUTE FUNCTION poison()")
    now = datetime.fromisoformat("2026-11-21T10:00:00+00:00")
    put(engine, "jira", "issue_created", "before", now)
    put(engine, "github", "ping", "poison", now, event_type="ping")
    put(engine, "jira", "issue_updated.resolved", "after", now)
    worker = Worker(engine, lambda: SCOPE, Clock(now))
    worker.drain()
    inbox = inbox_by_delivery(engine)
    assert inbox["poison"].status == "failed" and inbox["poison"].attempts == MAX_ATTEMPTS
    assert "poisoned" in inbox["poison"].error
    assert inbox["before"].status == inbox["after"].status == "done"
    assert sorted(d for (d,) in rows_of_decisions(engine)) == ["after", "before"]
    counted = worker.metrics.registry.get_sample_value
    assert counted("firstline_decision_latency_seconds_count") == 2  # decided
    assert counted("firstline_deliveries_failed_total") == 1
    assert len(rows(engine, items, items.c.item_id)) == 1  # both are one Jira issue


def test_on_sqlite_the_worker_waits_for_the_write_lock_and_takes_it_when_let_go(
        tmp_path: Path) -> None:
    """Another process holds the write lock: the worker's BEGIN waits (trying again each
    millisecond, not SQLite's sleeping busy handler) and goes on once it is let go."""
    import sqlite3
    import threading
    import time

    from router.db.engine import upgrade

    path = tmp_path / "locked.db"
    upgrade(f"sqlite:///{path}")
    engine = worker_engine(f"sqlite:///{path}")
    other = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    began: list[bool] = []

    def write() -> None:
        with engine.begin() as conn:
            began.append(other.in_transaction)
            conn.execute(inbox.delete())

    writer = threading.Thread(target=write)
    writer.start()
    time.sleep(0.2)
    assert began == []  # still waiting for the lock
    other.execute("COMMIT")
    writer.join(10)
    other.close()
    engine.dispose()
    assert began == [False]  # it began only once the other writer had let go


def test_busy_tables_that_outgrew_their_statistics_are_analyzed(engine: Engine) -> None:
    """On PostgreSQL a new database's plans were made for empty tables; a periodic job
    ANALYZEs a busy table once it changed more than it held at its last ANALYZE."""
    if engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL's statistics")
    def grow(n: int) -> None:
        received = datetime.fromisoformat("2026-11-21T10:00:00+00:00")
        with engine.begin() as conn:
            insert_deliveries(conn, [Delivery(
                "github", f"d-{i}-{n}", "issues", "{}", b"{}", received) for i in range(n)])
            conn.exec_driver_sql("SELECT pg_stat_force_next_flush()")  # counters now

    grow(100)
    assert analyze_busy_tables(engine) == []  # too few changes to matter
    grow(600)
    assert analyze_busy_tables(engine) == ["inbox"]
    with engine.connect() as conn:  # what the planner now knows of it
        known = conn.exec_driver_sql("SELECT reltuples FROM pg_class "
                                     "WHERE oid = to_regclass('inbox')").scalar()
    assert known == 700
    grow(600)  # 600 more on 700: not more than it held
    assert analyze_busy_tables(engine) == []
