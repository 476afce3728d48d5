"""GitHub outbound, at the HTTP transport: pytest-httpx answers as GitHub's REST API does.

Every expected request is registered with its method, URL, JSON body and the auth and
version headers GitHub documents; a request nobody registered fails the test, so "no
write" is checked by registering none.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import orjson
import pytest
from pydantic import SecretStr
from pytest_httpx import HTTPXMock

from adapters.base import OutboundAction, Result, Target
from adapters.github import GitHubOutbound, outbound
from router.settings import Settings

TOKEN = "ghp_firstlineTestTokenDoNotLeak0000000000"
API = "https://api.github.com"
ISSUE = f"{API}/repos/acme/web/issues/12"
COMMENTS = f"{ISSUE}/comments?per_page=100"
HEADERS = {
    "Authorization": f"Bearer {TOKEN}",
    "Accept": "application/vnd.github+json",
    "X-GitHub-Api-Version": "2022-11-28",
    "User-Agent": "firstline",  # GitHub refuses requests without one
}
CTO, OWNER, OTHER = "dreyes", "sokafor", "lpark"
NOW = 1_790_000_000.0


def settings(url: str = API, token: str | None = TOKEN) -> Settings:
    return Settings(github_api_url=url, github_token=SecretStr(token) if token else None)


def adapter(url: str = API) -> GitHubOutbound:
    return GitHubOutbound(settings(url), timeout=5.0, clock=lambda: NOW)


def action(type: str, action_id: int = 7, key: str = "acme/web#12", **fields: Any
           ) -> OutboundAction:
    target = Target(source="github", id="1347", key=key, kind="ticket", project="acme/web")
    return OutboundAction(id=action_id, type=type, target=target, **fields)


def users(*logins: str) -> list[dict[str, Any]]:
    return [{"login": login, "id": 1000 + n, "type": "User"} for n, login in enumerate(logins)]


def issue(*assignees: str) -> dict[str, Any]:
    return {"id": 1347, "number": 12, "state": "open", "assignees": users(*assignees),
            "assignee": users(*assignees)[0] if assignees else None}


def expect(httpx_mock: HTTPXMock, method: str, url: str, body: Any = None,
           status: int = 200, answer: Any = None, headers: dict[str, str] | None = None) -> None:
    """Register one request GitHub's API documents, with its headers and JSON body."""
    match: dict[str, Any] = {"match_json": body} if body is not None else {}
    httpx_mock.add_response(method=method, url=url, match_headers=HEADERS, status_code=status,
                            json=answer, headers=headers, **match)


def sent(httpx_mock: HTTPXMock) -> list[tuple[str, str]]:
    return [(r.method, str(r.url)) for r in httpx_mock.get_requests()]


def assert_failed(result: Result, status: str, *words: str) -> None:
    assert result.status == status, result
    assert TOKEN not in result.detail
    for word in words:
        assert word in result.detail, result.detail


# -- assign / unassign --------------------------------------------------------------------


def test_assign_takes_the_cto_off_then_adds_the_owner(httpx_mock: HTTPXMock) -> None:
    expect(httpx_mock, "GET", ISSUE, answer=issue(CTO))
    expect(httpx_mock, "DELETE", f"{ISSUE}/assignees", {"assignees": [CTO]}, answer=issue())
    expect(httpx_mock, "POST", f"{ISSUE}/assignees", {"assignees": [OWNER]}, status=201,
           answer=issue(OWNER))
    result = adapter().perform(action("assign", account=OWNER, remove=(CTO,)))
    assert result.ok, result
    assert sent(httpx_mock) == [("GET", ISSUE), ("DELETE", f"{ISSUE}/assignees"),
                                ("POST", f"{ISSUE}/assignees")]


def test_assign_on_a_pull_request_uses_the_issue_endpoints(httpx_mock: HTTPXMock) -> None:
    expect(httpx_mock, "GET", f"{API}/repos/acme/web/issues/31", answer=issue())
    expect(httpx_mock, "POST", f"{API}/repos/acme/web/issues/31/assignees",
           {"assignees": [OWNER]}, status=201, answer=issue(OWNER))
    assert adapter().perform(action("assign", key="acme/web#31", account=OWNER)).ok


