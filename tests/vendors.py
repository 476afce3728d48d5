"""Deliveries as each vendor sends them: the recorded bodies, their headers, signatures.

The signatures follow each vendor's documented scheme, written out here rather than
borrowed from the adapters, so a test fails if an adapter drifts from the vendor:

- GitHub  `X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the body>`
- Jira    `X-Hub-Signature: sha256=<hex>` (WebSub method=signature)
- Linear  `Linear-Signature: <hex>`, plus `webhookTimestamp` (ms) in the body
- PagerDuty `X-PagerDuty-Signature: v1=<hex>[,v1=<hex>...]`
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import uuid
from pathlib import Path

VENDOR = Path(__file__).parent / "fixtures" / "vendor"
SOURCES = ("jira", "linear", "github", "pagerduty")
SECRETS = {
    "jira": "jira-webhook-secret",
    "linear": "lin_wh_linear-webhook-secret",
    "github": "github-webhook-secret",
    "pagerduty": "pagerduty-webhook-secret",
}
SIGNATURE_HEADER = {
    "github": "X-Hub-Signature-256",
    "jira": "X-Hub-Signature",
    "linear": "Linear-Signature",
    "pagerduty": "X-PagerDuty-Signature",
}
_jira_ids = itertools.count(1_700_000_000_000)


def fixtures(source: str) -> list[Path]:
    """List the recorded real deliveries of one vendor."""
    return sorted((VENDOR / source).glob("*.json"))


def signature(source: str, body: bytes, secret: str) -> dict[str, str]:
    """Sign a body with the vendor's scheme; return the header to send."""
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    value = {"github": f"sha256={digest}", "jira": f"sha256={digest}", "linear": digest,
             "pagerduty": f"v1={digest}"}[source]
    return {SIGNATURE_HEADER[source]: value}


def delivery_headers(source: str, event: str, delivery_id: str | None = None) -> dict[str, str]:
    """Return the unsigned headers the vendor sends with a delivery of `event`."""
    if source == "github":
        return {
            "Content-Type": "application/json",
            "User-Agent": "GitHub-Hookshot/8f3c2a1",
            "X-GitHub-Event": event,
            "X-GitHub-Delivery": delivery_id or str(uuid.uuid4()),
            "X-GitHub-Hook-ID": "482910373",
        }
    if source == "jira":
        return {
            "Content-Type": "application/json; charset=utf-8",
            "User-Agent": "Atlassian Webhook HTTP Client",
            "X-Atlassian-Webhook-Identifier": delivery_id or str(next(_jira_ids)),
        }
    if source == "linear":
        return {
            "Content-Type": "application/json; charset=utf-8",
            "User-Agent": "Linear-Webhook",
            "Linear-Event": event,
            "Linear-Delivery": delivery_id or str(uuid.uuid4()),
        }
    return {
        "Content-Type": "application/json",
        "User-Agent": "PagerDuty-Webhook/V3.0",
        "X-Webhook-Id": delivery_id or str(uuid.uuid4()),
        "X-Webhook-Subscription": "PF9KMXH",
    }


def signed_headers(
    source: str, body: bytes, event: str = "event", delivery_id: str | None = None,
    secret: str | None = None,
) -> dict[str, str]:
    """Return the complete headers of a correctly signed delivery."""
    headers = delivery_headers(source, event, delivery_id)
    headers.update(signature(source, body, secret or SECRETS[source]))
    return headers


def event_of(path: Path) -> str:
    """Read the event name from a fixture's file name (`issues.opened.json` -> `issues`)."""
    return path.name.split(".")[0]
