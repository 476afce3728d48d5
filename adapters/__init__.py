"""One module per vendor, each with both directions; ADAPTERS is the one registry."""

from __future__ import annotations

from typing import TYPE_CHECKING

from adapters import github, jira, linear, pagerduty
from adapters.base import InboundAdapter, OutboundAdapter
from router.core.model import Source

if TYPE_CHECKING:
    from router.settings import Settings

ADAPTERS: dict[Source, InboundAdapter] = {
    "jira": jira.adapter,
    "linear": linear.adapter,
    "github": github.adapter,
    "pagerduty": pagerduty.adapter,
}


def outbound_adapters(settings: Settings) -> dict[str, OutboundAdapter]:
    """Build each vendor's outbound side; clients connect on first use, not here."""
    return {
        "jira": jira.outbound(settings),
        "linear": linear.outbound(settings),
        "github": github.outbound(settings),
        "pagerduty": pagerduty.outbound(settings),
    }
