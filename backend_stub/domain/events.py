"""What happened in the domain, told to whoever listens (OCPI pushes): connector status, sessions, tariffs.

Observers are called synchronously after the change is stored; they must only note the change (queue it) and
return. One that raises is logged and the others still run: a listener never breaks a charger's session.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Protocol

log = logging.getLogger(__name__)


class DomainObserver(Protocol):
    """A listener to domain changes; each method is called after the change is committed."""

    def status_changed(self, cp_id: str, evse: int) -> None:
        """A connector (evse id; 0 is the charger as a whole) reported a new status."""

    def session_changed(self, tx_id: int) -> None:
        """A session started or got new meter values."""

    def session_ended(self, tx_id: int) -> None:
        """A session was stopped and priced (once; a repeated stop is not told)."""

    def tariffs_changed(self, tariff_id: str) -> None:
        """A tariff was added or replaced."""


class Observers:
    """Fans domain changes out to every observer added."""

    def __init__(self) -> None:
        """No observers yet."""
        self._observers: list[DomainObserver] = []

    def add(self, observer: DomainObserver) -> None:
        """Tell ``observer`` about every later change."""
        self._observers.append(observer)

    def status_changed(self, cp_id: str, evse: int) -> None:
        """Tell every observer."""
        for o in self._observers:
            self._guard(o.status_changed, cp_id, evse)

    def session_changed(self, tx_id: int) -> None:
        """Tell every observer."""
        for o in self._observers:
            self._guard(o.session_changed, tx_id)

    def session_ended(self, tx_id: int) -> None:
        """Tell every observer."""
        for o in self._observers:
            self._guard(o.session_ended, tx_id)

    def tariffs_changed(self, tariff_id: str) -> None:
        """Tell every observer."""
        for o in self._observers:
            self._guard(o.tariffs_changed, tariff_id)

    @staticmethod
    def _guard(method: Callable[..., None], *args: object) -> None:
        try:
            method(*args)
        except Exception:
            log.exception("domain observer %r failed", method)
