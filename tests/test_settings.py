"""Configuration from FIRSTLINE_* variables (SPEC §7)."""

from __future__ import annotations

from pathlib import Path

import pytest

from router.settings import Settings


def test_defaults_follow_the_spec() -> None:
    s = Settings()
    assert s.rules == Path("./scope.yaml")
    assert s.database_url == "sqlite:///./firstline.db"
    assert s.max_body_bytes == 10 * 1024 * 1024
    assert s.linear_max_age == 60
    assert s.allow_unsigned is False
    assert s.jira_url == "https://example.atlassian.net"
    assert s.github_api_url == "https://api.github.com"
    assert s.linear_api_url == "https://api.linear.app/graphql"
    assert s.pagerduty_api_url == "https://api.pagerduty.com"
    assert s.pagerduty_events_url == "https://events.pagerduty.com"
    assert all(s.webhook_secrets(source) == [] for source in
               ("jira", "linear", "github", "pagerduty"))


def test_values_come_from_prefixed_environment_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FIRSTLINE_DATABASE_URL", "postgresql+psycopg://db/firstline")
    monkeypatch.setenv("FIRSTLINE_ALLOW_UNSIGNED", "true")
    monkeypatch.setenv("FIRSTLINE_MAX_BODY_BYTES", "2048")
    monkeypatch.setenv("FIRSTLINE_LINEAR_MAX_AGE", "30")
    monkeypatch.setenv("FIRSTLINE_GITHUB_WEBHOOK_SECRET", "old-secret, new-secret,")
    s = Settings()
    assert s.database_url == "postgresql+psycopg://db/firstline"
    assert s.allow_unsigned is True
    assert (s.max_body_bytes, s.linear_max_age) == (2048, 30)
    assert s.webhook_secrets("github") == [b"old-secret", b"new-secret"]


def test_secrets_stay_out_of_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FIRSTLINE_PAGERDUTY_WEBHOOK_SECRET", "pd-very-secret")
    monkeypatch.setenv("FIRSTLINE_API_TOKEN", "api-very-secret")
    monkeypatch.setenv("FIRSTLINE_GITHUB_TOKEN", "ghp_very_secret")
    shown = repr(Settings()) + str(Settings())
    assert "very-secret" not in shown and "very_secret" not in shown


def test_blanks_around_a_value_are_dropped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FIRSTLINE_GITHUB_TOKEN", "ghp_from_a_file\n")  # as secret mounts end
    monkeypatch.setenv("FIRSTLINE_GITHUB_API_URL", " https://github.example/api/v3 ")
    s = Settings()
    assert s.github_token is not None and s.github_token.get_secret_value() == "ghp_from_a_file"
    assert s.github_api_url == "https://github.example/api/v3"


@pytest.mark.parametrize("value", ["ghp_one\nghp_two", "ghp\rx", "ghp\x1bx"])
def test_a_control_character_inside_a_value_is_refused_naming_only_the_variable(
        monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("FIRSTLINE_GITHUB_TOKEN", value)
    with pytest.raises(ValueError, match="FIRSTLINE_GITHUB_TOKEN contains a line break") as bad:
        Settings()
    assert "ghp" not in str(bad.value).replace("FIRSTLINE_GITHUB_TOKEN", "")
