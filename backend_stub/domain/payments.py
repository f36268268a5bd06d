"""QR payments, the business part: provider interface, the money flow of a paid session, and its hooks.

On capture the paid amount is topped up to a prepaid card whose idTag is the payment's (the payment-bound
account), then the charger is asked to start with that idTag. The idTag authorizes only at that charger, starts
only on that connector and only once. The card is prepaid, so the prepaid cut-off stops the session when its
running cost reaches the paid amount; the charge at the stop is capped at the amount. At the stop (or when the
charger is offline, rejects the start, or starts nothing in time) the card's remainder is paid out once (ledger
key ``payment:{id}:refund``), refunded through the provider with the same key, and the idTag is blocked.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass, replace
from typing import Any, Protocol

from backend_stub.domain.commands import ChargerCommands
from backend_stub.domain.events import Observers
from backend_stub.domain.roaming import RoamingAuthority
from backend_stub.errors import CentralError, CommandFailed
from backend_stub.store import (
    MAX_AMOUNT_MINOR,
    AuthStatus,
    CardMode,
    CardStatus,
    Conflict,
    CsmsStore,
    LedgerEntry,
    NotFound,
    Payment,
    PaymentStatus,
    PaymentTransitions,
    StoreError,
    Transaction,
)

log = logging.getLogger(__name__)

# The payment state machine: which status may follow which (a provider may skip AUTHORIZED and capture at once). A
# callback for a status the payment has already passed is stale and changes nothing (the store's rule for any
# table); any other move is InvalidTransition.
PAYMENT_TRANSITIONS: PaymentTransitions = {
    PaymentStatus.CREATED: frozenset(
        {PaymentStatus.AUTHORIZED, PaymentStatus.CAPTURED, PaymentStatus.FAILED}
    ),
    PaymentStatus.AUTHORIZED: frozenset({PaymentStatus.CAPTURED, PaymentStatus.FAILED}),
    PaymentStatus.CAPTURED: frozenset({PaymentStatus.REFUNDED}),
    PaymentStatus.REFUNDED: frozenset(),
    PaymentStatus.FAILED: frozenset(),
}


@dataclass(frozen=True)
class PayConfig:
    """Settings of the pay pages; amounts in minor units of the installation's currency."""

    min_amount_minor: int = 100
    max_amount_minor: int = 10_000
    presets_minor: tuple[int, ...] = (500, 1000, 2000)
    start_timeout_s: float = 90.0  # RemoteStart accepted -> StartTransaction, else refund
    public_base_url: str | None = None  # e.g. "https://pay.example.com"; else the request's own origin
    status_refresh_s: int = 3
    refund_attempts: int = 5
    refund_retry_s: float = 5.0

    def __post_init__(self) -> None:
        """Validate ranges; an error names the setting."""
        if not 1 <= self.min_amount_minor <= self.max_amount_minor <= MAX_AMOUNT_MINOR:
            raise ValueError(
                f"pay amounts: need 1 <= min_amount_minor <= max_amount_minor <= {MAX_AMOUNT_MINOR}, "
                f"got {self.min_amount_minor}..{self.max_amount_minor}"
            )
        if not 0 < self.start_timeout_s <= 3600:
            raise ValueError(f"start_timeout_s: must be in (0, 3600], got {self.start_timeout_s}")
        if self.public_base_url is not None and not re.fullmatch(
            r"https?://[^\s/?#]+(/[^\s?#]*)?", self.public_base_url
        ):
            raise ValueError(f"public_base_url: must be an http(s) URL, got {self.public_base_url!r}")
        if not 1 <= self.status_refresh_s <= 60:
            raise ValueError(f"status_refresh_s: must be in [1, 60], got {self.status_refresh_s}")
        if self.refund_attempts < 1 or self.refund_retry_s < 0:
            raise ValueError("refund_attempts must be >= 1 and refund_retry_s >= 0")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> PayConfig:
        """Defaults overridden by CSMS_PUBLIC_URL, CSMS_PAY_MIN_MINOR, CSMS_PAY_MAX_MINOR, CSMS_PAY_START_TIMEOUT_S."""
        out = cls()
        try:
            if environ.get("CSMS_PUBLIC_URL"):
                out = replace(out, public_base_url=environ["CSMS_PUBLIC_URL"].rstrip("/"))
            if environ.get("CSMS_PAY_MIN_MINOR"):
                out = replace(out, min_amount_minor=int(environ["CSMS_PAY_MIN_MINOR"]))
            if environ.get("CSMS_PAY_MAX_MINOR"):
                out = replace(out, max_amount_minor=int(environ["CSMS_PAY_MAX_MINOR"]))
            if environ.get("CSMS_PAY_START_TIMEOUT_S"):
                out = replace(out, start_timeout_s=float(environ["CSMS_PAY_START_TIMEOUT_S"]))
        except ValueError as exc:
            raise ValueError(f"pay settings from the environment: {exc}") from exc
        return out


