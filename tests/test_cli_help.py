"""`firstline --help` and each command's `--help`: every command listed in the summary,
every flag and argument explained."""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Iterator

import pytest

from router.cli.main import _parser
from tests.support import ROOT


def commands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
             ) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    """Yield every (sub)command's parser with its words, e.g. ("outbox", "list")."""
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from commands(sub, (*path, name))


def unexplained(parser: argparse.ArgumentParser) -> list[str]:
    missing = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            missing += [c.dest for c in action._choices_actions if not c.help]
        elif action.dest != "help" and not action.help:
            missing.append("/".join(action.option_strings) or action.dest)
    return missing


COMMANDS = dict(commands(_parser()))


@pytest.mark.parametrize("words", list(COMMANDS), ids=lambda w: " ".join(w) or "firstline")
def test_every_flag_and_argument_has_help(words: tuple[str, ...]) -> None:
    assert unexplained(COMMANDS[words]) == []


def test_the_summary_lists_every_command() -> None:
    shown = subprocess.run([sys.executable, "-m", "router.cli", "--help"], cwd=ROOT,
                           capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0
    top = [words[0] for words in COMMANDS if len(words) == 1]
    assert {"check", "replay", "serve", "worker", "outbox", "db"} <= set(top)
    summary = " ".join(shown.stdout.split("\n\n")[1].split())  # argparse wraps it
    assert summary == "firstline: " + " | ".join(top)
