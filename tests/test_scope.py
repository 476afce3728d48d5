"""Loading a scope note (SPEC §2): every refusal as `path:line: message`, warnings, and
the forms a valid note may take.

Each file in tests/scopes/invalid/ is a small note, valid but for the problem its name
says (like Alertmanager's config/testdata); INVALID lists the exact lines each must give.
"""

from __future__ import annotations

from datetime import date, time
from pathlib import Path

import pytest
import yaml

from router.core.durations import Duration
from router.core.match import Facts
from router.scope.load import Scope, ScopeError, load_scope, parse_scope
from router.scope.schema import MatchSpec, SeverityBound
from tests.support import EXAMPLE_SCOPE, fixture_item

INVALID_DIR = Path(__file__).resolve().parent / "scopes" / "invalid"

PEOPLE_CHOICES = "(define it under people)"
DURATION_HINT = "(use e.g. 15m, 2h, 1d, 1 business day)"
SEVERITIES = "Input should be 'sev1', 'sev2', 'sev3' or 'sev4'"
PLAIN_ONLY = "is not allowed: a scope note holds plain values, mappings and lists only"

# file stem -> the (line, message) pairs `load_scope` must report, in this order.
INVALID: dict[str, list[tuple[int, str]]] = {
    # unknown keys
    "unknown_top_level_key": [(9, "escalation_policy: unknown key 'escalation_policy'")],
    "unknown_key_in_owner_line": [(9, "owners[0].priority: unknown key 'priority'")],
    "unknown_key_in_match": [(10, "owners[0].match.component: unknown key 'component'")],
    "unknown_predicate_nested": [(15, "triggers[0].match.any[1].title: unknown key 'title'")],
    "unknown_key_in_person": [(5, "people.lead.slack: unknown key 'slack'")],
    # person keys that are not defined under people
    "undefined_owner": [
        (9, f"owners[0].owner: unknown person 'eng-lead' {PEOPLE_CHOICES}")],
    "undefined_cto": [(5, f"cto: unknown person 'dana' {PEOPLE_CHOICES}")],
    "undefined_backup": [
        (5, f"people.lead.backup: unknown person 'ops-lead' {PEOPLE_CHOICES}")],
    "own_backup": [(5, "people.lead.backup: a person cannot be their own backup")],
    "undefined_assignee": [
        (12, "triggers[0].match.assignee: unknown person 'nobody' "
             "(define it under people, or use none/any)")],
    "undefined_reporter": [
        (8, f"owners[0].match.reporter: unknown person 'founder' {PEOPLE_CHOICES}")],
    "undefined_person_nested": [
        (16, "triggers[0].match.all[1].any[0].reporter: unknown person 'support' "
             f"{PEOPLE_CHOICES}"),
        (17, "triggers[0].match.all[1].any[1].not.assignee: unknown person 'ghost' "
             "(define it under people, or use none/any)"),
    ],
    # values
    "bad_regex": [
        (12, "triggers[0].match.text: bad regular expression '(gdpr|subpoena': "
             "missing ), unterminated subpattern at position 0")],
    "bad_duration_after": [
        (13, f"triggers[0].after: not a duration: 'a quarter hour' {DURATION_HINT}")],
    "negative_duration": [
        (13, "triggers[0].after: negative duration '-15m': a clock cannot run backwards "
             "(use 0 or more, e.g. 15m)")],
    "bad_duration_cost": [
        (10, f"owners[0].cost: not a duration: '1 hour-ish' {DURATION_HINT}")],
    "duplicate_trigger_id": [
        (13, "triggers[1].id: trigger id 'legal' is used twice (first at triggers[0])")],
    "bad_severity_value": [(11, f"severity[0].severity: {SEVERITIES} (got 'critical')")],
    "bad_severity_bound": [
        (14, f"triggers[0].match.severity.at_least: {SEVERITIES} (got 'sev0')"),
        (17, f"triggers[1].match.severity[1]: {SEVERITIES} (got 'critical')"),
    ],
    "empty_severity_bound": [
        (12, "triggers[0].match.severity: give at_least or at_most (an empty severity map "
             "matches nothing)")],
    "severity_rule_matches_severity": [
        (10, "severity[0].match.severity: a severity rule cannot match on severity "
             "(it sets it)")],
    "bad_timezone": [
        (2, "timezone: unknown timezone 'Berlin' (use an IANA name like Europe/Berlin)")],
    "bad_business_hours_time": [
        (2, "business_hours.start: time '9am': use HH:MM, e.g. \"09:00\"")],
    "business_hours_end_before_start": [
        (5, "business_hours.end: business hours must end after they start")],
    "bad_holiday": [
        (4, "holidays[1]: Input should be a valid date or datetime, day value is outside "
            "expected range (got '2026-12-32')")],
    "bad_away": [
        (5, "people.lead.away: away 'Dec 21 to Jan 2': use YYYY-MM-DD or "
            "YYYY-MM-DD..YYYY-MM-DD")],
    "away_end_before_start": [
        (9, "people.lead.away: away '2027-01-02..2026-12-21': the end is before the start")],
    "wrong_version": [(1, "version: Input should be 1 (got 2)")],
    "bad_mode": [(2, "mode: Input should be 'shadow' or 'enforce' (got 'live')")],
    "unknown_source": [
        (10, "severity[0].match.source: unknown source 'opsgenie' "
             "(one of: jira, linear, github, pagerduty)")],
    "unknown_kind": [
        (8, "owners[0].match.kind: unknown kind 'outage' "
            "(one of: ticket, pull_request, incident)")],
    "unknown_status": [
        (12, "triggers[0].match.status: unknown status 'triggered' "
             "(one of: open, in_progress, acknowledged, resolved)")],
    "unknown_group_by": [
        (13, "triggers[0].group_by: unknown group_by field 'team' "
             "(one of: project, source, labels, kind, priority, severity, status, key)")],
    # required keys
    "missing_owners": [(1, "owners: missing required key 'owners'")],
    "missing_people": [(1, "people: missing required key 'people'")],
    "missing_cto": [(1, "cto: missing required key 'cto'")],
    "owner_line_without_owner": [(7, "owners[0].owner: missing required key 'owner'")],
    "owner_line_without_name": [(10, "owners[1].name: missing required key 'name'")],
    "reviews_without_project": [(9, "reviews.project: missing required key 'project'")],
    "reviews_in_pagerduty": [
        (9, "reviews.source: Input should be 'jira', 'linear' or 'github' (got 'pagerduty')")],
    # time-boxed stints of CTO work
    "stint_mode_without_until": [
        (10, "owners[0].mode: a rescue stint needs until: the last day it applies "
             "(YYYY-MM-DD), set on day one")],
    "bad_until": [
        (11, "owners[0].until: until 'end of March': use YYYY-MM-DD (the last day the line "
             "applies)")],
    "unknown_stint_mode": [
        (10, "owners[0].mode: Input should be 'rescue', 'cleanup' or 'coaching' "
             "(got 'firefighting')")],
    # the file itself
    "duplicate_key": [(9, "not valid YAML: key 'cto' is given twice")],
    "yaml_syntax_error": [(5, "not valid YAML: expected ',' or '}', but got ':'")],
    "empty": [(1, "the scope note is empty")],
    "list": [(1, "the scope note must be a YAML mapping")],
    "control_character": [(5, "not valid YAML: control character 0x00 is not allowed")],
    # plain data only: no tags that build objects, no alias tricks
    "python_tag": [(9, f"not valid YAML: tag !!python/object/apply:os.system {PLAIN_ONLY}")],
    "unknown_tag": [(9, f"not valid YAML: tag !secret {PLAIN_ONLY}")],
    "self_alias": [(9, "not valid YAML: an alias refers to the mapping or list that "
                       "contains it")],
    "alias_bomb": [(9, "not valid YAML: aliases expand the scope note past 20000 values")],
    "too_deep": [(9, "not valid YAML: nested more than 64 levels deep")],
    # every problem, sorted by line (the keys are in a different order than the schema's)
    "several_problems": [
        (5, f"triggers[0].after: not a duration: '15 mins or so' {DURATION_HINT}"),
        (8, "owners[0].match.kind: unknown kind 'bug' (one of: ticket, pull_request, incident)"),
        (12, f"owners[1].cost: not a duration: 'soon' {DURATION_HINT}"),
        (15, "people.lead.phone: unknown key 'phone'"),
        (17, "mode: Input should be 'shadow' or 'enforce' (got 'enforced')"),
    ],
    "several_reference_problems": [
        (4, "people.lead.backup: a person cannot be their own backup"),
        (9, f"triggers[0].match.reporter: unknown person 'counsel' {PEOPLE_CHOICES}"),
        (10, "triggers[1].id: trigger id 'legal' is used twice (first at triggers[0])"),
        (16, f"owners[0].owner: unknown person 'eng-lead' {PEOPLE_CHOICES}"),
    ],
}


