"""November 2026 as a team lives it: deliveries built from the real fixtures, seeded
through the real HTTP -> worker pipeline, each decided as of its own event time.

The month's facts (Europe/Berlin, UTC+1; the cap 6h a week, weeks start Monday; a
holiday on Thursday 19 November; the founder away 23-27 November with no backup; a
cleanup stint for billing-cleanup work that ends 13 November):

- four sources: Jira (OPS, WEB), Linear (team WEB), GitHub (Codertocat/Hello-World),
  PagerDuty (service pig208, and the CTO's own page);
- two people send work to the CTO: support-lead assigns OPS-101, OPS-105, OPS-113 and
  Linear WEB-44 to the CTO (all handed back); ops-lead assigns GitHub #7 to the CTO
  (handed back) and puts it back after firstline handed it on (kept, charged);
- the CTO assigns OPS-102 to themself (an exception);
- one grouped escalation with items in two tools: Jira WEB-101 and Linear WEB-45 both
  carry `checkout` in project WEB, so `revenue-path` (group_by project) pages once; the
  page is acknowledged after 4 minutes and resolved 150 minutes later; GitHub PR #12
  names WEB-101 in its title (linked, for the review checklist);
- a timed escalation: OPS-110 is a release blocker from Wednesday 18 November 14:30; one
  business day later, skipping the holiday, is Friday 20 November 14:30;
- the cap overrun: the week of 16 November charges 2.5h (the page) + 3 x 1h
  (architecture) + 1h (the second page) = 6.5h; architecture work on the holiday waits;
- a weekend delivery (Saturday 7 November) and the month's edges: OPS-100 on 31 October
  23:30 and OPS-116 on 1 December 00:30 local time (both 22:30/23:30 UTC of the day
  before) fall outside November, though OPS-116 charges the week of 30 November.

`seed_month(client, worker, clock)` posts every delivery, signed, to the app and lets
the worker decide it at its own time (the clock is set to it, after the timers due
before it have fired). `month_database()` and `seeded()` give a test module the month
on a database of its own; the review checklist tests use the same month.
"""

from __future__ import annotations

import copy
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import pytest
import yaml
from fastapi.testclient import TestClient

from router.db.engine import upgrade, worker_engine
from router.scope.load import load_scope
from router.service import build_service
from router.settings import Settings
from router.work.backfill import EventClock, catch_up
from router.work.worker import Worker
from tests.conftest import PG_ENV
from tests.support import EXAMPLE_SCOPE, FIXTURES, pg_schema
from tests.vendors import SECRETS, signed_headers

MONTH = "2026-11"
BERLIN = ZoneInfo("Europe/Berlin")
END = datetime(2026, 12, 7, tzinfo=BERLIN)  # the end of the last week that starts in it

CTO = {"jira": "5cedcb4355a88a0fc86388ba", "linear": "674c90c8-35ea-454d-8ca4-5548258fd795",
       "github": "dreyes"}
ENG = {"jira": "5c5f880629be9642ba529340", "linear": "8f1e2d3c-0000-4000-8000-000000000001",
       "github": "Codertocat"}
SUPPORT = {"jira": "61e0a1b2c3d4e5f601234567", "linear": "e825c109-f691-4716-a85f-b68a2626531c"}
OPS_LEAD_GITHUB = "lpark"
PAGE_KEY = "firstline/revenue-path/WEB"  # the grouped page: trigger + project


def local(text: str) -> datetime:
    """Read `2026-11-02 10:00` as Berlin time."""
    return datetime.fromisoformat(text).replace(tzinfo=BERLIN)


def write_scope(folder: Path) -> Path:
    """Write the month's scope note: the example's, in enforce mode, with a holiday, an
    away founder and a cleanup stint."""
    note = yaml.safe_load(EXAMPLE_SCOPE.read_text())
    note["mode"] = "enforce"
    note["holidays"] = ["2026-11-19", "2026-12-25", "2026-12-26"]
    note["people"]["founder"]["away"] = ["2026-11-23..2026-11-27"]
    note["owners"].insert(0, {
        "name": "Billing cleanup", "match": {"labels": ["billing-cleanup"]}, "owner": "cto",
        "cost": "2h", "until": "2026-11-13", "mode": "cleanup",
        "note": "until the billing export is rewritten"})
    path = folder / "scope-november.yaml"
    path.write_text(yaml.safe_dump(note, sort_keys=False))
    return path


