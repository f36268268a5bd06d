"""Authorization of idTags: the card rules (known, not blocked, not expired, prepaid balance over the minimum),
with payment-bound idTags decided by the payment hooks."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import NamedTuple

from backend_stub.domain.payments import Hooks
from backend_stub.store import (
    MAX_AMOUNT_MINOR,
    MAX_ID_TAG_LENGTH,
    AuthStatus,
    CardMode,
    CardStatus,
    CsmsStore,
    InvalidInput,
)

log = logging.getLogger(__name__)


class Decision(NamedTuple):
    """An authorization status and a human-readable reason."""

    status: AuthStatus
    reason: str


class Authorization:
    """Decides whether an idTag may charge."""

    def __init__(self, store: CsmsStore, clock: Callable[[], datetime], hooks: Hooks) -> None:
        """Decide from ``store`` at ``clock()``; payment idTags are asked of ``hooks.payment``."""
        self.store = store
        self.clock = clock
        self.hooks = hooks

    def decide(self, id_tag: str, now: datetime, min_balance_minor: int | None = None) -> Decision:
        """Decide Accepted | Blocked | Expired | Invalid for an idTag at ``now`` (min balance: setting if None)."""
        if now.utcoffset() is None:
            raise InvalidInput(f"now must be timezone-aware, got {now!r}")
        if not isinstance(id_tag, str) or not 1 <= len(id_tag) <= MAX_ID_TAG_LENGTH:
            return Decision(AuthStatus.INVALID, f"id_tag is not a 1-{MAX_ID_TAG_LENGTH} character string")
        minimum = self.store.min_balance_minor() if min_balance_minor is None else min_balance_minor
        if type(minimum) is not int or not -MAX_AMOUNT_MINOR <= minimum <= MAX_AMOUNT_MINOR:
            raise InvalidInput(
                f"min_balance_minor must be an integer within {MAX_AMOUNT_MINOR}, got {minimum!r}"
            )
        card = self.store.card(id_tag)
        if card is None:
            return Decision(AuthStatus.INVALID, "unknown card")
        if card.status is CardStatus.BLOCKED:
            return Decision(AuthStatus.BLOCKED, "card is blocked")
        if card.expiry is not None and card.expiry <= now:
            return Decision(AuthStatus.EXPIRED, f"card expired at {card.expiry.isoformat()}")
        if card.mode is CardMode.PREPAID:
            balance = self.store.balance(card.id_tag)
            if balance < minimum:
                currency = self.store.currency()
                return Decision(
                    AuthStatus.BLOCKED,
                    f"insufficient balance: {balance} is below the minimum of {minimum} ({currency} minor units)",
                )
        return Decision(AuthStatus.ACCEPTED, "ok")

    def card_status(self, id_tag: str) -> AuthStatus:
        """The card's status now: known, not blocked, not expired, and (prepaid) over the minimum balance.

        An idTag that is not our card may be a roaming partner's token (decided without asking the partner).
        """
        roaming = self._roaming_status(id_tag)
        if roaming is not None:
            return roaming
        decision = self.decide(id_tag, self.clock(), self.store.min_balance_minor())
        if decision.status is not AuthStatus.ACCEPTED:
            log.info("idTag %s: %s (%s)", id_tag, decision.status, decision.reason)
        return decision.status

    def _roaming_status(self, id_tag: str) -> AuthStatus | None:
        """A partner's decision for an idTag that is not our card, None if it is ours or no partner's."""
        if self.hooks.roaming is None or not isinstance(id_tag, str) or self.store.card(id_tag) is not None:
            return None
        return self.hooks.roaming.status(id_tag)

    def authorize(self, cp_id: str, id_tag: str) -> AuthStatus:
        """An authorization request from ``cp_id``: a payment idTag by its payment, any other by its card."""
        if self.hooks.payment is not None:
            status = self.hooks.payment.authorize(cp_id, id_tag)
            if status is not None:
                return status
        return self.card_status(id_tag)

    async def authorize_online(self, cp_id: str, id_tag: str) -> AuthStatus:
        """As `authorize`, but a roaming partner's token is asked of the partner in real time where it requires."""
        if self.hooks.payment is not None:
            paid = self.hooks.payment.authorize(cp_id, id_tag)
            if paid is not None:
                return paid
        if self.hooks.roaming is not None and isinstance(id_tag, str) and self.store.card(id_tag) is None:
            status = await self.hooks.roaming.authorize(cp_id, id_tag)
            if status is not None:
                return status
        return self.card_status(id_tag)
