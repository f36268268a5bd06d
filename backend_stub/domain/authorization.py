"""Authorization of idTags: the card rules of the store, with payment-bound idTags decided by the payment hooks."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from backend_stub.domain.payments import Hooks
from backend_stub.store import AuthStatus, CsmsStore

log = logging.getLogger(__name__)


class Authorization:
    """Decides whether an idTag may charge."""

    def __init__(self, store: CsmsStore, clock: Callable[[], datetime], hooks: Hooks) -> None:
        """Decide from ``store`` at ``clock()``; payment idTags are asked of ``hooks.payment``."""
        self.store = store
        self.clock = clock
        self.hooks = hooks

    def card_status(self, id_tag: str) -> AuthStatus:
        """The card's status now: known, not blocked, not expired, and (prepaid) over the minimum balance."""
        decision = self.store.authorize(id_tag, self.clock(), self.store.min_balance_minor())
        if decision.status is not AuthStatus.ACCEPTED:
            log.info("idTag %s: %s (%s)", id_tag, decision.status, decision.reason)
        return decision.status

    def authorize(self, cp_id: str, id_tag: str) -> AuthStatus:
        """An authorization request from ``cp_id``: a payment idTag by its payment, any other by its card."""
        if self.hooks.payment is not None:
            status = self.hooks.payment.authorize(cp_id, id_tag)
            if status is not None:
                return status
        return self.card_status(id_tag)
