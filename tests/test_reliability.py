"""The guarantees under trouble, against real processes: `kill -9` under load (the long
version is bench/soak.py), vendor outages, a database outage."""

from __future__ import annotations

import glob
import random
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import Engine, select

from adapters.jira.outbound import JiraOutbound
from router.db.engine import upgrade
from router.db.tables import outbox
from router.settings import Settings
from router.work.outbox import Performer
from tests.soak import (
    Outcome,
    Service,
    check,
    deliveries,
    send_until_acknowledged,
    soak,
    standins,
    wait_until_settled,
)
from tests.standin_jira import JiraStandin, Recorded, Reply
from tests.support import ROOT, WAIT_S, eventually


def test_kill_9_under_load_loses_nothing_acknowledged_and_acts_once(
        tmp_path: Path, db_url: str) -> None:
    """240 signed deliveries (tests/soak.py), `serve` killed twice at random moments:
    every acknowledged delivery decided once, every action taken once."""
    out = soak(tmp_path, db_url, count=240, kills=2, seed=14)
    report = "\n".join(out.lines())
    print(f"\n{report}")
    assert out.acknowledged == 240 and out.resent_after_ack > 0, report
    assert out.decided == out.acknowledged and not out.undecided, report
    assert out.duplicates == 0 and not out.missing, report
    assert out.actions_seen == out.actions_expected == 240, report
    assert set(out.outbox) == {"done"}, report
    assert len(out.resumed_s) == 2, report


# -- vendor outage: 429 with Retry-After, 5xx, hangs, refused connections ------------------


def queue_actions(engine: Engine, issues: list[str]) -> None:
    """Queue an assign and a comment on each Jira issue id, as a decision does."""
    now = datetime.now(UTC)
    with engine.begin() as conn:
        for issue_id in issues:
            target = {"source": "jira", "id": issue_id, "key": f"OPS-{issue_id}",
                      "kind": "ticket", "project": "OPS", "url": None}
            for action in ({"type": "assign", "account": "owner-account",
                            "remove": ["cto-account"]},
                           {"type": "comment", "text": "Yours per the scope note."}):
                conn.execute(outbox.insert().values(
                    decision_id=1, type=action["type"], target=orjson.dumps(target).decode(),
                    item=f"jira:{issue_id}", action=orjson.dumps(action).decode(),
                    status="pending", attempts=0, next_at=now, created_at=now))


class Outage:
    """Every request answered with trouble, in turn: 429 with Retry-After: 1, 500, 503,
    and a hang past the client's timeout (applied first, as a slow vendor may); the
    first request about the `patient` issue gets 429 with a Retry-After of two hours."""

    def __init__(self, patient: str, hang: float) -> None:
        self.patient, self.hang = patient, hang
        self.turn = 0
        self.answered: list[tuple[Recorded, Reply | float]] = []

    def __call__(self, request: Recorded) -> Reply | float:
        trouble: Reply | float
        if self.patient in request.path and not any(
                self.patient in r.path for r, _ in self.answered):
            trouble = Reply(429, {"errorMessages": ["Rate limit exceeded."]},
                            headers={"Retry-After": "7200"})
        else:
            self.turn += 1
            trouble = [Reply(429, {"errorMessages": ["Rate limit exceeded."]},
                             headers={"Retry-After": "1"}),
                       Reply(500, {"errorMessages": ["Internal server error"]}),
                       Reply(503, None), self.hang][self.turn % 4]
        self.answered.append((request, trouble))
        return trouble


