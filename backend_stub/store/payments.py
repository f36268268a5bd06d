"""QR payments and their status machine."""

from __future__ import annotations

import os
from datetime import datetime

from backend_stub.store.records import (
    MAX_AMOUNT_MINOR,
    Conflict,
    IdempotencyConflict,
    InvalidTransition,
    LedgerEntry,
    LedgerKind,
    Payment,
    PaymentStatus,
    PaymentTransitions,
    PaymentUpdate,
    UnknownCard,
    UnknownPayment,
    UnknownTransaction,
    _dt,
    _entry,
    _enum,
    _id_tag,
    _int,
    _opt_text,
    _payment,
    _reachable,
    _text,
)
from backend_stub.store.transactions import TransactionsStore


class PaymentsStore(TransactionsStore):
    """QR payments and their status machine."""

    # -- payments

    def create_payment(
        self,
        cp_id: str,
        connector_id: int,
        amount_minor: int,
        provider: str,
        *,
        id_tag: str | None = None,
        provider_ref: str | None = None,
        key: str | None = None,
    ) -> Payment:
        """Create a payment in status created; with a key, a repeated create returns the first payment."""
        _int(connector_id, "connector_id", low=0, high=10_000)
        _int(amount_minor, "amount_minor", low=1, high=MAX_AMOUNT_MINOR)
        _text(provider, "provider", max_len=255)
        if id_tag is not None:
            _id_tag(id_tag)
        _opt_text(provider_ref, "provider_ref", max_len=255)
        _opt_text(key, "key", max_len=255)
        now = self._now()
        with self._write() as db:
            if key is not None:
                row = db.execute("SELECT * FROM payments WHERE idempotency_key = ?", (key,)).fetchone()
                if row is not None:
                    payment = _payment(row)
                    if (payment.cp_id, payment.connector_id, payment.amount_minor, payment.provider) != (
                        cp_id,
                        connector_id,
                        amount_minor,
                        provider,
                    ):
                        raise IdempotencyConflict(f"key {key!r} was already used for {payment}")
                    return payment
            self._charger_row(db, cp_id)
            cur = db.execute(
                "INSERT INTO payments (cp_id, connector_id, amount_minor, status, provider, provider_ref, id_tag, "
                "idempotency_key, created_at, updated_at) VALUES (?, ?, ?, 'created', ?, ?, ?, ?, ?, ?)",
                (cp_id, connector_id, amount_minor, provider, provider_ref, id_tag, key, now, now),
            )
            db.execute(
                "INSERT INTO payment_events (payment_id, status, created_at) VALUES (?, 'created', ?)",
                (cur.lastrowid, now),
            )
            return _payment(db.execute("SELECT * FROM payments WHERE id = ?", (cur.lastrowid,)).fetchone())

    def payment(self, payment_id: int) -> Payment:
        """The payment; raises UnknownPayment."""
        rows = self._read("SELECT * FROM payments WHERE id = ?", (payment_id,))
        if not rows:
            raise UnknownPayment(f"unknown payment {payment_id!r}")
        return _payment(rows[0])

    def payment_by_ref(self, provider: str, provider_ref: str) -> Payment | None:
        """The payment a provider callback refers to, or None."""
        rows = self._read(
            "SELECT * FROM payments WHERE provider = ? AND provider_ref = ?", (provider, provider_ref)
        )
        return _payment(rows[0]) if rows else None

    def payment_for_id_tag(self, id_tag: str) -> Payment | None:
        """The payment an id_tag is bound to, or None."""
        rows = self._read("SELECT * FROM payments WHERE id_tag = ?", (id_tag,))
        return _payment(rows[0]) if rows else None

    def payment_history(self, payment_id: int) -> list[tuple[PaymentStatus, datetime]]:
        """Statuses a payment went through, oldest first."""
        rows = self._read(
            "SELECT status, created_at FROM payment_events WHERE payment_id = ? ORDER BY id", (payment_id,)
        )
        return [(PaymentStatus(r["status"]), _dt(r["created_at"])) for r in rows]

    def set_payment_status(
        self,
        payment_id: int,
        status: PaymentStatus | str,
        *,
        transitions: PaymentTransitions,
        provider_ref: str | None = None,
    ) -> PaymentUpdate:
        """Apply a provider callback by the ``transitions`` table (the domain's rule); repeated or stale (already
        passed) statuses change nothing, any other move the table lacks is InvalidTransition."""
        target = _enum(PaymentStatus, status, "status")
        _opt_text(provider_ref, "provider_ref", max_len=255)
        with self._write() as db:
            row = db.execute("SELECT * FROM payments WHERE id = ?", (payment_id,)).fetchone()
            if row is None:
                raise UnknownPayment(f"unknown payment {payment_id!r}")
            payment = _payment(row)
            if provider_ref is not None and payment.provider_ref not in (None, provider_ref):
                raise Conflict(
                    f"payment {payment_id} has provider_ref {payment.provider_ref!r}, not {provider_ref!r}"
                )
            current = payment.status
            if payment.status in _reachable(target, transitions):
                # target == current, or a late callback for a state this payment has already left.
                if provider_ref is None or payment.provider_ref == provider_ref:
                    return PaymentUpdate(payment, changed=False)
                target = current
            elif target not in transitions[current]:
                raise InvalidTransition(f"payment {payment_id} cannot go from {current} to {target}")
            now = self._now()
            db.execute(
                "UPDATE payments SET status = ?, provider_ref = COALESCE(?, provider_ref), updated_at = ? "
                "WHERE id = ?",
                (target.value, provider_ref, now, payment_id),
            )
            if target is not current:
                db.execute(
                    "INSERT INTO payment_events (payment_id, status, created_at) VALUES (?, ?, ?)",
                    (payment_id, target.value, now),
                )
            return PaymentUpdate(
                _payment(db.execute("SELECT * FROM payments WHERE id = ?", (payment_id,)).fetchone()), True
            )

    def attach_payment_transaction(self, payment_id: int, transaction_id: int) -> Payment:
        """Link a payment to the session it paid for; idempotent, Conflict if linked elsewhere."""
        with self._write() as db:
            row = db.execute("SELECT * FROM payments WHERE id = ?", (payment_id,)).fetchone()
            if row is None:
                raise UnknownPayment(f"unknown payment {payment_id!r}")
            if db.execute("SELECT 1 FROM transactions WHERE id = ?", (transaction_id,)).fetchone() is None:
                raise UnknownTransaction(f"unknown transaction {transaction_id!r}")
            if row["transaction_id"] not in (None, transaction_id):
                raise Conflict(f"payment {payment_id} already belongs to transaction {row['transaction_id']}")
            if row["transaction_id"] is None:
                db.execute(
                    "UPDATE payments SET transaction_id = ?, updated_at = ? WHERE id = ?",
                    (transaction_id, self._now(), payment_id),
                )
            return _payment(db.execute("SELECT * FROM payments WHERE id = ?", (payment_id,)).fetchone())

    def payments_with_status(self, status: PaymentStatus | str) -> list[Payment]:
        """Payments in one status, oldest first (for reconciliation after a restart)."""
        state = _enum(PaymentStatus, status, "status")
        rows = self._read("SELECT * FROM payments WHERE status = ? ORDER BY id", (state.value,))
        return [_payment(r) for r in rows]

    def payout_remainder(
        self,
        id_tag: str,
        key: str,
        *,
        note: str,
        payment_id: int | None = None,
        transaction_id: int | None = None,
    ) -> LedgerEntry | None:
        """Pay a card's whole positive balance back out to its payer (e.g. the unused part of a QR payment).

        Posted as a negative adjustment (a ``refund`` entry is a credit *to* the card, so it cannot carry money
        out of it). Exactly once per key: a repeated call returns the first entry even if the balance moved
        since; None when there was nothing to pay out (and then nothing is recorded under the key).
        """
        _text(key, "key", max_len=255)
        _text(note, "note")
        with self._write() as db:
            row = db.execute("SELECT * FROM ledger WHERE idempotency_key = ?", (key,)).fetchone()
            if row is not None:
                return _entry(row)
            if self._card_row(db, id_tag) is None:
                raise UnknownCard(f"unknown card {id_tag!r}")
            balance = int(
                db.execute(
                    "SELECT COALESCE(SUM(amount_minor), 0) FROM ledger WHERE id_tag = ?", (id_tag,)
                ).fetchone()[0]
            )
            if balance <= 0:
                return None
            return self._post(
                db,
                id_tag,
                LedgerKind.ADJUSTMENT,
                -balance,
                key,
                transaction_id=transaction_id,
                payment_id=payment_id,
                note=note,
            )

    def secret(self, name: str, n_bytes: int = 32) -> bytes:
        """A random per-installation secret, created on first use and kept (e.g. HMAC keys)."""
        _text(name, "name", max_len=100)
        _int(n_bytes, "n_bytes", low=16, high=1024)
        with self._write() as db:
            db.execute(
                "INSERT OR IGNORE INTO settings (name, value) VALUES (?, ?)",
                (f"secret:{name}", os.urandom(n_bytes).hex()),
            )
            return bytes.fromhex(
                db.execute("SELECT value FROM settings WHERE name = ?", (f"secret:{name}",)).fetchone()[
                    "value"
                ]
            )