@dataclass(frozen=True, slots=True)
class Seeded:
    source: str
    event: str  # the event header (GitHub's X-GitHub-Event); the body says it otherwise
    payload: Any
    at: datetime  # the source's own time of the event
    delivery_id: str


def _fixture(source: str, name: str) -> Any:
    return orjson.loads((FIXTURES / source / f"{name}.json").read_bytes())


def jira(n: int, at: str, labels: list[str], *, key: str | None = None,
         created: str | None = None, assignee: str | None = None,
         actor: str = SUPPORT["jira"], priority: str = "Medium", status: str = "new",
         event: str = "jira:issue_created") -> Seeded:
    """A Jira issue event from the real `issue_created` delivery, fields changed."""
    payload = copy.deepcopy(_fixture("jira", "issue_created"))
    when = local(at)
    issue = payload["issue"]
    issue["id"], issue["key"] = str(30000 + n), key or f"OPS-{n}"
    fields = issue["fields"]
    fields["project"]["key"] = issue["key"].split("-")[0]
    fields["labels"] = labels
    fields["priority"]["name"] = priority
    fields["status"]["statusCategory"]["key"] = status
    fields["created"] = (local(created) if created else when).isoformat()
    fields["updated"] = when.isoformat()
    fields["assignee"] = {"accountId": assignee} if assignee else None
    fields["reporter"] = {"accountId": SUPPORT["jira"]}
    payload["user"] = {"accountId": actor}
    payload["webhookEvent"] = event
    payload["timestamp"] = int(when.timestamp() * 1000)
    if event == "jira:issue_updated":
        change = ({"field": "assignee", "fieldtype": "jira", "from": None, "to": assignee,
                   "tmpToAccountId": assignee} if assignee else
                  {"field": "labels", "fieldtype": "jira", "from": "", "to": " ".join(labels)})
        payload["changelog"] = {"id": str(n), "items": [change]}
    return Seeded("jira", event, payload, when, f"jira-{n}-{when:%d%H%M}")


def linear(number: int, at: str, labels: list[str], *, created: str | None = None,
           assignee: str | None = None, actor: str | None = None, priority: int = 3,
           state: str = "unstarted", action: str = "create", item: int | None = None) -> Seeded:
    """A Linear issue event from the real `Issue.create` delivery, fields changed."""
    payload = copy.deepcopy(_fixture("linear", "Issue.create"))
    when = local(at)
    data = payload["data"]
    data["id"] = f"3443a709-f2b5-46f2-a136-{item or number:012d}"
    data["number"] = number
    data["title"] = f"WEB-{number}: {', '.join(labels)}"
    data["createdAt"] = (local(created) if created else when).isoformat()
    data["updatedAt"] = when.isoformat()
    data["priority"] = priority
    data["priorityLabel"] = {1: "Urgent", 2: "High", 3: "Medium", 4: "Low"}[priority]
    data["creatorId"] = SUPPORT["linear"]
    data["assigneeId"] = assignee
    data["assignee"] = {"id": assignee, "name": assignee} if assignee else None
    data["state"] = {"id": data["stateId"], "name": state, "type": state}
    data["labels"] = [{"id": f"label-{name}", "name": name} for name in labels]
    data["labelIds"] = [f"label-{name}" for name in labels]
    payload["action"] = action
    payload["url"] = f"https://linear.app/webhooks/issue/WEB-{number}/seeded"
    if actor:
        payload["actor"] = {"id": actor, "type": "user"}
    if action == "update":
        payload["updatedFrom"] = {"assigneeId": None, "stateId": "triage"}
    return Seeded("linear", f"Issue.{action}", payload, when, f"linear-{number}-{when:%d%H%M}")


