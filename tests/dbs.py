"""Fresh, migrated databases for tests: a SQLite file, or a new PostgreSQL database.

PostgreSQL tests run when FIRSTLINE_TEST_PG_URL names a server (`.ci/run` starts one with
`scripts/pg-test-server`); without it they are skipped, never faked.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import create_engine, make_url, text

from router.db import upgrade

PG_ENV = "FIRSTLINE_TEST_PG_URL"


@contextmanager
def fresh_database_url(kind: str, tmp: pytest.TempPathFactory) -> Iterator[str]:
    """Yield the URL of an empty database with every migration applied."""
    if kind == "sqlite":
        url = f"sqlite:///{tmp.mktemp('db') / 'firstline.db'}"
        upgrade(url)
        yield url
        return
    server = os.environ.get(PG_ENV)
    if not server:
        pytest.skip(f"{PG_ENV} is not set: no PostgreSQL server to test on")
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(server).set(database=name).render_as_string(hide_password=False)
    try:
        upgrade(url)
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