def test_assign_is_a_no_op_when_the_owner_is_there_and_the_cto_is_not(
    httpx_mock: HTTPXMock,
) -> None:
    expect(httpx_mock, "GET", ISSUE, answer=issue(OTHER, "SoKafor"))
    result = adapter().perform(action("assign", account=OWNER, remove=(CTO,)))
    assert result.ok and "already" in result.detail
    assert sent(httpx_mock) == [("GET", ISSUE)]


def test_assign_only_removes_the_cto_when_the_owner_is_already_there(
    httpx_mock: HTTPXMock,
) -> None:
    expect(httpx_mock, "GET", ISSUE, answer=issue(CTO, OWNER))
    expect(httpx_mock, "DELETE", f"{ISSUE}/assignees", {"assignees": [CTO]},
           answer=issue(OWNER))
    assert adapter().perform(action("assign", account=OWNER, remove=(CTO,))).ok


def test_an_assignee_github_silently_dropped_is_a_permanent_failure(
    httpx_mock: HTTPXMock,
) -> None:
    expect(httpx_mock, "GET", ISSUE, answer=issue())
    expect(httpx_mock, "POST", f"{ISSUE}/assignees", {"assignees": [OWNER]}, status=201,
           answer=issue())
    result = adapter().perform(action("assign", account=OWNER))
    assert_failed(result, "permanent", "assign acme/web#12", OWNER, "push access")


def test_a_removal_github_silently_ignored_is_a_permanent_failure(
    httpx_mock: HTTPXMock,
) -> None:
    expect(httpx_mock, "DELETE", f"{ISSUE}/assignees", {"assignees": [CTO]}, answer=issue(CTO))
    result = adapter().perform(action("unassign", remove=(CTO,)))
    assert_failed(result, "permanent", "did not remove dreyes")


def test_unassign_deletes_the_cto(httpx_mock: HTTPXMock) -> None:
    expect(httpx_mock, "DELETE", f"{ISSUE}/assignees", {"assignees": [CTO]}, answer=issue())
    assert adapter().perform(action("unassign", remove=(CTO,))).ok


# -- comment --------------------------------------------------------------------------------


def test_comment_is_posted_with_a_hidden_marker(httpx_mock: HTTPXMock) -> None:
    expect(httpx_mock, "GET", COMMENTS, answer=[{"id": 1, "body": "a person's comment"}])
    body = {"body": "firstline: first response is Sam.\n\n<!-- firstline:action:7 -->"}
    expect(httpx_mock, "POST", f"{ISSUE}/comments", body, status=201, answer={"id": 2, **body})
    assert adapter().perform(action("comment", text="firstline: first response is Sam.")).ok


def test_a_first_try_posts_without_looking_for_its_marker(httpx_mock: HTTPXMock) -> None:
    body = {"body": "hello\n\n<!-- firstline:action:7 -->"}
    expect(httpx_mock, "POST", f"{ISSUE}/comments", body, status=201, answer={"id": 2, **body})
    assert adapter().perform(action("comment", text="hello", first_try=True)).ok
    assert sent(httpx_mock) == [("POST", f"{ISSUE}/comments")]


def test_comment_is_not_repeated_when_its_marker_is_found(httpx_mock: HTTPXMock) -> None:
    expect(httpx_mock, "GET", COMMENTS,
           answer=[{"id": 1, "body": "done\n\n<!-- firstline:action:7 -->"}])
    result = adapter().perform(action("comment", text="done"))
    assert result.ok and "already" in result.detail


def test_the_marker_is_found_on_the_second_page(httpx_mock: HTTPXMock) -> None:
    page2 = f"{API}/repositories/1300192/issues/12/comments?per_page=100&page=2"
    link = f'<{page2}>; rel="next", <{page2}>; rel="last"'
    expect(httpx_mock, "GET", COMMENTS, answer=[{"id": n, "body": "chatter"} for n in range(100)],
           headers={"Link": link})
    expect(httpx_mock, "GET", page2, answer=[{"id": 100, "body": "x <!-- firstline:action:7 -->"}])
    assert adapter().perform(action("comment", text="x")).ok
    assert sent(httpx_mock) == [("GET", COMMENTS), ("GET", page2)]


