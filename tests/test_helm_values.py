"""The chart's values: every one documented, every secret setting listed, the example
note as the default, `helm lint` clean, and values that would break refused at render."""

from __future__ import annotations

import re

import pytest
import yaml

from tests.helm import CHART, CI_VALUES, SECRET_SETTINGS, SETTINGS, VARIANTS, refusal, run_helm
from tests.support import EXAMPLE_SCOPE

# Kubernetes' own structures, documented where they start: their fields need no comment.
OPAQUE = {"resources", "probes", "podSecurityContext", "securityContext", "secrets", "paths"}


def undocumented_values(text: str) -> list[str]:
    """Return the dotted names of values.yaml settings with no comment above or beside
    them (sections holding settings, and the scope note's own lines, are not settings)."""
    lines = text.splitlines()
    found: list[str] = []
    parents: list[tuple[int, str]] = []
    for number, line in enumerate(lines):
        match = re.match(r"^( *)([A-Za-z_]\w*):(.*)$", line)
        if not match or (parents and parents[-1][1] == "scopeNote" and line.startswith(" ")):
            continue
        indent, key, rest = len(match[1]), match[2], match[3]
        while parents and parents[-1][0] >= indent:
            parents.pop()
        outer = [name for _, name in parents]
        parents.append((indent, key))
        section = not rest.strip() and number + 1 < len(lines) and \
            lines[number + 1].startswith(" " * (indent + 1))
        if section or OPAQUE & set(outer):
            continue
        above = next(x for x in reversed(lines[:number]) if x.strip())
        if not (above.lstrip().startswith("#") or " #" in rest):
            found.append(".".join([*outer, key]))
    return found


def test_every_value_is_documented() -> None:
    assert undocumented_values((CHART / "values.yaml").read_text()) == []
    assert undocumented_values("a:\n  # -- why\n  b: 1\n  c: 2\n") == ["a.c"]


def test_values_list_every_secret_setting_and_the_example_note() -> None:
    """Checked without helm: a new secret setting must be added to the chart's `secrets`
    (and templates/_helpers.tpl's firstline.secretKeys), or it could end up in plain env."""
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert set(values["secrets"]) == SECRET_SETTINGS
    helpers = (CHART / "templates" / "_helpers.tpl").read_text()
    listed = helpers.split('define "firstline.secretKeys" -}}')[1].split("{{-")[0].split()
    assert set(listed) == SECRET_SETTINGS
    assert values["scopeNote"] == EXAMPLE_SCOPE.read_text()
    assert set(values["env"]) <= SETTINGS - SECRET_SETTINGS


@pytest.mark.parametrize("values", VARIANTS)
def test_helm_lint_passes_strict(values: str) -> None:
    done = run_helm("lint", "--strict", str(CHART), values=(values,))
    assert done.returncode == 0, done.stdout + done.stderr
    assert (CI_VALUES / f"{values}.yaml").exists()


def test_defaults_without_a_database_are_refused_clearly() -> None:
    message = refusal()
    assert "firstline needs a database: set secrets.FIRSTLINE_DATABASE_URL" in message
    assert "sqlite.enabled=true with replicaCount=1" in message


@pytest.mark.parametrize(("sets", "expected"), [
    (("env.FIRSTLINE_GITHUB_TOKEN=ghp_x",), "env.FIRSTLINE_GITHUB_TOKEN is a secret"),
    (("secrets.FIRSTLINE_GITHUB_SECRET=x",), "secrets.FIRSTLINE_GITHUB_SECRET is not a secret"),
    (("env.FIRSTLINE_RULES=/x.yaml",), "env.FIRSTLINE_RULES is set by the chart"),
    (("secrets.FIRSTLINE_DATABASE_URL=sqlite:///x.db",), "is SQLite, which serves one process"),
    (("ingress.enabled=true",), "ingress.enabled=true needs ingress.hosts"),
    (("scopeNote=",), "firstline needs a scope note"),
])
def test_unsafe_values_are_refused(sets: tuple[str, ...], expected: str) -> None:
    assert expected in refusal("defaults", sets=sets)


@pytest.mark.parametrize(("sets", "expected"), [
    (("replicaCount=2",), "sqlite.enabled=true runs exactly one replica"),
    (("replicaCount=3",), "but replicaCount is 3: set replicaCount=1"),
    (("worker.enabled=true",), "worker.enabled needs PostgreSQL"),
    (("autoscaling.enabled=true",), "autoscaling.enabled needs PostgreSQL"),
])
def test_sqlite_refuses_more_than_one_process(sets: tuple[str, ...], expected: str) -> None:
    assert expected in refusal("sqlite", sets=sets)
