"""Shared fixtures: a fresh, migrated database per test, on SQLite and on PostgreSQL.

PostgreSQL tests run when `FIRSTLINE_TEST_PG_URL` names a server the tests may create
schemas on (`.ci/run` and `scripts/pg-test-server` provide one); otherwise they are
skipped. Each test gets its own schema, dropped afterwards.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from router.db.engine import make_engine, upgrade
from tests.support import pg_schema

PG_ENV = "FIRSTLINE_TEST_PG_URL"


@pytest.fixture(autouse=True)
def _no_firstline_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep a developer's FIRSTLINE_* variables out of the Settings the tests build."""
    for name in list(os.environ):
        if name.startswith("FIRSTLINE_") and name != PG_ENV:
            monkeypatch.delenv(name)


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Yield the URL of a fresh database without any tables."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'firstline.db'}"
        return
    base = os.environ.get(PG_ENV)
    if not base:
        pytest.skip(f"{PG_ENV} is not set")
    with pg_schema(base) as url:
        yield url


@pytest.fixture
def db_url(empty_db_url: str) -> str:
    """Return the URL of a fresh database migrated to the latest revision."""
    upgrade(empty_db_url)
    return empty_db_url


@pytest.fixture
def unreachable_pg_url() -> str:
    """Return a PostgreSQL URL where nothing listens: port 1 on loopback refuses at once."""
    return "postgresql+psycopg://firstline@127.0.0.1:1/firstline"


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    """Open an engine on the test database, for looking at what the app stored."""
    eng = make_engine(db_url)
    yield eng
    eng.dispose()
