"""The monthly review and the exception log of a seeded month (tests/seeded_month.py),
on SQLite and PostgreSQL, every figure worked out here from the month's facts.

The deliveries go through the real app (signatures, inbox) and the real worker, whose
clock is set to each delivery's own time, so caps, away days and timers are judged as
they would have been that day.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.seeded_month import MONTH, PAGE_KEY, month_database, seeded
from tests.support import firstline

AUTH = {"Authorization": "Bearer x"}
JSON = {**AUTH, "Accept": "application/json"}


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def month_db(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) \
        -> Iterator[str]:
    """A database of its own for the module: the month is seeded once per database."""
    with month_database(request.param, tmp_path_factory) as url:
        yield url


@pytest.fixture(scope="module")
def november(month_db: str, tmp_path_factory: pytest.TempPathFactory) \
        -> Iterator[tuple[TestClient, Path]]:
    """Yield the app with the month seeded, and its scope note."""
    with seeded(month_db, tmp_path_factory.mktemp("rules")) as month:
        yield month.client, month.rules


def rank(values: list[float], percent: int) -> float:
    """Nearest rank, worked out independently of the code under test."""
    ordered = sorted(values)
    return float(ordered[math.ceil(percent * len(ordered) / 100) - 1])


def spread(minutes: list[float]) -> dict[str, Any]:
    return {"median": rank(minutes, 50), "p90": rank(minutes, 90), "count": len(minutes)}


# Minutes from each item's creation to the first decision that gave it an owner other
# than the CTO, per source, from the seeded facts:
TIME_TO_OWNER = {
    # OPS-101 created 09:00, handed back 10:00; OPS-105 14:50 -> 15:00; WEB-101 paged at
    # creation (the team keeps it); OPS-110 14:30 -> 15:00; OPS-112 at creation (the
    # founder, away without a backup, is still its owner); OPS-113 13:20 -> 14:00;
    # OPS-114 08:00 -> 09:00 (the expired stint skipped). OPS-100 is October's.
    "jira": [60, 10, 0, 30, 0, 40, 60],
    # GitHub #7 created 13:30, handed back 14:00; PR #12 handed to eng-lead when opened.
    "github": [30, 0],
    # WEB-44 created 10:45, handed back 11:00; WEB-45 escalated at creation.
    "linear": [15, 0],
    # PSEED01 triggered already with eng-lead.
    "pagerduty": [0],
}

EXPECTED_SUGGESTIONS = [
    "Set one change for next month, starting with the biggest: the week of 2026-11-16 "
    "used 6.5 CTO hours against the 6h cap.",
    "The week of 2026-11-16 used 6.5 CTO hours against the 6h cap: look at what charged "
    "it (the exception log) and move the biggest part to a team owner.",
    "4 items were put on the CTO by support-lead this month: agree with support-lead which "
    "owner line that work belongs to, and add a line if none fits.",
    "2 items were put on the CTO by ops-lead this month: agree with ops-lead which owner "
    "line that work belongs to, and add a line if none fits.",
    "7 items matched only the catch-all line 'Everything else' (most: project OPS 3, "
    "project WEB 3, label checkout 2, label billing-cleanup 1): give the biggest group an "
    "owner line of its own.",
    "The cleanup stint 'Billing cleanup' ended on 2026-11-13 but 1 item still matched it "
    "afterwards (0 CTO hours charged under it after its stop): renew it with a new until, "
    "or give that work a permanent owner line.",
    "5 of 7 triggers never fired this month (data-at-risk, many-users, restore-time, "
    "no-owner, legal): check each still matches how the team labels such work, or drop it.",
    "Nobody backs up founder, who was away 5 days this month: name a backup in the scope "
    "note.",
]


def expected_report() -> dict[str, Any]:
    """The month's review, figure by figure, from the facts in tests/seeded_month.py."""
    weeks = {
        "2026-11-02": 1 + 2,  # OPS-102 (the CTO's own, 1h) + OPS-103 (cleanup, 2h)
        "2026-11-09": 1 + 2,  # OPS-104 (architecture) + OPS-106 (cleanup's last day)
        # the grouped page acknowledged 10:04 -> resolved 12:34, OPS-107..109, and the
        # release-blocked page never acknowledged (1h): OPS-111 was deferred
        "2026-11-16": 2.5 + 3 * 1 + 1,
        "2026-11-23": 1,  # GitHub #7 put back by ops-lead (its line's 1h)
        "2026-11-30": 1 + 1,  # OPS-115 (30 Nov) and OPS-116 (1 Dec, the same week)
    }
    return {
        "month": "2026-11", "timezone": "Europe/Berlin", "cap_hours_per_week": 6.0,
        "weeks": [{"start": w, "cto_hours": h, "over_cap": h > 6} for w, h in weeks.items()],
        "cto_hours": sum(weeks.values()),
        "escalations": {
            "total": 2, "by_trigger": {"release-blocked": 1, "revenue-path": 1},
            "items": [
                {"id": 1, "trigger": "revenue-path", "items": ["WEB-101", "WEB-45"],
                 "paged_at": "2026-11-16T10:00:00+01:00", "status": "resolved",
                 "minutes_to_acknowledge": 4.0, "cto_minutes": 150.0, "hours": 2.5,
                 "follow_up_owner": "eng-lead"},
                {"id": 2, "trigger": "release-blocked", "items": ["OPS-110"],
                 # Wednesday 14:30 + 9 business hours, skipping Thursday's holiday
                 "paged_at": "2026-11-20T14:30:00+01:00", "status": "open",
                 "minutes_to_acknowledge": None, "cto_minutes": None, "hours": 1.0,
                 "follow_up_owner": "eng-lead"}]},
        "handed_back": {
            "total": 5,  # OPS-101, OPS-105, OPS-113, WEB-44, GitHub #7
            "by_source": {"github": 1, "jira": 3, "linear": 1},
            # WEB-44's delivery names no actor: its reporter, support-lead, counts
            "by_assigner": {"support-lead": 4, "ops-lead": 1},
            "top_senders": [{"who": "support-lead", "count": 4},
                            {"who": "ops-lead", "count": 1 + 1}]},  # + the put-back
        "exceptions": {"total": 1, "items": ["OPS-102"]},
        "deferred": 1,  # OPS-111
        "time_to_owner_minutes": {s: spread(m) for s, m in sorted(TIME_TO_OWNER.items())},
        "scope_lines": [
            {"line": "Billing cleanup", "owner": "cto", "items": 2, "reached_cto": 2},
            {"line": "Production incident below the CTO threshold", "owner": "eng-lead",
             "items": 1, "reached_cto": 0},  # PSEED01; the CTO's page is not routed
            {"line": "Routine bug triage", "owner": "eng-lead", "items": 2,
             "reached_cto": 2},  # GitHub #7, OPS-113
            {"line": "Cloud bill checks", "owner": "ops-lead", "items": 1, "reached_cto": 1},
            {"line": "Vendor intro calls", "owner": "founder", "items": 2,
             "reached_cto": 1},  # OPS-105 was handed back, OPS-112 was not
            {"line": "Weekly architecture review", "owner": "cto", "items": 6,
             "reached_cto": 6},  # OPS-104, 107, 108, 109, 111, 115
            # OPS-102, WEB-44, WEB-101, WEB-45, OPS-110 reached the CTO; PR #12, OPS-114 not
            {"line": "Everything else", "owner": "eng-lead", "items": 7, "reached_cto": 5}],
        "time_boxed": [{
            "line": "Billing cleanup", "owner": "cto", "mode": "cleanup",
            "until": "2026-11-13", "note": "until the billing export is rewritten",
            "hours": 2 + 2, "items": 2, "ended": True, "items_after_stop": 1,
            "hours_after_stop": 0.0, "ran_past_stop": True}],
        "catch_all": {
            "line": "Everything else", "items": 7,
            "by_project": {"OPS": 3, "WEB": 3, "Codertocat/Hello-World": 1},
            "by_label": {"checkout": 2, "billing-cleanup": 1, "improvement": 1,
                         "release-blocker": 1}},
        "triggers_fired": {"revenue-path": 4,  # WEB-101 and WEB-45, twice each
                           "data-at-risk": 0, "many-users": 0, "restore-time": 0,
                           "no-owner": 0, "release-blocked": 1, "legal": 0},
        "away_without_backup": {"founder": 5},
        "decisions": {
            "defer": 1, "escalate": 2 + 2 + 1,
            "ignore": 3,  # firstline's own GitHub change, the page's two PagerDuty events
            "keep": 11,
            "reassign": 9},
        "suggestions": EXPECTED_SUGGESTIONS,
    }


