"""The service's commands: `firstline serve`, `firstline worker`, `firstline db upgrade`.

Kept apart from `router.cli` so that `check`, `explain` and `replay` start without
importing the web stack.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from router.core.simulate import Delivery

if TYPE_CHECKING:
    from sqlalchemy import Connection

    from router.settings import Settings


class ServiceError(Exception):
    """The service cannot start; one line saying why and what to do."""


def _settings(args: argparse.Namespace) -> Settings:
    from router.settings import Settings

    if getattr(args, "rules", None):
        os.environ["FIRSTLINE_RULES"] = args.rules
    try:
        return Settings()
    except Exception as exc:  # pydantic's ValidationError: a bad FIRSTLINE_* value
        raise ServiceError(f"configuration: {exc}") from exc


def _ready(args: argparse.Namespace) -> Settings:
    """Return settings after checking the scope note and the database."""
    from router.scope.holder import ScopeHolder
    from router.service import DatabaseNotReady, prepare_database

    settings = _settings(args)
    ScopeHolder(settings, warn=False)  # raises ScopeError, printed by main; warns later
    try:
        prepare_database(settings)
    except DatabaseNotReady as exc:
        raise ServiceError(str(exc)) from exc
    return settings


def _own_database(settings: Settings) -> None:
    from router.service import DatabaseNotReady, own_database

    try:
        own_database(settings)
    except DatabaseNotReady as exc:
        raise ServiceError(str(exc)) from exc


def cmd_serve(args: argparse.Namespace) -> int:
    """Receive webhooks, and (unless --no-worker) decide and act, in this one process."""
    from router.logs import setup_logging
    from router.service import serve

    settings = _ready(args)
    sqlite = settings.database_url.startswith("sqlite")
    if args.no_worker and sqlite:
        raise ServiceError("--no-worker needs PostgreSQL: on SQLite one `firstline serve` "
                           "receives, decides and acts (SQLite serves one process)")
    setup_logging(settings.log_format)
    if not args.no_worker:
        _own_database(settings)
    return serve(settings, args.host, args.port, run_worker=not args.no_worker)


def cmd_worker(args: argparse.Namespace) -> int:
    """Decide deliveries and timers and perform the outbox, without the HTTP side."""
    from router.logs import setup_logging

    settings = _ready(args)
    setup_logging(settings.log_format)
    _own_database(settings)
    if args.once:
        return _work_once(settings)
    from router.service import work

    return work(settings)


def _work_once(settings: Settings) -> int:
    from router.db.engine import worker_engine
    from router.scope.holder import ScopeHolder
    from router.work.outbox import Performer
    from router.work.runner import lazy_adapters
    from router.work.worker import Worker, utcnow

    engine = worker_engine(settings.database_url)
    worker = Worker(engine, ScopeHolder(settings))
    performer = Performer(engine, lazy_adapters(settings), utcnow,
                          concurrency=settings.outbox_concurrency)
    try:
        decided = worker.drain()
        print(f"decided {decided} deliveries and timers, performed {performer.drain()} actions")
    finally:
        performer.close()
        engine.dispose()
    return 0


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    """Apply the pending migrations; run again, say there is nothing to do."""
    from router.db.engine import state_of, upgrade

    settings = _settings(args)
    try:
        before, after = upgrade(settings.database_url)
    except Exception as exc:
        raise ServiceError(f"db upgrade failed: {type(exc).__name__}: "
                           f"{str(exc).splitlines()[0] if str(exc) else ''}") from exc
    if newer := state_of(after).unknown:
        print(f"database is at revision {_revisions(newer)}, newer than this release: "
              "nothing to do")
    elif before == after:
        print(f"database is up to date (revision {_revisions(after)}): nothing to do")
    else:
        print(f"database upgraded from revision {_revisions(before)} to {_revisions(after)}")
    return 0


def _revisions(revisions: tuple[str, ...]) -> str:
    return ", ".join(revisions) or "none (empty database)"


def cmd_db_prune(args: argparse.Namespace) -> int:
    """Delete (or with --dry-run count) what FIRSTLINE_RETENTION_DAYS no longer keeps."""
    from router.db.engine import make_engine
    from router.db.prune import prune

    settings = _settings(args)
    days = settings.retention_days
    if not days:
        print("FIRSTLINE_RETENTION_DAYS is 0: everything is kept, nothing to prune")
        return 0
    where, missing = _database_at(settings.database_url)
    if missing:  # never create one (see `database`)
        raise ServiceError(f"no database at {where}: set FIRSTLINE_DATABASE_URL to the "
                           "service's database")
    engine = make_engine(settings.database_url)
    try:
        done = prune(engine, days, datetime.now(UTC), dry_run=args.dry_run)
    except Exception as exc:
        raise ServiceError(f"cannot prune the database at {where}: "
                           f"{type(exc).__name__}") from exc
    finally:
        engine.dispose()
    verb = "would delete" if args.dry_run else "deleted"
    print(f"{verb} {done.deliveries} deliveries and {done.actions} finished outbox actions "
          f"older than {done.cutoff.isoformat(timespec='seconds')} ({days} days)")
    print(f"kept {done.kept_deliveries} deliveries and {done.kept_actions} actions that open "
          "or recently resolved escalations still need")
    return 0


def deliveries_from_db(since: str | None, tz: ZoneInfo) -> list[Delivery]:
    """Read the stored deliveries (oldest first) as replay input; `since` is a date
    (midnight in `tz`, the scope note's timezone) or a time with an offset."""
    from router.core.durations import parse_since
    from router.work.normalize import stored_deliveries

    settings = _settings(argparse.Namespace())
    start = None
    if since:
        try:
            start = parse_since(since, tz)
        except ValueError as exc:
            raise ServiceError(f"--since {exc}") from None
    with database(settings) as conn:
        return stored_deliveries(conn, start)


def cmd_outbox_list(args: argparse.Namespace) -> int:
    """List outbox actions (default: all not done), oldest first."""
    from sqlalchemy import select

    from router.cli.render import format_table
    from router.db.tables import outbox

    stmt = select(outbox).order_by(outbox.c.id)
    if args.status != "all":
        stmt = (stmt.where(outbox.c.status != "done") if args.status == "open"
                else stmt.where(outbox.c.status == args.status))
    with database(_settings(args)) as conn:
        rows = conn.execute(stmt).all()
    table = [[str(r.id), r.status, r.type, _target_key(r.target), str(r.attempts),
              r.next_at.isoformat(timespec="seconds"), (r.last_error or "")[:80]] for r in rows]
    print(format_table(["id", "status", "action", "item", "attempts", "next", "last error"],
                       table))
    print(f"{len(rows)} actions")
    return 0


def cmd_outbox_retry(args: argparse.Namespace) -> int:
    """Put a dead (or waiting) action back in line now."""
    from router.db.outbox import RetryRefused, retry_action

    try:
        with database(_settings(args), write=True) as conn:
            retry_action(conn, args.id, datetime.now(UTC))
    except RetryRefused as exc:
        raise ServiceError(f"outbox: {exc}") from exc
    print(f"action {args.id} will be retried now")
    return 0


@contextmanager
def database(settings: Settings, write: bool = False) -> Iterator[Connection]:
    """Connect a command to the service's existing database (in a transaction when
    `write`), never creating one: a command run from another folder would otherwise
    make an empty ./firstline.db. Each failure is one line naming the database and
    FIRSTLINE_DATABASE_URL."""
    from sqlalchemy.exc import SQLAlchemyError

    from router.db.engine import make_engine

    where, missing = _database_at(settings.database_url)
    if missing:
        raise ServiceError(f"no database at {where}: set FIRSTLINE_DATABASE_URL to the "
                           "service's database (the default is ./firstline.db in the "
                           "current folder)")
    try:
        engine = make_engine(settings.database_url)
    except ValueError as exc:
        raise ServiceError(f"FIRSTLINE_DATABASE_URL: {exc}") from None
    try:
        with (engine.begin() if write else engine.connect()) as conn:
            yield conn
    except SQLAlchemyError as exc:
        cause = getattr(exc, "orig", None) or exc
        first = str(cause).strip().splitlines()[0] if str(cause).strip() else ""
        raise ServiceError(f"cannot read the database at {where}: {type(cause).__name__}: "
                           f"{first} (check FIRSTLINE_DATABASE_URL, or run `firstline db "
                           "upgrade`)") from None
    finally:
        engine.dispose()


def _database_at(url: str) -> tuple[str, bool]:
    """Return where `url` points, fit to show (a SQLite file's absolute path, else the URL
    without its password), and whether it is a SQLite file that does not exist."""
    from sqlalchemy import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ServiceError("FIRSTLINE_DATABASE_URL is not a database URL: use "
                           "sqlite:///PATH or postgresql+psycopg://HOST/DB") from None
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return parsed.render_as_string(hide_password=True), False
    path = Path(str(parsed.database)).resolve()
    return str(path), not path.exists()


def _target_key(target_json: str) -> str:
    import orjson

    return str(orjson.loads(target_json).get("key", "?"))
