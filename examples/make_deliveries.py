"""Write examples/deliveries/: the real vendor fixtures plus variants made from them.

    .venv/bin/python examples/make_deliveries.py

Each variant is a real payload from tests/fixtures/vendor/ with a few fields changed
(ids, labels, times), so `firstline replay --rules examples/scope.yaml examples/deliveries`
shows every outcome: escalate, reassign, defer, keep and ignore.
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


def load(source: str, name: str) -> Any:
    return json.loads((FIXTURES / source / f"{name}.json").read_text())


def jira_variant(n: int, labels: list[str], when: str, assignee: str | None = None,
                 actor: str = SUPPORT_JIRA, priority: str = "Medium") -> Any:
    payload = copy.deepcopy(load("jira", "issue_created"))
    issue = payload["issue"]
    issue["id"] = str(20000 + n)
    issue["key"] = f"OPS-{n}"
    fields = issue["fields"]
    fields["labels"] = labels
    fields["priority"]["name"] = priority
    fields["created"] = fields["updated"] = f"{WEEK}{when}.000+0000"
    fields["assignee"] = {"accountId": assignee} if assignee else None
    fields["project"]["key"] = "OPS"
    payload["user"] = {"accountId": actor, "displayName": "Ana Lima"}
    from datetime import datetime

    payload["timestamp"] = int(datetime.fromisoformat(f"{WEEK}{when}+00:00").timestamp() * 1000)
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
    # seven architecture questions in one week: six fit the 6h cap, the seventh waits
    for n in range(7):
        variants[f"OPS-{10 + n}.architecture"] = jira_variant(10 + n, ["architecture"],
                                                              f"1{n}:00:00")
    for name, payload in variants.items():
        (OUT / "jira" / f"{name}.json").write_text(json.dumps(payload, indent=1) + "\n")
    (OUT / "SOURCES.md").unlink(missing_ok=True)
    print(f"wrote {sum(1 for _ in OUT.rglob('*.json'))} deliveries to {OUT}")


if __name__ == "__main__":
    main()
