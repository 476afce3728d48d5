"""Engines and migrations."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson
import pytest
import sqlalchemy as sa
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, inspect, select

from router.db.engine import alembic_config, make_engine, pending_migrations, upgrade
from router.db.tables import decisions, items, outbox


def test_sqlite_runs_in_wal_mode_with_a_busy_timeout(tmp_path: object) -> None:
    engine = make_engine(f"sqlite:///{tmp_path}/x.db")
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 5000
    engine.dispose()


def test_upgrade_applies_pending_migrations_once(empty_db_url: str) -> None:
    engine = make_engine(empty_db_url)
    try:
        assert pending_migrations(engine)
        upgrade(empty_db_url)
        upgrade(empty_db_url)  # a second run has nothing to do
        assert not pending_migrations(engine)
        assert "inbox" in inspect(engine).get_table_names()
    finally:
        engine.dispose()


def test_migrated_fixture_has_nothing_pending(engine: Engine) -> None:
    assert not pending_migrations(engine)


def test_upgrading_to_0004_names_the_item_of_every_queued_action(empty_db_url: str) -> None:
    upgrade(empty_db_url, "0003")
    engine = make_engine(empty_db_url)
    now = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
    targets = [{"source": "jira", "id": "10042", "key": "OPS-7"},
               {"source": "github", "id": "1", "key": "acme/web#7"},
               {}]  # nothing to name: left NULL, so nothing holds it back
    try:
        with engine.begin() as conn:  # the columns 0003 has: `item` is left out
            conn.execute(outbox.insert(), [
                dict(decision_id=1, type="comment", target=orjson.dumps(t).decode(),
                     action="{}", status=status, attempts=0, next_at=now, created_at=now)
                for t, status in zip(targets, ("pending", "done", "pending"), strict=True)])
        upgrade(empty_db_url)
        with engine.connect() as conn:
            items = conn.execute(select(outbox.c.item).order_by(outbox.c.id)).scalars().all()
        assert items == ["jira:10042", "github:1", None]
        assert not pending_migrations(engine)
    finally:
        engine.dispose()


def test_an_unsupported_database_url_is_refused() -> None:
    with pytest.raises(ValueError, match="unsupported database URL scheme 'mysql'"):
        make_engine("mysql://localhost/firstline")


def revision_before(name: str) -> str:
    """Return the revision a migration named `name` (its file's suffix) revises."""
    scripts = ScriptDirectory.from_config(alembic_config()).walk_revisions()
    down = next(s.down_revision for s in scripts if s.path.endswith(f"_{name}.py"))
    assert isinstance(down, str)
    return down


def test_upgrading_to_time_to_owner_records_it_on_each_items_first_owning_decision(
        empty_db_url: str) -> None:
    """Rows decided before time_to_owner get their time to owner from their decisions."""
    upgrade(empty_db_url, revision_before("time_to_owner"))
    engine = make_engine(empty_db_url)
    created = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)

    def decision(n: int, item: str, outcome: str, minutes: int, reason: str = "r",
                 actions: str = "[]", evidence: str = "{}") -> dict[str, object]:
        at = created + timedelta(minutes=minutes)
        return dict(inbox_id=n, source="jira", item_id=item, item_key=f"OPS-{item}",
                    event_type="jira:issue_updated", outcome=outcome, triggers="[]",
                    reason=reason, evidence=evidence, actions=actions, scope_hash="h",
                    event_at=at, decided_at=at)

    history = orjson.dumps({"newest_at": None, "created_at": created.isoformat(),
                            "held_since": {}, "assigned_by": {}, "handed_away": False})
    old_decisions = sa.table(*(["decisions"] + [sa.column(c) for c in (
        "inbox_id", "source", "item_id", "item_key", "event_type", "outcome", "triggers",
        "reason", "evidence", "actions", "scope_hash", "event_at", "decided_at")]))
    try:
        with engine.begin() as conn:
            conn.execute(items.insert(), [
                dict(source="jira", item_id=i, key=f"OPS-{i}", state="{}",
                     history=history.decode(), updated_at=created) for i in ("1", "2", "3")])
            conn.execute(old_decisions.insert(), [
                decision(1, "1", "keep", 1, "The item is resolved: nothing to route."),
                decision(2, "1", "reassign", 20),  # its first owner
                decision(3, "1", "reassign", 40),
                decision(4, "2", "escalate", 7, actions='[{"type": "page"}, {"type": "assign"}]'),
                decision(5, "3", "keep", 3, "Already with support-lead, not the CTO: ..."),
                decision(6, "3", "defer", 1)])  # out of order: 3's first owner is still at 3
        upgrade(empty_db_url)
        with engine.connect() as conn:
            got = conn.execute(select(decisions.c.inbox_id, decisions.c.owner_minutes)
                               .order_by(decisions.c.inbox_id)).all()
            owned = {key: orjson.loads(h)["owned"] for key, h in conn.execute(
                select(items.c.key, items.c.history))}
        assert got == [(1, None), (2, 20.0), (3, None), (4, 7.0), (5, 3.0), (6, None)]
        assert owned == {"OPS-1": True, "OPS-2": True, "OPS-3": True}
    finally:
        engine.dispose()