class CallbackRejected(CentralError):
    """A provider callback that is not authentic (401) or not understood (400)."""

    def __init__(self, status: int, message: str) -> None:
        """Keep the HTTP status to answer with."""
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class CheckoutRequest:
    """What a provider needs to open a checkout: amount, and where to send the payer and the callbacks."""

    payment_id: int
    amount_minor: int
    currency: str
    description: str
    success_url: str  # the payer's browser goes here after paying (or declining)
    callback_url: str  # where the provider posts its (signed) events


@dataclass(frozen=True)
class Checkout:
    """An opened checkout: the provider's reference and the page to redirect the payer to."""

    provider_ref: str
    redirect_url: str


@dataclass(frozen=True)
class ProviderEvent:
    """A verified provider callback: the payment it concerns and the status it reports."""

    event_id: str
    provider_ref: str
    status: PaymentStatus  # authorized, captured or failed
    amount_minor: int | None = None


# The providers a central system can be started with (`serve --payment-provider`): ``none`` takes no card payments
# (the pay pages say so), ``test`` is the built-in simulated provider for development and demos.
PROVIDER_CHOICES = ("none", "test")


class PaymentProvider(Protocol):
    """The redirect + callback shape shared by Stripe Checkout, a local wallet and the `test` provider.

    A real provider is one module implementing these three methods, e.g. Stripe Checkout: `create_checkout`
    creates a Checkout Session (``amount_minor`` as ``unit_amount``, ``success_url``, the payment id as
    ``client_reference_id``) and returns its id and URL; `parse_callback` verifies the ``Stripe-Signature`` header
    against the endpoint secret (raising `CallbackRejected(400, ...)` on a bad one) and maps
    ``checkout.session.completed`` to CAPTURED and ``checkout.session.expired`` to FAILED; `refund` creates a
    Refund with ``idempotency_key``. Register it under its ``name`` next to ``none``/``test`` in
    `backend_stub.web.pay.providers_for`; callbacks arrive at ``/pay/callback/{name}``.
    """

    name: str

    async def create_checkout(self, request: CheckoutRequest) -> Checkout:
        """Open a checkout for a payment; the payer is redirected to ``Checkout.redirect_url``."""
        ...

    def parse_callback(self, headers: Mapping[str, str], body: bytes) -> ProviderEvent:
        """Verify a callback's authenticity and parse it; raises CallbackRejected."""
        ...

    async def refund(self, provider_ref: str, amount_minor: int, idempotency_key: str) -> str:
        """Refund part or all of a captured payment; idempotent by key; returns the provider's refund id."""
        ...


def refund_key(payment_id: int) -> str:
    """Ledger and provider idempotency key of a payment's (only) refund."""
    return f"payment:{payment_id}:refund"


