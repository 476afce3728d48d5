"""Engines and migrations."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, inspect

from router.db import make_engine, pending_migrations, upgrade


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


def test_an_unsupported_database_url_is_refused() -> None:
    with pytest.raises(ValueError, match="unsupported database URL scheme 'mysql'"):
        make_engine("mysql://localhost/firstline")