def invalid_path(stem: str) -> Path:
    return INVALID_DIR / f"{stem}.yaml"


def expected_lines(path: Path | str, stem: str) -> list[str]:
    return [f"{path}:{line}: {message}" for line, message in INVALID[stem]]


def test_every_invalid_file_has_expectations() -> None:
    on_disk = {p.stem for p in INVALID_DIR.glob("*.yaml")}
    assert on_disk == set(INVALID)


@pytest.mark.parametrize("stem", sorted(INVALID))
def test_invalid_scope_is_refused_with_path_line_message(stem: str) -> None:
    path = invalid_path(stem)
    with pytest.raises(ScopeError) as caught:
        load_scope(path)
    assert caught.value.lines() == expected_lines(path, stem)
    assert str(caught.value) == "\n".join(expected_lines(path, stem))


@pytest.mark.parametrize("stem", ["several_problems", "several_reference_problems",
                                  "undefined_person_nested", "bad_severity_bound"])
def test_every_problem_is_reported_in_line_order(stem: str) -> None:
    with pytest.raises(ScopeError) as caught:
        load_scope(invalid_path(stem))
    lines = [p.line for p in caught.value.problems]
    assert len(lines) > 1
    assert lines == sorted(lines)


def test_the_invalid_files_are_otherwise_valid() -> None:
    """Each file's one problem is the named one: mending it makes a note that loads."""
    mended = {
        "unknown_top_level_key": ("escalation_policy: page-everyone\n", ""),
        "undefined_owner": ("owner: eng-lead", "owner: lead"),
        "bad_mode": ("mode: live", "mode: enforce"),
        "duplicate_trigger_id": ("  - id: legal\n    name: Compliance",
                                 "  - id: compliance\n    name: Compliance"),
        "bad_regex": ('"(gdpr|subpoena"', '"(gdpr|subpoena)"'),
        "stint_mode_without_until": ("mode: rescue", "mode: rescue\n    until: 2026-12-31"),
        "bad_until": ("until: end of March", "until: 2027-03-31"),
        "unknown_stint_mode": ("mode: firefighting", "mode: coaching"),
    }
    for stem, (old, new) in mended.items():
        text = invalid_path(stem).read_text()
        assert old in text, stem
        loaded = _parse(text.replace(old, new))
        assert loaded.note.version == 1


