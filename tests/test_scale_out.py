"""Scale-out on PostgreSQL, proven with real processes: three `firstline serve` replicas
share one database under load, one of them is killed (SIGKILL) mid-work, and still every
delivery is decided once, every action performed once, every timer fired once."""

from __future__ import annotations

import itertools
import threading
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import Engine, func, select

from router.db.tables import decisions, inbox, outbox, timers
from tests.support import eventually, fixture_bytes
from tests.test_runtime import OWNER, assigned_issue, github_standin, issues
from tests.test_serve import Serve, running, start
from tests.vendors import signed_headers

REPLICAS = 3
ASSIGNED = 120  # issues 1..120: assigned to the CTO by someone else -> assign + comment
UNOWNED = 30  # issues 1001..1030: unassigned sev1, no owner for a while -> a timer soon due
FIRST_UNOWNED = 1001
NO_OWNER_FOR = timedelta(minutes=14, seconds=35)  # the timer comes due 25 s after sending


def unowned_issue(n: int, no_owner_for: timedelta) -> bytes:
    """The real `issues.opened`, issue n unassigned and labelled `outage` (sev1), opened
    `no_owner_for` ago: the example's `no-owner` trigger (15m) comes due in seconds."""
    payload = orjson.loads(fixture_bytes("github", "issues.opened"))
    opened = (datetime.now(UTC) - no_owner_for).strftime("%Y-%m-%dT%H:%M:%SZ")
    issue = payload["issue"]
    issue.update(number=n, id=900_000_000 + n, assignee=None, assignees=[],
                 labels=[{**issue["labels"][0], "name": "outage"}],
                 created_at=opened, updated_at=opened)
    return orjson.dumps(payload)


class Sender:
    """Send each delivery to the replicas in turn; one that refuses (killed) is skipped and
    the delivery sent to the next, with the same delivery id, as a tracker redelivers."""

    def __init__(self, replicas: list[Serve]) -> None:
        self.replicas = replicas
        self.turn = itertools.cycle(range(len(replicas)))
        self.answers: dict[str, int] = {}

    def send(self, delivery_id: str, body: bytes) -> None:
        headers = signed_headers("github", body, "issues", delivery_id)
        for _ in range(len(self.replicas) * 2):
            base = self.replicas[next(self.turn)].base
            try:
                status = httpx.post(f"{base}/webhooks/github", content=body,
                                    headers=headers, timeout=10).status_code
            except httpx.TransportError:
                continue
            self.answers[delivery_id] = status
            return
        self.answers[delivery_id] = -1


def counted(engine: Engine) -> dict[str, Any]:
    with engine.connect() as conn:
        def one(stmt: Any) -> int:
            return int(conn.execute(stmt).scalar_one())
        return {
            "deliveries": one(select(func.count()).select_from(inbox)),
            "not done": one(select(func.count()).where(inbox.c.status != "done")),
            "retried": one(select(func.count()).where(inbox.c.attempts > 0)),
            "decided": one(select(func.count()).where(decisions.c.inbox_id.is_not(None))),
            "timer decisions": one(select(func.count()).where(
                decisions.c.timer_key.is_not(None))),
            "armed and due": one(select(func.count()).where(
                timers.c.armed.is_(True), timers.c.due_at <= datetime.now(UTC))),
            "open actions": one(select(func.count()).where(outbox.c.status == "pending")),
        }


def test_three_replicas_one_killed_decide_act_and_fire_each_once(
        tmp_path: Path, db_url: str, engine: Engine) -> None:
    if not db_url.startswith("postgresql"):
        pytest.skip("replicas side by side run on PostgreSQL (SQLite serves one process)")
    with github_standin(ASSIGNED) as github:
        httpx.post(f"{github}/_bench/issues", json={
            "repo": "Codertocat/Hello-World", "first": FIRST_UNOWNED, "count": UNOWNED,
            "assignees": []}).raise_for_status()
        env = {"FIRSTLINE_GITHUB_API_URL": github, "FIRSTLINE_GITHUB_TOKEN": "gh-token"}
        replicas = []
        with ExitStack() as stack:  # each replica stopped as a supervisor would, at the end
            for n in range(REPLICAS):
                (tmp_path / f"r{n}").mkdir()
                replicas.append(stack.enter_context(running(start(
                    tmp_path / f"r{n}", db_url, mode="enforce", **env))))
            sender = Sender(replicas)
            load = threading.Thread(target=lambda: [
                sender.send(f"scale-{n}", assigned_issue(n)) for n in range(1, ASSIGNED + 1)])
            load.start()
            for n in range(FIRST_UNOWNED, FIRST_UNOWNED + UNOWNED):
                sender.send(f"unowned-{n}", unowned_issue(n, NO_OWNER_FOR))
            eventually(lambda: len(sender.answers) >= (ASSIGNED + UNOWNED) // 2, "half sent")
            replicas[0].process.kill()  # mid-work: batches open, actions claimed
            replicas[0].process.wait()
            load.join()
            accepted = sum(code in (200, 202) for code in sender.answers.values())
            assert accepted == ASSIGNED + UNOWNED, sender.answers
            eventually(lambda: (c := counted(engine))["timer decisions"] == UNOWNED and
                       c["open actions"] == 0, "every timer and action", timeout=90)
            seen = issues(github)
            done = counted(engine)
    logs = "\n".join(r.log.read_text()[-4000:] for r in replicas)
    assert done == {"deliveries": ASSIGNED + UNOWNED, "not done": 0, "retried": 0,
                    "decided": ASSIGNED + UNOWNED, "timer decisions": UNOWNED,
                    "armed and due": 0, "open actions": 0}, logs
    for n in range(1, ASSIGNED + 1):  # assign and comment, each once
        assert (seen[str(n)]["assignees"], len(seen[str(n)]["comments"])) == ([OWNER], 1), n
    with engine.connect() as conn:
        actions = conn.execute(select(outbox.c.type, outbox.c.target, outbox.c.status,
                                      outbox.c.attempts)).all()
    comments: dict[str, int] = {}
    for action in actions:
        if action.type == "comment":
            key = orjson.loads(action.target)["key"].rsplit("#", 1)[1]
            comments[key] = comments.get(key, 0) + 1
    for n in range(FIRST_UNOWNED, FIRST_UNOWNED + UNOWNED):  # as many comments as queued
        assert len(seen[str(n)]["comments"]) == comments[str(n)], (n, seen[str(n)])
        assert len(set(seen[str(n)]["comments"])) == comments[str(n)]
    # Pages have no PagerDuty client here: each is tried once and kept as dead, not retried.
    assert {(a.type, a.status) for a in actions if a.status != "done"} <= {("page", "dead")}
    assert all(a.attempts == 1 for a in actions if a.type == "page"), actions
    assert "Traceback" not in logs and "could not be decided" not in logs, logs
