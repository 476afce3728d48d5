"""Database engines and migrations: SQLite (embedded default) or PostgreSQL (production).

SQLite runs in WAL mode so readers never block the writer, with `synchronous=NORMAL`: a
commit survives a crash of the process (the acknowledgement guarantee of SPEC §8), and
only a power loss can take back the last commits before a checkpoint. A busy timeout lets
two processes share the file instead of failing at once on a lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import threading
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.script.revision import ResolutionError
from sqlalchemy import Connection, Engine, create_engine, event, make_url, text
from sqlalchemy.exc import OperationalError

MIGRATIONS = Path(__file__).parent / "migrations"
SQLITE_BUSY_TIMEOUT_MS = 5000
LOCK_RETRY_S = 0.001  # SQLite: how long to wait before trying the write lock again
# Senders give up after 5-10 s (SPEC §6 table); fail well before so they get a 503.
PG_CONNECT_TIMEOUT_S = 3
# The tables the worker and performers query every batch, which grow from nothing.
BUSY_TABLES = ("inbox", "outbox", "items", "decisions", "timers")
_CHANGED = text("SELECT relname FROM pg_stat_user_tables WHERE schemaname = current_schema() "
                "AND relname = ANY(:names) "
                "AND n_mod_since_analyze >= GREATEST(n_live_tup, :least) ORDER BY relname")
_XACT_LOCK = text("SELECT pg_advisory_xact_lock(:k)")


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


def xact_lock(conn: Connection, key: int) -> None:
    """Take a PostgreSQL advisory lock until the transaction ends (waiting for it)."""
    conn.execute(_XACT_LOCK, {"k": key})


@contextlib.contextmanager
def try_session_lock(engine: Engine, key: int) -> Iterator[bool]:
    """Hold a PostgreSQL session advisory lock while inside, if no other session has it;
    yield whether it is held (always true on SQLite, which serves one process)."""
    if engine.dialect.name != "postgresql":
        yield True
        return
    with engine.connect() as conn:
        held = bool(conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar())
        conn.commit()
        try:
            yield held
        finally:
            if held:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                conn.commit()


def analyze_changed(conn: Connection, least: int = 500) -> list[str]:
    """ANALYZE the busy tables (PostgreSQL) that changed more since their last ANALYZE
    than they now hold, and at least `least` rows; return their names.

    psycopg prepares a statement on the server after its fifth run, and PostgreSQL then
    keeps the plan it made while the tables were nearly empty: sequential scans and
    nested loops over the whole outbox. On a new database a claim came to read 8,000
    pages (28 ms) and PostgreSQL's CPU per delivery went from 1.5 to 3.7-7 ms, until
    autovacuum's ANALYZE, which looks about once a minute, replaced the plans. An ANALYZE
    is what makes PostgreSQL plan again; once the tables hold real data, the plans stay
    good as they grow, and this finds nothing to do.
    """
    names = [name for (name,) in conn.execute(_CHANGED, {"names": list(BUSY_TABLES),
                                                          "least": least})]
    if names:  # names from BUSY_TABLES only
        conn.exec_driver_sql("ANALYZE " + ", ".join(names))
    return names


def alembic_config() -> Config:
    """Point Alembic at the migrations shipped inside the package (no alembic.ini needed)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


Revisions = tuple[str, ...]
MIGRATE_LOCK = 0x666C6D  # "flm": held while migrating, so two upgrades take turns


def upgrade(url: str, revision: str = "head") -> tuple[Revisions, Revisions]:
    """Apply every pending migration (`firstline db upgrade`); return the revisions the
    database was at before and after (equal: there was nothing to do)."""
    engine = make_engine(url)
    try:
        return upgrade_engine(engine, revision)
    finally:
        engine.dispose()


def upgrade_engine(engine: Engine, revision: str = "head") -> tuple[Revisions, Revisions]:
    """Apply migrations on an existing engine, in one transaction where the database
    allows; return the revisions before and after.

    A database already at (or, from a newer release, past) this code's head is left
    alone: Alembic would refuse a revision it does not know. On PostgreSQL two upgrades
    at once (two hook Jobs, a Job and a hand) take turns; the second finds nothing to do.
    """
    config = alembic_config()
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            xact_lock(conn, MIGRATE_LOCK)
        before = _current(conn)
        if revision == "head" and not state_of(before).missing:
            return before, before
        # env.py uses this connection rather than reading a URL from an ini file, so a
        # password in the URL never passes through configparser interpolation.
        config.attributes["connection"] = conn
        command.upgrade(config, revision)
        return before, _current(conn)


