"""No secret leaves firstline (SPEC §7): a representative session with every secret set
to a unique random value, then a scan of everything it produced for each one.

The session: the real service in-process in enforce mode, signed deliveries from all
four vendors (one signed with the retiring secret of a rotation), deliveries with bad or
no signatures, vendor calls that fail and whose error bodies echo the credential they
were sent, the read API with good and bad tokens (the API token and the read-only one), /metrics,
/readyz, /openapi.json, the dashboard (logging in with each token and a wrong one, every
page, a dead action retried, a what-if, error pages, logging out), a GitHub delivery-gap
look, and the CLI (`explain`, `replay --from-db`, `outbox list`, `db prune --dry-run`,
`check`). Scanned: every log record (with tracebacks), every column of every table, every
HTTP answer with its headers, the dashboard's cookies decoded, every line the CLI printed.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import secrets
import time
import zlib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from itsdangerous.encoding import base64_decode
from pytest_httpx import HTTPXMock
from sqlalchemy import Engine, select

from adapters import outbound_adapters, pagerduty
from adapters.github.deliveries import DeliveryLog, hooks
from router.cli.main import main
from router.db.tables import metadata, outbox
from router.service import build_service
from router.settings import Settings
from router.work.github_gaps import GapFinder
from tests.standin_github import GitHubStandIn
from tests.standin_jira import JiraStandin, Reply
from tests.standin_pagerduty import PagerDutyStandIn
from tests.support import EXAMPLE_SCOPE, FIXTURES, eventually, github_assigned_to_cto
from tests.test_pages import csrf_of
from tests.vendors import signed_headers

GITHUB_API = "https://api.github.test"
LINEAR_API = "https://api.linear.test/graphql"
HOOK = "/repos/Codertocat/Hello-World/hooks/7"
SECRET_SETTINGS = ("api_token", "read_token", "jira_webhook_secret", "linear_webhook_secret",
                   "github_webhook_secret", "pagerduty_webhook_secret", "jira_api_token",
                   "linear_api_key", "github_token", "pagerduty_api_token",
                   "pagerduty_routing_key")


@pytest.fixture
def values() -> dict[str, str]:
    """A unique random value per secret setting; GitHub's rotation has two."""
    out = {name: f"{name.replace('_', '-')}-{secrets.token_hex(12)}" for name in SECRET_SETTINGS}
    out["github_webhook_secret_old"] = f"retiring-{secrets.token_hex(12)}"
    return out


def settings_for(db_url: str, rules: Path, jira_url: str, values: dict[str, str]) -> Settings:
    chosen = {k: v for k, v in values.items() if k in SECRET_SETTINGS}
    rotation = (values["github_webhook_secret_old"], chosen["github_webhook_secret"])
    chosen["github_webhook_secret"] = ",".join(rotation)
    return Settings(rules=rules, database_url=db_url, jira_url=jira_url,
                    jira_email="bot@example.com", github_api_url=GITHUB_API,
                    linear_api_url=LINEAR_API, pagerduty_api_url="https://api.pagerduty.test",
                    pagerduty_events_url="https://events.pagerduty.test",
                    pagerduty_from="bot@example.com", **chosen)


def echo_linear(request: httpx.Request) -> httpx.Response:
    """Linear refusing the key, quoting it back (as a careless proxy might)."""
    return httpx.Response(200, json={"errors": [{"message": "invalid key: " + request.headers[
        "authorization"]}]})