def test_unreadable_file_is_one_problem(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ScopeError) as caught:
        load_scope(missing)
    assert caught.value.lines() == [
        f"{missing}:1: cannot read the scope note: No such file or directory"]


def test_non_utf8_file_is_one_problem(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes("version: 1\nmode: \xe9\n".encode("latin-1"))
    with pytest.raises(ScopeError) as caught:
        load_scope(path)
    assert caught.value.lines() == [f"{path}:1: the file is not UTF-8 text"]


def test_a_python_tag_is_refused_and_runs_nothing(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """The loader is YAML's safe one and builds no object: the tag's command never runs."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ScopeError):
        load_scope(invalid_path("python_tag"))
    text = "version: 1\nmode: !!python/object/apply:os.system ['touch ran']\n"
    with pytest.raises(ScopeError, match=r"tag !!python/object/apply:os\.system is not allowed"):
        parse_scope(text.encode(), "scope.yaml")
    assert not (tmp_path / "ran").exists() and not (tmp_path / "firstline-was-here").exists()


def test_a_tag_on_a_key_is_refused_too() -> None:
    text = BASE + "!!python/name:os.system skip_label: x\n"
    with pytest.raises(ScopeError) as caught:
        _parse(text)
    assert caught.value.lines() == [
        f"scope.yaml:9: not valid YAML: tag !!python/name:os.system {PLAIN_ONLY}"]


def test_merge_keys_share_a_mapping_and_keys_given_beside_them_win() -> None:
    text = BASE.replace('  cto: {name: Dana Reyes, jira: "1001", github: dreyes}',
                        '  cto: &base {name: Dana Reyes, jira: "1001", github: dreyes}').replace(
        '  lead: {name: Sam Okafor, jira: "1002", github: sokafor}',
        '  lead: {<<: *base, name: Sam Okafor, jira: "1002"}')
    lead = _parse(text).people["lead"]
    assert (lead.name, lead.accounts) == ("Sam Okafor", {"jira": "1002", "github": "dreyes"})


# -- warnings -------------------------------------------------------------------------

BASE = """\
version: 1
people:
  cto: {name: Dana Reyes, jira: "1001", github: dreyes}
  lead: {name: Sam Okafor, jira: "1002", github: sokafor}
cto: cto
owners:
  - name: Everything else
    owner: lead
"""


def _write(tmp_path: Path, text: str, name: str = "scope.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def _parse(text: str) -> Scope:
    """Load a note given as text (what `load_scope` does after reading the file)."""
    return parse_scope(text.encode(), "scope.yaml")[0]


def test_base_note_has_no_warnings(tmp_path: Path) -> None:
    scope, warnings = load_scope(_write(tmp_path, BASE))
    assert warnings == []
    assert scope.owners[0].owner == "lead"


def test_warning_no_catch_all_owner_line(tmp_path: Path) -> None:
    path = _write(tmp_path, BASE.replace("    owner: lead\n",
                                         "    match: {kind: ticket}\n    owner: lead\n"))
    scope, warnings = load_scope(path)
    assert warnings == [
        f"{path}:7: warning: owners[0]: the last owner line has a match: work that matches "
        "no line gets no owner (end with a catch-all line without match)"]
    assert len(scope.owners) == 1


def test_empty_match_on_the_last_line_is_a_catch_all(tmp_path: Path) -> None:
    path = _write(tmp_path, BASE.replace("    owner: lead\n", "    match: {}\n    owner: lead\n"))
    assert load_scope(path)[1] == []


def test_warning_owner_without_account_in_a_tool(tmp_path: Path) -> None:
    text = BASE.replace('{name: Sam Okafor, jira: "1002", github: sokafor}',
                        '{name: Sam Okafor, jira: "1002"}')
    path = _write(tmp_path, text)
    scope, warnings = load_scope(path)
    assert warnings == [
        f"{path}:8: warning: owners[0].owner: lead has no account in github: there firstline "
        "removes the CTO and comments naming them instead of assigning"]
    assert scope.people["lead"].accounts == {"jira": "1002"}


def test_cto_owned_line_without_account_is_no_gap(tmp_path: Path) -> None:
    text = BASE.replace('  cto: {name: Dana Reyes, jira: "1001", github: dreyes}',
                        '  cto: {name: Dana Reyes, jira: "1001"}').replace(
        "  - name: Everything else",
        "  - name: Architecture\n    match: {labels: [architecture]}\n    owner: cto\n"
        "  - name: Everything else")
    assert load_scope(_write(tmp_path, text))[1] == []


def test_warning_away_without_backup(tmp_path: Path) -> None:
    text = BASE.replace('github: sokafor}', 'github: sokafor,\n'
                        '         away: ["2026-12-21..2027-01-02"]}')
    path = _write(tmp_path, text)
    scope, warnings = load_scope(path)
    assert warnings == [f"{path}:5: warning: people.lead.away: lead is away at times "
                        "but has no backup"]
    assert scope.people["lead"].backup is None
    assert scope.people["lead"].away_on(date.fromisoformat("2026-12-31"))


@pytest.mark.parametrize("after", ["0m", "0 business days", "0.0h"])
def test_warning_zero_after_pages_at_once(tmp_path: Path, after: str) -> None:
    path = _write(tmp_path, BASE + "triggers:\n  - id: no-owner\n    name: Nobody\n"
                  f"    match: {{assignee: none}}\n    after: {after}\n")
    assert load_scope(path)[1] == [
        f"{path}:13: warning: triggers[0].after: after {after!r} is zero: the trigger pages "
        "as soon as its match holds (leave out after for an instant trigger)"]


def test_away_with_backup_is_no_warning(tmp_path: Path) -> None:
    text = BASE.replace('github: sokafor}', 'github: sokafor, backup: cto,\n'
                        '         away: ["2026-12-21..2027-01-02", 2027-03-01]}')
    scope, warnings = load_scope(_write(tmp_path, text))
    assert warnings == []
    lead = scope.people["lead"]
    assert lead.backup == "cto"
    assert lead.away_on(date.fromisoformat("2027-03-01"))
    assert not lead.away_on(date.fromisoformat("2027-03-02"))
    assert not lead.away_on(date.fromisoformat("2026-12-20"))


# -- valid notes ----------------------------------------------------------------------


def test_example_scope_loads() -> None:
    scope, warnings = load_scope(EXAMPLE_SCOPE)
    data = yaml.safe_load(EXAMPLE_SCOPE.read_text())
    assert scope.cto == "cto"
    assert scope.mode == "shadow"
    assert [o.name for o in scope.owners] == [o["name"] for o in data["owners"]]
    assert [o.owner for o in scope.owners] == [o["owner"] for o in data["owners"]]
    assert [t.id for t in scope.triggers] == [t["id"] for t in data["triggers"]]
    assert {t.id: t.after.text if t.after else None for t in scope.triggers} == {
        t["id"]: t.get("after") for t in data["triggers"]}
    assert scope.triggers[0].group_by == ("project",)
    assert [r.severity for r in scope.severity_rules] == ["sev1", "sev1"]
    assert scope.cap_hours == 6.0
    assert scope.week_starts == 0
    assert scope.calendar.opens == time(9, 0)
    assert scope.calendar.closes == time(18, 0)
    assert {str(d) for d in scope.calendar.holidays} == {"2026-12-25", "2026-12-26"}
    assert scope.people["ops-lead"].backup == "eng-lead"
    assert scope.person_for("github", "codertocat") == "eng-lead"
    assert scope.is_firstline("github", "firstline-bot")
    # The gaps in the example are deliberate: ops-lead and founder lack some accounts.
    lines = EXAMPLE_SCOPE.read_text().splitlines()
    ops = lines.index("    owner: ops-lead") + 1
    founder = lines.index("    owner: founder") + 1
    assert warnings == [
        f"{EXAMPLE_SCOPE}:{ops}: warning: owners[2].owner: ops-lead has no account in jira, "
        "linear: there firstline removes the CTO and comments naming them instead of assigning",
        f"{EXAMPLE_SCOPE}:{founder}: warning: owners[3].owner: founder has no account in jira, "
        "linear, github, pagerduty: there firstline removes the CTO and comments naming them "
        "instead of assigning",
    ]


def test_scope_hash_follows_the_bytes(tmp_path: Path) -> None:
    one = load_scope(_write(tmp_path, BASE, "one.yaml"))[0]
    same = load_scope(_write(tmp_path, BASE, "same.yaml"))[0]
    other = load_scope(_write(tmp_path, BASE + "mode: enforce\n", "other.yaml"))[0]
    assert one.hash == same.hash
    assert one.hash != other.hash


SINGLE = """\
version: 1
people:
  cto: {name: Dana Reyes, jira: "1001", github: dreyes}
  lead: {name: Sam Okafor, jira: "1002", github: sokafor, backup: cto,
         away: 2026-12-21..2027-01-02}
cto: cto
owners:
  - name: Tickets
    match: {source: jira, kind: ticket, project: TES, labels: bug, labels_all: bug,
            priority: High, severity: sev2, status: open, assignee: none, reporter: lead}
    owner: lead
  - name: Everything else
    owner: lead
triggers:
  - id: grouped
    name: Grouped
    group_by: project
"""

LISTS = """\
version: 1
people:
  cto: {name: Dana Reyes, jira: "1001", github: dreyes}
  lead: {name: Sam Okafor, jira: "1002", github: sokafor, backup: cto,
         away: ["2026-12-21..2027-01-02"]}
cto: cto
owners:
  - name: Tickets
    match: {source: [jira], kind: [ticket], project: [TES], labels: [bug], labels_all: [bug],
            priority: [High], severity: [sev2], status: [open], assignee: [none],
            reporter: [lead]}
    owner: lead
  - name: Everything else
    owner: lead
triggers:
  - id: grouped
    name: Grouped
    group_by: [project]
"""


def test_a_single_value_stands_for_a_one_item_list() -> None:
    single, lists = _parse(SINGLE), _parse(LISTS)
    assert single.note.owners[0].match == lists.note.owners[0].match
    assert single.note.owners[0].match is not None
    assert single.note.owners[0].match.labels == ["bug"]
    assert single.note.owners[0].match.severity == ["sev2"]
    assert single.note.people == lists.note.people
    assert single.note.triggers == lists.note.triggers
    assert single.triggers[0].group_by == ("project",)


def test_severity_bound_and_names_are_both_accepted() -> None:
    scope = _parse(BASE + "triggers:\n"
                   "  - {id: a, name: A, match: {severity: {at_least: sev2}}}\n"
                   "  - {id: b, name: B, match: {severity: {at_most: sev3}}}\n"
                   "  - {id: c, name: C, match: {severity: [sev1, sev2]}}\n")
    matches = [t.match for t in scope.note.triggers]
    assert matches[0] == MatchSpec(severity=SeverityBound(at_least="sev2"))
    assert matches[1] == MatchSpec(severity=SeverityBound(at_most="sev3"))
    assert matches[2] == MatchSpec(severity=["sev1", "sev2"])


# TES-41 (Jira): project TES, label test-label, priority High, open, unassigned.
TICKET = fixture_item("jira", "issue_created")


def _holds(scope: Scope, severity: str = "sev2") -> bool:
    facts = Facts(TICKET, severity, (), None, False)  # type: ignore[arg-type]
    return scope.owners[0].matcher(facts).held


def test_a_list_means_any_of() -> None:
    def line(match: str) -> Scope:
        return _parse(BASE.replace("  - name: Everything else",
                                   f"  - name: First\n    match: {match}\n    owner: lead\n"
                                   "  - name: Everything else"))

    assert not _holds(line("{labels: bug}"))
    assert _holds(line("{labels: [bug, test-label]}"))
    assert _holds(line("{labels: Test-Label}"))  # case-insensitive
    assert not _holds(line("{project: [WEB, OPS]}"))
    assert _holds(line("{project: [WEB, TES]}"))
    assert _holds(line("{severity: [sev1, sev2]}"))
    assert not _holds(line("{severity: [sev1, sev3]}"))


def test_unquoted_times_stay_times() -> None:
    scope = _parse(BASE + "business_hours: {days: [mon, fri], start: 9:00, end: 17:30}\n")
    assert scope.note.business_hours.start == "9:00"
    assert scope.note.business_hours.end == "17:30"
    assert scope.calendar.opens == time(9, 0)
    assert scope.calendar.closes == time(17, 30)
    assert scope.calendar.days == frozenset({0, 4})
    assert scope.calendar.day_seconds == 8.5 * 3600


def test_unquoted_dates_are_dates() -> None:
    scope = _parse(BASE + "holidays: [2026-12-25, 2027-01-01]\n")
    assert sorted(str(d) for d in scope.calendar.holidays) == ["2026-12-25", "2027-01-01"]


def test_numeric_account_ids_are_accepted() -> None:
    scope = _parse("""\
version: 1
people:
  cto: {name: Dana Reyes, jira: 1001, github: 12345, pagerduty: 7}
  lead: {name: Sam Okafor, jira: 0042, github: 007, pagerduty: 8}
cto: cto
firstline: {jira: 712020, github: 99}
owners:
  - name: Project 42
    match: {project: [42, 0042]}
    owner: lead
  - name: Everything else
    owner: lead
""")
    assert scope.people["cto"].accounts == {"jira": "1001", "github": "12345", "pagerduty": "7"}
    # Leading zeros are kept: YAML 1.1 would read 0042 as octal 34 and 007 as 7.
    assert scope.people["lead"].accounts == {"jira": "0042", "github": "007", "pagerduty": "8"}
    assert scope.person_for("jira", "1001") == "cto"
    assert scope.person_for("jira", "0042") == "lead"
    assert scope.person_for("github", "007") == "lead"
    assert scope.person_for("jira", "34") is None
    assert scope.is_firstline("jira", "712020")
    assert scope.is_firstline("github", "99")
    assert scope.note.owners[0].match is not None
    assert scope.note.owners[0].match.project == ["42", "0042"]


@pytest.mark.parametrize(("text", "expected", "hours"), [
    ("15m", Duration("15m", seconds=900), 0.25),
    ("2h", Duration("2h", seconds=7200), 2.0),
    ("1d", Duration("1d", seconds=86400), 24.0),
    ("4 business hours", Duration("4 business hours", business_hours=4), 4.0),
    ("1 business day", Duration("1 business day", business_days=1), 9.0),
    ("2 business days", Duration("2 business days", business_days=2), 18.0),
])
def test_durations_in_after_and_cost(text: str, expected: Duration, hours: float) -> None:
    scope = _parse(BASE.replace("  - name: Everything else",
                                "  - name: Architecture\n    match: {labels: [architecture]}\n"
                                f"    owner: cto\n    cost: {text}\n  - name: Everything else")
                   + f"triggers:\n  - id: slow\n    name: Slow\n    after: {text}\n")
    assert scope.triggers[0].after == expected
    # A line's cost counts against the weekly cap in hours; a business day is one
    # business day's length (09:00-18:00 by default: 9 hours).
    assert scope.owners[0].cost_hours == hours


def test_cost_defaults_to_one_hour() -> None:
    assert _parse(BASE).owners[0].cost_hours == 1.0


def test_optional_top_level_keys() -> None:
    scope = _parse(BASE + "skip_label: Hands-Off\npaging: {max_per_hour: 3}\n"
                   "reviews: {source: jira, project: OPS, labels: postmortem}\n"
                   "cap: {ad_hoc_hours_per_week: 4.5, week_starts: sun}\n")
    assert scope.skip_label == "hands-off"
    assert scope.max_pages_per_hour == 3
    assert scope.note.reviews is not None
    assert scope.note.reviews.labels == ["postmortem"]
    assert scope.cap_hours == 4.5
    assert scope.week_starts == 6


# -- time-boxed lines -------------------------------------------------------------------

STINT = BASE.replace("  - name: Everything else", """\
  - name: Payments rescue
    match: {labels: [payments]}
    owner: cto
    cost: 2h
    until: 2026-11-20
    mode: rescue
    note: until the new payments lead starts
  - name: Everything else""")


def test_a_time_boxed_line_carries_its_end_mode_and_note() -> None:
    scope = _parse(STINT)
    line = scope.owners[0]
    assert (line.until, line.mode, line.note) == (
        date(2026, 11, 20), "rescue", "until the new payments lead starts")
    assert not line.expired_on(date(2026, 11, 20))  # its last day still applies
    assert line.expired_on(date(2026, 11, 21))
    assert scope.owners[1].until is None and not scope.owners[1].expired_on(date(2099, 1, 1))


def test_until_may_be_quoted_and_needs_no_mode() -> None:
    scope = _parse(STINT.replace("until: 2026-11-20", 'until: "2026-11-20"')
                   .replace("    mode: rescue\n", ""))
    assert (scope.owners[0].until, scope.owners[0].mode) == (date(2026, 11, 20), None)


def test_a_line_past_its_date_is_warned_about_as_of_today(tmp_path: Path) -> None:
    path = _write(tmp_path, STINT)
    line = STINT.splitlines().index("    until: 2026-11-20") + 1
    assert load_scope(path, today=date(2026, 11, 20))[1] == []
    assert load_scope(path, today=date(2026, 11, 21))[1] == [
        f"{path}:{line}: warning: owners[0].until: the rescue stint 'Payments rescue' ended "
        "on 2026-11-20: it no longer matches; remove it or set a new until"]
