"""The Dockerfile names settings that exist, runs `serve`, and runs as the chart's user;
the rollout guide's commands are ones the CLI accepts.

No Docker engine is at hand in CI: hadolint lints the file there (.ci/run), and these
checks keep it from drifting from the code it packages and the chart that runs it."""

from __future__ import annotations

import re
import shlex

import pytest
import yaml

from router.cli.main import _parser
from router.settings import Settings
from tests.support import ROOT

SETTINGS = {f"FIRSTLINE_{name.upper()}" for name in Settings.model_fields}
DOCKERFILE = (ROOT / "Dockerfile").read_text()


def test_the_image_runs_serve_with_real_settings() -> None:
    assert 'CMD ["firstline", "serve", "--host", "0.0.0.0", "--port", "8000"]' in DOCKERFILE
    named = set(re.findall(r"\b(FIRSTLINE_[A-Z_]+)=", DOCKERFILE))
    assert named and named <= SETTINGS
    assert "COPY examples/scope.yaml" in DOCKERFILE and (ROOT / "examples/scope.yaml").exists()


def test_the_image_runs_as_the_charts_non_root_user() -> None:
    values = yaml.safe_load((ROOT / "helm/firstline/values.yaml").read_text())
    pod = values["podSecurityContext"]
    user = re.findall(r"^USER (\d+):(\d+)$", DOCKERFILE, re.MULTILINE)
    assert user == [(str(pod["runAsUser"]), str(pod["runAsGroup"]))]
    assert pod["runAsUser"] != 0 and pod["fsGroup"] == pod["runAsGroup"]
    assert f"chown {pod['runAsUser']}:{pod['runAsGroup']} /data" in DOCKERFILE


def test_both_stages_use_one_pinned_base() -> None:
    bases = re.findall(r"^FROM (\S+)", DOCKERFILE, re.MULTILINE)
    assert len(bases) == 2 and len(set(bases)) == 1
    assert re.fullmatch(r"python:3\.11\.\d+-slim-\w+", bases[0])


def _guide_commands() -> list[str]:
    """Return each `firstline <command> …` in the rollout guide's shell blocks."""
    guide = (ROOT / "docs" / "rollout.md").read_text()
    blocks = re.findall(r"```sh\n(.*?)```", guide, re.DOTALL)
    text = " ".join(block.replace("\\\n", " ") for block in blocks)
    verbs = "check|scope|explain|replay|serve|worker|outbox|db"
    return [m.strip() for m in re.findall(rf"\bfirstline (?:{verbs})\b[^'\"|&;<>\n]*", text)]


def test_the_rollout_guide_has_firstline_commands() -> None:
    commands = _guide_commands()
    assert any(c.startswith("firstline replay --from-db") and "--compare" in c for c in commands)
    assert "firstline check scope.yaml" in commands


@pytest.mark.parametrize("command", _guide_commands())
def test_the_rollout_guides_commands_parse(command: str) -> None:
    # argparse exits (SystemExit fails the test) on an unknown command or flag.
    _parser().parse_args(shlex.split(command, comments=True)[1:])
