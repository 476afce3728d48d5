"""Shared test helpers: real fixtures in, variants made by changing fields of real items."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import orjson
import yaml
from sqlalchemy import make_url, text

from adapters import ADAPTERS
from router.core.model import Event, WorkItem
from router.db.engine import make_engine
from router.scope.load import Scope, load_scope, parse_scope

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "vendor"
EXAMPLE_SCOPE = ROOT / "examples" / "scope.yaml"
WAIT_S = 30.0  # generous: CI machines are slow, and nothing here asserts speed

T = TypeVar("T")


def eventually(check: Callable[[], T], what: str, timeout: float = WAIT_S,
               ignore: tuple[type[BaseException], ...] = ()) -> T:
    """Poll `check` until it returns something true and return that; fail naming `what`
    and the last value seen. Exceptions of the `ignore` types count as not yet.

    The one way tests wait for something to happen: never a bare sleep.
    """
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            if result := check():
                return result
            last = result
        except ignore as exc:
            last = exc
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what} "
                                 f"(last: {last!r})"[:2000])
        time.sleep(0.02)


def fixture_bytes(source: str, name: str) -> bytes:
    return (FIXTURES / source / f"{name}.json").read_bytes()


def fixture_event(source: str, name: str, event_type: str | None = None) -> Event:
    """Parse a real, unmodified vendor payload."""
    payload = orjson.loads(fixture_bytes(source, name))
    return ADAPTERS[source].parse(payload, event_type)  # type: ignore[index]


def fixture_item(source: str, name: str, **changes: Any) -> WorkItem:
    """Return the item of a real payload, with some fields changed for a variant."""
    event = fixture_event(source, name)
    assert event.item is not None, f"{source}/{name} holds no item"
    return dataclasses.replace(event.item, **changes)


def event_for(item: WorkItem, *, actor: str | None = None, at: datetime | None = None,
              event_type: str = "update", assigned: tuple[str, ...] = (),
              deleted: bool = False) -> Event:
    return Event(source=item.source, event_type=event_type, occurred_at=at or item.updated_at,
                 actor=actor, item=item, assigned=assigned, deleted=deleted)


def example_scope() -> Scope:
    return load_scope(EXAMPLE_SCOPE)[0]


def scope_with(paging_service_id: str | None = None, **changes: Any) -> Scope:
    """Return the example scope note with some top-level keys replaced."""
    data = yaml.safe_load(EXAMPLE_SCOPE.read_text())
    data.update(changes)
    return parse_scope(yaml.safe_dump(data).encode(), "test.yaml", paging_service_id)[0]


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def github_assigned_to_cto(sender: str = "ana-support") -> Any:
    """The real `issues.assigned` delivery, the issue assigned to the CTO by `sender`."""
    payload = orjson.loads(fixture_bytes("github", "issues.assigned"))
    cto = {**payload["assignee"], "login": "dreyes"}
    payload["assignee"] = payload["issue"]["assignee"] = cto
    payload["issue"]["assignees"] = [cto]
    payload["sender"] = {**payload["sender"], "login": sender}
    return payload


def github_comment_on_pull_request(at: str = "2019-05-15T15:20:40Z") -> Any:
    """The real `issue_comment.created`, moved onto the pull request of the real
    `pull_request.opened` (#2) as GitHub sends such a comment: `issue` is the PR's issue,
    with an `issue.id` of its own (not `pull_request.id`), a `pull_request` object of
    links, and the PR's number, title and people; the comment is made at `at`."""
    payload = orjson.loads(fixture_bytes("github", "issue_comment.created"))
    pr = orjson.loads(fixture_bytes("github", "pull_request.opened"))["pull_request"]
    issue = payload["issue"]
    for name in ("number", "title", "body", "html_url", "user", "labels", "assignee",
                 "assignees", "state", "created_at"):
        issue[name] = pr[name]
    issue.update(id=issue["id"] + 1, url=pr["issue_url"], updated_at=at,
                 comments_url=pr["comments_url"],
                 pull_request={name: pr[name] for name in
                               ("url", "html_url", "diff_url", "patch_url")})
    payload["comment"].update(issue_url=pr["issue_url"], created_at=at, updated_at=at,
                              html_url=f"{pr['html_url']}#issuecomment-492700400")
    return payload


def decide_stored(db_url: str) -> int:
    """Decide every stored delivery and due timer with the example note, as the worker
    does; return how many."""
    from router.db.engine import worker_engine
    from router.work.worker import Worker

    engine = worker_engine(db_url)
    try:
        return Worker(engine, example_scope).drain()
    finally:
        engine.dispose()


@contextmanager
def pg_schema(base: str) -> Iterator[str]:
    """Create a schema of its own on the PostgreSQL server at `base`, yield a URL whose
    search_path points at it, and drop it afterwards (tests and bench/report.py)."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = make_engine(base)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{name}"'))
    try:
        url = make_url(base).update_query_dict({"options": f"-csearch_path={name}"})
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{name}" CASCADE'))
        admin.dispose()


def firstline(db_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run the installed `firstline` command on `db_url`, with no other FIRSTLINE_*
    setting of the test run's environment."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FIRSTLINE_")}
    env["FIRSTLINE_DATABASE_URL"] = db_url
    entry = Path(sys.executable).parent / "firstline"
    return subprocess.run([str(entry), *args], capture_output=True, text=True, cwd=ROOT,
                          env=env, timeout=120, check=False)
