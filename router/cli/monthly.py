"""`firstline report` and `firstline exceptions`: the monthly review and the exception log.

Both read the database (`FIRSTLINE_DATABASE_URL`) and the scope note in force
(`--rules`, else `FIRSTLINE_RULES`, else ./scope.yaml) for its timezone, cap and lines.
A month that is not YYYY-MM is a usage error (exit 2, one line, checked before anything
is opened); an empty month is a report of zeros.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, TypeVar

from router.cli.service import ServiceError, _settings
from router.reviews.periods import Month, month_of, parse_month
from router.scope.load import Scope, load_scope

if TYPE_CHECKING:
    from sqlalchemy import Connection, Engine

FORMATS = ("md", "json", "csv")
T = TypeVar("T")


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `report` and `exceptions` to the `firstline` command."""
    for name, func, about in (
            ("report", cmd_report, "print the monthly review (default: the last complete month)"),
            ("exceptions", cmd_exceptions, "print the exception log: every time the CTO's time "
             "was spent, why, hours, follow-up owner")):
        p = sub.add_parser(name, help=about)
        p.add_argument("--month", help="YYYY-MM in the scope note's timezone (default: the "
                       "last complete month)")
        p.add_argument("--format", default="md", choices=FORMATS,
                       help="md (Markdown, the default), json or csv")
        p.add_argument("--rules", help="scope note (default: FIRSTLINE_RULES or ./scope.yaml)")
        p.set_defaults(func=func)


def cmd_report(args: argparse.Namespace) -> int:
    from router.reviews.kept import month_review
    from router.reviews.render import monthly_csv, monthly_json, monthly_markdown

    report = _read(args, month_review).report
    _print(args.format, monthly_markdown(report), monthly_json(report), monthly_csv(report))
    return 0


def cmd_exceptions(args: argparse.Namespace) -> int:
    from router.reviews.exceptions import exception_log
    from router.reviews.render_log import log_csv, log_json, log_markdown

    log = _read(args, exception_log)
    _print(args.format, log_markdown(log), log_json(log), log_csv(log))
    return 0


def _read(args: argparse.Namespace, build: Callable[[Connection, Scope, Month], T]) -> T:
    """Build the month's review with `build`, a database error said in one line."""
    scope, month, engine = _open(args)
    try:
        with engine.connect() as conn:
            return build(conn, scope, month)
    except Exception as exc:
        raise _unreadable(exc) from exc
    finally:
        engine.dispose()


def _open(args: argparse.Namespace) -> tuple[Scope, Month, Engine]:
    """Check the month first (a usage error), then load the note and open the database."""
    if args.month is not None:
        parse_month(args.month)
    from router.db.engine import make_engine

    settings = _settings(args)
    scope = load_scope(settings.rules)[0]
    month = month_of(args.month, scope.tz, scope.week_starts, datetime.now(UTC))
    try:
        engine = make_engine(settings.database_url)
    except ValueError as exc:
        raise ServiceError(str(exc)) from exc
    return scope, month, engine


def _unreadable(exc: Exception) -> ServiceError:
    first = str(exc).splitlines()[0] if str(exc) else ""
    if "no such table" in first or "does not exist" in first:
        return ServiceError("the database has no firstline tables: run `firstline db upgrade`")
    return ServiceError(f"cannot read the database: {type(exc).__name__}: {first}")


def _print(chosen: str, markdown: str, as_json: object, as_csv: str) -> None:
    from router.cli.render import dumps

    if chosen == "json":
        print(dumps(as_json))
    elif chosen == "csv":
        print(as_csv, end="")
    else:
        print(markdown, end="")
