"""A week for the dashboard's tests, seeded through the real worker and performer.

The deliveries are `examples/deliveries/` (the real vendor fixtures plus variants made
from them by examples/make_deliveries.py), stored as the webhook route stores them and
decided by the real worker with its clock on Friday 2026-11-20 (the week of Monday
2026-11-16, when the variants happened): a revenue-path escalation of two checkout
tickets, a ticket support put on the CTO and firstline handed back, seven architecture
questions of which the seventh is deferred past the 6 h cap.

Then the note switches to enforce and one more real delivery arrives (a GitHub issue
support assigned to the CTO): its actions go to a GitHub stand-in that does not know
the issue, answers 404, and the actions are dead: what the retry button is for. The
first batch decided under the enforce-mode note closes the week's escalations: their
pages were shadow actions, never sent (page state `shadow`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
from sqlalchemy import Engine

from adapters import github
from router.cli.payloads import load_deliveries
from router.core.simulate import order
from router.db.engine import worker_engine
from router.db.inbox import Delivery, insert_deliveries
from router.scope.load import load_scope
from router.settings import Settings
from router.work.outbox import Performer
from router.work.worker import Worker
from tests.standin_github import GitHubStandIn
from tests.support import EXAMPLE_SCOPE, ROOT, github_assigned_to_cto

DELIVERIES = ROOT / "examples" / "deliveries"
CLOCK = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)  # Friday; the week began Monday 16th
SILENT_SOURCE = "linear"  # its last delivery came three days before CLOCK
GITHUB_API = "https://api.github.test"
HANDED_BACK_ISSUE = ("Codertocat/Hello-World", 42)  # the enforce-mode delivery's issue


@dataclass(frozen=True)
class Seeded:
    shadow_rules: Path
    enforce_rules: Path
    dead_actions: list[int]


def scope_file(directory: Path, mode: str) -> Path:
    path = directory / f"scope-{mode}.yaml"
    path.write_text(EXAMPLE_SCOPE.read_text().replace("mode: shadow", f"mode: {mode}"))
    return path


def settings(db_url: str, rules: Path, **extra: str) -> Settings:
    return Settings(rules=rules, database_url=db_url, github_api_url=GITHUB_API,
                    github_token="gh-token", **extra)  # type: ignore[arg-type]


def seed(db_url: str, directory: Path, gh: GitHubStandIn) -> Seeded:
    """Seed the week; return the scope notes written and the dead actions' ids."""
    shadow, enforce = scope_file(directory, "shadow"), scope_file(directory, "enforce")
    engine = worker_engine(db_url)
    try:
        _store(engine, _example_deliveries())
        Worker(engine, lambda: load_scope(shadow)[0], lambda: CLOCK).drain()
        body = orjson.dumps(_new_issue_on_the_cto())
        _store(engine, [("github", "seed-handed-back", "issues", body, CLOCK)])
        enforced = load_scope(enforce)[0]
        Worker(engine, lambda: enforced, lambda: CLOCK).drain()
        perform(engine, db_url, enforce)
        dead = _dead(engine)
    finally:
        engine.dispose()
    assert dead, "the seeded GitHub actions should be dead (the stand-in answers 404)"
    assert not gh.issues, "the stand-in must not know the issue yet"
    return Seeded(shadow, enforce, dead)


def perform(engine: Engine, db_url: str, rules: Path) -> None:
    """Run the real performer until nothing is due, GitHub's actions going where the
    settings say (the stand-in), at the seeded week's clock."""
    gh_out = github.outbound(settings(db_url, rules))
    performer = Performer(engine, lambda: {"github": gh_out}, clock=lambda: CLOCK,
                          sleep=lambda _s: None)
    try:
        performer.drain()
    finally:
        performer.close()


def _new_issue_on_the_cto() -> dict[str, object]:
    """The real `issues.assigned` delivery, as a new issue support put on the CTO today."""
    payload = github_assigned_to_cto()
    issue = payload["issue"]
    issue.update(id=4200042, number=HANDED_BACK_ISSUE[1], created_at="2026-11-20T10:55:00Z",
                 updated_at="2026-11-20T11:00:00Z",
                 html_url=issue["html_url"].rsplit("/", 1)[0] + f"/{HANDED_BACK_ISSUE[1]}",
                 url=issue["url"].rsplit("/", 1)[0] + f"/{HANDED_BACK_ISSUE[1]}")
    return payload


def _example_deliveries() -> list[tuple[str, str, str | None, bytes, datetime]]:
    """Return (source, delivery id, event type, body, received) in event-time order."""
    parsed = order(load_deliveries([DELIVERIES], None))
    out = []
    for n, delivery in enumerate(parsed):
        path = Path(delivery.origin)
        source = path.parent.name
        event_type = path.name.split(".")[0] if source == "github" else None
        received = CLOCK - timedelta(minutes=len(parsed) - n)
        if source == SILENT_SOURCE:
            received = CLOCK - timedelta(days=3, minutes=len(parsed) - n)
        out.append((source, f"seed-{source}-{path.stem}", event_type, path.read_bytes(),
                    received))
    return out


def _store(engine: Engine, rows: list[tuple[str, str, str | None, bytes, datetime]]) -> None:
    with engine.begin() as conn:
        stored = insert_deliveries(conn, [Delivery(s, d, t, "{}", b, r)
                                          for s, d, t, b, r in rows])
    assert all(s.status == "accepted" for s in stored)


def _dead(engine: Engine) -> list[int]:
    from sqlalchemy import select

    from router.db.tables import outbox

    with engine.connect() as conn:
        return [r.id for r in conn.execute(select(outbox.c.id).where(
            outbox.c.status == "dead").order_by(outbox.c.id))]