class PaymentFlow:
    """The money flow of QR payments over one store; its hooks (`PaymentHooks`) are called by the sessions."""

    def __init__(
        self,
        store: CsmsStore,
        commands: ChargerCommands,
        config: PayConfig,
        providers: Mapping[str, PaymentProvider],
    ) -> None:
        """Move money in ``store``, start sessions through ``commands``, refund through ``providers`` (by name)."""
        self.store = store
        self.commands = commands
        self.config = config
        self.providers: dict[str, PaymentProvider] = dict(providers)
        self._started: dict[int, asyncio.Event] = {}  # captured payments whose session is being started
        self._refunding: set[int] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    def starting(self) -> list[int]:
        """Payments whose paid session is being started right now."""
        return list(self._started)

    def refunding(self, payment_id: int) -> bool:
        """Whether a provider refund of the payment is under way."""
        return payment_id in self._refunding

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)

        def done(t: asyncio.Task[None]) -> None:
            self._tasks.discard(t)
            if not t.cancelled() and t.exception() is not None:
                log.error("payment task %s failed", name, exc_info=t.exception())

        task.add_done_callback(done)

    def apply_event(self, provider_name: str, event: ProviderEvent) -> tuple[Payment, bool]:
        """Apply a verified event; only the one that moves a payment to captured starts the session."""
        payment = self.store.payment_by_ref(provider_name, event.provider_ref)
        if payment is None:
            raise CallbackRejected(404, "unknown payment reference")
        if event.amount_minor is not None and event.amount_minor != payment.amount_minor:
            raise CallbackRejected(400, f"amount {event.amount_minor} does not match the payment")
        try:
            update = self.store.set_payment_status(payment.id, event.status, transitions=PAYMENT_TRANSITIONS)
        except Conflict as exc:  # e.g. "failed" for a payment that was captured: keep what happened
            log.warning("payment %s: ignored %s event %s: %s", payment.id, event.status, event.event_id, exc)
            raise CallbackRejected(409, str(exc)) from None
        log.info(
            "payment %s: %s (%s)", payment.id, update.payment.status, "new" if update.changed else "repeat"
        )
        if update.changed and update.payment.status is PaymentStatus.CAPTURED:
            self._started.setdefault(payment.id, asyncio.Event())
            self._spawn(self._after_capture(payment.id), f"pay-start-{payment.id}")
        return update.payment, update.changed

    async def _after_capture(self, payment_id: int) -> None:
        """Top up the payment-bound account, send RemoteStart, and refund if no session starts in time."""
        try:
            await self._start_paid_session(payment_id)
        except Exception:
            # Whatever went wrong (store, unexpected charger answer), a captured payment must not be left
            # hanging until the next restart: refund it now unless a session already took it.
            log.exception("payment %s: starting the paid session failed", payment_id)
            self._fail_start(payment_id, "the server could not start the session")
        finally:
            self._started.pop(payment_id, None)

    def _open_account(self, payment: Payment) -> None:
        """Credit the captured amount to the payment-bound prepaid card, creating it; idempotent."""
        assert payment.id_tag is not None
        if self.store.card(payment.id_tag) is None:
            with contextlib.suppress(Conflict):
                self.store.add_card(payment.id_tag, user_id=None, mode=CardMode.PREPAID)
        self.store.topup(
            payment.id_tag,
            payment.amount_minor,
            f"payment:{payment.id}:topup",
            payment_id=payment.id,
            note=f"QR payment {payment.id} captured by {payment.provider} ({payment.provider_ref})",
        )

    async def _start_paid_session(self, payment_id: int) -> None:
        payment = self.store.payment(payment_id)
        self._open_account(payment)
        started = self._started.setdefault(payment.id, asyncio.Event())
        cp_id = payment.cp_id
        assert payment.id_tag is not None  # set by _open_account
        if not self.commands.is_connected(cp_id):
            self._fail_start(payment_id, "the charger is not connected")
            return
        try:
            reply = await self.commands.remote_start(cp_id, payment.connector_id, payment.id_tag)
        except CommandFailed as exc:
            log.warning("payment %s: remote start at %s failed: %s", payment_id, cp_id, exc)
            self._fail_start(payment_id, "the charger did not take the start command")
            return
        if not reply.accepted:
            self._fail_start(payment_id, "the charger rejected the start")
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.config.start_timeout_s):
                await started.wait()
        if self.store.payment(payment_id).transaction_id is None:
            self._fail_start(
                payment_id, f"no charging session started within {self.config.start_timeout_s:g} s"
            )

    def _fail_start(self, payment_id: int, reason: str) -> None:
        """Refund a captured payment whose session never started (unless it just did)."""
        payment = self.store.payment(payment_id)
        if payment.transaction_id is not None:
            return
        log.info("payment %s: refunding, %s", payment_id, reason)
        self._settle(payment, reason, None)

    def _settle(self, payment: Payment, reason: str, transaction_id: int | None) -> None:
        """Pay the account's remainder out once (ledger), block the idTag, and refund through the provider."""
        assert payment.id_tag is not None
        if payment.status is PaymentStatus.CAPTURED and self.store.entry(refund_key(payment.id)) is None:
            # A crash between the capture and the top-up leaves money taken but never credited: credit it
            # first (idempotent), so that the payout below refunds it instead of finding nothing to pay out.
            self._open_account(payment)
        try:
            entry = self.store.payout_remainder(
                payment.id_tag,
                refund_key(payment.id),
                note=reason,
                payment_id=payment.id,
                transaction_id=transaction_id,
            )
        except NotFound:
            entry = None  # the account was never opened: nothing was credited
        with contextlib.suppress(NotFound):
            self.store.set_card_status(payment.id_tag, CardStatus.BLOCKED)
        if entry is not None:
            self._refund_later(payment, entry)

    def _refund_later(self, payment: Payment, entry: LedgerEntry) -> None:
        if payment.id in self._refunding or self.store.payment(payment.id).status is PaymentStatus.REFUNDED:
            return
        self._refunding.add(payment.id)
        self._spawn(self._provider_refund(payment, -entry.amount_minor), f"pay-refund-{payment.id}")

    async def _provider_refund(self, payment: Payment, amount_minor: int) -> None:
        """Refund through the provider (same idempotency key as the ledger entry), retrying a few times."""
        provider = self.providers.get(payment.provider)
        try:
            if provider is None or payment.provider_ref is None:
                log.error(
                    "payment %s: no provider %r to refund %s through",
                    payment.id,
                    payment.provider,
                    amount_minor,
                )
                return
            for attempt in range(1, self.config.refund_attempts + 1):
                try:
                    refund_id = await provider.refund(
                        payment.provider_ref, amount_minor, refund_key(payment.id)
                    )
                except Exception:
                    log.exception("payment %s: refund attempt %s failed", payment.id, attempt)
                    await asyncio.sleep(self.config.refund_retry_s * attempt)
                    continue
                self.store.set_payment_status(
                    payment.id, PaymentStatus.REFUNDED, transitions=PAYMENT_TRANSITIONS
                )
                log.info("payment %s: refunded %s (%s)", payment.id, amount_minor, refund_id)
                return
            log.error(
                "payment %s: refund of %s still owed after %s attempts", payment.id, amount_minor, attempt
            )
        finally:
            self._refunding.discard(payment.id)

    async def reconcile(self) -> None:
        """After a restart: settle captured payments whose flow was cut short, retry owed provider refunds."""
        for payment in self.store.payments_with_status(PaymentStatus.CAPTURED):
            entry = self.store.entry(refund_key(payment.id))
            if entry is not None:
                self._refund_later(payment, entry)
            elif payment.transaction_id is None:
                self._settle(payment, "the server restarted before the charger started", None)
            else:
                tx = self.store.transaction(payment.transaction_id)
                if not tx.active:
                    self._settle(payment, "the remainder of the paid amount", tx.id)

    def authorize(self, cp_id: str, id_tag: str) -> AuthStatus | None:
        """A payment idTag is Accepted only at its charger, while paid and not yet used or refunded."""
        payment = self.store.payment_for_id_tag(id_tag)
        if payment is None:
            return None
        if payment.cp_id != cp_id:
            log.warning("payment idTag of payment %s presented at %s", payment.id, cp_id)
            return AuthStatus.INVALID
        if (
            payment.status is not PaymentStatus.CAPTURED
            or payment.transaction_id is not None
            or self.store.entry(refund_key(payment.id)) is not None
        ):
            return AuthStatus.BLOCKED
        return AuthStatus.ACCEPTED

    def started(self, cp_id: str, connector_id: int, id_tag: str, transaction_id: int) -> AuthStatus | None:
        """Bind the payment to its first session on its own connector; anything else is refused."""
        payment = self.store.payment_for_id_tag(id_tag)
        if payment is None:
            return None
        if (payment.cp_id, payment.connector_id) != (cp_id, connector_id):
            log.warning("payment %s idTag started at %s/%s", payment.id, cp_id, connector_id)
            return AuthStatus.INVALID
        if (
            payment.status is not PaymentStatus.CAPTURED
            or self.store.entry(refund_key(payment.id)) is not None
        ):
            return AuthStatus.BLOCKED
        try:
            self.store.attach_payment_transaction(payment.id, transaction_id)
        except Conflict:
            return AuthStatus.BLOCKED  # the idTag was already used for another session
        event = self._started.get(payment.id)
        if event is not None:
            event.set()
        return AuthStatus.ACCEPTED

    def cost_cap(self, tx: Transaction) -> int | None:
        """A paid session costs at most the amount paid; a refused one started with a payment idTag costs 0."""
        payment = self.store.payment_for_id_tag(tx.id_tag)
        if payment is None:
            return None
        return payment.amount_minor if payment.transaction_id == tx.id else 0

    def stopped(self, tx: Transaction) -> None:
        """The paid session ended (charged by the store, capped): pay out and refund the remainder once."""
        try:
            payment = self.store.payment_for_id_tag(tx.id_tag)
            if payment is None or payment.transaction_id != tx.id or tx.active:
                return
            self._settle(payment, "the unused part of the payment", tx.id)
        except StoreError:
            # The session itself is recorded and charged; reconcile() settles the payment at the next start.
            log.exception("cannot settle the payment of transaction %s", tx.id)

    async def close(self) -> None:
        """Cancel background work (server shutdown)."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


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
        """No payment hooks until the payment service sets them; no observers of domain changes yet."""
        self.payment: PaymentHooks | None = None
        self.observers = Observers()
        self.roaming: RoamingAuthority | None = None  # partners' drivers (OCPI), once set up