def _current(conn: Connection) -> Revisions:
    return tuple(sorted(MigrationContext.configure(conn).get_current_heads()))


@dataclass(frozen=True, slots=True)
class Migrations:
    """Where the database stands against the migrations this code ships."""

    missing: bool  # the code's head is not applied: run `firstline db upgrade`
    unknown: tuple[str, ...]  # applied revisions this code does not know: a newer release's


def migration_state(engine: Engine) -> Migrations:
    """Compare the database's applied revisions with this code's head.

    During a rolling upgrade the next release's hook Job migrates first, while this
    release still serves: a revision this code does not know is taken for a newer one,
    built on ours (the history is linear), so nothing is `missing`.
    """
    with engine.connect() as conn:
        return state_of(_current(conn))


def state_of(current: Revisions) -> Migrations:
    """Tell where a database at the `current` revisions stands (see `migration_state`)."""
    script = _script()
    unknown = tuple(r for r in current if not _known(script, r))
    applied: set[str] = set()
    for rev in set(current) - set(unknown):
        applied.update(r.revision for r in script.iterate_revisions(rev, "base"))
    missing = not unknown and not set(script.get_heads()) <= applied
    return Migrations(missing=missing, unknown=unknown)


def pending_migrations(engine: Engine) -> bool:
    """Tell whether the database lacks a migration this code expects (`/readyz`, `serve`)."""
    return migration_state(engine).missing


def _known(script: ScriptDirectory, revision: str) -> bool:
    try:
        return script.revision_map.get_revision(revision) is not None
    except ResolutionError:
        return False


@cache
def _script() -> ScriptDirectory:
    """Read the migrations once: they are files in the package and never change."""
    return ScriptDirectory.from_config(alembic_config())


class DatabaseInUse(RuntimeError):
    """Another process already serves this SQLite file."""


def hold_sqlite_file(engine: Engine) -> object | None:
    """Lock a SQLite database file for this process until it exits; None on PostgreSQL.

    SQLite serves one process (`firstline serve`, or `firstline worker` alone): a second
    one would fight it for the write lock, and would take the first one's claimed actions
    for a dead process's (router.db.outbox). The kernel drops the lock when the process
    ends, `kill -9` included. Returns the open file, which must be kept (closing it lets go).
    """
    if engine.dialect.name != "sqlite" or not engine.url.database:
        return None
    path = Path(engine.url.database)
    held = path.open("rb")
    try:
        fcntl.flock(held.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        held.close()
        raise DatabaseInUse(
            f"another firstline process is serving {path}: SQLite serves one process "
            "(stop the other, or use PostgreSQL to run several)") from None
    return held


_TURNS: dict[int, threading.Lock] = {}


def writer_turn(engine: Engine) -> AbstractContextManager[object]:
    """Return what the worker and the outbox performer hold around a SQLite transaction.

    SQLite has one writer, and its busy handler sleeps between tries: the side woken more
    often (the worker) kept winning and the performer starved. A shared in-process lock
    hands the turn over at once. PostgreSQL needs none.
    """
    if engine.dialect.name != "sqlite":
        return contextlib.nullcontext()
    return _TURNS.setdefault(id(engine), threading.Lock())


def worker_engine(url: str) -> Engine:
    """Return an engine for the worker and the performer; on SQLite its transactions
    begin IMMEDIATE, and wait for the write lock by trying again every millisecond.

    The worker reads, then writes: a deferred SQLite transaction would fail with
    SQLITE_BUSY_SNAPSHOT whenever ingest commits in between. Taking the write lock at BEGIN
    (SQLAlchemy's pysqlite recipe, which SAVEPOINTs need as well) makes it wait instead.
    SQLite's own busy handler sleeps 1, 2, 5 ... 100 ms between tries: with `serve`'s
    processes all writing, the one that slept longest kept losing the lock (a performer
    waited seconds). Trying every millisecond takes the lock when it is let go.
    """
    engine = make_engine(url)
    if engine.dialect.name == "sqlite":
        @event.listens_for(engine, "connect")
        def _no_implicit_begin(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.isolation_level = None
            dbapi_connection.execute("PRAGMA busy_timeout=0")  # _begin_immediate waits

        @event.listens_for(engine, "begin")
        def _begin_immediate(conn: Connection) -> None:
            deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
            while True:
                try:
                    conn.exec_driver_sql("BEGIN IMMEDIATE")
                    return
                except OperationalError as exc:
                    if "locked" not in str(exc.orig) or time.monotonic() > deadline:
                        raise
                time.sleep(LOCK_RETRY_S)
    return engine
