"""Database engines and migrations: SQLite (embedded default) or PostgreSQL (production).

SQLite runs in WAL mode so readers never block the writer, with `synchronous=NORMAL`: a
commit survives a crash of the process (the acknowledgement guarantee of SPEC §8), and
only a power loss can take back the last commits before a checkpoint. A busy timeout lets
two processes share the file instead of failing at once on a lock.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event, make_url

MIGRATIONS = Path(__file__).parent / "migrations"
SQLITE_BUSY_TIMEOUT_MS = 5000
# Senders give up after 5-10 s (SPEC §6 table); fail well before so they get a 503.
PG_CONNECT_TIMEOUT_S = 3


def make_engine(url: str, **kwargs: Any) -> Engine:
    """Create an engine for a `sqlite:///` or `postgresql+psycopg://` URL, tuned for firstline."""
    parsed = make_url(url)
    # Statement parameters hold whole webhook bodies: keep them out of error messages.
    kwargs.setdefault("hide_parameters", True)
    if parsed.get_backend_name() == "sqlite":
        engine = create_engine(parsed, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if parsed.get_backend_name() == "postgresql":
        connect_args = {"connect_timeout": PG_CONNECT_TIMEOUT_S, **kwargs.pop("connect_args", {})}
        return create_engine(parsed, connect_args=connect_args, **kwargs)
    raise ValueError(
        f"unsupported database URL scheme {parsed.drivername!r}: "
        "use sqlite:///PATH or postgresql+psycopg://HOST/DB"
    )


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    """Put each new SQLite connection in WAL mode with a busy timeout (see module doc)."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def alembic_config() -> Config:
    """Point Alembic at the migrations shipped inside the package (no alembic.ini needed)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def upgrade(url: str, revision: str = "head") -> None:
    """Apply every pending migration (`firstline db upgrade`)."""
    engine = make_engine(url)
    try:
        upgrade_engine(engine, revision)
    finally:
        engine.dispose()


def upgrade_engine(engine: Engine, revision: str = "head") -> None:
    """Apply migrations on an existing engine, in one transaction where the database allows."""
    config = alembic_config()
    with engine.begin() as conn:
        # env.py uses this connection rather than reading a URL from an ini file, so a
        # password in the URL never passes through configparser interpolation.
        config.attributes["connection"] = conn
        command.upgrade(config, revision)


def pending_migrations(engine: Engine) -> bool:
    """Tell whether the database lacks a migration this code expects (`/readyz`, `serve`)."""
    with engine.connect() as conn:
        current = set(MigrationContext.configure(conn).get_current_heads())
    return current != _script_heads()


@cache
def _script_heads() -> frozenset[str]:
    """Read the migration heads once: they are files in the package and never change."""
    return frozenset(ScriptDirectory.from_config(alembic_config()).get_heads())