def test_another_actions_marker_does_not_count(httpx_mock: HTTPXMock) -> None:
    expect(httpx_mock, "GET", COMMENTS, answer=[{"id": 1, "body": "<!-- firstline:action:70 -->"}])
    expect(httpx_mock, "POST", f"{ISSUE}/comments", {"body": "x\n\n<!-- firstline:action:7 -->"},
           status=201, answer={"id": 2})
    assert adapter().perform(action("comment", text="x")).ok


# -- label ----------------------------------------------------------------------------------


def test_label_is_added(httpx_mock: HTTPXMock) -> None:
    expect(httpx_mock, "POST", f"{ISSUE}/labels", {"labels": ["next-cycle"]},
           answer=[{"name": "bug"}, {"name": "next-cycle"}])
    assert adapter().perform(action("label", label="next-cycle")).ok


# -- what the adapter refuses -------------------------------------------------------------


@pytest.mark.parametrize(("act", "words"), [
    (action("page", dedup_key="firstline/x"), "page acme/web#12: not a GitHub action"),
    (action("assign", key="acme/web/12", account=OWNER), "not a GitHub item key"),
    (action("assign"), "assign acme/web#12: the action has no account"),
])
def test_refused_without_a_request(httpx_mock: HTTPXMock, act: OutboundAction, words: str
                                   ) -> None:
    assert_failed(adapter().perform(act), "permanent", words)


def test_without_a_token_nothing_is_sent(httpx_mock: HTTPXMock) -> None:
    result = outbound(settings(token=None)).perform(action("label", label="x"))
    assert_failed(result, "permanent", "FIRSTLINE_GITHUB_TOKEN")


def test_building_the_adapter_touches_no_network(httpx_mock: HTTPXMock) -> None:
    outbound(settings())  # any request would fail the test as unexpected


# -- vendor trouble -----------------------------------------------------------------------


def test_429_with_retry_after(httpx_mock: HTTPXMock) -> None:
    expect(httpx_mock, "GET", ISSUE, status=429, answer={"message": "Too many requests"},
           headers={"Retry-After": "30"})
    result = adapter().perform(action("assign", account=OWNER))
    assert_failed(result, "retryable", "429", "Too many requests")
    assert result.retry_after == 30.0


