"""The scope note in force in a running service, swapped on SIGHUP only when valid."""

from __future__ import annotations

import logging

from router.scope.load import Scope, ScopeError, load_scope
from router.settings import Settings

log = logging.getLogger("firstline.service")


class ScopeHolder:
    """The scope note in force; `reload()` swaps it only when the new one is valid."""

    def __init__(self, settings: Settings, warn: bool = True) -> None:
        self.settings = settings
        self.warn = warn  # serve's HTTP side leaves the warnings to the worker's process
        self.current = self._load()

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
