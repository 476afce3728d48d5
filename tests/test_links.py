"""Linking: which items name which, one table row per case, on items of real payloads."""

from __future__ import annotations

import dataclasses

import pytest

from router.core.model import WorkItem
from router.reviews.links import names, references
from tests.support import fixture_item

PR = fixture_item("github", "pull_request.opened")
TICKET = fixture_item("jira", "issue_created", key="OPS-1")
INCIDENT = fixture_item("pagerduty", "incident.resolved")
ISSUE = fixture_item("github", "issues.opened")


def text(item: WorkItem, title: str = "", description: str = "",
         branch: str | None = None) -> WorkItem:
    return dataclasses.replace(item, title=title, description=description, branch=branch)


@pytest.mark.parametrize(("item", "expected"), [
    (text(PR, "Fix checkout rounding (OPS-1)"), {"OPS-1"}),
    (text(PR, "Fix rounding", branch="ops-1-fix-rounding"), {"OPS-1"}),
    (text(PR, "Fix", "Closes https://linear.app/acme/issue/WEB-44/checkout-fails"), {"WEB-44"}),
    (text(PR, "Fix", "Follows acme/web#7 and https://github.com/acme/api/pull/12"),
     {"acme/web#7", "acme/api#12"}),
    (text(INCIDENT, "Checkout down, see https://x.atlassian.net/browse/OPS-2"), {"OPS-2"}),
    (text(TICKET, "Pager: https://acme.pagerduty.com/incidents/PCPZE64"), {"PCPZE64"}),
    (text(TICKET, "Mentions itself: OPS-1"), set()),
    (text(PR, "Update the README with new information."), set()),
])
def test_references_are_the_item_names_a_text_holds(item: WorkItem, expected: set[str]) -> None:
    assert references(item) == expected


@pytest.mark.parametrize(("said", "item", "named"), [
    ("Fix OPS-1 now", TICKET, True),
    ("ops-1-fix-rounding", TICKET, True),
    ("https://x.atlassian.net/browse/OPS-1", TICKET, True),
    ("Fix OPS-10 now", TICKET, False),
    ("TOPS-1", TICKET, False),
    ("see Codertocat/Hello-World#1", ISSUE, True),
    ("https://github.com/Codertocat/Hello-World/issues/1", ISSUE, True),
    ("see Codertocat/Hello-World#12", ISSUE, False),
    ("https://acme.pagerduty.com/incidents/PCPZE64", INCIDENT, True),
])
def test_a_name_counts_only_as_a_whole_word(said: str, item: WorkItem, named: bool) -> None:
    assert names(said, item) is named

