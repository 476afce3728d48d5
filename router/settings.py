"""Service configuration, read once from `FIRSTLINE_*` environment variables (SPEC §7).

Secrets are `SecretStr`, so they never show in a repr, a log line or an error message.
Each webhook secret may hold several comma-separated values: while a secret is rotated,
both the old and the new one are accepted.

Blanks around a value are dropped (a secret mounted from a file usually ends in a
newline), and a value with a control character inside is refused at start-up, naming the
variable but never the value: sent in a header it would fail every call, and the HTTP
libraries' error messages quote the header, token and all.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from router.core.model import Source

MIB = 1024 * 1024


class Settings(BaseSettings):
    """Every `FIRSTLINE_*` variable of SPEC §7, with its default."""

    model_config = SettingsConfigDict(env_prefix="FIRSTLINE_", extra="ignore", frozen=True,
                                      str_strip_whitespace=True, hide_input_in_errors=True)

    rules: Path = Path("./scope.yaml")
    database_url: str = "sqlite:///./firstline.db"
    api_token: SecretStr | None = None
    # A second token for people who may look but not act: the read API and every
    # dashboard page, but not the retry button or the what-if (router.http.pages.auth).
    read_token: SecretStr | None = None
    allow_unsigned: bool = False

    jira_webhook_secret: SecretStr | None = None
    linear_webhook_secret: SecretStr | None = None
    github_webhook_secret: SecretStr | None = None
    pagerduty_webhook_secret: SecretStr | None = None

    jira_url: str = "https://example.atlassian.net"
    jira_email: str | None = None
    jira_api_token: SecretStr | None = None
    linear_api_key: SecretStr | None = None
    linear_api_url: str = "https://api.linear.app/graphql"
    github_token: SecretStr | None = None
    github_api_url: str = "https://api.github.com"
    pagerduty_api_token: SecretStr | None = None
    pagerduty_from: str | None = None
    pagerduty_routing_key: SecretStr | None = None
    pagerduty_service_id: str | None = None
    pagerduty_api_url: str = "https://api.pagerduty.com"
    pagerduty_events_url: str = "https://events.pagerduty.com"

    # GitHub hooks whose failed deliveries the worker asks GitHub to redeliver
    # (router.work.github_gaps): `owner/repo:id` or `org:id`, comma-separated.
    github_hook_ids: str | None = None

    max_body_bytes: int = 10 * MIB
    linear_max_age: float = 60.0
    # Days to keep raw deliveries and finished outbox actions (router.db.prune); 0 keeps
    # everything. 400: a year of monthly reviews can still replay what they count.
    retention_days: int = Field(default=400, ge=0)
    # Items whose outbox actions are performed side by side (router.work.outbox); 1: one at a time.
    outbox_concurrency: int = Field(default=8, ge=1)
    # Seconds between looks for work nobody announced (timers coming due, backoffs ending,
    # a wake-up lost with a dropped connection); new deliveries and actions wake the loops.
    poll_interval: float = Field(default=1.0, gt=0)
    # `json`: one JSON object per line, and a line per delivery decided and action performed.
    log_format: Literal["text", "json"] = "text"

    @field_validator("*")
    @classmethod
    def _no_control_characters(cls, value: Any, info: ValidationInfo) -> Any:
        text = value.get_secret_value() if isinstance(value, SecretStr) else value
        if isinstance(text, str) and any(ord(c) < 0x20 or c == "\x7f" for c in text):
            raise ValueError(f"FIRSTLINE_{str(info.field_name).upper()} contains a line break "
                             "or another control character")
        return value

    @field_validator("github_hook_ids")
    @classmethod
    def _hook_ids(cls, value: str | None) -> str | None:
        if value is not None:
            _hook_paths(value)  # refuse a malformed list at start, not at the first check
        return value

    def github_hooks(self) -> list[tuple[str, str]]:
        """Return (name as configured, REST path) for each hook of FIRSTLINE_GITHUB_HOOK_IDS."""
        return _hook_paths(self.github_hook_ids or "")

    def webhook_secrets(self, source: Source) -> list[bytes]:
        """Return the source's webhook secrets as HMAC keys; empty when none is configured.

        Blanks around commas are dropped, so `"old, new"` rotates cleanly.
        """
        secret: SecretStr | None = getattr(self, f"{source}_webhook_secret")
        if secret is None:
            return []
        values = (part.strip() for part in secret.get_secret_value().split(","))
        return [value.encode() for value in values if value]


@dataclass(frozen=True, slots=True)
class Client:
    """One vendor client firstline acts through, and which of its settings are not set."""

    tracker: Source
    name: str
    used_for: str
    missing: tuple[str, ...]  # FIRSTLINE_* names, never values

    @property
    def configured(self) -> bool:
        return not self.missing


# tracker, client, what firstline does through it, the settings it needs
_CLIENTS: tuple[tuple[Source, str, str, tuple[str, ...]], ...] = (
    ("jira", "REST API", "assign, comment, label", ("jira_url", "jira_email", "jira_api_token")),
    ("linear", "GraphQL API", "assign, comment, label", ("linear_api_key",)),
    ("github", "REST API", "assign, comment, label", ("github_token",)),
    ("pagerduty", "Events API", "page the CTO, resolve pages", ("pagerduty_routing_key",)),
    ("pagerduty", "REST API", "reassign incidents, add notes",
     ("pagerduty_api_token", "pagerduty_from")),
)


def clients(settings: Settings) -> tuple[Client, ...]:
    """Return every vendor client and the settings it lacks, reading no secret's value.

    `FIRSTLINE_JIRA_URL` left at its example default counts as not set: every call to
    it would fail.
    """
    def unset(name: str) -> bool:
        value = getattr(settings, name)
        return value is None or value == "" or (
            name == "jira_url" and value == Settings.model_fields[name].default)

    return tuple(Client(tracker, name, used_for,
                        tuple(f"FIRSTLINE_{n.upper()}" for n in needs if unset(n)))
                 for tracker, name, used_for, needs in _CLIENTS)


_REPO_HOOK = re.compile(r"(?P<owner>[A-Za-z0-9_.-]+)/(?P<repo>[A-Za-z0-9_.-]+):(?P<id>\d+)")
_ORG_HOOK = re.compile(r"(?P<org>[A-Za-z0-9_.-]+):(?P<id>\d+)")


def _hook_paths(value: str) -> list[tuple[str, str]]:
    """Read `owner/repo:id` and `org:id` entries into their deliveries API paths."""
    out = []
    for part in (p.strip() for p in value.split(",")):
        if found := _REPO_HOOK.fullmatch(part):
            out.append((part, f"/repos/{found['owner']}/{found['repo']}/hooks/{found['id']}"))
        elif found := _ORG_HOOK.fullmatch(part):
            out.append((part, f"/orgs/{found['org']}/hooks/{found['id']}"))
        elif part:
            raise ValueError(f"FIRSTLINE_GITHUB_HOOK_IDS: {part!r} is not owner/repo:id or "
                             "org:id")
    return out