def test_the_monthly_review_holds_every_figure_of_the_seeded_month(
        november: tuple[TestClient, Path]) -> None:
    client, _ = november
    answer = client.get(f"/api/v1/reports/monthly?month={MONTH}", headers=JSON)
    assert answer.status_code == 200, answer.text
    report = answer.json()
    definitions = report.pop("definitions")
    assert report["suggestions"] == EXPECTED_SUGGESTIONS
    assert report == expected_report()
    assert set(definitions) == {"weeks", "escalations", "escalation_times", "handed_back",
                                "top_senders", "exceptions", "deferred",
                                "time_to_owner_minutes", "scope_lines", "time_boxed",
                                "catch_all", "triggers_fired", "away_without_backup",
                                "decisions"}


def expected_log() -> list[dict[str, Any]]:
    """The month's exception log, from the seeded facts: every spend of the CTO's time."""
    def owned(at: str, key: str, line: str, hours: float) -> dict[str, Any]:
        return {"at": at, "kind": "cto-owned", "items": [key],
                "what": f"{key} kept for the CTO's scheduled block",
                "why": f"scope line {line!r}", "hours": hours, "follow_up_owner": "cto",
                "escalation_id": None}

    architecture = "Weekly architecture review"
    return [
        {"at": "2026-11-03T11:00:00+01:00", "kind": "self-assigned", "items": ["OPS-102"],
         "what": "The CTO assigned OPS-102 to themself", "why": "CTO took it", "hours": 1.0,
         "follow_up_owner": "eng-lead", "escalation_id": None},
        owned("2026-11-04T09:00:00+01:00", "OPS-103", "Billing cleanup", 2.0),
        owned("2026-11-09T09:30:00+01:00", "OPS-104", architecture, 1.0),
        owned("2026-11-13T16:00:00+01:00", "OPS-106", "Billing cleanup", 2.0),
        {"at": "2026-11-16T10:00:00+01:00", "kind": "escalation",
         "items": ["WEB-101", "WEB-45"],
         "what": "Paged the CTO about WEB-101, WEB-45 (acknowledged after 4 min, CTO time "
                 "150 min)",
         "why": "trigger revenue-path: Payments, signups or another revenue path stopped "
                "working", "hours": 2.5, "follow_up_owner": "eng-lead", "escalation_id": 1},
        owned("2026-11-17T09:00:00+01:00", "OPS-107", architecture, 1.0),
        owned("2026-11-17T11:00:00+01:00", "OPS-108", architecture, 1.0),
        owned("2026-11-18T09:00:00+01:00", "OPS-109", architecture, 1.0),
        {"at": "2026-11-20T14:30:00+01:00", "kind": "escalation", "items": ["OPS-110"],
         "what": "Paged the CTO about OPS-110 (still open)",
         "why": "trigger release-blocked: A release has been blocked for more than one "
                "business day", "hours": 1.0, "follow_up_owner": "eng-lead",
         "escalation_id": 2},
        {"at": "2026-11-24T11:00:00+01:00", "kind": "put back",
         "items": ["Codertocat/Hello-World#7"],
         "what": "ops-lead put Codertocat/Hello-World#7 back on the CTO after firstline "
                 "handed it on",
         "why": "scope line 'Routine bug triage'; not overruled twice", "hours": 1.0,
         "follow_up_owner": "eng-lead", "escalation_id": None},
        owned("2026-11-30T23:30:00+01:00", "OPS-115", architecture, 1.0),
    ]


