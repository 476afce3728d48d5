"""The `firstline` console command (SPEC §5), run as a real subprocess.

Every run decides in event time (`explain` without `--at` decides as of the event's own
time; `replay` simulates in the deliveries' own time), so nothing here depends on the
wall clock. Runs that many tests share are started together, in parallel, once.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support import EXAMPLE_SCOPE, FIXTURES, ROOT
from tests.test_scope import INVALID, INVALID_DIR, expected_lines

SOURCES = ("jira", "linear", "github", "pagerduty")
OUTCOMES = ("escalate", "reassign", "defer", "keep", "ignore")
SPEC_KEYS = {"outcome", "severity", "owner", "scope", "triggers", "pending", "actions", "item",
             "reason"}
ITEM_KEYS = {"source", "id", "key", "url", "kind", "project", "title", "description", "labels",
             "priority", "severity", "status", "assignees", "reporter", "created_at",
             "updated_at", "actor"}
# Deliveries that carry no item state (SPEC §3 "Events"): pings, check suites and
# deployments, a Jira comment with a slim issue, Linear Project/Comment, a PagerDuty note.
NO_ITEM = {
    "github/check_suite.completed", "github/deployment_status.created", "github/ping",
    "jira/comment_created", "linear/Comment.create", "linear/Project.update",
    "pagerduty/incident.annotated",
}
ALL_FIXTURES = sorted(FIXTURES.glob("*/*.json"))
RULES = "examples/scope.yaml"  # relative to ROOT, where every command runs


# -- running the command ----------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    args: tuple[str, ...]
    code: int
    out: str
    err: str

    @property
    def errors(self) -> list[str]:
        """stderr without the scope note's warnings (the example has two, on purpose)."""
        return [line for line in self.err.splitlines() if ": warning: " not in line]

    @property
    def warnings(self) -> list[str]:
        return [line for line in self.err.splitlines() if ": warning: " in line]

    def json(self) -> dict[str, Any]:
        lines = self.out.splitlines()
        assert len(lines) == 1, f"expected one JSON line, got:\n{self.out}"
        obj = json.loads(lines[0])
        assert isinstance(obj, dict)
        return obj

    def json_lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.out.splitlines()]


def _command() -> list[str]:
    entry = Path(sys.executable).parent / "firstline"
    if entry.exists():
        return [str(entry)]
    found = shutil.which("firstline")
    return [found] if found else [sys.executable, "-m", "router.cli"]


COMMAND = _command()
ENV = {k: v for k, v in os.environ.items() if not k.startswith("FIRSTLINE_")}


def firstline(*args: str | Path) -> Run:
    argv = tuple(str(a) for a in args)
    done = subprocess.run([*COMMAND, *argv], capture_output=True, text=True, cwd=ROOT,
                          env=ENV, timeout=120, check=False)
    return Run(argv, done.returncode, done.stdout, done.stderr)


def firstline_many(runs: Iterable[Sequence[str | Path]]) -> list[Run]:
    with ThreadPoolExecutor(max_workers=max(4, 2 * (os.cpu_count() or 2))) as pool:
        return list(pool.map(lambda args: firstline(*args), runs))


def assert_clean_failure(run: Run) -> None:
    """Exit 1, nothing on stdout, no traceback."""
    assert run.code == 1, run
    assert run.out == "", run
    assert "Traceback" not in run.err, run.err


def fixture_id(path: Path) -> str:
    return f"{path.parent.name}/{path.stem}"


def rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