def github_issue(number: int, at: str, *, created: str, assignees: list[str], sender: str,
                 assigned: str) -> Seeded:
    """A GitHub `issues.assigned` delivery (the real one), issue and people changed."""
    payload = copy.deepcopy(_fixture("github", "issues.assigned"))
    when = local(at)
    issue = payload["issue"]
    issue["number"], issue["id"] = number, 444500000 + number
    issue["html_url"] = f"https://github.com/Codertocat/Hello-World/issues/{number}"
    issue["created_at"] = _github_time(local(created))
    issue["updated_at"] = _github_time(when)
    people = {login: {**payload["assignee"], "login": login} for login in {*assignees, assigned}}
    issue["assignees"] = [people[login] for login in assignees]
    issue["assignee"] = people[assignees[0]] if assignees else None
    payload["assignee"] = people[assigned]
    payload["sender"] = {**payload["sender"], "login": sender}
    return Seeded("github", "issues", payload, when, f"gh-{number}-{when:%d%H%M}")


def github_pr(number: int, at: str, title: str) -> Seeded:
    """The real `pull_request.opened` delivery as a new PR with no labels or assignees."""
    payload = copy.deepcopy(_fixture("github", "pull_request.opened"))
    when = local(at)
    pr = payload["pull_request"]
    payload["number"] = pr["number"] = number
    pr["id"] = 279147400 + number
    pr["title"] = title
    pr["html_url"] = f"https://github.com/Codertocat/Hello-World/pull/{number}"
    pr["labels"], pr["assignees"], pr["assignee"] = [], [], None
    pr["created_at"] = pr["updated_at"] = _github_time(when)
    pr["head"]["ref"] = "fix-checkout-totals"
    return Seeded("github", "pull_request", payload, when, f"gh-pr-{number}")


def pagerduty(name: str, at: str, *, incident: str, key: str | None = None) -> Seeded:
    """A real PagerDuty v3 delivery as it happened at `at`; `key` makes it one of
    firstline's own pages (its incident_key)."""
    payload = copy.deepcopy(_fixture("pagerduty", name))
    when = local(at)
    event = payload["event"]
    event["occurred_at"] = when.isoformat()
    event["data"]["id"] = incident
    if key is not None:
        event["data"]["incident_key"] = key
    return Seeded("pagerduty", name, payload, when, f"pd-{incident}-{name}")


def _github_time(moment: datetime) -> str:
    return moment.astimezone(ZoneInfo("UTC")).strftime("%Y-%m-%dT%H:%M:%SZ")


def deliveries() -> list[Seeded]:
    """Every delivery of the month (and its edges), in event-time order."""
    j, lin = CTO["jira"], CTO["linear"]
    found = [
        jira(100, "2026-10-31 23:30", []),  # October, by Berlin time
        # week of 2 November
        jira(101, "2026-11-02 10:00", ["cloud-bill"], created="2026-11-02 09:00",
             assignee=j, event="jira:issue_updated"),
        jira(102, "2026-11-03 11:00", [], assignee=j, actor=j),  # the CTO takes it
        jira(103, "2026-11-04 09:00", ["billing-cleanup"]),
        github_issue(7, "2026-11-05 14:00", created="2026-11-05 13:30", assignees=["dreyes"],
                     sender=OPS_LEAD_GITHUB, assigned="dreyes"),
        github_issue(7, "2026-11-05 14:01", created="2026-11-05 13:30",
                     assignees=["Codertocat"], sender="firstline-bot", assigned="Codertocat"),
        linear(44, "2026-11-07 11:00", ["Improvement"], created="2026-11-07 10:45",
               assignee=lin),  # a Saturday; no actor: the reporter counts
        # week of 9 November
        jira(104, "2026-11-09 09:30", ["architecture"]),
        pagerduty("incident.triggered", "2026-11-10 10:00", incident="PSEED01"),
        pagerduty("incident.resolved", "2026-11-10 10:20", incident="PSEED01"),
        jira(105, "2026-11-12 15:00", ["vendor"], created="2026-11-12 14:50", assignee=j,
             event="jira:issue_updated"),
        jira(106, "2026-11-13 16:00", ["billing-cleanup"]),  # the stint's last day
        # week of 16 November: the grouped page, the cap overrun, the holiday
        jira(1, "2026-11-16 10:00", ["checkout"], key="WEB-101", priority="High"),
        pagerduty("incident.acknowledged", "2026-11-16 10:04", incident="PPAGE01",
                  key=PAGE_KEY),
        jira(1, "2026-11-16 10:05", ["checkout"], key="WEB-101", priority="High",
             created="2026-11-16 10:00", assignee=ENG["jira"], actor=ENG["jira"],
             status="indeterminate", event="jira:issue_updated"),
        linear(45, "2026-11-16 10:10", ["Checkout"], priority=2),
        linear(45, "2026-11-16 10:15", ["Checkout"], priority=2, created="2026-11-16 10:10",
               assignee=ENG["linear"], actor=ENG["linear"], state="started",
               action="update"),
        github_pr(12, "2026-11-16 10:20", "Fix checkout totals (WEB-101)"),
        pagerduty("incident.resolved", "2026-11-16 12:34", incident="PPAGE01", key=PAGE_KEY),
        jira(107, "2026-11-17 09:00", ["architecture"]),
        jira(108, "2026-11-17 11:00", ["architecture"]),
        jira(109, "2026-11-18 09:00", ["architecture"]),
        jira(110, "2026-11-18 15:00", ["release-blocker"], created="2026-11-18 14:30",
             event="jira:issue_updated"),
        jira(111, "2026-11-19 10:00", ["architecture"]),  # the holiday; the cap is used up
        # week of 23 November: the founder is away
        jira(112, "2026-11-23 10:00", ["vendor"]),
        github_issue(7, "2026-11-24 11:00", created="2026-11-05 13:30", assignees=["dreyes"],
                     sender=OPS_LEAD_GITHUB, assigned="dreyes"),  # put back
        jira(113, "2026-11-25 14:00", ["bug"], created="2026-11-25 13:20", assignee=j,
             event="jira:issue_updated"),
        jira(114, "2026-11-26 09:00", ["billing-cleanup"], created="2026-11-26 08:00",
             event="jira:issue_updated"),  # after the stint
        # week of 30 November
        jira(115, "2026-11-30 23:30", ["architecture"]),
        jira(116, "2026-12-01 00:30", ["architecture"]),  # December, same week
    ]
    return sorted(found, key=lambda d: d.at)