def test_the_exception_log_lists_every_spend_of_the_ctos_time(
        november: tuple[TestClient, Path]) -> None:
    client, _ = november
    answer = client.get(f"/api/v1/exceptions?month={MONTH}", headers=JSON)
    assert answer.status_code == 200, answer.text
    log = answer.json()
    entries = log.pop("entries")
    decision_ids = [e.pop("decision_id") for e in entries]
    assert entries == expected_log()
    assert (log["month"], log["timezone"], log["total"]) == ("2026-11", "Europe/Berlin", 11)
    assert log["hours"] == sum(e["hours"] for e in expected_log())  # 14.5
    for entry, decision_id in zip(entries, decision_ids, strict=True):
        decided = client.get(f"/api/v1/decisions/{decision_id}", headers=AUTH).json()
        assert decided["item_key"] in entry["items"]


def test_the_commands_print_what_the_api_answers(
        november: tuple[TestClient, Path], month_db: str) -> None:
    db_url = month_db
    client, rules = november
    report = firstline(db_url, "report", "--rules", str(rules), "--month", MONTH,
                       "--format", "json")
    assert report.returncode == 0, report.stderr
    api = client.get(f"/api/v1/reports/monthly?month={MONTH}", headers=JSON).json()
    assert json.loads(report.stdout) == api
    as_csv = client.get(f"/api/v1/reports/monthly?month={MONTH}",
                        headers={**AUTH, "Accept": "text/csv"}).text
    cells = {(r["section"], r["key"], r["field"]): r["value"]
             for r in csv.DictReader(io.StringIO(as_csv))}
    assert cells[("weeks", "3", "cto_hours")] == "6.5"
    assert cells[("weeks", "3", "over_cap")] == "true"
    assert cells[("escalations", "items.1", "items")] == "WEB-101;WEB-45"
    assert cells[("handed_back", "by_assigner", "support-lead")] == "4"
    assert cells[("time_boxed", "1", "ran_past_stop")] == "true"
    assert cells[("suggestions", "", "")] == ";".join(EXPECTED_SUGGESTIONS)
    log = firstline(db_url, "exceptions", "--rules", str(rules), "--month", MONTH,
                    "--format", "csv")
    assert log.returncode == 0, log.stderr
    rows = list(csv.DictReader(io.StringIO(log.stdout)))
    assert [r["items"] for r in rows] == [";".join(e["items"]) for e in expected_log()]
    assert [float(r["hours"]) for r in rows] == [e["hours"] for e in expected_log()]