def ts(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    assert moment.tzinfo is not None, f"{text!r} has no offset"
    return moment


# -- check ------------------------------------------------------------------------------


def test_check_valid_prints_a_one_line_summary() -> None:
    run = firstline("check", RULES)
    data = yaml.safe_load(EXAMPLE_SCOPE.read_text())
    timed = sum(1 for t in data["triggers"] if "after" in t)
    assert run.code == 0, run
    assert run.out.splitlines() == [
        f"ok: {RULES}: {len(data['people'])} people, {len(data['owners'])} owner lines, "
        f"{len(data['severity'])} severity rules, {len(data['triggers'])} triggers "
        f"({timed} timed), cap {data['cap']['ad_hoc_hours_per_week']:g}h/week, "
        f"mode {data['mode']}"]
    # The example's two gaps (ops-lead and founder lack accounts) are warnings on stderr.
    assert run.errors == []
    assert len(run.warnings) == 2
    assert all(w.startswith(f"{RULES}:") for w in run.warnings)


def test_check_warnings_go_to_stderr_and_do_not_fail(tmp_path: Path) -> None:
    note = tmp_path / "scope.yaml"
    note.write_text("""\
version: 1
people:
  cto: {name: Dana Reyes, jira: "1001", github: dreyes}
  lead: {name: Sam Okafor, jira: "1002", backup: cto, away: ["2026-12-21..2026-12-24"]}
  ops: {name: Lee Park, jira: "1003", github: lpark, away: 2026-12-24}
cto: cto
owners:
  - name: Tickets
    match: {kind: ticket}
    owner: lead
""")
    run = firstline("check", note)
    assert run.code == 0, run
    assert len(run.out.splitlines()) == 1
    assert run.out.startswith(f"ok: {note}: 3 people, 1 owner lines, ")
    assert run.err.splitlines() == [
        f"{note}:5: warning: people.ops.away: ops is away at times but has no backup",
        f"{note}:8: warning: owners[0]: the last owner line has a match: work that matches "
        "no line gets no owner (end with a catch-all line without match)",
        f"{note}:10: warning: owners[0].owner: lead has no account in github: there "
        "firstline removes the CTO and comments naming them instead of assigning",
    ]


@pytest.fixture(scope="module")
def checked_invalid() -> dict[str, Run]:
    stems = sorted(INVALID)
    runs = firstline_many([("check", INVALID_DIR / f"{stem}.yaml") for stem in stems])
    return dict(zip(stems, runs, strict=True))


@pytest.mark.parametrize("stem", sorted(INVALID))
def test_check_invalid_exits_1_with_path_line_messages(checked_invalid: dict[str, Run],
                                                      stem: str) -> None:
    run = checked_invalid[stem]
    assert_clean_failure(run)
    assert run.err.splitlines() == expected_lines(INVALID_DIR / f"{stem}.yaml", stem)


def test_check_missing_file_and_directory(tmp_path: Path) -> None:
    missing, folder = tmp_path / "nope.yaml", tmp_path
    for path, why in ((missing, "No such file or directory"), (folder, "Is a directory")):
        run = firstline("check", path)
        assert_clean_failure(run)
        assert run.err.splitlines() == [f"{path}:1: cannot read the scope note: {why}"]


# -- scope ------------------------------------------------------------------------------


def test_scope_prints_owners_triggers_and_cap() -> None:
    run = firstline("scope", RULES)
    assert run.code == 0, run
    data = yaml.safe_load(EXAMPLE_SCOPE.read_text())
    text = run.out
    lines = text.splitlines()
    for i, line in enumerate(data["owners"], 1):
        person = data["people"][line["owner"]]["name"]
        shown = [x for x in lines if x.strip().startswith(f"{i}. {line['name']}:")]
        assert len(shown) == 1, (line, text)
        assert f"-> {person} ({line['owner']})" in shown[0]
    assert "labels bug -> Sam Okafor (eng-lead)" in text
    assert "Everything else: everything -> Sam Okafor (eng-lead)" in text
    assert "away 2026-12-21..2027-01-02, then eng-lead" in text
    for trigger in data["triggers"]:
        shown = [x for x in lines if f"[{trigger['id']}] {trigger['name']}:" in x]
        assert len(shown) == 1, (trigger, text)
        if "after" in trigger:
            assert f" for {trigger['after']}" in shown[0]
    assert "severity at least sev2" in text
    assert "one page per project" in text
    assert "Dana Reyes" in text
    assert ("Cap: 6 hours a week of ad-hoc CTO work (weeks start mon); beyond it, CTO-owned "
            "work waits for next week.") in lines
    # owners, then severity, then triggers, then the cap
    assert (text.index("Who owns first response") < text.index("Severity")
            < text.index("is paged only when") < text.index("Cap: "))


def test_scope_refuses_an_invalid_note() -> None:
    path = INVALID_DIR / "several_reference_problems.yaml"
    run = firstline("scope", path)
    assert_clean_failure(run)
    assert run.err.splitlines() == expected_lines(path, "several_reference_problems")


# -- explain ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def explained() -> dict[str, Run]:
    runs = firstline_many([("explain", "--rules", RULES, "--source", p.parent.name, "--json",
                            rel(p)) for p in ALL_FIXTURES])
    return {fixture_id(p): r for p, r in zip(ALL_FIXTURES, runs, strict=True)}


def test_every_source_has_fixtures() -> None:
    assert {p.parent.name for p in ALL_FIXTURES} == set(SOURCES)
    assert {fixture_id(p) for p in ALL_FIXTURES} >= NO_ITEM


@pytest.mark.parametrize("path", ALL_FIXTURES, ids=fixture_id)
def test_explain_json_on_every_fixture(explained: dict[str, Run], path: Path) -> None:
    run = explained[fixture_id(path)]
    assert run.code == 0, run
    assert run.errors == []
    obj = run.json()
    assert set(obj) >= SPEC_KEYS
    assert obj["outcome"] in OUTCOMES
    assert isinstance(obj["reason"], str) and obj["reason"]
    for fired in obj["triggers"]:
        assert set(fired) >= {"id", "name", "because"} and fired["because"]
    for waiting in obj["pending"]:
        assert set(waiting) == {"id", "due"}
        ts(waiting["due"])
    assert all(isinstance(a["type"], str) for a in obj["actions"])
    if obj["outcome"] == "ignore":
        assert obj["owner"] is None and obj["scope"] is None
    if fixture_id(path) in NO_ITEM:
        assert obj["item"] is None
        assert obj["outcome"] == "ignore"
        assert obj["triggers"] == [] and obj["pending"] == [] and obj["actions"] == []
    else:
        item = obj["item"]
        assert isinstance(item, dict)
        assert set(item) >= ITEM_KEYS
        assert item["source"] == path.parent.name
        assert item["severity"] in ("sev1", "sev2", "sev3", "sev4")
        assert item["labels"] == sorted(item["labels"])
        ts(item["created_at"])
        ts(item["updated_at"])
        if obj["outcome"] != "ignore":
            assert obj["severity"] == item["severity"]
            assert obj["owner"] is not None and obj["scope"] is not None


def test_explain_text_names_item_outcome_and_owner() -> None:
    run = firstline("explain", "--rules", RULES, "--source", "jira",
                    "tests/fixtures/vendor/jira/issue_created.json")
    assert run.code == 0, run
    lines = run.out.splitlines()
    assert lines[0] == "TES-41 (jira ticket, sev2, open) -> reassign"
    assert "  owner:   eng-lead (scope line 'Everything else')" in lines
    assert any(x.startswith("  pending: no-owner due ") for x in lines)
    assert lines[-1].startswith("  reason:  ")


def _jira_created(path: Path) -> datetime:
    raw = json.loads(path.read_text())["issue"]["fields"]["created"]
    return datetime.strptime(raw, "%Y-%m-%dT%H:%M:%S.%f%z")


def _pagerduty_event_time(path: Path) -> datetime:
    # A v3 incident.triggered has no created_at: the creating event's time is the start.
    return ts(json.loads(path.read_text())["event"]["occurred_at"].replace("Z", "+00:00"))


TIMED = [
    # (fixture, trigger, after, the clock's start as read from the payload itself)
    ("jira/issue_created", "no-owner", timedelta(minutes=15), _jira_created),
    ("pagerduty/incident.triggered", "restore-time", timedelta(minutes=45),
     _pagerduty_event_time),
]


@pytest.mark.parametrize(("name", "trigger", "after", "start"), TIMED, ids=[t[0] for t in TIMED])
def test_at_moves_a_timed_trigger_from_pending_to_fired(
        name: str, trigger: str, after: timedelta, start: Any) -> None:
    path = FIXTURES / f"{name}.json"
    source = path.parent.name
    due = start(path) + after
    ist = timezone(timedelta(hours=5, minutes=30))

    def explain(at: datetime | None) -> dict[str, Any]:
        extra = ["--at", at.isoformat()] if at else []
        run = firstline("explain", "--rules", RULES, "--source", source, "--json", *extra,
                        rel(path))
        assert run.code == 0, run
        return run.json()

    def pending(obj: dict[str, Any]) -> dict[str, datetime]:
        return {p["id"]: ts(p["due"]) for p in obj["pending"]}

    def fired(obj: dict[str, Any]) -> set[str]:
        return {t["id"] for t in obj["triggers"]}

    for before in (None, due - timedelta(minutes=1)):
        obj = explain(before)
        assert pending(obj).get(trigger) == due, obj["pending"]
        assert trigger not in fired(obj)
        assert obj["outcome"] != "escalate"
        assert not [a for a in obj["actions"] if a["type"] == "page"]
    for later in (due, due + timedelta(minutes=5), (due + timedelta(minutes=5)).astimezone(ist)):
        obj = explain(later)
        assert trigger in fired(obj), (later, obj)
        assert trigger not in pending(obj)
        assert obj["outcome"] == "escalate"
        pages = [a for a in obj["actions"] if a["type"] == "page"]
        assert len(pages) == 1 and pages[0]["to"] == "cto"


def test_jira_issue_created_is_unassigned_sev2() -> None:
    """The premise of the `--at` case above, checked on the payload's decision."""
    run = firstline("explain", "--rules", RULES, "--source", "jira", "--json",
                    "tests/fixtures/vendor/jira/issue_created.json")
    obj = run.json()
    assert obj["severity"] == "sev2"
    assert obj["item"]["assignees"] == []
    assert obj["outcome"] == "reassign"
    assert obj["owner"] == "eng-lead"


GITHUB = sorted((FIXTURES / "github").glob("*.json"))


@pytest.mark.parametrize("path", GITHUB, ids=lambda p: p.stem)
def test_github_event_type_given_or_inferred_decides_the_same(path: Path) -> None:
    event_type = path.name.split(".")[0]  # the fixtures are named <X-GitHub-Event>.<action>
    base = ("explain", "--rules", RULES, "--source", "github", "--json")
    given, guessed = firstline_many([(*base, "--event-type", event_type, rel(path)),
                                     (*base, rel(path))])
    assert given.code == 0, given
    assert guessed.code == 0, guessed
    inferred = guessed.json()
    assert given.json() == inferred
    assert inferred["event"]["type"].split(".")[0] == event_type


# -- bad input --------------------------------------------------------------------------


@pytest.fixture()
def inputs(tmp_path: Path) -> dict[str, Path]:
    folder = tmp_path / "payloads"
    folder.mkdir()
    (folder / "empty.json").write_text("{}")
    (folder / "garbage.json").write_text("<html>502 Bad Gateway</html>")
    (folder / "list.json").write_text("[1, 2]")
    return {"folder": folder, "missing": folder / "missing.json",
            "empty": folder / "empty.json", "garbage": folder / "garbage.json",
            "list": folder / "list.json",
            "github": FIXTURES / "github" / "issues.opened.json",
            "jira": FIXTURES / "jira" / "issue_created.json"}


def _explain(source: str, payload: Path | str, *extra: str) -> list[str]:
    return ["explain", "--rules", RULES, "--source", source, *extra, str(payload)]


BAD_INPUT: list[tuple[str, str, str, str]] = [
    # (id, source, payload key, expected line: exact, or a prefix when it ends with "…")
    ("missing file", "jira", "missing", "firstline: {path}: cannot read: No such file or "
     "directory"),
    ("a directory", "jira", "folder", "firstline: {path}: cannot read: Is a directory"),
    ("not JSON", "jira", "garbage", "firstline: {path}: not JSON: …"),
    ("JSON list", "jira", "list", "firstline: {path}: not a jira delivery: …"),
    ("{} as jira", "jira", "empty", "firstline: {path}: not a jira delivery: …"),
    ("{} as github", "github", "empty", "firstline: {path}: not a github delivery: …"),
    ("{} as linear", "linear", "empty", "firstline: {path}: not a linear delivery: …"),
    ("{} as pagerduty", "pagerduty", "empty", "firstline: {path}: not a pagerduty delivery: …"),
    ("github payload as jira", "jira", "github", "firstline: {path}: not a jira delivery: …"),
    ("jira payload as pagerduty", "pagerduty", "jira",
     "firstline: {path}: not a pagerduty delivery: …"),
    ("jira payload as github", "github", "jira", "firstline: {path}: not a github delivery: …"),
    ("unknown source", "opsgenie", "github",
     "firstline: unknown source 'opsgenie' (one of: jira, linear, github, pagerduty)"),
]


def _assert_one_line(run: Run, expected: str) -> None:
    assert_clean_failure(run)
    assert len(run.errors) == 1, run.err
    assert run.err.splitlines()[-1] == run.errors[0]
    if expected.endswith("…"):
        assert run.errors[0].startswith(expected[:-1]), run.errors[0]
        assert len(run.errors[0]) > len(expected), run.errors[0]
    else:
        assert run.errors[0] == expected


@pytest.mark.parametrize(("source", "key", "expected"), [c[1:] for c in BAD_INPUT],
                         ids=[c[0] for c in BAD_INPUT])
def test_explain_bad_input_is_one_line(inputs: dict[str, Path], source: str, key: str,
                                       expected: str) -> None:
    path = inputs[key]
    shown = rel(path) if path.is_relative_to(ROOT) else str(path)
    run = firstline(*_explain(source, shown))
    _assert_one_line(run, expected.format(path=shown))


def test_github_payload_of_another_event_type_is_refused(inputs: dict[str, Path]) -> None:
    path = rel(inputs["github"])
    run = firstline(*_explain("github", path, "--event-type", "pull_request"))
    _assert_one_line(run, f"firstline: {path}: not a github delivery: …")


@pytest.mark.parametrize(("at", "expected"), [
    ("yesterday", "firstline: --at 'yesterday': not an ISO 8601 time"),
    ("2019-02-16 25:00", "firstline: --at '2019-02-16 25:00': not an ISO 8601 time"),
    ("2019-02-16T03:17:00", "firstline: --at '2019-02-16T03:17:00': give an offset, "
                            "e.g. 2026-11-21T19:45:00+00:00"),
])
def test_explain_bad_at_is_one_line(inputs: dict[str, Path], at: str, expected: str) -> None:
    run = firstline(*_explain("jira", rel(inputs["jira"]), "--at", at))
    _assert_one_line(run, expected)


def test_explain_invalid_rules_lists_the_problems(inputs: dict[str, Path]) -> None:
    rules = INVALID_DIR / "bad_mode.yaml"
    run = firstline("explain", "--rules", rules, "--source", "jira", rel(inputs["jira"]))
    assert_clean_failure(run)
    assert run.err.splitlines() == expected_lines(rules, "bad_mode")


def test_explain_missing_rules(tmp_path: Path, inputs: dict[str, Path]) -> None:
    rules = tmp_path / "scope.yaml"
    run = firstline("explain", "--rules", rules, "--source", "jira", rel(inputs["jira"]))
    _assert_one_line(run, f"{rules}:1: cannot read the scope note: No such file or directory")


# -- replay -----------------------------------------------------------------------------

TOTALS = re.compile(r"(?P<label>.+): (?P<n>\d+) decisions: escalate (?P<escalate>\d+), "
                    r"reassign (?P<reassign>\d+), defer (?P<defer>\d+), keep (?P<keep>\d+), "
                    r"ignore (?P<ignore>\d+); CTO pages (?P<pages>\d+)")


def totals(line: str) -> tuple[str, dict[str, int]]:
    found = TOTALS.fullmatch(line)
    assert found, line
    counts = {k: int(v) for k, v in found.groupdict().items() if k != "label"}
    return found["label"], counts


def counts_of(objs: list[dict[str, Any]]) -> dict[str, int]:
    outcomes = Counter(o["outcome"] for o in objs)
    pages = sum(1 for o in objs for a in o["actions"] if a["type"] == "page")
    return {"n": len(objs), **{o: outcomes[o] for o in OUTCOMES}, "pages": pages}


@pytest.fixture(scope="module")
def replayed() -> tuple[Run, Run]:
    table, as_json = firstline_many([("replay", "--rules", RULES, "tests/fixtures/vendor"),
                                     ("replay", "--rules", RULES, "--json",
                                      "tests/fixtures/vendor")])
    return table, as_json


def test_replay_json_one_object_per_decision(replayed: tuple[Run, Run]) -> None:
    _, run = replayed
    assert run.code == 0, run
    objs = run.json_lines()
    for obj in objs:
        assert set(obj) >= SPEC_KEYS | {"file"}
        assert obj["outcome"] in OUTCOMES
    files = [o["file"] for o in objs if o["file"] is not None]
    assert sorted(files) == sorted(rel(p) for p in ALL_FIXTURES)  # each delivery once
    timers = [o for o in objs if o["file"] is None]
    assert timers, "the fixtures arm timers that come due"
    assert all(o["event"]["type"] == "timer" and o["item"] is not None for o in timers)
    # In event time: deliveries by their own timestamps, timers at their due times between.
    times = [ts(o["event"]["at"]) for o in objs]
    assert times == sorted(times)
    # stdout is only JSON lines; the totals go to stderr and agree with them.
    assert len(run.errors) == 1
    label, counted = totals(run.errors[0])
    assert label == "totals"
    assert counted == counts_of(objs)
    # item is null exactly for the deliveries that hold none.
    no_item = {o["file"] for o in objs if o["file"] and o["item"] is None}
    assert no_item == {f"tests/fixtures/vendor/{name}.json" for name in NO_ITEM}


def test_replay_table_rows_and_totals(replayed: tuple[Run, Run]) -> None:
    run, as_json = replayed
    assert run.code == 0, run
    assert run.errors == []
    lines = run.out.splitlines()
    assert lines[0].split() == ["when", "event", "item", "outcome", "owner", "triggers", "file"]
    rows = [line.split() for line in lines[1:-1]]
    # when is two words (date, time); then event, item, outcome, owner, triggers, file
    assert all(len(r) == 8 for r in rows), lines
    files = [r[7] for r in rows if r[7] != "(timer)"]
    assert sorted(files) == sorted(rel(p) for p in ALL_FIXTURES)
    objs = as_json.json_lines()
    assert [r[4] for r in rows] == [o["outcome"] for o in objs]
    assert [r[7] for r in rows] == [o["file"] or "(timer)" for o in objs]
    label, counted = totals(lines[-1])
    assert label == "totals"
    assert counted == counts_of(objs)
    assert counted["n"] == len(rows)
    assert sum(counted[o] for o in OUTCOMES) == len(rows)
    assert counted["escalate"] > 0 and counted["pages"] > 0


def test_replay_source_for_a_file_outside_a_source_folder(tmp_path: Path) -> None:
    path = tmp_path / "delivery.json"
    shutil.copy(FIXTURES / "github" / "issues.unassigned.json", path)
    table, as_json = firstline_many([
        ("replay", "--rules", RULES, "--source", "github", path),
        ("replay", "--rules", RULES, "--source", "github", "--json", path)])
    assert table.code == 0, table
    lines = table.out.splitlines()
    assert len(lines) == 3
    row = lines[1].split()
    assert row[2:5] == ["github:issues.unassigned", "Codertocat/Hello-World#1", "reassign"]
    assert row[7] == str(path)
    assert totals(lines[2])[1]["reassign"] == 1
    (obj,) = as_json.json_lines()
    assert obj["file"] == str(path)
    assert obj["item"]["source"] == "github"


def test_replay_file_outside_a_source_folder_needs_source(tmp_path: Path) -> None:
    path = tmp_path / "delivery.json"
    shutil.copy(FIXTURES / "github" / "issues.opened.json", path)
    run = firstline("replay", "--rules", RULES, path)
    _assert_one_line(run, f"firstline: {path}: cannot tell the source: put it under a jira/, "
                          "linear/, github/ or pagerduty/ folder, or pass --source")


def test_replay_bad_inputs(tmp_path: Path) -> None:
    missing, empty = tmp_path / "nothing-here", tmp_path / "empty"
    empty.mkdir()
    broken = tmp_path / "jira" / "broken.json"
    broken.parent.mkdir()
    broken.write_text("{not json")
    runs = firstline_many([("replay", "--rules", RULES, missing),
                           ("replay", "--rules", RULES, empty),
                           ("replay", "--rules", RULES, tmp_path / "jira"),
                           ("replay", "--rules", RULES, "--source", "opsgenie", missing)])
    _assert_one_line(runs[0], f"firstline: {missing}: no such file or folder")
    _assert_one_line(runs[1], f"firstline: {empty}: no .json files below this folder")
    _assert_one_line(runs[2], f"firstline: {broken}: not JSON: …")
    _assert_one_line(runs[3], "firstline: unknown source 'opsgenie' "
                              "(one of: jira, linear, github, pagerduty)")


# -- replay --compare -------------------------------------------------------------------


def _variant(tmp_path: Path, name: str, old: str, new: str) -> Path:
    text = EXAMPLE_SCOPE.read_text()
    assert text.count(old) == 1, old
    path = tmp_path / name
    path.write_text(text.replace(old, new))
    return path


def _decisions(run: Run) -> dict[str, tuple[Any, ...]]:
    """file (or timer and item) -> what compare compares."""
    out: dict[str, tuple[Any, ...]] = {}
    for o in run.json_lines():
        name = o["file"] or f"timer:{o['item']['key']}:{o['event']['at']}"
        pages = sum(1 for a in o["actions"] if a["type"] == "page")
        out[name] = (o["outcome"], o["owner"], [t["id"] for t in o["triggers"]], pages)
    return out


def _compare(new: Path) -> tuple[Run, Run, Run]:
    """Compare `new` against the example, and replay each alone for reference."""
    compare, alone_new, alone_old = firstline_many([
        ("replay", "--rules", new, "--compare", RULES, "tests/fixtures/vendor"),
        ("replay", "--rules", new, "--json", "tests/fixtures/vendor"),
        ("replay", "--rules", RULES, "--json", "tests/fixtures/vendor")])
    assert compare.code == 0, compare
    return compare, alone_new, alone_old


def _check_compare(compare: Run, new: Path, alone_new: Run, alone_old: Run) -> list[str]:
    """Check the listing against the two replays; return the changed lines."""
    lines = compare.out.splitlines()
    before, after = _decisions(alone_old), _decisions(alone_new)
    changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    listed = lines[:-3]
    assert sorted(line.split(": ")[0] for line in listed) == changed
    assert lines[-3] == f"{len(changed)} decisions change"
    old_label, old_counts = totals(lines[-2])
    new_label, new_counts = totals(lines[-1])
    assert old_label == f"old {RULES}"
    assert new_label == f"new {new}"
    assert old_counts == counts_of(alone_old.json_lines())
    assert new_counts == counts_of(alone_new.json_lines())
    return listed


def test_compare_a_changed_owner_line(tmp_path: Path) -> None:
    new = _variant(tmp_path, "new.yaml", "    match: {labels: [bug]}\n    owner: eng-lead",
                   "    match: {labels: [bug]}\n    owner: support-lead")
    compare, alone_new, alone_old = _compare(new)
    listed = _check_compare(compare, new, alone_new, alone_old)
    assert listed, "the GitHub issue is labelled bug: its decisions change owner"
    for line in listed:
        assert re.fullmatch(r"\S+: (\w+) eng-lead -> \1 support-lead", line), line
    assert any(line.startswith("tests/fixtures/vendor/github/issues.opened.json: ")
               for line in listed)


def test_compare_an_extra_trigger_counts_the_pages(tmp_path: Path) -> None:
    new = _variant(tmp_path, "new.yaml", "triggers:               # the only reasons",
                   "triggers:\n  - id: any-bug\n    name: Any bug\n    match: {labels: [bug]}\n"
                   "  # the only reasons")
    compare, alone_new, alone_old = _compare(new)
    listed = _check_compare(compare, new, alone_new, alone_old)
    assert any("-> escalate eng-lead [any-bug]" in line for line in listed), listed
    old_pages = totals(compare.out.splitlines()[-2])[1]["pages"]
    new_pages = totals(compare.out.splitlines()[-1])[1]["pages"]
    assert new_pages > old_pages


def test_compare_identical_notes_reports_no_change(tmp_path: Path) -> None:
    same = tmp_path / "same.yaml"
    shutil.copy(EXAMPLE_SCOPE, same)
    run = firstline("replay", "--rules", same, "--compare", RULES, "tests/fixtures/vendor")
    assert run.code == 0, run
    lines = run.out.splitlines()
    assert len(lines) == 3
    assert lines[0] == "0 decisions change"
    (old_label, old_counts), (new_label, new_counts) = totals(lines[1]), totals(lines[2])
    assert (old_label, new_label) == (f"old {RULES}", f"new {same}")
    assert old_counts == new_counts
    assert old_counts["n"] > len(ALL_FIXTURES)  # timers too


def test_compare_json_lists_changes_as_objects(tmp_path: Path) -> None:
    new = _variant(tmp_path, "new.yaml", "    match: {labels: [bug]}\n    owner: eng-lead",
                   "    match: {labels: [bug]}\n    owner: support-lead")
    run = firstline("replay", "--rules", new, "--compare", RULES, "--json",
                    "tests/fixtures/vendor")
    assert run.code == 0, run
    objs = run.json_lines()
    assert objs
    for obj in objs:
        assert set(obj) == {"file", "old", "new"}
        assert obj["old"]["owner"] == "eng-lead" and obj["new"]["owner"] == "support-lead"
    assert run.errors[0] == f"{len(objs)} decisions change"


def test_explain_json_is_the_only_output_even_with_stderr_merged() -> None:
    """Scripts often run `explain --json ... 2>&1`: scope warnings must not break it."""
    import subprocess
    import sys

    from tests.support import EXAMPLE_SCOPE, FIXTURES, ROOT

    run = subprocess.run(
        [sys.executable, "-m", "router.cli", "explain", "--rules", str(EXAMPLE_SCOPE),
         "--source", "jira", "--json", str(FIXTURES / "jira" / "issue_created.json")],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=60)
    assert run.returncode == 0
    assert json.loads(run.stdout)["outcome"] in ("escalate", "reassign", "defer", "keep",
                                                 "ignore")