def test_no_secret_appears_in_logs_tables_answers_metrics_or_cli_output(
        db_url: str, engine: Engine, tmp_path: Path, values: dict[str, str],
        httpx_mock: HTTPXMock, caplog: pytest.LogCaptureFixture,
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    caplog.set_level(logging.DEBUG)
    rules = tmp_path / "scope.yaml"
    rules.write_text(EXAMPLE_SCOPE.read_text().replace("mode: shadow", "mode: enforce"))
    produced: list[str] = []
    with JiraStandin(email="bot@example.com", token=values["jira_api_token"]) as jira:
        settings = settings_for(db_url, rules, jira.url, values)
        gh = GitHubStandIn(GITHUB_API).install(httpx_mock)
        httpx_mock.add_callback(echo_linear, url=LINEAR_API, is_reusable=True)
        pd = PagerDutyStandIn()
        _vendor_failures(gh, jira, pd, values)
        adapters = {**outbound_adapters(settings),
                    "pagerduty": pagerduty.outbound(settings, transport=pd.transport)}
        with TestClient(build_service(settings, adapters=adapters)) as client:
            produced += _deliveries(client, values, jira)
            _settle(engine)
            produced += _read_side(client, values)
            produced += _dashboard(client, values)
        # Its own finder (the service's would start only after 30 s), on the same token.
        watched = settings.model_copy(update={"github_hook_ids": "Codertocat/Hello-World:7"})
        gaps = GapFinder(engine, DeliveryLog(watched), hooks(watched))
        gh.add_delivery(HOOK, "lost-guid", 502, datetime.now(UTC) - timedelta(hours=1))
        gh.fail("GET", "/deliveries", httpx.Response(
            401, json={"message": "Bad credentials " + values["github_token"]}))
        produced += gaps.run_once().problems
        produced += gaps.run_once().problems  # the second look succeeds and asks
        assert gh.redeliveries
    produced += _cli(db_url, rules, values, monkeypatch, capsys)
    produced.append(caplog.text)
    produced += [str(r.args) for r in caplog.records]
    produced += _every_cell(engine)
    _assert_clean(produced, values)


def _vendor_failures(gh: GitHubStandIn, jira: JiraStandin, pd: PagerDutyStandIn,
                     values: dict[str, str]) -> None:
    """Make each vendor fail once, its error quoting the credential it was sent."""
    gh.add("Codertocat/Hello-World", 1, ["dreyes"])
    gh.fail("POST", "/comments", httpx.Response(
        401, json={"message": "Bad credentials: token " + values["github_token"]}))
    basic = base64.b64encode(f"bot@example.com:{values['jira_api_token']}".encode()).decode()
    jira.fail_once("PUT", "/rest/api/2/issue/10040/assignee", Reply(
        503, {"errorMessages": [f"overloaded, retry (Authorization: Basic {basic}; "
                                f"token {values['jira_api_token']})"]}))
    pd.answer("POST", "/v2/enqueue", 400, {"status": "invalid event", "errors": [
        f"routing_key {values['pagerduty_routing_key']} is not an integration"]})
    pd.answer("POST", "/v2/enqueue", 202, {"status": "success", "dedup_key": "x"})
    refused = {"error": {"message": f"Invalid token: Token token={values['pagerduty_api_token']}"}}
    for _ in range(4):  # whatever the incident's decision asks of the REST API
        for method, path in (("GET", ""), ("PUT", ""), ("GET", "/notes"), ("POST", "/notes")):
            pd.answer(method, f"/incidents/PFQZPSY{path}", 401, refused)


def _deliveries(client: TestClient, values: dict[str, str], jira: JiraStandin) -> list[str]:
    """Send good, rotated, badly signed and unsigned deliveries; return the answers."""
    answers = []
    github = json.dumps(github_assigned_to_cto()).encode()
    jira_payload = json.loads((FIXTURES / "jira" / "issue_created.json").read_bytes())
    jira_payload["issue"]["fields"]["labels"] = ["checkout"]
    jira.add_issue(jira_payload["issue"]["key"], jira_payload["issue"]["id"])
    linear = json.loads((FIXTURES / "linear" / "Issue.create.json").read_bytes())
    linear["webhookTimestamp"] = int(time.time() * 1000)
    bodies = [("github", "issues", github, values["github_webhook_secret"]),
              ("github", "issues", github.replace(b"{", b'{"x":1,', 1),
               values["github_webhook_secret_old"]),
              ("jira", "jira:issue_created", json.dumps(jira_payload).encode(),
               values["jira_webhook_secret"]),
              ("linear", "Issue", json.dumps(linear).encode(), values["linear_webhook_secret"]),
              ("pagerduty", "incident.triggered",
               (FIXTURES / "pagerduty" / "incident.triggered.json").read_bytes(),
               values["pagerduty_webhook_secret"])]
    for source, event, body, secret in bodies:
        for key in (secret, "not-" + secret, None):  # good, wrong, and no signature
            headers = signed_headers(source, body, event, secret=key or "x")
            if key is None:
                headers = {k: v for k, v in headers.items() if "ignature" not in k}
            answer = client.post(f"/webhooks/{source}", content=body, headers=headers)
            answers.append(f"{answer.status_code} {answer.headers} {answer.text}")
            assert (answer.status_code < 300) == (key == secret), (source, answer.text)
    return answers


def _settle(engine: Engine) -> None:
    def done() -> bool:
        with engine.connect() as conn:
            statuses = list(conn.execute(select(outbox.c.status)).scalars())
        return bool(statuses) and "pending" not in statuses
    eventually(done, "every action done or dead", timeout=60)


def _read_side(client: TestClient, values: dict[str, str]) -> list[str]:
    good = {"Authorization": f"Bearer {values['api_token']}"}
    reader = {"Authorization": f"Bearer {values['read_token']}"}
    answers = []
    for path in ("/api/v1/decisions", "/api/v1/escalations", "/api/v1/scope", "/metrics",
                 "/readyz", "/healthz", "/openapi.json"):
        for headers in (good, reader, {"Authorization": f"Bearer {values['api_token']}x"}, {}):
            answer = client.get(path, headers=headers)
            answers.append(f"{answer.status_code} {answer.headers} {answer.text}")
    for item in client.get("/api/v1/decisions", headers=good).json()["items"]:
        answers.append(client.get(f"/api/v1/decisions/{item['id']}", headers=good).text)
    return answers


def _dashboard(client: TestClient, values: dict[str, str]) -> list[str]:
    """Use the dashboard as each role would, and as a guess would; return every answer
    with its headers and the payloads of the cookies it set."""
    answers: list[str] = []

    def keep(answer: httpx.Response) -> httpx.Response:
        answers.append(f"{answer.status_code} {answer.headers} {answer.text}")
        answers.extend(_cookie_payload(v) for v in answer.headers.get_list("set-cookie"))
        return answer

    for token in (values["api_token"] + "x", values["read_token"], values["api_token"]):
        client.cookies.clear()
        nonce = csrf_of(keep(client.get("/login")).text)
        keep(client.post("/login", data={"token": token, "csrf": nonce, "next": "/"},
                         follow_redirects=False))
    week = keep(client.get("/"))
    assert "firstline_session" in client.cookies and "Log out" in week.text
    csrf = csrf_of(week.text)
    listed = keep(client.get("/decisions")).text + keep(client.get("/escalations")).text
    details = set(re.findall(r'href="(/(?:decisions|escalations)/\d+)"', listed))
    assert any(p.startswith("/escalations/") for p in details), listed
    for path in [*sorted(details), "/scope", "/decisions/999999", "/decisions?source=gitlab"]:
        keep(client.get(path))
    with client.app.state.runtime.engine.connect() as conn:  # type: ignore[attr-defined]
        dead = conn.execute(select(outbox.c.id).where(outbox.c.status == "dead")).scalars()
        for action_id in list(dead)[:2]:
            keep(client.post(f"/actions/{action_id}/retry", data={"csrf": csrf},
                             follow_redirects=False))
    keep(client.post("/scope/what-if", data={"csrf": csrf, "days": "1",
                                             "note": EXAMPLE_SCOPE.read_text()}))
    keep(client.post("/scope/what-if", data={"csrf": "forged", "note": "x"}))
    keep(client.post("/logout", data={"csrf": csrf}, follow_redirects=False))
    assert len(answers) > 15
    return answers


def _cookie_payload(set_cookie: str) -> str:
    """Return a signed cookie's payload as text (itsdangerous: base64 JSON, maybe zlib'd),
    which a scan of the raw header would not see into."""
    value = set_cookie.split(";", 1)[0].partition("=")[2].strip('"')
    payload = value.split(".")[1] if value.startswith(".") else value.split(".")[0]
    if not payload:
        return ""
    raw = base64_decode(payload)
    return (zlib.decompress(raw) if value.startswith(".") else raw).decode("latin-1")


def _cli(db_url: str, rules: Path, values: dict[str, str], monkeypatch: pytest.MonkeyPatch,
         capsys: pytest.CaptureFixture[str]) -> list[str]:
    """Run the commands an operator would, with every secret in the environment."""
    for name, value in values.items():
        if name in SECRET_SETTINGS:
            monkeypatch.setenv(f"FIRSTLINE_{name.upper()}", value)
    monkeypatch.setenv("FIRSTLINE_DATABASE_URL", db_url)
    fixture = str(FIXTURES / "github" / "issues.assigned.json")
    for argv in (["explain", "--rules", str(rules), "--source", "github", fixture],
                 ["explain", "--rules", str(rules), "--source", "github", "--json", fixture],
                 ["replay", "--rules", str(rules), "--from-db"],
                 ["outbox", "list", "--status", "all"], ["db", "prune", "--dry-run"],
                 ["check", str(rules)], ["scope", str(rules)]):
        main(argv)
    out = capsys.readouterr()
    return [out.out, out.err]


def _every_cell(engine: Engine) -> list[str]:
    cells = []
    with engine.connect() as conn:
        for table in metadata.sorted_tables:
            for row in conn.execute(select(table)):
                cells += [v.decode("latin-1") if isinstance(v, bytes) else str(v) for v in row]
    return cells


def _assert_clean(produced: list[str], values: dict[str, str]) -> None:
    assert len(produced) > 50
    text = "\n".join(produced)
    jira_basic = base64.b64encode(f"bot@example.com:{values['jira_api_token']}".encode())
    for name, value in [*values.items(), ("jira basic auth", jira_basic.decode())]:
        assert value not in text, f"{name} leaked: ...{_around(text, value)}..."


def _around(text: str, value: str) -> Any:
    at = text.index(value)
    return text[max(0, at - 150):at + len(value) + 50]
