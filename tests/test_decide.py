"""decide(): every outcome and rule of SPEC §4, on real items with changed fields."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

import yaml

from router.core.decide import decide
from router.core.history import history_from_json, history_to_json, remember
from router.core.model import Check, Decision, Event, History
from router.core.simulate import Delivery, simulate
from router.scope.load import Scope
from tests.support import (
    EXAMPLE_SCOPE,
    at,
    event_for,
    example_scope,
    fixture_event,
    fixture_item,
    scope_with,
)

SCOPE = example_scope()
CTO_JIRA = "5cedcb4355a88a0fc86388ba"
ENG_JIRA = "5c5f880629be9642ba529340"
SUPPORT_JIRA = "61e0a1b2c3d4e5f601234567"
BOT_JIRA = "712020:firstline-bot"

# TES-41: Jira, unassigned, priority High (sev2), label test-label, status open.
TICKET = fixture_item("jira", "issue_created")
T0 = TICKET.created_at


def run(event: Event, history: History | None = None, now: datetime | None = None) -> Decision:
    return decide(event, SCOPE, history or History(), now or event.occurred_at or T0)


def ticket(**changes: object) -> Event:
    item = replace(TICKET, **changes)  # type: ignore[arg-type]
    return event_for(item, actor=SUPPORT_JIRA, at=T0)


def types(d: Decision) -> list[str]:
    return [a.type for a in d.actions]


# --- escalate ---------------------------------------------------------------------------

def test_instant_trigger_pages_the_cto_and_hands_the_item_to_its_owner() -> None:
    d = run(ticket(labels=frozenset({"payments", "bug"})))
    assert d.outcome == "escalate"
    assert [t.id for t in d.triggers] == ["revenue-path"]
    assert d.triggers[0].because == ("label payments", "severity sev2 at least sev2")
    assert (d.owner, d.scope) == ("eng-lead", "Routine bug triage")
    assert types(d) == ["page", "comment", "assign"]
    page = d.actions[0]
    assert page.to == "cto" and page.dedup_key == "firstline/revenue-path/TES"
    assert d.actions[2].account == ENG_JIRA


def test_trigger_not_firing_below_its_severity() -> None:
    d = run(ticket(labels=frozenset({"payments"}), default_severity="sev3", priority="Medium"))
    assert d.outcome == "reassign"
    assert d.triggers == ()


def test_escalation_on_an_item_assigned_to_the_cto_moves_it_to_the_owner() -> None:
    item = replace(TICKET, labels=frozenset({"security"}), assignees=(CTO_JIRA,))
    d = run(event_for(item, actor=SUPPORT_JIRA, assigned=(CTO_JIRA,)))
    assert d.outcome == "escalate"
    assign = d.actions[-1]
    assert (assign.type, assign.account, assign.remove) == ("assign", ENG_JIRA, (CTO_JIRA,))


def test_escalation_leaves_another_persons_assignment_alone() -> None:
    d = run(ticket(labels=frozenset({"legal"}), assignees=(SUPPORT_JIRA,)))
    assert d.outcome == "escalate"
    assert types(d) == ["page", "comment"]


def test_open_page_is_not_paged_again_and_a_member_gets_no_new_actions() -> None:
    event = ticket(labels=frozenset({"privacy"}))
    key = "firstline/data-at-risk/jira:10040"
    joined = run(event, History(open_pages=frozenset({key}), member_of={key: 0}))
    assert joined.outcome == "escalate" and joined.actions == ()


def test_a_second_trigger_on_an_escalated_item_does_not_page_again() -> None:
    key = "firstline/data-at-risk/jira:10040"
    event = ticket(labels=frozenset({"legal"}))  # fires `legal`, whose page is not open
    d = run(event, History(open_pages=frozenset({key}), member_of={key: 0}))
    assert d.outcome == "escalate" and [t.id for t in d.triggers] == ["legal"]
    assert d.actions == () and key in d.reason


def test_grouped_trigger_pages_once_for_many_items_in_one_project() -> None:
    deliveries = []
    for n in range(20):
        item = replace(TICKET, id=f"2{n:04d}", key=f"TES-{100 + n}",
                       labels=frozenset({"checkout"}))
        deliveries.append(Delivery(f"storm-{n}", event_for(item, at=T0 + timedelta(seconds=n))))
    steps = list(simulate(deliveries, SCOPE, fire_remaining=False))
    assert [s.decision.outcome for s in steps] == ["escalate"] * 20
    pages = [a for s in steps for a in s.decision.actions if a.type == "page"]
    assert len(pages) == 1
    assert all("joins the open page" in s.decision.reason for s in steps[1:])


def test_storm_guard_joins_the_hours_storm_page() -> None:
    scope = scope_with(paging={"max_per_hour": 2})
    d = decide(ticket(labels=frozenset({"legal"})), scope, History(pages_last_hour=2), T0)
    page = d.actions[0]
    assert page.type == "page" and page.dedup_key.startswith("firstline/storm/")


# --- reassign ---------------------------------------------------------------------------

def test_unassigned_item_goes_to_its_owner_with_a_comment_citing_the_line() -> None:
    d = run(ticket(labels=frozenset({"bug"}), default_severity="sev3"))
    assert (d.outcome, d.owner, d.scope) == ("reassign", "eng-lead", "Routine bug triage")
    assert types(d) == ["assign", "comment"]
    assert "Routine bug triage" in (d.actions[1].text or "")


def test_item_assigned_to_the_cto_by_someone_else_is_handed_back() -> None:
    item = replace(TICKET, assignees=(CTO_JIRA,), default_severity="sev3")
    d = run(event_for(item, actor=SUPPORT_JIRA, assigned=(CTO_JIRA,)))
    assert d.outcome == "reassign" and d.handed_back
    assert d.assigner == "support-lead"
    assert (d.actions[0].type, d.actions[0].remove) == ("assign", (CTO_JIRA,))


def test_cto_among_several_assignees_is_removed_but_owner_not_assigned_twice() -> None:
    item = replace(TICKET, assignees=(CTO_JIRA, ENG_JIRA), default_severity="sev3")
    d = run(event_for(item, actor=SUPPORT_JIRA))
    assert d.outcome == "reassign"
    assert (d.actions[0].type, d.actions[0].remove) == ("unassign", (CTO_JIRA,))


def test_owner_without_an_account_in_the_tool_gets_named_in_a_comment() -> None:
    # ops-lead owns cloud-bill work but has no Jira account
    item = replace(TICKET, labels=frozenset({"cloud-bill"}), assignees=(CTO_JIRA,),
                   default_severity="sev3")
    d = run(event_for(item, actor=SUPPORT_JIRA))
    assert (d.outcome, d.owner) == ("reassign", "ops-lead")
    assert types(d) == ["unassign", "comment"]
    assert "no jira account" in (d.actions[1].text or "")


def test_pagerduty_incident_assigned_to_the_cto_is_reassigned_on_pagerduty() -> None:
    # incident.priority_updated is P2 and assigned to PXRUEF2 (the example CTO) by themself;
    # make a colleague the agent so it is not the CTO's own choice.
    event = fixture_event("pagerduty", "incident.priority_updated")
    event = replace(event, actor="PJ0LVEB", assigned=("PXRUEF2",))
    d = run(event)
    assert d.outcome == "reassign"
    assert (d.actions[0].type, d.actions[0].account, d.actions[0].remove) == (
        "reassign_incident", "PJ0LVEB", ("PXRUEF2",))
    assert types(d) == ["reassign_incident", "note"]  # an incident has notes, not comments


# --- defer and the cap ------------------------------------------------------------------

def architecture(**history: object) -> Decision:
    return run(ticket(labels=frozenset({"architecture"}), default_severity="sev3"),
               History(**history))  # type: ignore[arg-type]


def test_cto_owned_work_within_the_cap_is_kept_and_charged() -> None:
    d = architecture(cap_used_hours=5.0)
    assert (d.outcome, d.owner, d.cap_hours) == ("keep", "cto", 1.0)
    assert d.actions == ()


def test_cto_owned_work_past_the_cap_is_deferred_with_a_label() -> None:
    d = architecture(cap_used_hours=5.5)
    assert d.outcome == "defer"
    assert types(d) == ["comment", "label"] and d.actions[1].label == "next-cycle"
    assert d.evidence["cap"] == {"used_hours": 5.5, "cost_hours": 1.0, "cap_hours": 6.0,
                                 "counted": False}


def test_cto_owned_work_already_counted_this_week_is_not_charged_again() -> None:
    d = architecture(cap_used_hours=6.0, charged_this_week=True)
    assert (d.outcome, d.cap_hours) == ("keep", 0.0)


def test_the_cap_fills_up_over_a_week_in_a_replay() -> None:
    deliveries = []
    for n in range(8):
        item = replace(TICKET, id=f"3{n}", key=f"TES-{200 + n}",
                       labels=frozenset({"architecture"}), default_severity="sev3")
        deliveries.append(Delivery(f"a{n}", event_for(item, at=T0 + timedelta(minutes=n))))
    outcomes = [s.decision.outcome for s in simulate(deliveries, SCOPE)]
    assert outcomes == ["keep"] * 6 + ["defer"] * 2


# --- keep -------------------------------------------------------------------------------

def test_work_with_someone_other_than_the_cto_is_kept() -> None:
    d = run(ticket(assignees=(SUPPORT_JIRA,), default_severity="sev3"))
    assert (d.outcome, d.owner) == ("keep", "eng-lead")
    assert d.actions == ()


def test_cto_assigning_themself_is_an_exception_counted_against_the_cap() -> None:
    item = replace(TICKET, assignees=(CTO_JIRA,), default_severity="sev3")
    d = run(event_for(item, actor=CTO_JIRA, assigned=(CTO_JIRA,)))
    assert (d.outcome, d.exception, d.cap_hours, d.assigner) == ("keep", True, 1.0, "cto")


def test_person_putting_it_back_to_the_cto_is_not_overruled_twice() -> None:
    item = replace(TICKET, assignees=(CTO_JIRA,), default_severity="sev3")
    d = run(event_for(item, actor=SUPPORT_JIRA, assigned=(CTO_JIRA,)),
            History(newest_at=T0 - timedelta(minutes=5), handed_away=True))
    assert (d.outcome, d.exception, d.cap_hours) == ("keep", False, 1.0)
    assert "not overruled twice" in d.reason


def test_resolved_item_is_kept_and_its_page_resolved() -> None:
    key = "firstline/data-at-risk/jira:10040"
    d = run(ticket(status="resolved", labels=frozenset({"security"})),
            History(open_pages=frozenset({key}), member_of={key: 0}))
    assert d.outcome == "keep" and d.pending == ()
    assert [(a.type, a.dedup_key) for a in d.actions] == [("resolve_page", key)]


def test_resolved_item_leaves_a_shared_group_page_open_for_the_others() -> None:
    key = "firstline/revenue-path/TES"
    d = run(ticket(status="resolved"), History(open_pages=frozenset({key}), member_of={key: 2}))
    assert d.outcome == "keep" and d.actions == ()


def test_deleted_item_counts_as_resolved() -> None:
    event = fixture_event("jira", "issue_deleted")
    assert event.deleted
    d = run(event)
    assert d.outcome == "keep" and "deleted" in d.reason


# --- ignore -----------------------------------------------------------------------------

def test_events_caused_by_firstline_are_ignored() -> None:
    item = replace(TICKET, assignees=(ENG_JIRA,))
    d = run(event_for(item, actor=BOT_JIRA, assigned=(ENG_JIRA,)))
    assert d.outcome == "ignore" and "firstline's own" in d.reason


def test_skip_label_is_ignored() -> None:
    d = run(ticket(labels=frozenset({"firstline-skip", "payments"})))
    assert d.outcome == "ignore" and "skip label" in d.reason


def test_stale_delivery_is_ignored() -> None:
    d = run(ticket(), History(newest_at=T0 + timedelta(minutes=1)))
    assert d.outcome == "ignore" and d.reason.startswith("stale delivery")


def test_event_without_an_item_is_ignored_with_the_adapters_reason() -> None:
    d = run(fixture_event("github", "ping"))
    assert d.outcome == "ignore" and "ping" in d.reason


def test_firstlines_own_page_is_not_routed() -> None:
    event = fixture_event("pagerduty", "incident.escalated")
    assert event.item is not None
    own = replace(event, item=replace(event.item, incident_key="firstline/many-users/x"))
    assert run(own).outcome == "ignore"
    scope = scope_with(paging_service_id=event.item.service_id)
    assert decide(event, scope, History(), T0).outcome == "ignore"
    assert run(event).outcome == "escalate"


# --- timed triggers ---------------------------------------------------------------------

def test_no_owner_is_pending_until_fifteen_minutes_after_creation() -> None:
    event = ticket()
    before = run(event, now=T0 + timedelta(minutes=14))
    assert before.outcome == "reassign"
    assert [(p.id, p.due) for p in before.pending] == [("no-owner", T0 + timedelta(minutes=15))]
    after = run(event, now=T0 + timedelta(minutes=15))
    assert after.outcome == "escalate" and [t.id for t in after.triggers] == ["no-owner"]


def test_firstline_routing_does_not_stop_the_no_owner_clock() -> None:
    item = replace(TICKET, assignees=(ENG_JIRA,))
    history = History(newest_at=T0, assigned_by={ENG_JIRA.lower(): BOT_JIRA},
                      held_since={"no-owner": T0})
    timer = Event("jira", "timer", T0 + timedelta(minutes=15), None, item)
    assert run(timer, history, T0 + timedelta(minutes=15)).outcome == "escalate"


def test_owner_taking_it_or_starting_work_stops_the_no_owner_clock() -> None:
    by_person = replace(TICKET, assignees=(ENG_JIRA,))
    history = History(newest_at=T0, held_since={"no-owner": T0})
    later = T0 + timedelta(minutes=20)
    d = run(event_for(by_person, actor=ENG_JIRA, at=later, assigned=(ENG_JIRA,)), history, later)
    assert d.outcome == "keep" and d.pending == ()
    started = run(event_for(replace(TICKET, status="in_progress"), at=later), history, later)
    assert started.triggers == () and started.pending == ()


def test_timed_clock_starts_at_the_stretch_when_the_match_began_later() -> None:
    # the item became sev2 an hour after creation: 15 minutes count from then
    raised = T0 + timedelta(hours=1)
    event = event_for(TICKET, at=raised)
    d = run(event, History(newest_at=T0), raised + timedelta(minutes=5))
    assert [(p.id, p.due) for p in d.pending] == [("no-owner", raised + timedelta(minutes=15))]


def test_restore_time_counts_from_a_pagerduty_reopening() -> None:
    event = fixture_event("pagerduty", "incident.acknowledged")
    assert event.item is not None and event.occurred_at is not None
    reopened = event.occurred_at - timedelta(minutes=10)
    item = replace(event.item, reopened_at=reopened)
    d = run(replace(event, item=item))
    assert [(p.id, p.due) for p in d.pending] == [("restore-time",
                                                  reopened + timedelta(minutes=45))]


def test_release_blocked_waits_one_business_day_across_weekend_and_holiday() -> None:
    thursday = at("2026-12-24T14:00:00+00:00")  # 15:00 Berlin, before two holidays
    item = replace(TICKET, labels=frozenset({"release-blocker"}), assignees=(ENG_JIRA,),
                   created_at=thursday, updated_at=thursday, default_severity="sev3")
    event = event_for(item, actor=ENG_JIRA, at=thursday)
    due = at("2026-12-28T14:00:00+00:00")
    assert [(p.id, p.due) for p in run(event, now=thursday).pending] == [("release-blocked", due)]
    assert run(event, now=due - timedelta(seconds=1)).outcome == "keep"
    assert run(event, now=due).outcome == "escalate"


def test_timers_fire_in_a_replay_at_their_due_time() -> None:
    steps = list(simulate([Delivery("t", ticket())], SCOPE))
    assert [(s.origin, s.decision.outcome) for s in steps] == [("t", "reassign"),
                                                                (None, "escalate")]
    assert steps[1].at == T0 + timedelta(minutes=15)


# --- owners, away, evidence ------------------------------------------------------------

def test_backup_takes_the_work_while_the_owner_is_away() -> None:
    item = replace(TICKET, labels=frozenset({"cloud-bill"}), default_severity="sev3")
    event = event_for(item)
    away = run(event, now=at("2026-12-22T10:00:00+00:00"))
    assert (away.owner, away.scope) == ("eng-lead", "Cloud bill checks")
    assert away.evidence["owner"]["away"] == ["ops-lead"]
    back = run(event, now=at("2027-01-04T10:00:00+00:00"))
    assert back.owner == "ops-lead"


def test_severity_rule_overrides_the_vendor_default() -> None:
    d = run(ticket(labels=frozenset({"outage"}), default_severity="sev4"))
    assert d.severity == "sev1"
    assert d.evidence["severity"]["rule"] == "severity[1]"
    default = run(ticket())
    assert default.evidence["severity"] == {"value": "sev2", "rule": "default",
                                            "because": ["jira default for priority High"]}


def test_evidence_lists_every_trigger_with_the_values_seen() -> None:
    d = run(ticket(labels=frozenset({"payments"})))
    triggers = {t["id"]: t for t in d.evidence["triggers"]}
    assert set(triggers) == {t.id for t in SCOPE.triggers}
    assert triggers["revenue-path"]["held"] is True
    assert Check("labels", True, "label payments") in triggers["revenue-path"]["checks"]
    assert triggers["many-users"]["checks"] == (Check("kind", False, "kind ticket"),)


# --- time-boxed lines -------------------------------------------------------------------

def _stint_scope() -> Scope:
    """The example note with a rescue stint for cloud-bill work before its other lines."""
    stint = {"name": "Payments rescue", "match": {"labels": ["cloud-bill"]}, "owner": "cto",
             "cost": "2h", "until": "2026-11-20", "mode": "rescue"}
    owners = yaml.safe_load(EXAMPLE_SCOPE.read_text())["owners"]
    return scope_with(owners=[stint, *owners])


def test_a_time_boxed_line_applies_through_its_last_local_day_then_the_next_line_takes_over(
) -> None:
    scope = _stint_scope()
    item = replace(TICKET, labels=frozenset({"cloud-bill"}), default_severity="sev3")
    event = event_for(item, actor=SUPPORT_JIRA)
    # Europe/Berlin is UTC+1 in November: 22:59 UTC is the 20th's last minute there.
    last = decide(event, scope, History(), at("2026-11-20T22:59:00+00:00"))
    assert (last.outcome, last.owner, last.scope, last.cap_hours) == (
        "keep", "cto", "Payments rescue", 2.0)
    assert "skipped" not in last.evidence["owner"]
    after = decide(event, scope, History(), at("2026-11-20T23:00:00+00:00"))
    assert (after.outcome, after.owner, after.scope) == ("reassign", "ops-lead",
                                                         "Cloud bill checks")
    assert after.evidence["owner"]["skipped"] == [
        {"line": "Payments rescue", "index": 0, "until": "2026-11-20", "mode": "rescue",
         "why": "expired: its last day was 2026-11-20"}]


def test_replay_honours_a_time_boxed_lines_end() -> None:
    deliveries = []
    for n, when in enumerate(("2026-11-19T10:00:00+00:00", "2026-11-23T10:00:00+00:00")):
        item = replace(TICKET, id=f"5{n}", key=f"TES-{500 + n}", default_severity="sev3",
                       labels=frozenset({"cloud-bill"}), created_at=at(when),
                       updated_at=at(when))
        deliveries.append(Delivery(f"s{n}", event_for(item)))
    got = [(s.decision.outcome, s.decision.scope)
           for s in simulate(deliveries, _stint_scope())]
    assert got == [("keep", "Payments rescue"), ("reassign", "Cloud bill checks")]


# --- time to owner ----------------------------------------------------------------------

def test_the_first_decision_that_names_an_owner_records_the_minutes_since_creation() -> None:
    event = ticket(default_severity="sev3", priority="Medium")
    first = run(event, now=T0 + timedelta(minutes=12))
    assert (first.outcome, first.owner_minutes) == ("reassign", 12.0)
    later = run(event, History(newest_at=T0, owned=True), now=T0 + timedelta(minutes=30))
    assert later.owner_minutes is None  # only the first one counts


def test_time_to_owner_counts_from_the_earliest_creation_seen() -> None:
    event = ticket(default_severity="sev3", priority="Medium")
    d = run(event, History(newest_at=T0, created_at=T0 - timedelta(hours=1)),
            now=T0 + timedelta(minutes=5))
    assert d.owner_minutes == 65.0


def test_a_person_already_on_it_or_an_escalation_kept_by_the_team_is_an_owner() -> None:
    assert run(ticket(assignees=(SUPPORT_JIRA,), default_severity="sev3"),
               now=T0 + timedelta(minutes=3)).owner_minutes == 3.0
    escalated = run(ticket(labels=frozenset({"legal"})), now=T0)
    assert (escalated.outcome, escalated.owner_minutes) == ("escalate", 0.0)


def test_cto_work_and_resolved_items_record_no_time_to_owner() -> None:
    assert architecture(cap_used_hours=0.0).owner_minutes is None
    own = replace(TICKET, assignees=(CTO_JIRA,), default_severity="sev3")
    assert run(event_for(own, actor=CTO_JIRA, assigned=(CTO_JIRA,))).owner_minutes is None
    assert run(ticket(status="resolved")).owner_minutes is None


def test_a_put_back_records_who_put_it_back() -> None:
    item = replace(TICKET, assignees=(CTO_JIRA,), default_severity="sev3")
    d = run(event_for(item, actor=SUPPORT_JIRA, assigned=(CTO_JIRA,)),
            History(newest_at=T0 - timedelta(minutes=5), handed_away=True))
    assert (d.cap_hours, d.exception, d.handed_back, d.assigner) == (
        1.0, False, False, "support-lead")


def test_history_remembers_that_the_item_was_owned() -> None:
    event = ticket(default_severity="sev3", priority="Medium")
    after = remember(History(), event, run(event))
    assert after.owned
    assert history_from_json(history_to_json(after)).owned
    assert not history_from_json({}).owned  # rows written before it existed
