"""The `firstline` command and its subcommands (`firstline --help` lists them all).

Every failure a user can cause (a bad file, an unknown source, an invalid scope note)
ends with a one-line message naming the file and the problem and exit status 1, never a
traceback; a malformed argument value (a month not YYYY-MM) exits 2, as argparse does.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from router.cli import backfill as backfill_cli
from router.cli import monthly as monthly_cli
from router.cli import payloads
from router.cli import reviews as reviews_cli
from router.cli import service as service_cli
from router.cli.render import decision_json, dumps, format_table, table_row
from router.core.compare import Summary, compare, totals
from router.core.decide import decide
from router.core.model import History
from router.core.simulate import Step, simulate
from router.reviews.periods import BadMonth
from router.scope.load import Scope, ScopeError, load_scope
from router.scope.text import describe_scope


class CliError(Exception):
    """A problem the user can fix; printed as one line, exit status 1."""


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except (CliError, payloads.InputError, service_cli.ServiceError,
            reviews_cli.ReadError) as exc:
        print(f"firstline: {exc}", file=sys.stderr)
        return 1
    except ScopeError as exc:
        print("\n".join(exc.lines()), file=sys.stderr)
        return 1
    except BadMonth as exc:
        print(f"firstline: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        return 0
    except KeyboardInterrupt:
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="firstline")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("check", help="validate a scope note")
    p.add_argument("path", help="the scope note (YAML) to check")
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("scope", help="print the scope note as a short human-readable list")
    p.add_argument("path", help="the scope note (YAML) to print")
    p.set_defaults(func=cmd_scope)

    p = sub.add_parser("explain", help="decide on one vendor payload, with no side effects")
    p.add_argument("--rules", default="scope.yaml", help="scope note (default: ./scope.yaml)")
    p.add_argument("--source", required=True, help="jira, linear, github or pagerduty")
    p.add_argument("--event-type", help="GitHub's X-GitHub-Event (inferred when absent)")
    p.add_argument("--at", help="decide as of this ISO 8601 time (default: the event's own)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("payload", help="the delivery's body, as the vendor sent it (a JSON file)")
    p.set_defaults(func=cmd_explain)

    p = sub.add_parser("replay", help="decide on many recorded payloads in event time")
    p.add_argument("--rules", default="scope.yaml", help="scope note (default: ./scope.yaml)")
    p.add_argument("--compare", metavar="OLD", help="also decide under OLD and show changes")
    p.add_argument("--source", help="source of files not under a <source>/ folder")
    p.add_argument("--from-db", action="store_true",
                   help="replay what the service received (FIRSTLINE_DATABASE_URL)")
    p.add_argument("--since", help="with --from-db: deliveries received since this date "
                   "(midnight in the scope note's timezone) or time (with an offset)")
    p.add_argument("--json", action="store_true", help="print one JSON object per decision")
    p.add_argument("paths", nargs="*", metavar="DIR_OR_FILE",
                   help="payload files, or folders searched for *.json")
    p.set_defaults(func=cmd_replay)

    monthly_cli.add_commands(sub)

    p = sub.add_parser("serve", help="run the service: receive, decide and act, one process")
    p.add_argument("--rules", help="scope note (default: FIRSTLINE_RULES or ./scope.yaml)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on "
                   "(default: 127.0.0.1; 0.0.0.0 for every interface)")
    p.add_argument("--port", type=int, default=8000, help="port to listen on (default: 8000)")
    p.add_argument("--no-worker", action="store_true", help="only receive (PostgreSQL); "
                   "run `firstline worker` processes to decide and act")
    p.set_defaults(func=service_cli.cmd_serve)

    p = sub.add_parser("worker", help="decide deliveries and timers and act, without HTTP")
    p.add_argument("--rules", help="scope note (default: FIRSTLINE_RULES or ./scope.yaml)")
    p.add_argument("--once", action="store_true", help="process what is there, then exit")
    p.set_defaults(func=service_cli.cmd_worker)

    reviews_cli.add_commands(sub)

    p = sub.add_parser("outbox", help="list or retry the actions firstline performs")
    osub = p.add_subparsers(dest="outbox_command", required=True, metavar="ACTION")
    ls = osub.add_parser("list", help="list actions (default: those not done)")
    ls.add_argument("--status", default="open",
                    choices=["open", "pending", "dead", "shadow", "done", "all"],
                    help="which actions: open (every one not done; the default), pending, "
                    "dead, shadow, done or all")
    ls.set_defaults(func=service_cli.cmd_outbox_list)
    retry = osub.add_parser("retry", help="retry a dead or waiting action now")
    retry.add_argument("id", type=int, help="the action's id (from `outbox list`)")
    retry.set_defaults(func=service_cli.cmd_outbox_retry)

    p = sub.add_parser("db", help="database maintenance")
    dbsub = p.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    up = dbsub.add_parser("upgrade", help="apply database migrations")
    up.set_defaults(func=service_cli.cmd_db_upgrade)
    load = dbsub.add_parser("load", help="store recorded deliveries and decide each as of "
                            "its own time (shadow mode only)")
    load.add_argument("--rules", help="scope note (default: FIRSTLINE_RULES or ./scope.yaml)")
    load.add_argument("--source", help="source of files not under a <source>/ folder")
    load.add_argument("paths", nargs="+", metavar="DIR_OR_FILE",
                      help="payload files, or folders searched for *.json")
    load.set_defaults(func=backfill_cli.cmd_db_load)
    pr = dbsub.add_parser("prune", help="delete raw deliveries and finished actions older "
                                        "than FIRSTLINE_RETENTION_DAYS")
    pr.add_argument("--dry-run", action="store_true", help="only count what would go")
    pr.set_defaults(func=service_cli.cmd_db_prune)
    parser.description = "firstline: " + " | ".join(sub.choices)
    return parser


def _load(path: str, warn: bool = False) -> Scope:
    """Load a scope note; only `check` and `scope` show its warnings (explain and replay
    output is read by scripts, which want nothing but the decisions)."""
    scope, warnings = load_scope(path)
    if warn:
        for warning in warnings:
            print(warning, file=sys.stderr)
    return scope


def cmd_check(args: argparse.Namespace) -> int:
    scope = _load(args.path, warn=True)
    note = scope.note
    timed = sum(1 for t in scope.triggers if t.after)
    print(f"ok: {args.path}: {len(note.people)} people, {len(note.owners)} owner lines, "
          f"{len(note.severity)} severity rules, {len(note.triggers)} triggers ({timed} timed), "
          f"cap {scope.cap_hours:g}h/week, mode {note.mode}")
    return 0


def cmd_scope(args: argparse.Namespace) -> int:
    print(describe_scope(_load(args.path, warn=True)))
    return 0


def _parse_at(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        at = datetime.fromisoformat(text)
    except ValueError as exc:
        raise CliError(f"--at {text!r}: not an ISO 8601 time") from exc
    if at.tzinfo is None:
        raise CliError(f"--at {text!r}: give an offset, e.g. 2026-11-21T19:45:00+00:00")
    return at


def cmd_explain(args: argparse.Namespace) -> int:
    source = payloads.check_source(args.source)
    at = _parse_at(args.at)
    scope = _load(args.rules)
    event = payloads.load_event(Path(args.payload), source, args.event_type)
    now = at or event.occurred_at or datetime.now().astimezone()
    decision = decide(event, scope, History(), now)
    obj = decision_json(event, decision, scope)
    if args.json:
        print(dumps(obj))
    else:
        print(_explain_text(obj))
    return 0


def _explain_text(obj: dict[str, Any]) -> str:
    item = obj["item"]
    head = (f"{item['key']} ({item['source']} {item['kind']}, {obj['severity']}, "
            f"{item['status']})" if item else f"{obj['event']['source']} {obj['event']['type']}")
    lines = [f"{head} -> {obj['outcome']}"]
    if obj["owner"]:
        lines.append(f"  owner:   {obj['owner']} (scope line {obj['scope']!r})")
    for t in obj["triggers"]:
        lines.append(f"  fired:   {t['id']}: {t['name']} (because {'; '.join(t['because'])})")
    for t in obj["pending"]:
        lines.append(f"  pending: {t['id']} due {t['due']}")
    if obj["actions"]:
        lines.append("  actions: " + "; ".join(
            a["type"] + (f" {a['to']}" if a.get("to") else "") for a in obj["actions"]))
    lines.append(f"  reason:  {obj['reason']}")
    return "\n".join(lines)


def cmd_replay(args: argparse.Namespace) -> int:
    source = payloads.check_source(args.source) if args.source else None
    scope = _load(args.rules)
    if args.from_db:
        deliveries = service_cli.deliveries_from_db(args.since, scope.tz)
    elif not args.paths:
        raise CliError("replay: name payload files or folders, or pass --from-db")
    else:
        deliveries = list(payloads.load_deliveries([Path(p) for p in args.paths], source))
    steps = list(simulate(deliveries, scope))
    if args.compare:
        old = _load(args.compare)
        return _print_compare(steps, list(simulate(deliveries, old)), scope, old, args.json)
    if args.json:
        for step in steps:
            obj = decision_json(step.event, step.decision, scope)
            print(dumps({**obj, "file": step.origin}))
    else:
        rows = [table_row(s.at, s.event, s.decision, s.origin or "(timer)") for s in steps]
        print(format_table(["when", "event", "item", "outcome", "owner", "triggers", "file"],
                           rows))
    print(_totals("totals", steps), file=sys.stderr if args.json else sys.stdout)
    return 0


def _totals(label: str, steps: list[Step]) -> str:
    return totals(steps).line(label)


def _print_compare(new: list[Step], old: list[Step], new_scope: Scope, old_scope: Scope,
                   as_json: bool) -> int:
    """Print every decision that differs between the two scope notes, then both totals."""
    result = compare(old, new)
    for change in result.changes:
        if as_json:
            print(dumps({"file": change.origin,
                         "old": change.old.as_dict() if change.old else None,
                         "new": change.new.as_dict() if change.new else None}))
        else:
            print(f"{change.origin}: {_words(change.old)} -> {_words(change.new)}")
    out = sys.stderr if as_json else sys.stdout
    print(f"{len(result.changes)} decisions change", file=out)
    print(result.old.line(f"old {old_scope.path}"), file=out)
    print(result.new.line(f"new {new_scope.path}"), file=out)
    return 0


def _words(summary: Summary | None) -> str:
    return "(no decision)" if summary is None else summary.words()


if __name__ == "__main__":
    raise SystemExit(main())
