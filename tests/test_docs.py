"""The user documentation (README.md, docs/) against the code: every setting, command,
flag, route, query parameter, metric and scope-note key it should name, and nothing the
code does not read; its links resolve inside the repository; the quick start works."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from router.cli.main import _parser
from router.db.engine import upgrade
from router.scope import schema
from router.service import build_service
from router.settings import Settings
from tests.conftest import PG_ENV
from tests.support import EXAMPLE_SCOPE, ROOT, WAIT_S
from tests.test_cli_help import commands

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SETTINGS = {f"FIRSTLINE_{name.upper()}" for name in Settings.model_fields}
# FIRSTLINE_* names the docs may give that Settings does not read, and who reads them.
NOT_SETTINGS = {PG_ENV: "the test suite (tests/conftest.py)"}


def text(name: str) -> str:
    return (ROOT / name).read_text()


def named_anywhere() -> set[str]:
    return {m for doc in DOCS for m in re.findall(r"FIRSTLINE_[A-Z0-9_]+", doc.read_text())}


def test_the_docs_name_only_settings_the_code_reads() -> None:
    assert named_anywhere() - SETTINGS - set(NOT_SETTINGS) == set()


def test_every_setting_is_documented() -> None:
    assert SETTINGS - named_anywhere() == set()
    described = set(re.findall(r"^\| `(FIRSTLINE_[A-Z0-9_]+)` \|", text("docs/configuration.md"),
                               re.MULTILINE))
    assert described == SETTINGS  # one row each in the configuration reference


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_no_setting_is_named_without_its_prefix(doc: Path) -> None:
    """`GITHUB_TOKEN` is not what the code reads: `FIRSTLINE_GITHUB_TOKEN` is."""
    bare = {name.removeprefix("FIRSTLINE_") for name in SETTINGS}
    found = {m for m in re.findall(r"(?<![A-Za-z0-9_])[A-Z][A-Z0-9_]*(?![A-Za-z0-9_])",
                                   doc.read_text()) if m in bare}
    assert found == set()


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_links_stay_inside_the_repository_and_resolve(doc: Path) -> None:
    body = doc.read_text()
    assert "../shared" not in body and "SPEC.md" not in body
    for target in re.findall(r"\]\(([^)\s]+)\)", body):
        if target.startswith(("http://", "https://", "#")):
            continue
        path = (doc.parent / target.split("#")[0]).resolve()
        assert path.is_relative_to(ROOT) and path.exists(), f"{doc.name}: {target}"


def test_the_cli_reference_names_every_command_and_flag() -> None:
    doc = text("docs/cli.md")
    for words, parser in commands(_parser()):
        if not words:
            continue
        assert f"firstline {' '.join(words)}" in doc, words
        for action in parser._actions:
            for flag in action.option_strings:
                if flag not in ("-h", "--help"):
                    assert f"`{flag}" in doc, (words, flag)


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> TestClient:
    url = f"sqlite:///{tmp_path_factory.mktemp('docs') / 'firstline.db'}"
    upgrade(url)
    with TestClient(build_service(Settings(rules=EXAMPLE_SCOPE, database_url=url))) as client:
        yield client


def _placeholders(route: str) -> str:
    return re.sub(r"\{[^}]*\}", "{}", route)


def test_the_http_reference_names_every_route_and_parameter(service: TestClient) -> None:
    doc = text("docs/http-api.md")
    for path, operations in service.app.openapi()["paths"].items():
        for method, operation in operations.items():
            assert f"{method.upper()} {_placeholders(path)}" in _placeholders(doc), path
            for parameter in operation.get("parameters", []):
                if parameter["in"] == "query":
                    assert f"`{parameter['name']}`" in doc, (path, parameter["name"])


def test_every_metric_is_documented(service: TestClient) -> None:
    """The README's Metrics table, which docs/http-api.md links to."""
    doc = text("README.md")
    exposed = re.findall(r"^# TYPE (firstline_\w+) ", service.get("/metrics").text, re.MULTILINE)
    assert "firstline_decisions_total" in exposed  # the worker's metrics are there too
    missing = [name for name in exposed if not name.endswith("_created") and name not in doc]
    assert missing == []


def test_the_scope_note_reference_names_every_key() -> None:
    doc = text("docs/scope-note.md")
    models = schema.Strict.__subclasses__()
    assert schema.ScopeNote in models and schema.MatchSpec in models
    for model in models:
        for name, field in model.model_fields.items():
            key = field.alias or name
            assert f"`{key}`" in doc, f"{model.__name__}.{key}"
    for group_field in schema.GROUP_FIELDS:
        assert f"`{group_field}`" in doc


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def quick_start_delivery() -> str:
    """The README's shell block that posts a signed delivery to `scripts/serve`."""
    blocks = re.findall(r"```sh\n(.*?)```", text("README.md"), re.DOTALL)
    [block] = [b for b in blocks if "scripts/serve &" in b]
    return block


@pytest.mark.skipif(not (shutil.which("curl") and shutil.which("openssl")),
                    reason="the quick start uses curl and openssl")
def test_the_quick_start_delivery_works_as_written(tmp_path: Path) -> None:
    """Run the README's block as a user would, in bash; only the port (8000 may be taken
    here) and the database file (not ./firstline.db in the checkout) differ."""
    port = free_port()
    block = quick_start_delivery()
    assert block.count("127.0.0.1:8000") == 3 and "scripts/serve &" in block
    script = block.replace("127.0.0.1:8000", f"127.0.0.1:{port}").replace(
        "scripts/serve &", f"scripts/serve --port {port} &")
    env = {k: v for k, v in os.environ.items() if not k.startswith("FIRSTLINE_")}
    env["FIRSTLINE_DATABASE_URL"] = f"sqlite:///{tmp_path / 'firstline.db'}"
    run = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", f"{script}\nwait"], cwd=ROOT,
                         env=env, capture_output=True, text=True, timeout=4 * WAIT_S)
    assert run.returncode == 0, run.stderr[-3000:]
    assert '{"status":"accepted","id":1}' in run.stdout, run.stdout
    assert '"source":"github"' in run.stdout and '"outcome":"' in run.stdout, run.stdout
