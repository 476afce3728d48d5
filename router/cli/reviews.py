"""`firstline escalations` and `firstline review`: read the escalations the service keeps.

It reads the database named by FIRSTLINE_DATABASE_URL and the scope note (`--rules`,
else FIRSTLINE_RULES, else ./scope.yaml) for its timezone, people and trigger names.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from router.cli.render import dumps, format_table

if TYPE_CHECKING:
    from sqlalchemy import Connection


class ReadError(Exception):
    """A read command cannot run; one line saying why."""


def add_commands(sub: Any) -> None:
    """Register `escalations` and `review` on the top-level subcommands."""
    p = sub.add_parser("escalations", help="list escalations and whether the CTO was paged")
    p.add_argument("--rules", help="scope note (default: FIRSTLINE_RULES or ./scope.yaml)")
    p.add_argument("--state", choices=["open", "resolved", "closed"],
                   help="only escalations in this state")
    p.add_argument("--page", choices=["shadow", "pending", "sent", "dead"],
                   help="only escalations whose page is in this state")
    p.add_argument("--trigger", help="only escalations of this trigger id")
    p.add_argument("--since", help="paged since this date (YYYY-MM-DD, midnight in the "
                   "scope note's timezone) or time with an offset")
    p.add_argument("--limit", type=int, default=100, help="at most this many (default 100)")
    p.add_argument("--cursor", type=int, help="continue after a previous list")
    p.add_argument("--json", action="store_true", help="one JSON object per escalation")
    p.set_defaults(func=cmd_escalations)

    p = sub.add_parser("review", help="print an escalation's post-incident review checklist")
    p.add_argument("id", type=int, metavar="ESCALATION_ID", help="the escalation's id")
    p.add_argument("--rules", help="scope note (default: FIRSTLINE_RULES or ./scope.yaml)")
    p.add_argument("--format", choices=["md", "json"], default="md",
                   help="Markdown (default) or the JSON object")
    p.set_defaults(func=cmd_review)


def cmd_escalations(args: argparse.Namespace) -> int:
    """List escalations, newest first, with their page's state."""
    from router.core.durations import parse_since
    from router.db.reads.escalations import Filter, describe, list_escalations

    with _reading(args) as (conn, scope):
        try:
            since = parse_since(args.since, scope.tz) if args.since else None
        except ValueError as exc:
            raise ReadError(f"--since {exc}") from None
        if args.limit < 1:
            raise ReadError(f"--limit {args.limit}: give 1 or more")
        rows, more = list_escalations(conn, Filter(args.state, args.trigger, args.page,
                                                   since, args.limit, args.cursor))
        found = describe(conn, rows)
    if args.json:
        for escalation in found:
            print(dumps(escalation))
    else:
        print(format_table(["id", "status", "page", "sent", "trigger", "items", "paged",
                            "review"], [_row(e, scope.tz) for e in found]))
        print(f"{len(found)} escalations" + (f"; more with --cursor {more}" if more else ""))
    return 0


def _row(e: dict[str, Any], tz: Any) -> list[str]:
    review = e["review"]
    return [str(e["id"]), e["status"], e["page"]["state"], _local(e["page"]["sent_at"], tz),
            e["trigger"], ",".join(i["key"] for i in e["items"]) or "-",
            _local(e["paged_at"], tz),
            (review["key"] or review["state"]) if review else "-"]


def _local(iso: str | None, tz: Any) -> str:
    if iso is None:
        return "-"
    return datetime.fromisoformat(iso).astimezone(tz).strftime("%Y-%m-%d %H:%M")


def cmd_review(args: argparse.Namespace) -> int:
    """Print one escalation's review checklist."""
    from router.reviews.checklist import UnknownEscalation, build_review
    from router.reviews.checklist_render import review_json, review_markdown

    with _reading(args) as (conn, scope):
        try:
            review = build_review(conn, scope, args.id, datetime.now(UTC))
        except UnknownEscalation as exc:
            raise ReadError(str(exc)) from None
    print(dumps(review_json(review)) if args.format == "json" else review_markdown(review),
          end="\n" if args.format == "json" else "")
    return 0


@contextmanager
def _reading(args: argparse.Namespace) -> Iterator[tuple[Connection, Any]]:
    """Load the scope note and connect to the service's existing database (never creating
    one: router.cli.service.database)."""
    from router.cli.service import database
    from router.scope.load import load_scope
    from router.settings import Settings

    if args.rules:
        os.environ["FIRSTLINE_RULES"] = args.rules
    try:
        settings = Settings()
    except Exception as exc:  # pydantic's ValidationError: a bad FIRSTLINE_* value
        raise ReadError(f"configuration: {exc}") from exc
    scope, _ = load_scope(settings.rules, settings.pagerduty_service_id)
    with database(settings) as conn:
        yield conn, scope
