"""What `firstline serve` and `firstline worker` log at start and on SIGHUP: the scope
note's warnings and one line per tracker about its clients, each once (real processes)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

from tests.support import EXAMPLE_SCOPE, ROOT, eventually
from tests.test_serve import running, start

TRACKERS = ("jira", "linear", "github", "pagerduty")


def said(log: str) -> Counter[str]:
    """Count the note's warnings and the clients lines, without their timestamps."""
    found = re.findall(r"(\S+:\d+: warning: .*|(?:INFO|WARNING) firstline\.service "
                       r"clients: .*)", log)
    return Counter(found)


def test_serve_says_each_warning_and_clients_line_once_at_start_and_on_reload(
        tmp_path: Path, db_url: str) -> None:
    serve = start(tmp_path, db_url, mode="enforce", FIRSTLINE_GITHUB_TOKEN="ghp_never_logged")
    with running(serve):
        at_start = said(serve.log.read_text())
        serve.process.send_signal(signal.SIGHUP)
        # the reload's last line: the note's warnings and the other trackers come before it
        eventually(lambda: serve.log.read_text().count("clients: pagerduty") == 2, "the reload")
        after_reload = said(serve.log.read_text())
    warnings = [line for line in at_start if ": warning: " in line]
    assert len(warnings) == 2  # the example's two owners without an account somewhere
    clients = [line for line in at_start if " clients: " in line]
    assert sorted(line.split("clients: ")[1].split(":")[0] for line in clients) == sorted(
        TRACKERS)
    assert "INFO firstline.service clients: github: REST API configured" in clients
    assert sum(line.startswith("WARNING") for line in clients) == 3  # enforce, no clients
    assert set(at_start.values()) == {1}, at_start
    assert after_reload == Counter(dict.fromkeys(at_start, 2))
    assert serve.log.read_text().count("scope note reloaded") == 1
    assert "ghp_never_logged" not in serve.log.read_text()


def test_worker_says_each_warning_once(tmp_path: Path, db_url: str) -> None:
    env = {**os.environ, "FIRSTLINE_DATABASE_URL": db_url}
    run = subprocess.run([sys.executable, "-m", "router.cli", "worker", "--once", "--rules",
                          str(EXAMPLE_SCOPE)], env=env, cwd=ROOT, capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    counted = said(run.stderr)
    assert len([line for line in counted if ": warning: " in line]) == 2
    assert len([line for line in counted if " clients: " in line]) == len(TRACKERS)
    assert set(counted.values()) == {1}, run.stderr
