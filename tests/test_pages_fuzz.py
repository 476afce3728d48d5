"""Every dashboard page and form in /openapi.json, driven with generated requests
(schemathesis), on the seeded week of tests/dashboard_seed.py.

Half the requests carry a real operator session (a login through the form) and, for a
form, the session's CSRF token, so the generated parameters and fields get past the
checks; the login form gets a real login cookie and nonce instead. Whatever comes: no
5xx, answers that match the documented status codes and content types, no traceback in
the logs, and no token or secret anywhere in an answer.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pytest_httpx import HTTPXMock
from schemathesis.specs.openapi.checks import negative_data_rejection, positive_data_acceptance

from router.service import build_service
from tests.dashboard_seed import CLOCK, GITHUB_API, seed, settings
from tests.fuzzing import assert_no_traceback, fuzz
from tests.standin_github import GitHubStandIn
from tests.test_pages import csrf_of, login
from tests.vendors import SECRETS

OPERATOR = "pages-fuzz-operator-token"
READER = "pages-fuzz-reader-token"
PAGE_ROUTES = [("GET", "/login"), ("POST", "/login"), ("POST", "/logout"), ("GET", "/"),
               ("POST", "/actions/{action_id}/retry"), ("GET", "/decisions"),
               ("GET", "/decisions/{decision_id}"), ("GET", "/escalations"),
               ("GET", "/escalations/{escalation_id}"), ("GET", "/scope"),
               ("POST", "/scope/what-if"), ("GET", "/month"),
               ("GET", "/month/{table}.csv")]
NEVER_SHOWN = (OPERATOR, READER, "gh-token", *SECRETS.values())


@dataclass
class Site:
    app: FastAPI
    session: str  # an operator's session cookie
    csrf: str  # its forms' token
    login_cookie: str  # a login form's signed cookie
    nonce: str  # and its CSRF token


@pytest.fixture
def site(db_url: str, tmp_path: Path, httpx_mock: HTTPXMock) -> Iterator[Site]:
    gh = GitHubStandIn(GITHUB_API).install(httpx_mock)
    seeded = seed(db_url, tmp_path, gh)
    app = build_service(settings(db_url, seeded.enforce_rules, api_token=OPERATOR,
                                 read_token=READER,
                                 **{f"{s}_webhook_secret": v for s, v in SECRETS.items()}),
                        run_worker=False, clock=lambda: CLOCK)
    with TestClient(app, follow_redirects=False) as client:
        assert login(client, OPERATOR).status_code == 303
        session = client.cookies["firstline_session"]
        csrf = csrf_of(client.get("/").text)
        fresh = TestClient(app)
        form = fresh.get("/login")
        nonce = re.search(r'name="csrf" value="([^"]+)"', form.text)
        assert nonce
        yield Site(app, session, csrf, fresh.cookies["firstline_login"], nonce.group(1))


@pytest.fixture(autouse=True)
def _no_traceback(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    caplog.set_level(logging.INFO)
    yield
    assert_no_traceback(caplog)


def test_every_page_of_the_schema_is_fuzzed(site: Site) -> None:
    served = {(method.upper(), path) for path, item in site.app.openapi()["paths"].items()
              for method, operation in item.items() if "dashboard" in operation.get("tags", ())}
    assert served == set(PAGE_ROUTES)


@pytest.mark.parametrize(("method", "path"), PAGE_ROUTES)
def test_no_generated_request_breaks_a_page(site: Site, method: str, path: str) -> None:
    def call(case: Any, flag: bool) -> None:
        if flag and path == "/login":
            case.cookies = {**(case.cookies or {}), "firstline_login": site.login_cookie}
            if isinstance(case.body, dict):
                case.body = {**case.body, "csrf": site.nonce}
        elif flag:
            case.cookies = {**(case.cookies or {}), "firstline_session": site.session}
            if isinstance(case.body, dict):
                case.body = {**case.body, "csrf": site.csrf}
        answer = case.call()
        if not flag and path != "/login":
            # Without a session nothing is looked at, valid or not: the login or a 401.
            assert answer.status_code in (303, 401), (answer.status_code, answer.text)
            case.validate_response(answer, excluded_checks=[negative_data_rejection])
        elif path == "/scope/what-if":
            # A schema cannot say what a valid scope note is: a well-formed form may hold
            # a note that is not one (422, with its problems), so only the other checks.
            case.validate_response(answer, excluded_checks=[positive_data_acceptance])
        else:
            case.validate_response(answer)
        shown = answer.text + str(answer.headers)
        assert not [secret for secret in NEVER_SHOWN if secret in shown]

    fuzz(schemathesis.openapi.from_asgi("/openapi.json", site.app)[path][method], call)


PAST_BIGINT = str(2**63)  # ids are BIGINT: a larger one overflowed the driver (500)


@pytest.mark.parametrize("path", [
    f"/decisions/{PAST_BIGINT}", f"/escalations/{PAST_BIGINT}", f"/decisions?before={PAST_BIGINT}",
    f"/decisions?after={PAST_BIGINT}", f"/escalations?before={PAST_BIGINT}",
    f"/api/v1/decisions/{PAST_BIGINT}", f"/api/v1/escalations/{PAST_BIGINT}",
    f"/api/v1/escalations/{PAST_BIGINT}/review"])
def test_an_id_past_bigint_is_refused_not_a_crash(site: Site, path: str) -> None:
    client = TestClient(site.app, cookies={"firstline_session": site.session},
                        headers={"Authorization": f"Bearer {OPERATOR}"})
    assert client.get(path).status_code == 422


def test_retrying_an_action_past_bigint_is_refused_not_a_crash(site: Site) -> None:
    client = TestClient(site.app, cookies={"firstline_session": site.session})
    answer = client.post(f"/actions/{PAST_BIGINT}/retry", data={"csrf": site.csrf})
    assert answer.status_code == 422


@pytest.mark.parametrize("path", [
    "/api/v1/decisions?cursor=5&cursor=", "/api/v1/escalations?limit=1&limit=2",
    "/decisions?source=jira&source=gitlab", "/escalations?state=open&state=x",
    "/login?next=/&next=/scope"])
def test_a_parameter_given_twice_is_refused_with_its_name(site: Site, path: str) -> None:
    """FastAPI takes the last of a repeated parameter: the others were silently dropped."""
    client = TestClient(site.app, cookies={"firstline_session": site.session},
                        headers={"Authorization": f"Bearer {OPERATOR}"})
    answer = client.get(path)
    assert answer.status_code == 400 and "once" in answer.text, answer.text
    if not path.startswith(("/api/", "/login")):  # without a session: the login, as ever
        assert TestClient(site.app, follow_redirects=False).get(path).status_code == 303


@pytest.mark.parametrize("path", ["/api/v1/decisions", "/api/v1/escalations"])
def test_a_cursor_past_bigint_starts_from_the_top_and_a_unicode_digit_is_refused(
        site: Site, path: str) -> None:
    client = TestClient(site.app, headers={"Authorization": f"Bearer {OPERATOR}"})
    first = client.get(path).json()["items"]
    assert first and client.get(path, params={"cursor": PAST_BIGINT}).json()["items"] == first
    assert client.get(path, params={"cursor": "\u00b2"}).status_code == 400
