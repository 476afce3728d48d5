"""One module per vendor, each with both directions; ADAPTERS is the one registry."""

from __future__ import annotations

from adapters import github, jira, linear, pagerduty
from adapters.base import InboundAdapter
from router.model import Source

ADAPTERS: dict[Source, InboundAdapter] = {
    "jira": jira.adapter,
    "linear": linear.adapter,
    "github": github.adapter,
    "pagerduty": pagerduty.adapter,
}
