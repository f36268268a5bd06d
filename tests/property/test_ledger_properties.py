"""Ledger properties: under any sequence of postings with repeated keys, the balance is the sum of the distinct
entries, the cached balances agree, and raw SQL can never rewrite history."""

from __future__ import annotations

import sqlite3
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from backend_stub.store import CsmsStore, IdempotencyConflict, LedgerKind

CARDS = ("CARD-A", "card-b")
KEYS = st.sampled_from([f"k{i}" for i in range(8)])  # a small pool, so keys repeat often
AMOUNTS = st.integers(min_value=1, max_value=10**6)


class LedgerMachine(RuleBasedStateMachine):
    """Random topup/charge/refund/adjust calls (and restarts) against a model of distinct entries."""

    def __init__(self) -> None:
        super().__init__()
        self._dir = tempfile.TemporaryDirectory()
        self.path = Path(self._dir.name) / "ledger.db"
        self.store = CsmsStore(self.path)
        self.model: dict[str, tuple[str, LedgerKind, int]] = {}  # key -> (card, kind, signed amount)

    @initialize()
    def cards(self) -> None:
        user = self.store.add_user("Prop")
        for tag in CARDS:
            self.store.add_card(tag, user_id=user.id, mode="prepaid")

    def _post(self, card: str, kind: LedgerKind, signed: int, key: str, call: Any) -> None:
        before = self.store.entries()
        previous = self.model.get(key)
        if previous is not None and previous != (card, kind, signed):
            try:
                call()
            except IdempotencyConflict:
                assert self.store.entries() == before
                return
            raise AssertionError(f"reusing key {key} with other parameters was accepted")
        entry = call()
        assert (entry.id_tag, entry.kind, entry.amount_minor, entry.idempotency_key) == (
            card,
            kind,
            signed,
            key,
        )
        if previous is not None:
            assert self.store.entries() == before  # the repeat changed nothing
        self.model[key] = (card, kind, signed)

    @rule(card=st.sampled_from(CARDS), amount=AMOUNTS, key=KEYS)
    def topup(self, card: str, amount: int, key: str) -> None:
        self._post(card, LedgerKind.TOPUP, amount, key, lambda: self.store.topup(card, amount, key))

    @rule(card=st.sampled_from(CARDS), amount=st.integers(0, 10**6), key=KEYS)
    def charge(self, card: str, amount: int, key: str) -> None:
        self._post(card, LedgerKind.CHARGE, -amount, key, lambda: self.store.post_charge(card, amount, key))

    @rule(card=st.sampled_from(CARDS), amount=AMOUNTS, key=KEYS)
    def refund(self, card: str, amount: int, key: str) -> None:
        self._post(card, LedgerKind.REFUND, amount, key, lambda: self.store.refund(card, amount, key))

    @rule(card=st.sampled_from(CARDS), amount=AMOUNTS, negative=st.booleans(), key=KEYS)
    def adjust(self, card: str, amount: int, negative: bool, key: str) -> None:
        signed = -amount if negative else amount
        self._post(
            card,
            LedgerKind.ADJUSTMENT,
            signed,
            key,
            lambda: self.store.adjust(card, signed, key, note="prop"),
        )

    @precondition(lambda self: bool(self.model))
    @rule()
    def restart(self) -> None:
        self.store.close()
        self.store = CsmsStore(self.path)

    @invariant()
    def balances_are_sums_of_distinct_entries(self) -> None:
        for tag in CARDS:
            expected = sum(amount for card, _, amount in self.model.values() if card == tag)
            assert self.store.balance(tag) == expected
            assert self.store.balance(tag.swapcase()) == expected
            card = self.store.card(tag)
            assert card is not None and card.balance_minor == expected
        assert len(self.store.entries()) == len(self.model)
        assert self.store.verify_balances() == []

    def teardown(self) -> None:
        self.store.close()
        self._dir.cleanup()


LedgerMachine.TestCase.settings = settings(max_examples=40, stateful_step_count=25, deadline=None)
TestLedgerMachine = LedgerMachine.TestCase

COLUMNS = ("id", "id_tag", "kind", "amount_minor", "transaction_id", "payment_id", "idempotency_key", "note")


@settings(max_examples=60, deadline=None)
@given(
    column=st.sampled_from(COLUMNS),
    value=st.one_of(st.integers(-(2**62), 2**62), st.text(max_size=30), st.none()),
    where=st.sampled_from(["", " WHERE id = 1", " WHERE amount_minor < 0", " WHERE kind = 'topup'"]),
    clash=st.sampled_from([(1, "new-key"), (2, "new-key"), (99, "t"), (99, "c")]),
)
def test_triggers_reject_any_update_or_delete_via_raw_sql(
    column: str, value: object, where: str, clash: tuple[int, str]
) -> None:
    replace_id, replace_key = clash
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "ledger.db"
        with CsmsStore(path) as store:
            user = store.add_user("Raw")
            store.add_card("C1", user_id=user.id)
            store.topup("C1", 500, "t")
            store.post_charge("C1", 200, "c")
            before = store.entries()
        raw = sqlite3.connect(path)
        try:
            statements: list[tuple[str, tuple[object, ...]]] = [
                (f"UPDATE ledger SET {column} = ?{where}", (value,)),
                (f"DELETE FROM ledger{where}", ()),
                # REPLACE deletes the clashing row without firing DELETE triggers; a guard refuses it.
                (
                    "INSERT OR REPLACE INTO ledger (id, id_tag, kind, amount_minor, idempotency_key, created_at) "
                    "VALUES (?, 'C1', 'topup', 1, ?, 'x')",
                    (replace_id, replace_key),
                ),
            ]
            for sql, args in statements:
                try:
                    raw.execute(sql, args)
                except sqlite3.IntegrityError as exc:
                    # Setting the INTEGER PRIMARY KEY to a non-integer fails SQLite's own check before the trigger.
                    assert "append-only" in str(exc) or (column == "id" and "datatype mismatch" in str(exc))
                else:
                    # Only a statement that matched no row may pass; it must have touched nothing.
                    assert raw.total_changes == 0
                raw.rollback()
        finally:
            raw.close()
        with CsmsStore(path) as store:
            assert store.entries() == before
            assert store.balance("C1") == 300
            assert store.verify_balances() == []
