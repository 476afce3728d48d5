"""The scope note in force in a running service, swapped on SIGHUP only when valid."""

from __future__ import annotations

import logging

from router.scope.clients import client_lines
from router.scope.load import Scope, ScopeError, load_scope
from router.settings import Settings

log = logging.getLogger("firstline.service")


class ScopeHolder:
    """The scope note in force; `reload()` swaps it only when the new one is valid."""

    def __init__(self, settings: Settings, warn: bool = True) -> None:
        self.settings = settings
        self.warn = warn  # false: only validate (the holder that serves says it all)
        self.current = self._load()
        self._report_clients()

    def _load(self) -> Scope:
        scope, warnings = load_scope(self.settings.rules, self.settings.pagerduty_service_id)
        for warning in warnings if self.warn else ():
            log.warning("%s", warning)
        return scope

    def __call__(self) -> Scope:
        return self.current

    def reload(self) -> None:
        try:
            self.current = self._load()
        except ScopeError as exc:
            log.error("scope note not reloaded, keeping %s:\n%s", self.current.hash, exc)
            return
        log.info("scope note reloaded: %s (%s)", self.current.path, self.current.hash)
        self._report_clients()

    def _report_clients(self) -> None:
        """Log which vendor clients are configured, per tracker: a switch to enforce mode
        without them would otherwise show only as dead actions."""
        for level, line in client_lines(self.current, self.settings) if self.warn else ():
            log.log(level, "%s", line)
