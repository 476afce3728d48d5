"""Every match predicate of SPEC §2, as a table of cases on real items."""

from __future__ import annotations

from typing import Any

import pytest

from router.core.match import Facts, compile_match
from router.core.model import Severity, WorkItem
from router.scope.schema import MatchSpec
from tests.support import fixture_item

PEOPLE = frozenset({"cto", "eng-lead", "support-lead"})

# Jira TES-41: project TES, labels test-label, priority High, status open, unassigned.
JIRA = fixture_item("jira", "issue_created")
# PagerDuty incident on service "pig208" (id PA2P440).
INCIDENT = fixture_item("pagerduty", "incident.triggered")


def facts(item: WorkItem = JIRA, severity: Severity = "sev2", assignees: tuple[str, ...] = (),
          reporter: str | None = "support-lead", owner_named: bool = False) -> Facts:
    return Facts(item, severity, assignees, reporter, owner_named)


def holds(spec: dict[str, Any], f: Facts) -> bool:
    return compile_match(MatchSpec.model_validate(spec), PEOPLE)(f).held


CASES: list[tuple[str, dict[str, Any], Facts, bool]] = [
    ("empty match always holds", {}, facts(), True),
    ("source", {"source": "jira"}, facts(), True),
    ("source list, other", {"source": ["github", "linear"]}, facts(), False),
    ("source is case-insensitive", {"source": "JIRA"}, facts(), True),
    ("kind ticket", {"kind": "ticket"}, facts(), True),
    ("kind incident on a ticket", {"kind": ["incident"]}, facts(), False),
    ("kind incident", {"kind": "incident"}, facts(INCIDENT), True),
    ("project key", {"project": "TES"}, facts(), True),
    ("project key, case-insensitive", {"project": ["tes"]}, facts(), True),
    ("project other", {"project": "OPS"}, facts(), False),
    ("project by PagerDuty service name", {"project": "pig208"}, facts(INCIDENT), True),
    ("project by PagerDuty service id", {"project": "PA2P440"}, facts(INCIDENT), True),
    ("labels any of", {"labels": ["payments", "test-label"]}, facts(), True),
    ("labels case-insensitive", {"labels": "TEST-LABEL"}, facts(), True),
    ("labels none of", {"labels": ["payments"]}, facts(), False),
    ("labels_all all present", {"labels_all": ["test-label"]}, facts(), True),
    ("labels_all one missing", {"labels_all": ["test-label", "bug"]}, facts(), False),
    ("priority", {"priority": "High"}, facts(), True),
    ("priority case-insensitive", {"priority": ["highest", "high"]}, facts(), True),
    ("priority other", {"priority": "Low"}, facts(), False),
    ("priority on item without one", {"priority": "P1"}, facts(INCIDENT), False),
    ("severity exact", {"severity": "sev2"}, facts(), True),
    ("severity list", {"severity": ["sev1", "sev3"]}, facts(), False),
    ("severity at_least holds for more severe", {"severity": {"at_least": "sev2"}},
     facts(severity="sev1"), True),
    ("severity at_least holds for equal", {"severity": {"at_least": "sev2"}}, facts(), True),
    ("severity at_least fails for less severe", {"severity": {"at_least": "sev2"}},
     facts(severity="sev3"), False),
    ("severity at_most holds for less severe", {"severity": {"at_most": "sev3"}},
     facts(severity="sev4"), True),
    ("severity at_most fails for more severe", {"severity": {"at_most": "sev3"}},
     facts(severity="sev2"), False),
    ("status", {"status": ["open", "in_progress"]}, facts(), True),
    ("status other", {"status": "resolved"}, facts(), False),
    ("assignee none: unassigned", {"assignee": "none"}, facts(), True),
    ("assignee none: firstline assigned, not started", {"assignee": "none"},
     facts(assignees=("eng-lead",), owner_named=False), True),
    ("assignee none: a person named an owner", {"assignee": "none"},
     facts(assignees=("eng-lead",), owner_named=True), False),
    ("assignee any", {"assignee": "any"}, facts(assignees=("557058:someone",),
                                                owner_named=True), True),
    ("assignee any: unassigned", {"assignee": "any"}, facts(), False),
    ("assignee person key", {"assignee": ["cto"]}, facts(assignees=("cto", "eng-lead")), True),
    ("assignee other person", {"assignee": "cto"}, facts(assignees=("eng-lead",)), False),
    ("assignee unknown account is no key", {"assignee": "eng-lead"},
     facts(assignees=("557058:someone",)), False),
    ("reporter", {"reporter": "support-lead"}, facts(), True),
    ("reporter other", {"reporter": ["cto"]}, facts(), False),
    ("text in title", {"text": "unit test"}, facts(), True),
    ("text in description", {"text": "not that long"}, facts(), True),
    ("text regex, case-insensitive", {"text": "^UNIT\\s+TEST"}, facts(), True),
    ("text absent", {"text": "checkout"}, facts(), False),
    ("any: one alternative holds", {"any": [{"labels": "x"}, {"source": "jira"}]}, facts(), True),
    ("any: none holds", {"any": [{"labels": "x"}, {"source": "github"}]}, facts(), False),
    ("all: every one holds", {"all": [{"source": "jira"}, {"status": "open"}]}, facts(), True),
    ("all: one fails", {"all": [{"source": "jira"}, {"status": "resolved"}]}, facts(), False),
    ("not", {"not": {"labels": "test-label"}}, facts(), False),
    ("not of a failing map", {"not": {"source": "github"}}, facts(), True),
    ("every key must hold", {"source": "jira", "labels": "nope"}, facts(), False),
]


@pytest.mark.parametrize(("spec", "f", "expected"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_predicate(spec: dict[str, Any], f: Facts, expected: bool) -> None:
    assert holds(spec, f) is expected


def test_evidence_names_the_values_seen() -> None:
    spec = MatchSpec.model_validate({"labels": ["payments", "test-label"],
                                     "severity": {"at_least": "sev2"}})
    result = compile_match(spec, PEOPLE)(facts(severity="sev1"))
    assert result.held
    assert [(c.key, c.held, c.saw) for c in result.checks] == [
        ("labels", True, "label test-label"), ("severity", True, "severity sev1 at least sev2")]
    assert result.because() == ["label test-label", "severity sev1 at least sev2"]


def test_evidence_stops_at_the_predicate_that_failed() -> None:
    spec = MatchSpec.model_validate({"labels": ["payments", "test-label"], "priority": "Low",
                                     "severity": {"at_least": "sev2"}})
    result = compile_match(spec, PEOPLE)(facts(severity="sev1"))
    assert not result.held
    assert [(c.key, c.held, c.saw) for c in result.checks] == [
        ("labels", True, "label test-label"), ("priority", False, "priority High")]
