"""Which vendor clients are configured, per tracker: logged at start and on every reload
(a warning where enforce mode needs a missing one) and shown in /readyz, never a value."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import yaml
from fastapi.testclient import TestClient

from router.http.app import create_app
from router.scope.holder import ScopeHolder
from router.settings import Settings, clients
from tests.support import EXAMPLE_SCOPE

ALL_CLIENTS = {
    "jira_url": "https://acme.atlassian.net", "jira_email": "bot@acme.example",
    "jira_api_token": "jira-token-value", "linear_api_key": "lin_api_key_value",
    "github_token": "ghp_token_value", "pagerduty_routing_key": "routing-key-value",
    "pagerduty_api_token": "pd-token-value", "pagerduty_from": "bot@acme.example",
}
VALUES = [v for k, v in ALL_CLIENTS.items() if k != "jira_url"]


def missing(settings: Settings) -> dict[tuple[str, str], tuple[str, ...]]:
    return {(c.tracker, c.name): c.missing for c in clients(settings)}


def test_every_tracker_lists_its_clients_and_the_settings_they_lack() -> None:
    assert missing(Settings()) == {
        ("jira", "REST API"): ("FIRSTLINE_JIRA_URL", "FIRSTLINE_JIRA_EMAIL",
                               "FIRSTLINE_JIRA_API_TOKEN"),
        ("linear", "GraphQL API"): ("FIRSTLINE_LINEAR_API_KEY",),
        ("github", "REST API"): ("FIRSTLINE_GITHUB_TOKEN",),
        ("pagerduty", "Events API"): ("FIRSTLINE_PAGERDUTY_ROUTING_KEY",),
        ("pagerduty", "REST API"): ("FIRSTLINE_PAGERDUTY_API_TOKEN", "FIRSTLINE_PAGERDUTY_FROM"),
    }
    assert all(c.configured for c in clients(Settings(**ALL_CLIENTS)))  # type: ignore[arg-type]


def test_a_jira_url_left_at_the_example_default_is_not_configured() -> None:
    settings = Settings(jira_email="bot@acme.example", jira_api_token="t")  # type: ignore[arg-type]
    assert missing(settings)[("jira", "REST API")] == ("FIRSTLINE_JIRA_URL",)


def note(tmp_path: Path, mode: str, drop_linear: bool = False) -> Path:
    data = yaml.safe_load(EXAMPLE_SCOPE.read_text())
    data["mode"] = mode
    if drop_linear:  # nobody, firstline included, has a Linear account
        for accounts in [*data["people"].values(), data["firstline"]]:
            accounts.pop("linear", None)
    path = tmp_path / "scope.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def client_records(caplog: pytest.LogCaptureFixture) -> dict[str, tuple[int, str]]:
    found: dict[str, tuple[int, str]] = {}
    for record in caplog.records:
        message = record.getMessage()
        if message.startswith("clients: "):
            tracker = message.split(":")[1].strip()
            assert tracker not in found, f"two lines for {tracker}"
            found[tracker] = (record.levelno, message)
    return found


def test_enforce_mode_without_clients_warns_once_per_tracker_at_start_and_on_reload(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    rules = note(tmp_path, "shadow")
    with caplog.at_level(logging.INFO, logger="firstline.service"):
        holder = ScopeHolder(Settings(rules=rules))
    shadow = client_records(caplog)
    assert sorted(shadow) == ["github", "jira", "linear", "pagerduty"]
    assert {level for level, _ in shadow.values()} == {logging.INFO}  # shadow acts nowhere
    assert shadow["github"][1] == ("clients: github: REST API not configured "
                                   "(set FIRSTLINE_GITHUB_TOKEN)")

    note(tmp_path, "enforce")
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="firstline.service"):
        holder.reload()
    enforce = client_records(caplog)
    assert {t: level for t, (level, _) in enforce.items()} == dict.fromkeys(
        ("jira", "linear", "github", "pagerduty"), logging.WARNING)
    assert enforce["pagerduty"][1] == (
        "clients: pagerduty: Events API not configured (set FIRSTLINE_PAGERDUTY_ROUTING_KEY); "
        "REST API not configured (set FIRSTLINE_PAGERDUTY_API_TOKEN, FIRSTLINE_PAGERDUTY_FROM); "
        "enforce mode acts in pagerduty through Events API and REST API: those actions will fail")


def test_configured_clients_are_named_and_their_values_never_logged(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    settings = Settings(rules=note(tmp_path, "enforce"), **ALL_CLIENTS)  # type: ignore[arg-type]
    with caplog.at_level(logging.INFO, logger="firstline.service"):
        ScopeHolder(settings)
    found = client_records(caplog)
    assert found["jira"] == (logging.INFO, "clients: jira: REST API configured")
    assert found["pagerduty"] == (logging.INFO, "clients: pagerduty: Events API configured; "
                                                "REST API configured")
    assert not any(value in caplog.text for value in VALUES)


def test_a_tracker_the_note_does_not_act_in_is_no_warning(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    settings = Settings(rules=note(tmp_path, "enforce", drop_linear=True))
    with caplog.at_level(logging.INFO, logger="firstline.service"):
        ScopeHolder(settings)
    found = client_records(caplog)
    assert found["linear"][0] == logging.INFO and found["github"][0] == logging.WARNING


def test_a_holder_that_only_validates_says_nothing(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """serve and worker check the note with warn=False before the holder that serves."""
    with caplog.at_level(logging.INFO, logger="firstline.service"):
        ScopeHolder(Settings(rules=note(tmp_path, "enforce")), warn=False).reload()
    assert client_records(caplog) == {}


def test_readyz_shows_which_clients_are_configured(db_url: str) -> None:
    settings = Settings(database_url=db_url, github_token="ghp_token_value",  # type: ignore[arg-type]
                        pagerduty_routing_key="routing-key-value")  # type: ignore[arg-type]
    with TestClient(create_app(settings)) as client:
        answer = client.get("/readyz")
    assert answer.status_code == 200
    detail = answer.json()["detail"]
    assert detail["clients"]["github"] == [
        {"client": "REST API", "configured": True, "missing": []}]
    assert detail["clients"]["pagerduty"] == [
        {"client": "Events API", "configured": True, "missing": []},
        {"client": "REST API", "configured": False,
         "missing": ["FIRSTLINE_PAGERDUTY_API_TOKEN", "FIRSTLINE_PAGERDUTY_FROM"]}]
    assert sorted(detail["clients"]) == ["github", "jira", "linear", "pagerduty"]
    assert "ghp_token_value" not in answer.text and "routing-key-value" not in answer.text