def send(client: TestClient, d: Seeded) -> None:
    """Post one delivery, signed as its vendor signs it."""
    payload = d.payload
    if d.source == "linear":  # Linear refuses deliveries older than 60 s
        payload = {**payload, "webhookTimestamp": int(time.time() * 1000)}
    body = orjson.dumps(payload)
    answer = client.post(f"/webhooks/{d.source}", content=body,
                         headers=signed_headers(d.source, body, d.event, d.delivery_id))
    assert answer.status_code in (200, 202), answer.text


def seed_month(client: TestClient, worker: Worker, clock: EventClock) -> None:
    """Post the month's deliveries and decide each as of its own time; then fire the
    timers due by the end of the month's last week."""
    for d in deliveries():
        catch_up(worker, clock, d.at)
        send(client, d)
        worker.drain()
    catch_up(worker, clock, END - timedelta(seconds=1))


@contextmanager
def month_database(kind: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Yield the URL of a migrated database of its own, `sqlite` or `postgresql` (skipped
    when no server is given), for a module's seeded month."""
    if kind == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('november') / 'firstline.db'}"
        upgrade(url)
        yield url
        return
    base = os.environ.get(PG_ENV)
    if not base:
        pytest.skip(f"{PG_ENV} is not set")
    with pg_schema(base) as url:
        upgrade(url)
        yield url


@dataclass(frozen=True, slots=True)
class SeededMonth:
    client: TestClient  # the app (no worker of its own)
    worker: Worker  # decides as of `clock`
    clock: EventClock
    rules: Path  # the month's scope note


@contextmanager
def seeded(url: str, folder: Path) -> Iterator[SeededMonth]:
    """Seed the month into the database at `url` through the app and the worker; yield
    both, the clock and the scope note (written to `folder`)."""
    rules = write_scope(folder)
    settings = Settings(
        rules=rules, database_url=url, api_token="x",
        jira_webhook_secret=SECRETS["jira"], linear_webhook_secret=SECRETS["linear"],
        github_webhook_secret=SECRETS["github"],
        pagerduty_webhook_secret=SECRETS["pagerduty"])
    scope = load_scope(rules)[0]
    engine = worker_engine(url)
    clock = EventClock(deliveries()[0].at)
    try:
        with TestClient(build_service(settings, run_worker=False)) as client:
            worker = Worker(engine, lambda: scope, clock)
            seed_month(client, worker, clock)
            yield SeededMonth(client, worker, clock, rules)
    finally:
        engine.dispose()
