"""The payment side of sessions: the hooks the QR payment service gives the session rules."""

from __future__ import annotations

from typing import Protocol

from backend_stub.store import AuthStatus, Transaction


class PaymentHooks(Protocol):
    """Decisions the QR payment service makes for the idTags bound to payments."""

    def authorize(self, cp_id: str, id_tag: str) -> AuthStatus | None:
        """Authorize from ``cp_id``: the answer for a payment idTag, None for any other idTag."""

    def started(self, cp_id: str, connector_id: int, id_tag: str, transaction_id: int) -> AuthStatus | None:
        """Session start recorded: the answer for a payment idTag (binds it once), None otherwise."""

    def cost_cap(self, tx: Transaction) -> int | None:
        """Most a stopped transaction may be charged (its payment's amount), None without a payment."""

    def stopped(self, tx: Transaction) -> None:
        """Session stop recorded (also for a repeat): settle the payment, refund its remainder once."""


class Hooks:
    """Where the payment hooks are plugged in once the payment service exists (shared by the domain services)."""

    def __init__(self) -> None:
        """No payment hooks until the payment service sets them."""
        self.payment: PaymentHooks | None = None
