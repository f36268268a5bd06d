"""Users, cards and the append-only ledger (every balance a sum over it)."""

from __future__ import annotations

import sqlite3
from datetime import datetime

from backend_stub.store.records import (
    _EMAIL,
    MAX_AMOUNT_MINOR,
    BalanceMismatch,
    Card,
    CardMode,
    CardStatus,
    Conflict,
    IdempotencyConflict,
    InvalidInput,
    LedgerEntry,
    LedgerKind,
    UnknownCard,
    UnknownPayment,
    UnknownTransaction,
    UnknownUser,
    User,
    _card,
    _entry,
    _enum,
    _id_tag,
    _int,
    _opt_text,
    _text,
    _ts,
    _user,
)
from backend_stub.store.security_events import SecurityEventsStore


class AccountsStore(SecurityEventsStore):
    """Users, cards and the append-only ledger (every balance a sum over it)."""

    # -- users and cards

    def add_user(self, name: str, *, phone: str | None = None, email: str | None = None) -> User:
        """Create a user; the email is checked loosely (something@something.tld)."""
        _text(name, "name", max_len=255)
        if phone is not None and (_opt_text(phone, "phone", max_len=32) == "" or not phone.isprintable()):
            raise InvalidInput(f"phone must be 1-32 printable characters, got {phone!r}")
        if email is not None and (
            not isinstance(email, str) or len(email) > 254 or not _EMAIL.fullmatch(email)
        ):
            raise InvalidInput(f"email does not look like an address: {email!r}")
        with self._write() as db:
            cur = db.execute(
                "INSERT INTO users (name, phone, email, created_at) VALUES (?, ?, ?, ?)",
                (name, phone, email, self._now()),
            )
            return _user(db.execute("SELECT * FROM users WHERE id = ?", (cur.lastrowid,)).fetchone())

    def user(self, user_id: int) -> User | None:
        """The user, or None."""
        rows = self._read("SELECT * FROM users WHERE id = ?", (user_id,))
        return _user(rows[0]) if rows else None

    def users(self) -> list[User]:
        """All users by id."""
        return [_user(r) for r in self._read("SELECT * FROM users ORDER BY id")]

    def add_card(
        self,
        id_tag: str,
        *,
        user_id: int | None,
        mode: CardMode | str = CardMode.PERSONAL,
        status: CardStatus | str = CardStatus.ACTIVE,
        expiry: datetime | None = None,
    ) -> Card:
        """Issue a card; raises Conflict if the id_tag exists (in any letter case)."""
        _id_tag(id_tag)
        card_mode = _enum(CardMode, mode, "mode")
        card_status = _enum(CardStatus, status, "status")
        expires = None if expiry is None else _ts(expiry, "expiry")
        with self._write() as db:
            if (
                user_id is not None
                and db.execute("SELECT 1 FROM users WHERE id = ?", (user_id,)).fetchone() is None
            ):
                raise UnknownUser(f"unknown user {user_id!r}")
            if self._card_row(db, id_tag) is not None:
                raise Conflict(f"card {id_tag!r} exists")
            db.execute(
                "INSERT INTO cards (id_tag, user_id, mode, status, expiry, created_at) VALUES (?, ?, ?, ?, ?, ?)",
                (id_tag, user_id, card_mode.value, card_status.value, expires, self._now()),
            )
            return _card(db.execute("SELECT * FROM cards WHERE id_tag = ?", (id_tag,)).fetchone())

    def card(self, id_tag: str) -> Card | None:
        """The card (case-insensitive id_tag), or None."""
        rows = self._read("SELECT * FROM cards WHERE id_tag = ?", (id_tag,))
        return _card(rows[0]) if rows else None

    def cards(self, user_id: int | None = None) -> list[Card]:
        """All cards, or a user's cards."""
        if user_id is None:
            return [_card(r) for r in self._read("SELECT * FROM cards ORDER BY id_tag")]
        return [
            _card(r) for r in self._read("SELECT * FROM cards WHERE user_id = ? ORDER BY id_tag", (user_id,))
        ]

    def set_card_status(self, id_tag: str, status: CardStatus | str) -> Card:
        """Block or unblock a card."""
        state = _enum(CardStatus, status, "status")
        with self._write() as db:
            if self._card_row(db, id_tag) is None:
                raise UnknownCard(f"unknown card {id_tag!r}")
            db.execute("UPDATE cards SET status = ? WHERE id_tag = ?", (state.value, id_tag))
            return _card(db.execute("SELECT * FROM cards WHERE id_tag = ?", (id_tag,)).fetchone())

    def set_card_expiry(self, id_tag: str, expiry: datetime | None) -> Card:
        """Set or clear a card's expiry."""
        expires = None if expiry is None else _ts(expiry, "expiry")
        with self._write() as db:
            if self._card_row(db, id_tag) is None:
                raise UnknownCard(f"unknown card {id_tag!r}")
            db.execute("UPDATE cards SET expiry = ? WHERE id_tag = ?", (expires, id_tag))
            return _card(db.execute("SELECT * FROM cards WHERE id_tag = ?", (id_tag,)).fetchone())

    # -- ledger

    def topup(
        self, id_tag: str, amount_minor: int, key: str, *, payment_id: int | None = None, note: str = ""
    ) -> LedgerEntry:
        """Credit a card (amount > 0); idempotent by key."""
        _int(amount_minor, "amount_minor", low=1, high=MAX_AMOUNT_MINOR)
        with self._write() as db:
            return self._post(
                db, id_tag, LedgerKind.TOPUP, amount_minor, key, payment_id=payment_id, note=note
            )

    def post_charge(
        self, id_tag: str, cost_minor: int, key: str, *, transaction_id: int | None = None, note: str = ""
    ) -> LedgerEntry:
        """Debit a card by cost_minor >= 0 (stored negative); idempotent by key."""
        _int(cost_minor, "cost_minor", low=0, high=MAX_AMOUNT_MINOR)
        with self._write() as db:
            return self._post(
                db, id_tag, LedgerKind.CHARGE, -cost_minor, key, transaction_id=transaction_id, note=note
            )

    def refund(
        self,
        id_tag: str,
        amount_minor: int,
        key: str,
        *,
        transaction_id: int | None = None,
        payment_id: int | None = None,
        note: str = "",
    ) -> LedgerEntry:
        """Give money back to a card (amount > 0); for a transaction, never more than it was charged."""
        _int(amount_minor, "amount_minor", low=1, high=MAX_AMOUNT_MINOR)
        with self._write() as db:
            existing = db.execute("SELECT 1 FROM ledger WHERE idempotency_key = ?", (key,)).fetchone()
            if transaction_id is not None and existing is None:
                net = db.execute(
                    "SELECT COALESCE(SUM(amount_minor), 0) FROM ledger "
                    "WHERE transaction_id = ? AND kind IN ('charge', 'refund')",
                    (transaction_id,),
                ).fetchone()[0]
                if net + amount_minor > 0:
                    raise InvalidInput(
                        f"refund of {amount_minor} exceeds the {-net} still charged for transaction {transaction_id}"
                    )
            return self._post(
                db,
                id_tag,
                LedgerKind.REFUND,
                amount_minor,
                key,
                transaction_id=transaction_id,
                payment_id=payment_id,
                note=note,
            )

    def adjust(
        self, id_tag: str, amount_minor: int, key: str, *, note: str, transaction_id: int | None = None
    ) -> LedgerEntry:
        """Correct a balance by a signed, non-zero amount with a note saying why; idempotent by key."""
        _int(amount_minor, "amount_minor", low=-MAX_AMOUNT_MINOR, high=MAX_AMOUNT_MINOR)
        if amount_minor == 0:
            raise InvalidInput("an adjustment must not be zero")
        _text(note, "note")
        with self._write() as db:
            return self._post(
                db, id_tag, LedgerKind.ADJUSTMENT, amount_minor, key, transaction_id=transaction_id, note=note
            )

    def _post(
        self,
        db: sqlite3.Connection,
        id_tag: str,
        kind: LedgerKind,
        amount_minor: int,
        key: str,
        *,
        transaction_id: int | None = None,
        payment_id: int | None = None,
        note: str = "",
    ) -> LedgerEntry:
        """Insert one entry inside the caller's write, or return the entry already posted under key."""
        _text(key, "key", max_len=255)
        _text(note, "note", empty=True)
        row = db.execute("SELECT * FROM ledger WHERE idempotency_key = ?", (key,)).fetchone()
        if row is not None:
            entry = _entry(row)
            same = (
                entry.id_tag.casefold() == id_tag.casefold()
                and entry.kind is kind
                and entry.amount_minor == amount_minor
                and entry.transaction_id == transaction_id
                and entry.payment_id == payment_id
            )
            if not same:
                raise IdempotencyConflict(f"key {key!r} was already used for {entry}")
            return entry
        card = self._card_row(db, id_tag)
        if card is None:
            raise UnknownCard(f"unknown card {id_tag!r}")
        if transaction_id is not None and (
            db.execute("SELECT 1 FROM transactions WHERE id = ?", (transaction_id,)).fetchone() is None
        ):
            raise UnknownTransaction(f"unknown transaction {transaction_id!r}")
        if payment_id is not None and (
            db.execute("SELECT 1 FROM payments WHERE id = ?", (payment_id,)).fetchone() is None
        ):
            raise UnknownPayment(f"unknown payment {payment_id!r}")
        cur = db.execute(
            "INSERT INTO ledger (id_tag, kind, amount_minor, transaction_id, payment_id, idempotency_key, "
            "created_at, note) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (card["id_tag"], kind.value, amount_minor, transaction_id, payment_id, key, self._now(), note),
        )
        return _entry(db.execute("SELECT * FROM ledger WHERE id = ?", (cur.lastrowid,)).fetchone())

    def entry(self, key: str) -> LedgerEntry | None:
        """The ledger entry posted under an idempotency key, or None."""
        rows = self._read("SELECT * FROM ledger WHERE idempotency_key = ?", (key,))
        return _entry(rows[0]) if rows else None

    def entries(self, id_tag: str | None = None) -> list[LedgerEntry]:
        """Ledger entries in posting order, all or of one card."""
        if id_tag is None:
            return [_entry(r) for r in self._read("SELECT * FROM ledger ORDER BY id")]
        return [_entry(r) for r in self._read("SELECT * FROM ledger WHERE id_tag = ? ORDER BY id", (id_tag,))]

    def balance(self, id_tag: str) -> int:
        """A card's balance in minor units, summed from the ledger (not from the cached column)."""
        rows = self._read(
            "SELECT (SELECT COALESCE(SUM(amount_minor), 0) FROM ledger WHERE id_tag = cards.id_tag) AS total "
            "FROM cards WHERE id_tag = ?",
            (id_tag,),
        )
        if not rows:
            raise UnknownCard(f"unknown card {id_tag!r}")
        return int(rows[0]["total"])

    def verify_balances(self) -> list[BalanceMismatch]:
        """Cards whose cached balance differs from their ledger sum; empty means the books agree."""
        rows = self._read(
            "SELECT c.id_tag, c.balance_minor AS cached, COALESCE(SUM(l.amount_minor), 0) AS total "
            "FROM cards c LEFT JOIN ledger l ON l.id_tag = c.id_tag GROUP BY c.id_tag "
            "HAVING cached <> total ORDER BY c.id_tag"
        )
        return [BalanceMismatch(r["id_tag"], r["cached"], r["total"]) for r in rows]
