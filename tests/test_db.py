"""Engines and migrations."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest
from sqlalchemy import Engine, inspect, select

from router.db.engine import make_engine, pending_migrations, upgrade
from router.db.tables import outbox


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
