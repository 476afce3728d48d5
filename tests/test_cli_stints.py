"""Time-boxed owner lines on the command line: `check` warns, `scope` shows the stint,
`explain --at` judges the end date as of the time it is given."""

from __future__ import annotations

from pathlib import Path

import orjson
import yaml

from tests.support import EXAMPLE_SCOPE, FIXTURES
from tests.test_cli import firstline

STINT = {"name": "Cloud bill rescue", "match": {"labels": ["cloud-bill"]}, "owner": "cto",
         "cost": "2h", "until": "2020-01-31", "mode": "rescue",
         "note": "until the finance lead starts"}


def stint_note(tmp_path: Path, until: str = "2020-01-31") -> Path:
    note = yaml.safe_load(EXAMPLE_SCOPE.read_text())
    note["owners"].insert(0, {**STINT, "until": until})
    path = tmp_path / "stint.yaml"
    path.write_text(yaml.safe_dump(note, sort_keys=False))
    return path


def test_check_warns_about_a_line_past_its_date(tmp_path: Path) -> None:
    path = stint_note(tmp_path)
    line = path.read_text().splitlines().index("  until: '2020-01-31'") + 1
    run = firstline("check", path)
    assert run.code == 0, run
    assert (f"{path}:{line}: warning: owners[0].until: the rescue stint 'Cloud bill rescue' "
            "ended on 2020-01-31: it no longer matches; remove it or set a new until") \
        in run.warnings


def test_scope_shows_the_stint_and_whether_it_ended(tmp_path: Path) -> None:
    ended = firstline("scope", stint_note(tmp_path))
    assert ("  1. Cloud bill rescue: labels cloud-bill -> Dana Reyes (cto) — costs the CTO 2h "
            "— rescue stint until 2020-01-31 (ended: no longer matches): until the finance "
            "lead starts") in ended.out.splitlines()
    running = firstline("scope", stint_note(tmp_path, until="2999-12-31"))
    assert ("  1. Cloud bill rescue: labels cloud-bill -> Dana Reyes (cto) — costs the CTO 2h "
            "— rescue stint until 2999-12-31: until the finance lead starts") \
        in running.out.splitlines()


def test_explain_at_judges_the_end_date_as_of_that_time(tmp_path: Path) -> None:
    payload = orjson.loads((FIXTURES / "jira" / "issue_created.json").read_bytes())
    payload["issue"]["fields"]["labels"] = ["cloud-bill"]
    payload["issue"]["fields"]["priority"]["name"] = "Medium"
    ticket = tmp_path / "cloud-bill.json"
    ticket.write_bytes(orjson.dumps(payload))
    rules = stint_note(tmp_path)
    during = firstline("explain", "--rules", rules, "--source", "jira", "--json",
                       "--at", "2020-01-31T22:59:00+00:00", ticket).json()
    after = firstline("explain", "--rules", rules, "--source", "jira", "--json",
                      "--at", "2020-01-31T23:00:00+00:00", ticket).json()  # 1 Feb in Berlin
    assert (during["outcome"], during["owner"], during["scope"]) == (
        "keep", "cto", "Cloud bill rescue")
    assert (after["outcome"], after["owner"], after["scope"]) == (
        "reassign", "ops-lead", "Cloud bill checks")
    assert after["evidence"]["owner"]["skipped"] == [
        {"line": "Cloud bill rescue", "index": 0, "until": "2020-01-31", "mode": "rescue",
         "why": "expired: its last day was 2020-01-31"}]