def test_after_a_vendor_outage_every_action_lands_once_and_retry_after_is_honoured(
        engine: Engine) -> None:
    """The real Jira client against the stand-in over HTTP, performed by the Performer;
    its clock jumps an hour per round so durable backoffs come due in seconds."""
    skew = [0.0]

    def clock() -> datetime:
        return datetime.fromtimestamp(time.time() + skew[0], UTC)

    with JiraStandin(email="b@x.io", token="jira-api-token") as jira:
        jira.clock = lambda: time.time() + skew[0]
        fine = [str(30000 + n) for n in range(6)]
        for issue_id in fine:
            jira.add_issue(f"OPS-{issue_id}", issue_id, assignee="cto-account")
        jira.add_issue("OPS-forbidden", "40403", assignee="cto-account")
        forbidden = Reply(403, {"errorMessages": ["You do not have the permission to see "
                                                  "the specified issue."]})
        jira.reply("GET", "/rest/api/2/issue/40403", forbidden)
        jira.reply("POST", "/rest/api/2/issue/40403/comment", forbidden)
        queue_actions(engine, [*fine, "40403", "40404"])  # 40404 does not exist
        settings = Settings(jira_url=jira.url, jira_email="b@x.io", jira_api_token="jira-api-token")
        adapter = JiraOutbound(settings, timeout=1.0)
        performer = Performer(engine, lambda: {"jira": adapter}, clock)

        def round_() -> None:
            performer.drain()
            skew[0] += 3600  # past any backoff of the attempts so far, short of 7200 s

        outage = jira.trouble = Outage(patient=fine[0], hang=1.5)
        for _ in range(3):
            round_()
        jira.refuse()
        round_()
        refused = [r.last_error for r in outbox_rows(engine)
                   if "could not reach Jira" in (r.last_error or "")]
        jira.accept()
        jira.trouble = None
        for _ in range(4):
            round_()
        adapter.close()

    rows = {(r.item, r.type): r for r in outbox_rows(engine)}
    dead = sorted(item for (item, _), r in rows.items() if r.status == "dead")
    assert dead == ["jira:40403", "jira:40403", "jira:40404", "jira:40404"], rows
    assert all(r.status == "done" for (item, _), r in rows.items()
               if item.removeprefix("jira:") in fine)
    for issue_id in fine:  # each took effect once, whatever the outage did
        writes = [r for r in jira.applied if f"/issue/{issue_id}/" in r.path]
        assert sorted(r.method for r in writes) == ["POST", "PUT"], writes
        assert jira.issues[issue_id].assignee == "owner-account"
        assert len(jira.issues[issue_id].comments) == 1
    assert refused, "no action met the refused connections"
    kinds = {type(t) if isinstance(t, float) else t.status for _, t in outage.answered}
    assert kinds == {429, 500, 503, float}, kinds  # every kind of trouble was met
    for request, trouble in outage.answered:  # the next request about it waited
        if isinstance(trouble, Reply) and trouble.status == 429:
            wait = float(trouble.headers["Retry-After"])
            issue = request.path.split("/")[5]  # /rest/api/2/issue/{id}[/...]
            later = [r.at for r in jira.requests if r.at > request.at
                     and r.path.split("/")[5:6] == [issue]]
            assert later and later[0] - request.at >= wait, (request.path, wait, later[:1])


def outbox_rows(engine: Engine) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(select(outbox)))


# -- database outage: PostgreSQL stopped and started under load -----------------------------

PG_SERVER = ROOT / "scripts" / "pg-test-server"


def postgres_installed() -> bool:
    return bool(shutil.which("initdb") or glob.glob("/usr/lib/postgresql/*/bin/initdb"))


@contextmanager
def own_postgres() -> Iterator[tuple[str, Callable[[str], None]]]:
    """Start a PostgreSQL of this test's own; yield its URL and `server("stop"|"start")`."""
    top = Path(tempfile.mkdtemp(prefix="firstline-pg-outage-"))
    top.chmod(0o755)  # the server runs as `postgres` when the tests run as root

    def server(command: str) -> None:
        subprocess.run([str(PG_SERVER), command, str(top / "pg"), "-c", "fsync=off"],
                       check=True, capture_output=True)

    try:
        url = subprocess.run([str(PG_SERVER), "start", str(top / "pg"), "-c", "fsync=off"],
                             check=True, capture_output=True, text=True).stdout.strip()
        yield url, server
    finally:
        subprocess.run([str(PG_SERVER), "stop", str(top / "pg")], check=False)
        shutil.rmtree(top, ignore_errors=True)


def ready(base: str) -> int:
    return httpx.get(f"{base}/readyz", timeout=10).status_code


@pytest.mark.skipif(not postgres_installed(),
                    reason="PostgreSQL's server binaries (initdb, pg_ctl) are not installed: "
                           "apt-get install postgresql")
def test_a_database_outage_answers_503_and_everything_recovers_without_a_restart(
        tmp_path: Path) -> None:
    """PostgreSQL stopped under load and started again: deliveries meanwhile get 503 (the
    sender retries), /readyz fails and recovers, the same process decides and acts on."""
    with own_postgres() as (url, server):
        upgrade(url)
        made = deliveries(160, "pg-outage")
        out = Outcome()
        with standins(made) as stands:
            service = Service(tmp_path, url, stands.env())
            service.start()
            sender = threading.Thread(target=send_until_acknowledged, args=(
                lambda: service.base, made, out, random.Random(3)))
            try:
                eventually(lambda: ready(service.base) == 200, "/readyz",
                           ignore=(httpx.TransportError,))
                sender.start()
                eventually(lambda: out.acknowledged >= 30, "30 deliveries acknowledged")
                server("stop")
                eventually(lambda: ready(service.base) == 503, "/readyz to fail")
                eventually(lambda: out.answers[503] >= 5, "deliveries refused with 503")
                eventually(lambda: all(f"{loop} failed" in service.log.read_text() for loop in (
                    "worker batch", "outbox claim")), "the worker and performer to meet it")
                server("start")
                eventually(lambda: ready(service.base) == 200, "/readyz to recover")
                sender.join(WAIT_S * 4)
                assert wait_until_settled(url, out.acknowledged, WAIT_S * 2)
                assert service.process is not None and service.process.poll() is None
            finally:
                service.stop()
            check(url, made, stands, out)
    report = "\n".join(out.lines())
    print(f"\n{report}")
    assert set(out.answers) <= {200, 202, 503}, report  # refused with 503, never dropped
    assert out.acknowledged == 160 and out.decided == 160 and not out.undecided, report
    assert out.duplicates == 0 and not out.missing and set(out.outbox) == {"done"}, report