def test_primary_rate_limit_waits_until_the_reset(httpx_mock: HTTPXMock) -> None:
    expect(httpx_mock, "POST", f"{ISSUE}/labels", {"labels": ["x"]}, status=403,
           answer={"message": "API rate limit exceeded for user ID 1."},
           headers={"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(int(NOW) + 90)})
    result = adapter().perform(action("label", label="x"))
    assert_failed(result, "retryable", "rate limit exceeded")
    assert result.retry_after == 90.0


@pytest.mark.parametrize(("headers", "wait"), [({"Retry-After": "45"}, 45.0), ({}, 60.0)])
def test_secondary_rate_limit(httpx_mock: HTTPXMock, headers: dict[str, str], wait: float
                              ) -> None:
    message = "You have exceeded a secondary rate limit. Please wait a few minutes."
    expect(httpx_mock, "POST", f"{ISSUE}/labels", {"labels": ["x"]}, status=403,
           answer={"message": message}, headers=headers)
    result = adapter().perform(action("label", label="x"))
    assert_failed(result, "retryable", "secondary rate limit")
    assert result.retry_after == wait


@pytest.mark.parametrize(("status", "headers", "wait"), [
    (500, {}, None), (502, {}, None), (503, {"Retry-After": "5"}, 5.0),
])
def test_server_errors_are_retryable(httpx_mock: HTTPXMock, status: int,
                                     headers: dict[str, str], wait: float | None) -> None:
    expect(httpx_mock, "GET", COMMENTS, status=status, answer={"message": "Server Error"},
           headers=headers)
    result = adapter().perform(action("comment", text="x"))
    assert_failed(result, "retryable", str(status), "comment acme/web#12")
    assert result.retry_after == wait


def test_a_timeout_is_retryable(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_exception(httpx.ReadTimeout("timed out"), url=ISSUE)
    result = adapter().perform(action("assign", account=OWNER))
    assert_failed(result, "retryable", "did not answer GET /repos/acme/web/issues/12")


@pytest.mark.httpx_mock(should_mock=lambda request: request.url.host != "127.0.0.1")
def test_connection_refused_is_retryable() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = adapter(f"http://127.0.0.1:{port}").perform(action("label", label="x"))
    assert_failed(result, "retryable", "could not reach GitHub", "ConnectError")


@pytest.mark.httpx_mock(should_mock=lambda request: request.url.host != "127.0.0.1")
def test_a_token_no_header_may_carry_fails_for_good_without_showing_it() -> None:
    # Settings refuse such a token; an adapter built another way must not retry it for
    # hours, nor quote it.
    with socket.socket() as listener:  # connects (the backlog accepts); nothing is sent
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        made = Settings.model_construct(
            github_api_url=f"http://127.0.0.1:{listener.getsockname()[1]}",
            github_token=SecretStr("ghp_line\nbreak"))
        result = GitHubOutbound(made, timeout=5.0).perform(action("label", label="x"))
    assert_failed(result, "permanent", "cannot send POST", "Authorization")
    assert "ghp_line" not in result.detail


def test_404_is_permanent_with_githubs_message(httpx_mock: HTTPXMock) -> None:
    expect(httpx_mock, "GET", ISSUE, status=404, answer={
        "message": "Not Found",
        "documentation_url": "https://docs.github.com/rest/issues/issues#get-an-issue"})
    result = adapter().perform(action("assign", account=OWNER))
    assert result == Result("permanent", "assign acme/web#12: GitHub answered 404 to "
                                         "GET /repos/acme/web/issues/12: Not Found")


def test_422_from_github_is_permanent(httpx_mock: HTTPXMock) -> None:
    expect(httpx_mock, "POST", f"{ISSUE}/labels", {"labels": ["x" * 60]}, status=422, answer={
        "message": "Validation Failed",
        "errors": [{"resource": "Label", "field": "name", "code": "invalid"}]})
    result = adapter().perform(action("label", label="x" * 60))
    assert_failed(result, "permanent", "422", "Validation Failed; name invalid")


def test_403_without_a_rate_limit_is_permanent(httpx_mock: HTTPXMock) -> None:
    expect(httpx_mock, "POST", f"{ISSUE}/labels", {"labels": ["x"]}, status=403,
           answer={"message": "Resource not accessible by integration"},
           headers={"x-ratelimit-remaining": "4999"})
    result = adapter().perform(action("label", label="x"))
    assert_failed(result, "permanent", "Resource not accessible by integration")


def test_reads_follow_a_renamed_repository_but_writes_do_not(httpx_mock: HTTPXMock) -> None:
    moved = f"{API}/repositories/1300192/issues/12"
    expect(httpx_mock, "GET", ISSUE, status=301, answer={"message": "Moved Permanently"},
           headers={"Location": moved})
    expect(httpx_mock, "GET", moved, answer=issue())
    expect(httpx_mock, "POST", f"{ISSUE}/assignees", {"assignees": [OWNER]}, status=307,
           answer={"message": "Temporary Redirect"},
           headers={"Location": f"{moved}/assignees"})
    result = adapter().perform(action("assign", account=OWNER))
    assert_failed(result, "permanent", "307", f"moved to {moved}/assignees")


def test_a_read_redirected_without_end_is_refused(httpx_mock: HTTPXMock) -> None:
    for n in range(6):
        expect(httpx_mock, "GET", f"{ISSUE}?hop={n}" if n else ISSUE, status=302,
               answer={"message": "Found"}, headers={"Location": f"{ISSUE}?hop={n + 1}"})
    result = adapter().perform(action("assign", account=OWNER))
    assert_failed(result, "permanent", "302", f"moved to {ISSUE}?hop=6")
    assert len(httpx_mock.get_requests()) == 6


class _Seen(BaseHTTPRequestHandler):
    """Answer as the server's `routes` say, and note each request's Authorization."""

    server: _Server

    def do_GET(self) -> None:
        self.server.seen.append((self.path, self.headers.get("Authorization")))
        status, headers, body = self.server.routes.get(self.path, (404, {}, b"{}"))
        self.send_response(status)
        for name, value in {"Content-Type": "application/json", **headers}.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Seen)
        self.routes: dict[str, tuple[int, dict[str, str], bytes]] = {}
        self.seen: list[tuple[str, str | None]] = []
        self.url = f"http://127.0.0.1:{self.server_address[1]}"


@pytest.fixture
def servers() -> Iterator[tuple[_Server, _Server]]:
    """Two local HTTP servers: the API, and another origin (same host, another port)."""
    pair = (_Server(), _Server())
    for server in pair:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    yield pair
    for server in pair:
        server.shutdown()
        server.server_close()


PATH = "/repos/acme/web/issues/12"


@pytest.mark.parametrize("elsewhere", [False, True], ids=["same origin", "another origin"])
def test_the_token_never_follows_a_redirect_to_another_origin(
        servers: tuple[_Server, _Server], elsewhere: bool) -> None:
    api, other = servers
    there = other if elsewhere else api
    api.routes[PATH] = (301, {"Location": f"{there.url}/repositories/1/issues/12"}, b"{}")
    there.routes["/repositories/1/issues/12"] = (200, {}, orjson.dumps(issue(OWNER)))
    result = adapter(api.url).perform(action("assign", account=OWNER))
    assert result.ok, result
    token = f"Bearer {TOKEN}"
    if elsewhere:
        assert api.seen == [(PATH, token)]
        assert other.seen == [("/repositories/1/issues/12", None)]
    else:
        assert api.seen == [(PATH, token), ("/repositories/1/issues/12", token)]


def test_once_off_its_origin_the_token_stays_off(servers: tuple[_Server, _Server]) -> None:
    """A redirect away and back again: the way back is not trusted with the token."""
    api, other = servers
    api.routes[PATH] = (302, {"Location": f"{other.url}/hop"}, b"{}")
    other.routes["/hop"] = (302, {"Location": f"{api.url}/repositories/1/issues/12"}, b"{}")
    api.routes["/repositories/1/issues/12"] = (200, {}, orjson.dumps(issue(OWNER)))
    assert adapter(api.url).perform(action("assign", account=OWNER)).ok
    assert api.seen == [(PATH, f"Bearer {TOKEN}"), ("/repositories/1/issues/12", None)]
    assert other.seen == [("/hop", None)]


def test_writes_send_json(httpx_mock: HTTPXMock) -> None:
    body = {"body": "hello\n\n<!-- firstline:action:7 -->"}
    expect(httpx_mock, "POST", f"{ISSUE}/comments", body, status=201, answer={"id": 1})
    assert adapter().perform(action("comment", text="hello", first_try=True)).ok
    assert httpx_mock.get_requests()[0].headers["content-type"] == "application/json"


@pytest.mark.parametrize(("env", "proxy"), [
    ({}, None),
    ({"HTTPS_PROXY": "http://proxy.corp:3128"}, "http://proxy.corp:3128"),
    ({"ALL_PROXY": "http://all.corp:3128"}, "http://all.corp:3128"),
    ({"HTTPS_PROXY": "http://proxy.corp:3128", "NO_PROXY": "api.github.com"}, None),
])
def test_the_proxy_comes_from_the_environment_as_httpx_clients_take_it(
        monkeypatch: pytest.MonkeyPatch, env: dict[str, str], proxy: str | None) -> None:
    from adapters.github.client import _env_proxy

    for name in ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "NO_PROXY", "https_proxy",
                 "http_proxy", "all_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert _env_proxy(API) == proxy


def test_a_token_echoed_by_github_is_scrubbed(httpx_mock: HTTPXMock) -> None:
    expect(httpx_mock, "GET", ISSUE, status=401, answer={"message": f"Bad token {TOKEN}"})
    result = adapter().perform(action("assign", account=OWNER))
    assert_failed(result, "permanent", "401", "Bad token ***")