def test_the_review_checklists_of_the_grouped_and_the_timed_escalation(
        november: tuple[TestClient, Path]) -> None:
    """The month's two escalations as their review checklists tell them."""
    client, _ = november
    grouped = client.get("/api/v1/escalations/1/review", headers=JSON).json()
    assert (grouped["status"], grouped["missing"]) == ("resolved", [])
    assert [(t["id"], t["item"], t["because"]) for t in grouped["triggers"]] == [
        ("revenue-path", "WEB-101", ["label checkout", "severity sev2 at least sev2"])]
    # Two tools' items on one page, and the pull request that names WEB-101, linked
    assert [(i["source"], i["key"], i["linked"], i["via"]) for i in grouped["items"]] == [
        ("jira", "WEB-101", False, None), ("linear", "WEB-45", False, None),
        ("github", "Codertocat/Hello-World#12", True, "names WEB-101")]
    assert grouped["items"][2]["url"] == "https://github.com/Codertocat/Hello-World/pull/12"
    assert (grouped["follow_up_owner"], grouped["cto_minutes"]) == ("eng-lead", 150.0)
    # As the monthly review counts it: from the page's decision (09:00), though firstline
    # learned the page was sent only from PagerDuty's acknowledgement (09:04)
    assert (grouped["minutes_to_acknowledge"], grouped["minutes_to_resolve"]) == (4.0, 154.0)
    assert grouped["page"]["sent_at"] == "2026-11-16T09:04:00+00:00"
    assert (grouped["acknowledged_at"], grouped["resolved_at"]) == (
        "2026-11-16T09:04:00+00:00", "2026-11-16T11:34:00+00:00")  # 10:04 and 12:34 local
    timeline = grouped["timeline"]
    assert [ln["at"] for ln in timeline] == sorted(ln["at"] for ln in timeline)
    assert {ln["source"] for ln in timeline} == {"jira", "linear", "github", "pagerduty",
                                                "firstline"}
    told = [(ln["at"][11:16], ln["source"], ln["key"], ln["event"]) for ln in timeline]
    assert told[0] == ("09:00", "jira", "WEB-101", "created: 'Unit test summary'; status "
                       "open; priority High; sev2; labels checkout; unassigned (by support-lead)")
    assert ("09:04", "pagerduty", PAGE_KEY, "the CTO's page was acknowledged") in told
    assert next(t for t in told if t[2] == "WEB-45")[:3] == ("09:10", "linear", "WEB-45")
    assert {ln["key"] for ln in timeline if ln["linked"]} == {"Codertocat/Hello-World#12"}
    assert told[-1] == ("11:34", "firstline", "escalation 1",
                        "escalation resolved: ready for review")

    timed = client.get("/api/v1/escalations/2/review", headers=JSON).json()
    assert (timed["status"], timed["paged_at"]) == ("open", "2026-11-20T13:30:00+00:00")
    assert [(t["id"], t["item"]) for t in timed["triggers"]] == [("release-blocked", "OPS-110")]
    # one business day from Wednesday 14:30, Thursday's holiday skipped
    assert timed["triggers"][0]["because"][-1] == \
        "clock from 2026-11-18T14:30:00+01:00, due 2026-11-20T14:30:00+01:00"
    assert [(i["source"], i["key"]) for i in timed["items"]] == [("jira", "OPS-110")]
    assert (timed["follow_up_owner"], timed["cto_minutes"], timed["resolved_at"]) == (
        "eng-lead", None, None)
    events = [(ln["at"], ln["source"], ln["event"]) for ln in timed["timeline"]]
    assert events[0][:2] == ("2026-11-18T14:00:00+00:00", "jira")  # 15:00 local
    assert ("2026-11-20T13:30:00+00:00", "firstline", "escalate: CTO trigger release-blocked "
            "(A release has been blocked for more than one business day) fired; pages the "
            "CTO.") in events
    assert timed["questions"] == grouped["questions"] and len(timed["prevention"]) == 4
