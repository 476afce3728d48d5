"""Write examples/deliveries/: the real vendor fixtures plus variants made from them.

    .venv/bin/python examples/make_deliveries.py

Each variant is a real payload from tests/fixtures/vendor/ with a few fields changed
(ids, labels, times), so `firstline replay --rules examples/scope.yaml examples/deliveries`
shows every outcome: escalate, reassign, defer, keep and ignore, and the week of
16 November 2026 makes a month for `firstline db load` and the reviews: a grouped page
acknowledged and resolved, work sent to the CTO by two people, the CTO's own exception,
and architecture work beyond the weekly cap.
"""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
FIXTURES = HERE.parent / "tests" / "fixtures" / "vendor"
OUT = HERE / "deliveries"
WEEK = "2026-11-16T"  # a Monday in the example's Europe/Berlin
CTO_JIRA = "5cedcb4355a88a0fc86388ba"
SUPPORT_JIRA = "61e0a1b2c3d4e5f601234567"
CTO_LINEAR = "674c90c8-35ea-454d-8ca4-5548258fd795"
SUPPORT_LINEAR = "e825c109-f691-4716-a85f-b68a2626531c"


def load(source: str, name: str) -> Any:
    return json.loads((FIXTURES / source / f"{name}.json").read_text())


def jira_variant(n: int, labels: list[str], when: str, assignee: str | None = None,
                 actor: str = SUPPORT_JIRA, priority: str = "Medium", day: str = WEEK) -> Any:
    payload = copy.deepcopy(load("jira", "issue_created"))
    issue = payload["issue"]
    issue["id"] = str(20000 + n)
    issue["key"] = f"OPS-{n}"
    fields = issue["fields"]
    fields["labels"] = labels
    fields["priority"]["name"] = priority
    fields["created"] = fields["updated"] = f"{day}{when}.000+0000"
    fields["assignee"] = {"accountId": assignee} if assignee else None
    fields["project"]["key"] = "OPS"
    payload["user"] = {"accountId": actor, "displayName": "Ana Lima"}
    from datetime import datetime

    payload["timestamp"] = int(datetime.fromisoformat(f"{day}{when}+00:00").timestamp() * 1000)
    return payload


def page_event(name: str, when: str) -> Any:
    """PagerDuty's webhook about firstline's page for the OPS checkout tickets."""
    payload = copy.deepcopy(load("pagerduty", name))
    payload["event"]["occurred_at"] = f"{WEEK}{when}Z"
    payload["event"]["data"]["id"] = "PEXPAGE"
    payload["event"]["data"]["incident_key"] = "firstline/revenue-path/OPS"
    return payload


def github_sent_to_cto(when: str) -> Any:
    """The real `issues.assigned` as issue #3, assigned to the CTO by ops-lead (lpark)."""
    payload = copy.deepcopy(load("github", "issues.assigned"))
    issue = payload["issue"]
    issue["number"], issue["id"] = 3, 444500003
    issue["created_at"] = issue["updated_at"] = f"{when}Z"
    cto = {**payload["assignee"], "login": "dreyes"}
    payload["assignee"] = issue["assignee"] = cto
    issue["assignees"] = [cto]
    payload["sender"] = {**payload["sender"], "login": "lpark"}
    return payload


def linear_sent_to_cto(when: str) -> Any:
    """The real `Issue.create` as WEB-47, opened by support and assigned to the CTO."""
    payload = copy.deepcopy(load("linear", "Issue.create"))
    data = payload["data"]
    data["id"] = "3443a709-f2b5-46f2-a136-000000000047"
    data["number"] = 47
    data["createdAt"] = data["updatedAt"] = f"{when}Z"
    data["creatorId"] = SUPPORT_LINEAR
    data["assigneeId"] = CTO_LINEAR
    data["priority"], data["priorityLabel"] = 3, "Medium"
    data["state"] = {"id": data["stateId"], "name": "Todo", "type": "unstarted"}
    payload["url"] = "https://linear.app/webhooks/issue/WEB-47/examples"
    return payload


def main() -> None:
    shutil.rmtree(OUT, ignore_errors=True)
    for source_dir in FIXTURES.iterdir():
        if source_dir.is_dir():
            shutil.copytree(source_dir, OUT / source_dir.name)
    variants = {
        # revenue path: two checkout tickets in one project page the CTO once
        "OPS-1.checkout": jira_variant(1, ["checkout"], "09:00:00", priority="High"),
        "OPS-2.checkout": jira_variant(2, ["checkout", "bug"], "09:05:00", priority="High"),
        # assigned straight to the CTO by support: handed back to the owner
        "OPS-3.assigned-to-cto": jira_variant(3, ["cloud-bill"], "10:00:00", assignee=CTO_JIRA),
    }
    # the CTO opens one and takes it: an exception, counted against the cap
    variants["OPS-4.cto-takes-it"] = jira_variant(4, [], "09:30:00", assignee=CTO_JIRA,
                                                  actor=CTO_JIRA)
    # support sends the CTO a bug the next day: handed back again
    variants["OPS-5.assigned-to-cto"] = jira_variant(5, ["bug"], "10:00:00", assignee=CTO_JIRA,
                                                     day="2026-11-17T")
    # seven architecture questions on one day: the 6h cap fills up (the page's time and
    # the CTO's own ticket count against it too) and the rest wait for next week
    for n in range(7):
        variants[f"OPS-{10 + n}.architecture"] = jira_variant(10 + n, ["architecture"],
                                                              f"1{n}:00:00")
    for name, payload in variants.items():
        (OUT / "jira" / f"{name}.json").write_text(json.dumps(payload, indent=1) + "\n")
    others = {
        # the CTO acknowledges the checkout page in 4 minutes and resolves it 2.5 h later
        "pagerduty/incident.acknowledged.OPS-page": page_event("incident.acknowledged",
                                                               "09:04:00"),
        "pagerduty/incident.resolved.OPS-page": page_event("incident.resolved", "11:34:00"),
        "github/issues.assigned.sent-to-cto": github_sent_to_cto("2026-11-18T14:00:00"),
        "linear/Issue.create.sent-to-cto": linear_sent_to_cto("2026-11-18T15:00:00"),
    }
    for name, payload in others.items():
        (OUT / f"{name}.json").write_text(json.dumps(payload, indent=1) + "\n")
    (OUT / "SOURCES.md").unlink(missing_ok=True)
    print(f"wrote {sum(1 for _ in OUT.rglob('*.json'))} deliveries to {OUT}")


if __name__ == "__main__":
    main()
