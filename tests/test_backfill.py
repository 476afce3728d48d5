"""`firstline db load`: recorded deliveries decided as of their own times; the README's
review examples are what the commands print on examples/deliveries."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from router.cli.payloads import load_deliveries
from router.db.engine import worker_engine
from router.db.tables import decisions
from router.work.backfill import load_recorded
from tests.support import EXAMPLE_SCOPE, FIXTURES, ROOT, example_scope, firstline

EXAMPLES = ROOT / "examples" / "deliveries"


def readme_examples() -> dict[str, str]:
    """Return each `<!-- example: COMMAND -->` block of the README by its command."""
    text = (ROOT / "README.md").read_text()
    found = re.findall(r"<!-- example: (.+?) -->\n```markdown\n(.*?)```\n", text, re.DOTALL)
    return dict(found)


def test_the_readme_shows_what_the_commands_print_on_the_examples(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'example.db'}"
    loaded = firstline(url, "db", "load", "--rules", str(EXAMPLE_SCOPE), str(EXAMPLES))
    files = len(list(EXAMPLES.rglob("*.json")))
    assert loaded.returncode == 0, loaded.stderr
    assert loaded.stdout.startswith(f"stored {files} deliveries (0 already stored); decided ")
    examples = readme_examples()
    assert len(examples) == 2
    for command, shown in examples.items():
        args = command.split()[1:]
        run = firstline(url, *args)
        assert run.returncode == 0, run.stderr
        assert run.stdout == shown, f"README block of `{command}` is out of date"
    again = firstline(url, "db", "load", "--rules", str(EXAMPLE_SCOPE), str(EXAMPLES))
    assert again.stdout == (f"stored 0 deliveries ({files} already stored); decided 0 "
                            "deliveries and timers in event time\n")


def test_db_load_refuses_a_note_in_enforce_mode(tmp_path: Path) -> None:
    rules = tmp_path / "enforce.yaml"
    rules.write_text(EXAMPLE_SCOPE.read_text().replace("mode: shadow", "mode: enforce"))
    run = firstline(f"sqlite:///{tmp_path / 'x.db'}", "db", "load", "--rules", str(rules),
                    str(FIXTURES / "jira" / "issue_created.json"))
    assert (run.returncode, run.stdout) == (1, "")
    assert run.stderr.splitlines()[-1] == (
        f"firstline: db load: {rules} is in enforce mode; load recorded deliveries under a "
        "note in shadow mode, so firstline does nothing in the trackers about old events")


def test_each_delivery_and_timer_is_decided_as_of_its_own_time(engine: Engine) -> None:
    """TES-41 (sev2, unassigned) is handed to its owner when created, and its no-owner
    clock fires 15 minutes later: both decided at those times, not at loading time."""
    recorded = list(load_deliveries([FIXTURES / "jira" / "issue_created.json"], None))
    event = recorded[0].event
    assert event.occurred_at is not None and event.item is not None
    scope = example_scope()
    loaded = load_recorded(engine, lambda: scope, recorded,
                           lambda d: ("jira", None, Path(d.origin).read_bytes()))
    assert (loaded.stored, loaded.duplicates, loaded.decided) == (1, 0, 2)
    with engine.connect() as conn:
        got = conn.execute(select(decisions.c.outcome, decisions.c.triggers,
                                  decisions.c.event_at, decisions.c.decided_at)
                           .order_by(decisions.c.id)).all()
    due = event.item.created_at + timedelta(minutes=15)  # the clock starts at creation
    assert [tuple(r) for r in got] == [
        ("reassign", "[]", event.occurred_at, event.occurred_at),
        ("escalate", '["no-owner"]', due, due)]


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    """The worker's own engine on a fresh database."""
    eng = worker_engine(db_url)
    yield eng
    eng.dispose()
