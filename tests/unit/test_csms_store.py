"""The central system's SQLite store against real database files: registry, cards, ledger, sessions, payments,
statistics, persistence across restarts and SQL metacharacters."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from unittest import mock
from zoneinfo import ZoneInfo

import pytest

from backend_stub.domain.authorization import Authorization, Decision
from backend_stub.domain.payments import PAYMENT_TRANSITIONS, Hooks
from backend_stub.store import (
    MAX_DEVICE_VARIABLES,
    SCHEMA_VERSION,
    AuthStatus,
    CardMode,
    CardStatus,
    ChargerStatus,
    Conflict,
    CostFn,
    CsmsStore,
    DeviceVariable,
    ForeignTransaction,
    IdempotencyConflict,
    InvalidInput,
    InvalidTransition,
    LedgerKind,
    MeterSample,
    PaymentStatus,
    SecurityEventKind,
    StoreError,
    Transaction,
    UnknownCard,
    UnknownCharger,
    UnknownPayment,
    UnknownTransaction,
    UnknownUser,
    records,
)
from backend_stub.store import security_events as store_module
from tests.conftest import PRODUCTION_SCRYPT_N, TEST_SCRYPT_N

T0 = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
BERLIN = ZoneInfo("Europe/Berlin")
NASTY = "x'); DROP TABLE ledger;--\"%_\\"
NASTY_TAG = "a'--;\"%_\\)"  # SQL metacharacters within the 20-character id_tag limit


class Clock:
    """A settable clock."""

    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "csms" / "central.db"


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(db_path: Path, clock: Clock) -> Iterator[CsmsStore]:
    s = CsmsStore(db_path, clock=clock)
    yield s
    s.close()


def reopen(store: CsmsStore, clock: Clock) -> CsmsStore:
    """Simulate a server restart: close the connection and open the file again."""
    store.close()
    return CsmsStore(store.path, clock=clock)


def flat_cost(cost_minor: int = 250) -> tuple[list[Transaction], CostFn]:
    calls: list[Transaction] = []

    def cost_fn(tx: Transaction) -> tuple[int, str]:
        calls.append(tx)
        return cost_minor, json.dumps(
            {"transaction_id": tx.id, "energy_wh": tx.energy_wh, "total": cost_minor}
        )

    return calls, cost_fn


def setup_card(
    store: CsmsStore, tag: str = "CARD1", mode: CardMode = CardMode.PREPAID, topup: int = 0
) -> int:
    user = store.add_user("Ada", email="ada@example.org")
    store.add_card(tag, user_id=user.id, mode=mode)
    if topup:
        store.topup(tag, topup, f"topup:{tag}")
    return user.id


# ------------------------------------------------------------------------------------------- opening


def test_opens_in_wal_mode_with_foreign_keys_and_normal_sync(store: CsmsStore, db_path: Path) -> None:
    assert db_path.is_file()
    db = store._db
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert db.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def test_durable_option_uses_full_sync(tmp_path: Path) -> None:
    with CsmsStore(tmp_path / "d.db", durable=True) as s:
        assert s._db.execute("PRAGMA synchronous").fetchone()[0] == 2


def test_newer_schema_version_is_refused(db_path: Path, store: CsmsStore) -> None:
    store.close()
    with sqlite3.connect(db_path) as raw:
        raw.execute("PRAGMA user_version = 99")
    raw.close()
    with pytest.raises(StoreError, match="schema version 99"):
        CsmsStore(db_path)


def test_unopenable_path_raises_store_error(tmp_path: Path) -> None:
    (tmp_path / "garbage.db").write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreError):
        CsmsStore(tmp_path / "garbage.db")
    with pytest.raises(StoreError):
        CsmsStore(tmp_path)  # a directory


def test_sqlite_errors_become_store_error(store: CsmsStore) -> None:
    store.close()
    with pytest.raises(StoreError):
        store.charger("CP1")
    with pytest.raises(StoreError):
        store.add_user("Ada")


def test_currency_defaults_to_eur_and_is_frozen_once_money_moved(store: CsmsStore) -> None:
    assert store.currency() == "EUR"
    store.set_currency("CHF")
    assert store.currency() == "CHF"
    with pytest.raises(InvalidInput):
        store.set_currency("chf")
    setup_card(store, topup=100)
    store.set_currency("CHF")  # unchanged is fine
    with pytest.raises(Conflict, match="ledger has entries"):
        store.set_currency("EUR")
    assert store.currency() == "CHF"


# ------------------------------------------------------------------------------------------- chargers


def test_password_is_salted_scrypt_never_plain_text(store: CsmsStore, db_path: Path) -> None:
    store.add_charger("CP1", "correct horse battery")
    store.add_charger("CP2", "correct horse battery")
    hashes = [r[0] for r in store._db.execute("SELECT password_hash FROM chargers ORDER BY id")]
    assert all(h.startswith("scrypt$") for h in hashes)
    assert hashes[0] != hashes[1]  # per-charger salt
    store.close()
    raw = b"".join(p.read_bytes() for p in db_path.parent.iterdir())
    assert b"correct horse battery" not in raw


def test_passwords_are_hashed_at_production_cost(store: CsmsStore) -> None:
    """The suite hashes at tests/conftest.py's cheap TEST_SCRYPT_N; outside it a hash costs scrypt N=2**14 (and
    says so), and a hash made at either cost verifies by the parameters stored with it."""
    assert PRODUCTION_SCRYPT_N == 2**14 and records._SCRYPT_N == TEST_SCRYPT_N
    store.add_charger("CP1", "cheap-in-tests")
    with mock.patch.object(records, "_SCRYPT_N", PRODUCTION_SCRYPT_N):
        store.add_charger("CP2", "as-in-production")
    hashes = dict(store._db.execute("SELECT id, password_hash FROM chargers").fetchall())
    assert hashes["CP2"].startswith("scrypt$16384$8$1$")
    assert hashes["CP1"].startswith(f"scrypt${TEST_SCRYPT_N}$8$1$")
    assert store.verify_password("CP2", "as-in-production")
    assert not store.verify_password("CP2", "cheap-in-tests")
    assert store.verify_password("CP1", "cheap-in-tests")
    assert not store.verify_password("CP1", "as-in-production")


def test_verify_password(store: CsmsStore) -> None:
    store.add_charger("CP1", "s3cret-password")
    store.add_charger("CP2")
    assert store.verify_password("CP1", "s3cret-password")
    assert not store.verify_password("CP1", "s3cret-passwor")
    assert not store.verify_password("CP1", "")
    assert not store.verify_password("CP2", "")  # no password set: never verifies
    assert not store.verify_password("nobody", "s3cret-password")
    store.set_password("CP1", "rotated-password")
    assert not store.verify_password("CP1", "s3cret-password")
    assert store.verify_password("CP1", "rotated-password")


def test_add_charger_twice_conflicts_and_unknown_raises(store: CsmsStore) -> None:
    store.add_charger("CP1")
    with pytest.raises(Conflict):
        store.add_charger("CP1")
    with pytest.raises(UnknownCharger):
        store.record_heartbeat("CP9", T0)
    with pytest.raises(InvalidInput):
        store.add_charger("CP3", status="maybe")


def test_admit_unknown_registers_pending_and_leaves_known_alone(store: CsmsStore) -> None:
    assert store.admit_unknown("NEW").status is ChargerStatus.PENDING
    assert store.admit_unknown("NEW").status is ChargerStatus.PENDING
    store.add_charger("OLD")
    store.set_charger_status("OLD", ChargerStatus.REJECTED)
    assert store.admit_unknown("OLD").status is ChargerStatus.REJECTED
    assert store.set_charger_status("NEW", "accepted").status is ChargerStatus.ACCEPTED


def test_the_remembered_charger_status_follows_every_change(store: CsmsStore) -> None:
    """`charger_status` is read before every charger message and remembered: each change is seen at once."""
    assert store.charger_status("CP1") is None  # unknown, and not remembered as such
    store.add_charger("CP1")
    assert store.charger_status("CP1") is ChargerStatus.ACCEPTED
    store.set_charger_status("CP1", "rejected")
    assert store.charger_status("CP1") is ChargerStatus.REJECTED
    store.set_charger_status("CP1", "accepted")
    assert store.charger_status("CP1") is ChargerStatus.ACCEPTED
    assert store.charger_status("NEW") is None
    store.admit_unknown("NEW")
    assert store.charger_status("NEW") is ChargerStatus.PENDING
    assert store.expire_pending(T0 + timedelta(days=365 * 100)) == 1
    assert store.charger_status("NEW") is None
    store.record_boot("CP1", vendor="V", model="M", timestamp=T0)  # a boot leaves the status as it is
    assert store.charger_status("CP1") is ChargerStatus.ACCEPTED


def test_finding_a_station_transaction_id_searches_indexes_never_every_transaction(store: CsmsStore) -> None:
    """The first event of each 2.0.1 session asks for its transactionId (own, another charger's or unknown): a
    scan of the transactions table there cost 15 % of the server at 10,000 sessions (docs/benchmarks.md)."""
    store.add_charger("CP1")
    store.add_charger("CP2")
    store.start_transaction("CP1", 1, "TAG", 0, T0, station_tx_id="tx-1")
    statements: list[str] = []
    store._db.set_trace_callback(statements.append)
    try:
        assert store.station_transaction("CP1", "tx-1") > 0
        with pytest.raises(ForeignTransaction):
            store.station_transaction("CP2", "tx-1")
        with pytest.raises(UnknownTransaction):
            store.station_transaction("CP1", "tx-unknown")
    finally:
        store._db.set_trace_callback(None)
    selects = {s for s in statements if s.lstrip().upper().startswith("SELECT")}
    assert selects
    for sql in selects:
        plan = " ".join(str(tuple(r)) for r in store._db.execute("EXPLAIN QUERY PLAN " + sql))
        assert "SCAN transactions" not in plan, (sql, plan)


def test_boot_heartbeat_diagnostics_and_firmware_are_recorded(store: CsmsStore) -> None:
    store.add_charger("CP1")
    store.record_boot(
        "CP1", vendor="ACME", model="Volt 22", firmware="1.2.3", serial_number="SN1", timestamp=T0
    )
    store.record_heartbeat("CP1", T0 + timedelta(minutes=5))
    store.set_diagnostics_status("CP1", "Uploaded")
    store.set_firmware_status("CP1", "Installed")
    cp = store.charger("CP1")
    assert cp is not None
    assert (cp.vendor, cp.model, cp.firmware, cp.serial_number) == ("ACME", "Volt 22", "1.2.3", "SN1")
    assert cp.last_boot == T0
    assert cp.last_heartbeat == T0 + timedelta(minutes=5)
    assert (cp.diagnostics_status, cp.firmware_status) == ("Uploaded", "Installed")


def test_tariff_falls_back_to_default(store: CsmsStore) -> None:
    store.add_charger("CP1")
    store.add_charger("CP2", tariff_id="night")
    assert store.tariff_for("CP1") is None
    store.set_default_tariff_id("standard")
    assert (store.tariff_for("CP1"), store.tariff_for("CP2")) == ("standard", "night")
    store.set_charger_tariff("CP2", None)
    assert store.tariff_for("CP2") == "standard"


def test_connector_status_live_and_history(store: CsmsStore) -> None:
    store.add_charger("CP1")
    assert store.record_status("CP1", 1, "Preparing", T0)
    assert store.record_status("CP1", 1, "Charging", T0 + timedelta(minutes=1))
    assert not store.record_status("CP1", 1, "Charging", T0 + timedelta(minutes=1))  # repeated: ignored
    # A queued older notification arrives late: history gets it, the live status stays newest.
    assert store.record_status(
        "CP1", 1, "Available", T0 - timedelta(hours=1), error_code="NoError", info="late"
    )
    store.record_status("CP1", 0, "Faulted", T0, error_code="GroundFailure", info="RCD")
    live = {c.connector_id: c for c in store.connectors("CP1")}
    assert live[1].status == "Charging" and live[1].timestamp == T0 + timedelta(minutes=1)
    assert (live[0].status, live[0].error_code, live[0].info) == ("Faulted", "GroundFailure", "RCD")
    assert [h.status for h in store.status_history("CP1", 1)] == ["Available", "Preparing", "Charging"]


def test_naive_timestamps_are_rejected(store: CsmsStore) -> None:
    store.add_charger("CP1")
    with pytest.raises(InvalidInput, match="timezone-aware"):
        store.record_heartbeat("CP1", datetime(2024, 1, 1, 12, 0))


# ------------------------------------------------------------------------------------------- users & cards


@pytest.mark.parametrize("email", ["a@b.co", "first.last+tag@sub.example.org", "o'brien@example.ie"])
def test_loosely_valid_emails_are_accepted(store: CsmsStore, email: str) -> None:
    assert store.add_user("U", email=email).email == email


@pytest.mark.parametrize("email", ["", "plain", "a@b", "a b@c.d", "@x.org", "a@@b.org"])
def test_invalid_emails_are_rejected(store: CsmsStore, email: str) -> None:
    with pytest.raises(InvalidInput):
        store.add_user("U", email=email)
    assert store.users() == []


def test_cards_are_case_insensitive_and_id_tag_limited(store: CsmsStore) -> None:
    user = store.add_user("Ada", phone="+49 30 123456")
    store.add_card("AbCd1234", user_id=user.id)
    card = store.card("abcd1234")
    assert card is not None and card.id_tag == "AbCd1234"
    with pytest.raises(Conflict):
        store.add_card("ABCD1234", user_id=user.id)
    store.add_card("E" * 36, user_id=None)  # an OCPP 2.0.1 idToken (eMAID) length
    with pytest.raises(InvalidInput):
        store.add_card("X" * 37, user_id=user.id)
    with pytest.raises(InvalidInput):
        store.add_card("", user_id=user.id)
    with pytest.raises(UnknownUser):
        store.add_card("NOUSER", user_id=999)
    assert store.add_card("X" * 20, user_id=None).user_id is None
    assert [c.id_tag for c in store.cards(user.id)] == ["AbCd1234"]


def authorize(store: CsmsStore, tag: str, now: datetime, min_balance: int | None = None) -> Decision:
    """The card rules (domain/authorization.py) over ``store``."""
    return Authorization(store, lambda: now, Hooks()).decide(tag, now, min_balance)


@pytest.mark.parametrize(
    ("tag", "min_balance", "expected", "reason_part"),
    [
        ("UNKNOWN", 0, AuthStatus.INVALID, "unknown"),
        ("BLOCKED", 0, AuthStatus.BLOCKED, "blocked"),
        ("EXPIRED", 0, AuthStatus.EXPIRED, "expired"),
        ("FUTURE", 0, AuthStatus.ACCEPTED, "ok"),
        ("PREPAID", 500, AuthStatus.ACCEPTED, "ok"),  # balance == minimum
        ("PREPAID", 501, AuthStatus.BLOCKED, "insufficient balance: 500 is below the minimum of 501"),
        ("PERSONAL", 10_000, AuthStatus.ACCEPTED, "ok"),  # minimum applies to prepaid cards only
        ("prepaid", 0, AuthStatus.ACCEPTED, "ok"),
        ("X" * 37, 0, AuthStatus.INVALID, "1-36"),
    ],
)
def test_authorize(
    store: CsmsStore, tag: str, min_balance: int, expected: AuthStatus, reason_part: str
) -> None:
    user = store.add_user("Ada")
    store.add_card("BLOCKED", user_id=user.id, status=CardStatus.BLOCKED)
    store.add_card("EXPIRED", user_id=user.id, expiry=T0)
    store.add_card("FUTURE", user_id=user.id, expiry=T0 + timedelta(seconds=1))
    store.add_card("PREPAID", user_id=user.id, mode=CardMode.PREPAID)
    store.add_card("PERSONAL", user_id=user.id, mode=CardMode.PERSONAL)
    store.topup("PREPAID", 500, "t1")
    status, reason = authorize(store, tag, T0, min_balance)
    assert status is expected
    assert reason_part in reason


def test_authorize_uses_configured_minimum_and_block_unblock(store: CsmsStore) -> None:
    setup_card(store, "P1", topup=300)
    store.set_min_balance_minor(400)
    assert authorize(store, "P1", T0).status is AuthStatus.BLOCKED
    store.set_min_balance_minor(300)
    assert authorize(store, "P1", T0).status is AuthStatus.ACCEPTED
    store.set_card_status("P1", CardStatus.BLOCKED)
    assert authorize(store, "P1", T0).status is AuthStatus.BLOCKED
    store.set_card_status("P1", "active")
    store.set_card_expiry("P1", T0 - timedelta(days=1))
    assert authorize(store, "P1", T0).status is AuthStatus.EXPIRED


# ------------------------------------------------------------------------------------------- ledger


def test_topup_is_idempotent_by_key(store: CsmsStore) -> None:
    setup_card(store, "C1")
    first = store.topup("C1", 1000, "pay-1", note="cash")
    again = store.topup("c1", 1000, "pay-1", note="cash")
    assert again == first
    assert store.balance("C1") == 1000
    assert len(store.entries("C1")) == 1
    assert store.entry("pay-1") == first


def test_reused_key_with_different_parameters_conflicts_and_changes_nothing(store: CsmsStore) -> None:
    setup_card(store, "C1")
    store.topup("C1", 1000, "k")
    with pytest.raises(IdempotencyConflict):
        store.topup("C1", 999, "k")
    with pytest.raises(IdempotencyConflict):
        store.post_charge("C1", 1000, "k")
    assert store.balance("C1") == 1000
    assert len(store.entries()) == 1


def test_all_kinds_and_signs(store: CsmsStore) -> None:
    setup_card(store, "C1")
    store.topup("C1", 1000, "a")
    charge = store.post_charge("C1", 300, "b")
    store.refund("C1", 100, "c")
    store.adjust("C1", -50, "d", note="goodwill reversal")
    assert charge.amount_minor == -300 and charge.kind is LedgerKind.CHARGE
    assert [e.amount_minor for e in store.entries("C1")] == [1000, -300, 100, -50]
    assert store.balance("C1") == 750
    card = store.card("C1")
    assert card is not None and card.balance_minor == 750
    assert store.verify_balances() == []


@pytest.mark.parametrize(
    "call",
    [
        lambda s: s.topup("C1", 0, "k"),
        lambda s: s.topup("C1", -5, "k"),
        lambda s: s.topup("C1", True, "k"),
        lambda s: s.topup("C1", 1.5, "k"),
        lambda s: s.topup("C1", 10**13, "k"),
        lambda s: s.post_charge("C1", -1, "k"),
        lambda s: s.refund("C1", 0, "k"),
        lambda s: s.adjust("C1", 0, "k", note="why"),
        lambda s: s.adjust("C1", 5, "k", note=""),
        lambda s: s.topup("C1", 5, ""),
    ],
)
def test_invalid_amounts_are_rejected(store: CsmsStore, call: Callable[[CsmsStore], object]) -> None:
    setup_card(store, "C1")
    with pytest.raises(InvalidInput):
        call(store)
    assert store.entries() == []


def test_unknown_card_and_references(store: CsmsStore) -> None:
    setup_card(store, "C1")
    with pytest.raises(UnknownCard):
        store.topup("NOPE", 1, "k")
    with pytest.raises(UnknownCard):
        store.balance("NOPE")
    with pytest.raises(UnknownTransaction):
        store.post_charge("C1", 1, "k", transaction_id=42)
    with pytest.raises(UnknownPayment):
        store.topup("C1", 1, "k", payment_id=42)


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE ledger SET amount_minor = 1000000",
        "UPDATE ledger SET note = 'edited'",
        "DELETE FROM ledger",
        "DELETE FROM ledger WHERE kind = 'charge'",
        "INSERT OR REPLACE INTO ledger (id, id_tag, kind, amount_minor, idempotency_key, created_at) "
        "VALUES (1, 'C1', 'topup', 9999, 'x', '2024')",
    ],
)
def test_ledger_rejects_update_and_delete_via_raw_sql(store: CsmsStore, db_path: Path, sql: str) -> None:
    setup_card(store, "C1", topup=500)
    store.post_charge("C1", 200, "charge-1")
    raw = sqlite3.connect(db_path)
    try:
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            raw.execute(sql)
        raw.rollback()
    finally:
        raw.close()
    assert [e.amount_minor for e in store.entries()] == [500, -200]


def test_card_with_ledger_entries_cannot_be_deleted(store: CsmsStore, db_path: Path) -> None:
    setup_card(store, "C1", topup=500)
    raw = sqlite3.connect(db_path)
    raw.execute("PRAGMA foreign_keys=ON")
    with pytest.raises(sqlite3.IntegrityError):
        raw.execute("DELETE FROM cards WHERE id_tag = 'C1'")
    raw.close()


def test_verify_balances_detects_a_tampered_cached_balance(store: CsmsStore, db_path: Path) -> None:
    setup_card(store, "C1", topup=500)
    assert store.verify_balances() == []
    with sqlite3.connect(db_path) as raw:
        raw.execute("UPDATE cards SET balance_minor = 10000 WHERE id_tag = 'C1'")
    raw.close()
    (mismatch,) = store.verify_balances()
    assert (mismatch.id_tag, mismatch.cached_minor, mismatch.ledger_minor) == ("C1", 10000, 500)
    assert store.balance("C1") == 500  # balance is always the ledger sum


# ------------------------------------------------------------------------------------------- transactions


def test_start_transaction_is_idempotent_on_its_fields(store: CsmsStore) -> None:
    store.add_charger("CP1")
    tx = store.start_transaction("CP1", 1, "CARD1", 1000, T0)
    # The same instant in another offset, and the tag in another letter case, is the same StartTransaction.
    same_instant = T0.astimezone(timezone(timedelta(hours=2)))
    assert store.start_transaction("CP1", 1, "card1", 1000, same_instant) == tx
    assert store.start_transaction("CP1", 1, "CARD1", 1001, T0) != tx
    assert store.start_transaction("CP1", 2, "CARD1", 1000, T0) != tx
    assert len(store.active_transactions("CP1")) == 3


def test_start_transaction_validates(store: CsmsStore) -> None:
    with pytest.raises(UnknownCharger):
        store.start_transaction("CP9", 1, "CARD1", 0, T0)
    store.add_charger("CP1")
    with pytest.raises(InvalidInput):
        store.start_transaction("CP1", 0, "CARD1", 0, T0)
    with pytest.raises(InvalidInput):
        store.start_transaction("CP1", 1, "CARD1", -1, T0)
    with pytest.raises(InvalidInput):
        store.start_transaction("CP1", 1, "X" * 37, 0, T0)


def test_meter_values_deduplicate_and_track_the_register(store: CsmsStore) -> None:
    store.add_charger("CP1")
    tx = store.start_transaction("CP1", 1, "CARD1", 1000, T0)
    samples = [
        MeterSample(T0 + timedelta(minutes=1), 1.5, unit="kWh"),
        MeterSample(T0 + timedelta(minutes=1), 7200.0, measurand="Power.Active.Import", unit="W"),
        MeterSample(T0 + timedelta(minutes=1), 230.1, measurand="Voltage", unit="V", phase="L1"),
    ]
    assert store.add_meter_values("CP1", tx, samples) == 3
    assert store.add_meter_values("CP1", tx, samples) == 0
    assert (
        store.add_meter_values("CP1", tx, [MeterSample(T0 + timedelta(seconds=30), 1200.0)]) == 1
    )  # older: no effect
    assert store.transaction(tx).last_meter_wh == 1500
    assert store.transaction(tx).energy_wh == 500
    assert len(store.meter_values(tx)) == 4
    with pytest.raises(UnknownTransaction):
        store.add_meter_values("CP1", 999, samples)
    with pytest.raises(InvalidInput):
        store.add_meter_values("CP1", tx, [MeterSample(T0, float("nan"))])


def test_stop_charges_once_and_repeated_stop_is_acknowledged(store: CsmsStore) -> None:
    store.add_charger("CP1")
    setup_card(store, "CARD1", topup=1000)
    tx = store.start_transaction("CP1", 1, "CARD1", 1000, T0)
    calls, cost_fn = flat_cost(250)
    first = store.stop_transaction("CP1", tx, 12_000, T0 + timedelta(hours=1), "Local", cost_fn)
    assert not first.already_stopped
    assert first.transaction.energy_wh == 11_000
    assert first.transaction.cost_minor == 250
    assert first.charge is not None and first.charge.amount_minor == -250
    assert first.charge.idempotency_key == f"charge:{tx}" and first.charge.transaction_id == tx
    assert json.loads(first.transaction.cdr_json or "") == {
        "transaction_id": tx,
        "energy_wh": 11_000,
        "total": 250,
    }
    again = store.stop_transaction("CP1", tx, 13_000, T0 + timedelta(hours=2), "Other", cost_fn)
    assert again.already_stopped
    assert again.transaction == first.transaction and again.charge == first.charge
    assert len(calls) == 1
    assert store.balance("CARD1") == 750
    assert store.active_transactions() == []


def test_stop_unknown_transaction_raises(store: CsmsStore) -> None:
    _, cost_fn = flat_cost()
    with pytest.raises(UnknownTransaction):
        store.stop_transaction("CP1", 12345, 0, T0, None, cost_fn)


def test_failing_cost_function_rolls_back_the_stop(store: CsmsStore) -> None:
    store.add_charger("CP1")
    setup_card(store, "CARD1", topup=1000)
    tx = store.start_transaction("CP1", 1, "CARD1", 0, T0)

    def broken(_: Transaction) -> tuple[int, str]:
        raise RuntimeError("tariff service down")

    with pytest.raises(RuntimeError):
        store.stop_transaction("CP1", tx, 5000, T0 + timedelta(hours=1), "Local", broken)
    assert store.transaction(tx).active
    assert store.entries("CARD1")[-1].kind is LedgerKind.TOPUP
    with pytest.raises(InvalidInput):
        store.stop_transaction("CP1", tx, 5000, T0 + timedelta(hours=1), "Local", lambda _: (10, "not json"))
    assert store.transaction(tx).active
    _, cost_fn = flat_cost(100)
    assert not store.stop_transaction(
        "CP1", tx, 5000, T0 + timedelta(hours=1), "Local", cost_fn
    ).already_stopped
    assert store.balance("CARD1") == 900


def test_stop_with_unknown_card_records_cost_without_ledger_entry(store: CsmsStore) -> None:
    store.add_charger("CP1")
    tx = store.start_transaction("CP1", 1, "OFFLINE1", 0, T0)
    _, cost_fn = flat_cost(99)
    result = store.stop_transaction("CP1", tx, 1000, T0 + timedelta(hours=1), "EVDisconnected", cost_fn)
    assert result.charge is None and result.transaction.cost_minor == 99
    assert store.entries() == []


def test_stop_stores_transaction_data_samples(store: CsmsStore) -> None:
    store.add_charger("CP1")
    tx = store.start_transaction("CP1", 1, "CARD1", 0, T0)
    _, cost_fn = flat_cost(0)
    store.stop_transaction(
        "CP1",
        tx,
        2000,
        T0 + timedelta(hours=1),
        None,
        cost_fn,
        samples=[MeterSample(T0 + timedelta(minutes=30), 1000.0, context="Sample.Periodic")],
    )
    assert [s.value for s in store.meter_values(tx)] == [1000.0]
    assert store.transaction(tx).last_meter_wh == 2000


def test_restart_loses_nothing_that_was_acknowledged(store: CsmsStore, clock: Clock) -> None:
    store.add_charger("CP1", "pw-CP1-secret")
    setup_card(store, "CARD1", topup=1000)
    tx = store.start_transaction("CP1", 1, "CARD1", 0, T0)
    store.add_meter_values("CP1", tx, [MeterSample(T0 + timedelta(minutes=10), 800.0)])
    calls, cost_fn = flat_cost(300)
    store.stop_transaction("CP1", tx, 1000, T0 + timedelta(hours=1), "Local", cost_fn)
    payment = store.create_payment("CP1", 2, 500, "stripe", id_tag="QR1")
    store.set_payment_status(
        payment.id, PaymentStatus.AUTHORIZED, provider_ref="pi_1", transitions=PAYMENT_TRANSITIONS
    )

    store = reopen(store, clock)
    try:
        assert store.verify_password("CP1", "pw-CP1-secret")
        assert store.balance("CARD1") == 700 and store.verify_balances() == []
        assert store.meter_values(tx)[0].value == 800.0
        # The charger resends StartTransaction and StopTransaction after the restart: same id, no new charge.
        assert store.start_transaction("CP1", 1, "CARD1", 0, T0) == tx
        repeated = store.stop_transaction("CP1", tx, 1000, T0 + timedelta(hours=1), "Local", cost_fn)
        assert repeated.already_stopped and len(calls) == 1
        assert store.balance("CARD1") == 700
        assert store.payment(payment.id).status is PaymentStatus.AUTHORIZED
        # AUTOINCREMENT: a fresh transaction never reuses an id.
        assert store.start_transaction("CP1", 1, "CARD1", 1000, T0 + timedelta(hours=2)) > tx
    finally:
        store.close()


# ------------------------------------------------------------------------------------------- payments


def test_payment_transitions_are_idempotent(store: CsmsStore, clock: Clock) -> None:
    store.add_charger("CP1")
    p = store.create_payment("CP1", 1, 2000, "stripe", id_tag="QR-0001", key="qr:1")
    assert store.create_payment("CP1", 1, 2000, "stripe", id_tag="QR-0001", key="qr:1") == p
    with pytest.raises(IdempotencyConflict):
        store.create_payment("CP1", 1, 2500, "stripe", key="qr:1")
    clock.now = T0 + timedelta(minutes=1)
    first = store.set_payment_status(p.id, "authorized", provider_ref="pi_9", transitions=PAYMENT_TRANSITIONS)
    assert first.changed and first.payment.status is PaymentStatus.AUTHORIZED
    clock.now = T0 + timedelta(minutes=2)
    repeat = store.set_payment_status(
        p.id, "authorized", provider_ref="pi_9", transitions=PAYMENT_TRANSITIONS
    )
    assert not repeat.changed and repeat.payment == first.payment  # updated_at unchanged too
    assert store.set_payment_status(p.id, PaymentStatus.CAPTURED, transitions=PAYMENT_TRANSITIONS).changed
    assert not store.set_payment_status(
        p.id, PaymentStatus.AUTHORIZED, transitions=PAYMENT_TRANSITIONS
    ).changed  # late callback
    with pytest.raises(InvalidTransition):
        store.set_payment_status(p.id, PaymentStatus.FAILED, transitions=PAYMENT_TRANSITIONS)
    assert store.set_payment_status(p.id, PaymentStatus.REFUNDED, transitions=PAYMENT_TRANSITIONS).changed
    assert [s for s, _ in store.payment_history(p.id)] == ["created", "authorized", "captured", "refunded"]
    assert store.payment_by_ref("stripe", "pi_9") == store.payment(p.id)
    assert store.payment_for_id_tag("qr-0001") == store.payment(p.id)


def test_payment_errors(store: CsmsStore) -> None:
    store.add_charger("CP1")
    p = store.create_payment("CP1", 1, 100, "stripe", provider_ref="pi_1")
    with pytest.raises(Conflict):
        store.set_payment_status(p.id, "authorized", provider_ref="pi_2", transitions=PAYMENT_TRANSITIONS)
    store.set_payment_status(p.id, "failed", transitions=PAYMENT_TRANSITIONS)
    with pytest.raises(InvalidTransition):
        store.set_payment_status(p.id, "captured", transitions=PAYMENT_TRANSITIONS)
    with pytest.raises(UnknownPayment):
        store.set_payment_status(999, "captured", transitions=PAYMENT_TRANSITIONS)
    with pytest.raises(InvalidInput):
        store.set_payment_status(p.id, "paid", transitions=PAYMENT_TRANSITIONS)
    with pytest.raises(InvalidInput):
        store.create_payment("CP1", 1, 0, "stripe")
    with pytest.raises(UnknownCharger):
        store.create_payment("CP9", 1, 100, "stripe")


def test_payment_links_to_one_transaction(store: CsmsStore) -> None:
    store.add_charger("CP1")
    p = store.create_payment("CP1", 1, 100, "stripe", id_tag="QR1")
    tx = store.start_transaction("CP1", 1, "QR1", 0, T0)
    other = store.start_transaction("CP1", 1, "QR1", 10, T0)
    assert store.attach_payment_transaction(p.id, tx).transaction_id == tx
    assert store.attach_payment_transaction(p.id, tx).transaction_id == tx
    with pytest.raises(Conflict):
        store.attach_payment_transaction(p.id, other)


def test_refund_for_a_transaction_never_exceeds_its_charge(store: CsmsStore) -> None:
    store.add_charger("CP1")
    setup_card(store, "CARD1", topup=1000)
    tx = store.start_transaction("CP1", 1, "CARD1", 0, T0)
    _, cost_fn = flat_cost(300)
    store.stop_transaction("CP1", tx, 1000, T0 + timedelta(hours=1), "Local", cost_fn)
    store.refund("CARD1", 200, "r1", transaction_id=tx)
    store.refund("CARD1", 200, "r1", transaction_id=tx)  # repeat: no-op, not an over-refund
    with pytest.raises(InvalidInput, match="exceeds"):
        store.refund("CARD1", 101, "r2", transaction_id=tx)
    store.refund("CARD1", 100, "r3", transaction_id=tx)
    assert store.balance("CARD1") == 1000


# ------------------------------------------------------------------------------------------- statistics


def berlin(y: int, m: int, d: int, hh: int, mm: int = 0) -> datetime:
    return datetime(y, m, d, hh, mm, tzinfo=BERLIN)


def test_daily_stats_split_at_local_midnight(store: CsmsStore, clock: Clock) -> None:
    clock.now = berlin(2024, 5, 10, 0)
    store.add_charger("CP1")
    setup_card(store, "CARD1", topup=10_000)
    # Connector 1 charges 22:00-02:00 across midnight; connector 2 charges 10:00-11:30 on day two.
    store.record_status("CP1", 1, "Charging", berlin(2024, 5, 1, 22))
    store.record_status("CP1", 1, "SuspendedEV", berlin(2024, 5, 2, 2))
    store.record_status("CP1", 1, "Available", berlin(2024, 5, 2, 3))
    store.record_status("CP1", 2, "Charging", berlin(2024, 5, 2, 10))
    store.record_status("CP1", 2, "Finishing", berlin(2024, 5, 2, 11, 30))
    store.record_status("CP1", 0, "Charging", berlin(2024, 5, 2, 0))  # connector 0 never counts
    _, cost_fn = flat_cost(400)
    t1 = store.start_transaction("CP1", 1, "CARD1", 0, berlin(2024, 5, 1, 22))
    store.stop_transaction("CP1", t1, 20_000, berlin(2024, 5, 2, 3), "EVDisconnected", cost_fn)
    t2 = store.start_transaction("CP1", 2, "CARD1", 500, berlin(2024, 5, 2, 10))
    store.stop_transaction("CP1", t2, 3_500, berlin(2024, 5, 2, 11, 30), "Local", cost_fn)
    store.refund("CARD1", 150, "goodwill", transaction_id=t2)

    day1, day2, day3 = store.daily_stats("CP1", date(2024, 5, 1), date(2024, 5, 3), BERLIN)
    assert (day1.day, day1.working_hours, day1.energy_wh, day1.sessions, day1.fees_minor) == (
        date(2024, 5, 1),
        2.0,
        0,
        0,
        0,
    )
    assert (day2.working_hours, day2.energy_kwh, day2.sessions, day2.fees_minor) == (3.5, 23.0, 2, 650)
    assert (day3.working_hours, day3.sessions) == (0.0, 0)

    text = store.daily_stats_csv("CP1", date(2024, 5, 1), date(2024, 5, 2), BERLIN)
    rows = list(csv.DictReader(io.StringIO(text)))
    assert rows[1] == {
        "date": "2024-05-02",
        "working_hours": "3.500",
        "energy_kwh": "23.000",
        "sessions": "2",
        "fees_minor": "650",
        "currency": "EUR",
    }


def test_daily_stats_counts_an_ongoing_session_until_now_and_handles_dst(
    store: CsmsStore, clock: Clock
) -> None:
    store.add_charger("CP1")
    store.record_status("CP1", 1, "Charging", berlin(2024, 3, 30, 12))
    clock.now = berlin(2024, 4, 1, 6)
    sat, sun, mon = store.daily_stats("CP1", date(2024, 3, 30), date(2024, 4, 1), BERLIN)
    assert sat.working_hours == 12.0
    assert sun.working_hours == 23.0  # clocks went forward: a 23-hour day
    assert mon.working_hours == 6.0


def test_daily_stats_validates(store: CsmsStore) -> None:
    with pytest.raises(UnknownCharger):
        store.daily_stats("CP9", date(2024, 1, 1), date(2024, 1, 2), UTC)
    store.add_charger("CP1")
    with pytest.raises(InvalidInput):
        store.daily_stats("CP1", date(2024, 1, 2), date(2024, 1, 1), UTC)


def test_user_consumption_and_csv(store: CsmsStore) -> None:
    store.add_charger("CP1")
    uid = setup_card(store, "CARD1", mode=CardMode.PERSONAL)
    store.add_card("=HYPERLINK(1)", user_id=uid)
    other = store.add_user("Bob")
    store.add_card("BOB1", user_id=other.id)
    _, cost_fn = flat_cost(120)
    for i, tag in enumerate(["CARD1", "=HYPERLINK(1)", "BOB1"]):
        tx = store.start_transaction("CP1", 1, tag, 0, T0 + timedelta(hours=i))
        store.stop_transaction("CP1", tx, 1500, T0 + timedelta(hours=i, minutes=30), "Local", cost_fn)
    store.start_transaction("CP1", 1, "CARD1", 0, T0 + timedelta(hours=5))  # still running: not reported
    report = store.user_consumption(uid)
    assert [s.id_tag for s in report.sessions] == ["CARD1", "=HYPERLINK(1)"]
    assert (report.energy_wh, report.cost_minor) == (3000, 240)
    rows = list(csv.reader(io.StringIO(store.user_consumption_csv(uid))))
    assert rows[0][:4] == ["transaction_id", "cp_id", "connector_id", "id_tag"]
    assert rows[1][3] == "CARD1" and rows[1][-3:] == ["1.500", "120", "EUR"]
    assert rows[2][3] == "'=HYPERLINK(1)"  # spreadsheet formula neutralised
    with pytest.raises(UnknownUser):
        store.user_consumption(999)


# ------------------------------------------------------------------------------------------- SQL safety


def test_sql_metacharacters_in_every_text_field_are_stored_verbatim(store: CsmsStore, clock: Clock) -> None:
    cp = NASTY
    store.add_charger(cp, NASTY, tariff_id=NASTY)
    store.set_default_tariff_id(NASTY)
    store.record_boot(cp, vendor=NASTY, model=NASTY, firmware=NASTY, serial_number=NASTY, timestamp=T0)
    store.set_diagnostics_status(cp, NASTY)
    store.set_firmware_status(cp, NASTY)
    store.record_status(cp, 1, NASTY, T0, error_code=NASTY, info=NASTY)
    user = store.add_user(NASTY, phone=NASTY[:32], email="o'brien;--\"%@x.org")
    store.add_card(NASTY_TAG, user_id=user.id, mode=CardMode.PREPAID)
    store.topup(NASTY_TAG, 1000, NASTY, note=NASTY)
    store.adjust(NASTY_TAG, 5, NASTY + "2", note=NASTY)
    tx = store.start_transaction(cp, 1, NASTY_TAG, 0, T0)
    store.add_meter_values(
        cp,
        tx,
        [MeterSample(T0, 1.0, measurand=NASTY, unit=NASTY, phase=NASTY, context=NASTY, location=NASTY)],
    )
    cdr = json.dumps({"note": NASTY})
    store.stop_transaction(cp, tx, 10, T0 + timedelta(minutes=1), NASTY, lambda _: (1, cdr))
    pay = store.create_payment(cp, 1, 100, NASTY, id_tag=NASTY_TAG + "P"[: 20 - len(NASTY_TAG)], key=NASTY)
    store.set_payment_status(pay.id, "authorized", provider_ref=NASTY, transitions=PAYMENT_TRANSITIONS)

    store = reopen(store, clock)
    try:
        charger = store.charger(cp)
        assert charger is not None and store.verify_password(cp, NASTY)
        assert {charger.vendor, charger.model, charger.firmware, charger.serial_number} == {NASTY}
        assert {charger.diagnostics_status, charger.firmware_status, charger.tariff_id} == {NASTY}
        assert store.default_tariff_id() == NASTY
        (conn,) = store.connectors(cp)
        assert (conn.status, conn.error_code, conn.info) == (NASTY, NASTY, NASTY)
        assert store.users()[0] == user
        assert store.card(NASTY_TAG) is not None
        top, adj, charge = store.entries(NASTY_TAG)
        assert (top.idempotency_key, top.note, adj.note) == (NASTY, NASTY, NASTY)
        assert charge.idempotency_key == f"charge:{tx}"
        stored_tx = store.transaction(tx)
        assert (stored_tx.cp_id, stored_tx.id_tag, stored_tx.stop_reason, stored_tx.cdr_json) == (
            NASTY,
            NASTY_TAG,
            NASTY,
            cdr,
        )
        (sample,) = store.meter_values(tx)
        assert (sample.measurand, sample.unit, sample.phase, sample.context, sample.location) == (NASTY,) * 5
        payment = store.payment(pay.id)
        assert (payment.provider, payment.provider_ref) == (NASTY, NASTY)
        assert store.payment_by_ref(NASTY, NASTY) == payment
        tables = {r[0] for r in store._db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert {"ledger", "cards", "chargers", "transactions", "payments"} <= tables
        assert store.verify_balances() == []
    finally:
        store.close()


# ------------------------------------------------------------------------------------------- hardening (issue 10)

V1_METER_VALUES = """
CREATE TABLE meter_values (
    transaction_id INTEGER NOT NULL REFERENCES transactions(id),
    timestamp TEXT NOT NULL,
    measurand TEXT NOT NULL,
    phase TEXT NOT NULL DEFAULT '',
    value REAL NOT NULL,
    unit TEXT NOT NULL,
    context TEXT,
    PRIMARY KEY (transaction_id, timestamp, measurand, phase)
) WITHOUT ROWID;
"""


def test_a_version_1_database_is_migrated_keeping_its_samples(
    db_path: Path, store: CsmsStore, clock: Clock
) -> None:
    store.add_charger("CP1")
    tx = store.start_transaction("CP1", 1, "CARD1", 1000, T0)
    store.close()
    # Turn the file into what version 1 wrote: meter_values without location (and "Wh" for every sample without
    # a unit), transactions without id_tag_status, no security_events.
    raw = sqlite3.connect(db_path)
    raw.executescript(
        "DROP TABLE meter_values; DROP TABLE security_events; ALTER TABLE transactions DROP COLUMN id_tag_status;"
        + V1_METER_VALUES
    )
    at = (T0 + timedelta(minutes=1)).isoformat(timespec="microseconds")
    raw.executemany(
        "INSERT INTO meter_values VALUES (?, ?, ?, ?, ?, ?, ?)",
        [
            (tx, at, "Energy.Active.Import.Register", "", 1500.0, "Wh", None),
            (tx, at, "Frequency", "", 50.0, "Wh", "Sample.Periodic"),
            (tx, at, "Power.Active.Import", "L1", 7000.0, "Wh", None),
            (tx, at, "Current.Import", "L1", 16.0, "A", None),
        ],
    )
    raw.execute("PRAGMA user_version = 1")
    raw.commit()
    raw.close()

    store = CsmsStore(db_path, clock=clock)
    try:
        assert store._db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        units = {s.measurand: (s.unit, s.location, s.context) for s in store.meter_values(tx)}
        assert units == {
            "Energy.Active.Import.Register": ("Wh", None, None),
            "Frequency": (None, None, "Sample.Periodic"),  # 1.6 has no unit for frequency
            "Power.Active.Import": ("W", None, None),
            "Current.Import": ("A", None, None),
        }
        assert store.transaction(tx).id_tag_status is None
        # The new key: a sample differing only in location is a new reading now.
        ev = MeterSample(T0 + timedelta(minutes=1), 40_000.0, location="EV")
        assert store.add_meter_values("CP1", tx, [ev]) == 1
        assert store.transaction(tx).last_meter_wh == 1500  # the EV's register is not the charger's
        store.record_security_event("CP1", "bad_sample", "after the migration")
    finally:
        store.close()


def test_transactions_are_looked_up_by_charger_and_id(store: CsmsStore) -> None:
    store.add_charger("CP-A")
    store.add_charger("CP-B")
    setup_card(store, "CARD-A", topup=1000)
    tx = store.start_transaction("CP-A", 1, "CARD-A", 0, T0)
    calls, cost_fn = flat_cost(900)
    with pytest.raises(ForeignTransaction):
        store.add_meter_values("CP-B", tx, [MeterSample(T0 + timedelta(minutes=1), 10_000_000.0)])
    with pytest.raises(ForeignTransaction):
        store.stop_transaction("CP-B", tx, 10_000_000, T0 + timedelta(hours=1), "Local", cost_fn)
    with pytest.raises(UnknownTransaction):
        store.stop_transaction("CP-B", tx + 1, 10, T0 + timedelta(hours=1), "Local", cost_fn)
    assert calls == [] and store.meter_values(tx) == [] and store.balance("CARD-A") == 1000
    assert store.transaction(tx).active
    assert not store.stop_transaction(
        "CP-A", tx, 10, T0 + timedelta(hours=1), "Local", cost_fn
    ).already_stopped
    assert store.balance("CARD-A") == 100


def test_security_events_are_bounded(store: CsmsStore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store_module, "MAX_SECURITY_EVENTS", 5)
    for i in range(12):
        store.record_security_event("CP-X", SecurityEventKind.UNKNOWN_TRANSACTION, f"#{i}", transaction_id=i)
    events = store.security_events(limit=5)
    assert [e.detail for e in events] == ["#11", "#10", "#9", "#8", "#7"]
    assert store._db.execute("SELECT COUNT(*) FROM security_events").fetchone()[0] == 5
    assert store.security_events(cp_id="CP-Y") == []
    assert store.security_events(kind="foreign_transaction") == []
    with pytest.raises(InvalidInput):
        store.record_security_event("CP-X", "no-such-kind", "x")


def test_sample_values_that_would_overflow_the_register_are_refused(store: CsmsStore) -> None:
    store.add_charger("CP1")
    tx = store.start_transaction("CP1", 1, "CARD1", 0, T0)
    for value in (float("inf"), 1e300, -1e300):
        with pytest.raises(InvalidInput):
            store.add_meter_values("CP1", tx, [MeterSample(T0, value)])
    assert store.transaction(tx).last_meter_wh == 0


def test_station_transaction_ids_are_keyed_by_charger_and_seq_nos_kept(store: CsmsStore) -> None:
    store.add_charger("A")
    store.add_charger("B")
    tx = store.start_transaction("A", 1, "CARD", 0, T0, station_tx_id="tx-1")
    assert store.start_transaction("A", 1, "CARD", 5, T0 + timedelta(seconds=1), station_tx_id="tx-1") == tx
    assert store.station_transaction("A", "tx-1") == tx
    with pytest.raises(ForeignTransaction):
        store.station_transaction("B", "tx-1")
    with pytest.raises(UnknownTransaction):
        store.station_transaction("A", "tx-2")
    assert store.record_seq_no("A", tx, 0) is None
    assert store.record_seq_no("A", tx, 3) == 0
    assert store.record_seq_no("A", tx, 1) == 3  # an older one does not lower the highest
    with pytest.raises(ForeignTransaction):
        store.record_seq_no("B", tx, 4)


def test_the_device_model_keeps_the_newest_values_and_is_capped_per_charger(store: CsmsStore) -> None:
    store.add_charger("A")
    many = [DeviceVariable("C", f"V{i}", str(i)) for i in range(MAX_DEVICE_VARIABLES + 10)]
    assert store.store_device_variables("A", many, T0) == MAX_DEVICE_VARIABLES
    assert store.store_device_variables("A", [DeviceVariable("C", "V0", "new")], T0) == 1  # an update fits
    model = store.device_model("A")
    assert len(model) == MAX_DEVICE_VARIABLES and DeviceVariable("C", "V0", "new") in model


def test_a_version_2_database_takes_36_character_id_tags_after_migration(
    db_path: Path, store: CsmsStore, clock: Clock
) -> None:
    """Version 2 limited cards to 1.6's 20 characters; version 3 takes 2.0.1 idTokens (eMAIDs) of up to 36, and
    the rebuilt cards table keeps every card, balance and the ledger's references to it."""
    store.add_charger("CP1")
    setup_card(store, "CARD-OLD", topup=1500)
    store.close()
    raw = sqlite3.connect(db_path)
    raw.executescript(
        "PRAGMA foreign_keys = OFF;"
        + "CREATE TABLE cards_v2 AS SELECT * FROM cards; DROP TABLE cards;"
        + V2_CARDS
        + "INSERT INTO cards SELECT * FROM cards_v2; DROP TABLE cards_v2; PRAGMA user_version = 2;"
    )
    raw.close()
    with pytest.raises(sqlite3.IntegrityError), sqlite3.connect(db_path) as check:  # what version 2 did
        check.execute(
            "INSERT INTO cards (id_tag, mode, status, created_at) VALUES (?, 'personal', 'active', '')",
            ("X" * 21,),
        )

    store = CsmsStore(db_path, clock=clock)
    try:
        assert store._db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert store.balance("CARD-OLD") == 1500
        assert store._db.execute("PRAGMA foreign_key_check").fetchall() == []
        emaid = "DE-ABC-C12345678901234567890123-X"[:36]
        store.add_card(emaid, user_id=None)
        assert store.card(emaid) is not None
        with pytest.raises(InvalidInput):
            store.add_card("Y" * 37, user_id=None)
        tx = store.start_transaction("CP1", 1, emaid, 0, T0)
        assert store.transaction(tx).id_tag == emaid
    finally:
        store.close()


V2_CARDS = """
CREATE TABLE cards (
    id_tag TEXT NOT NULL COLLATE NOCASE PRIMARY KEY CHECK (length(id_tag) BETWEEN 1 AND 20),
    user_id INTEGER REFERENCES users(id),
    mode TEXT NOT NULL CHECK (mode IN ('personal', 'prepaid')),
    status TEXT NOT NULL CHECK (status IN ('active', 'blocked')),
    expiry TEXT,
    balance_minor INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL
);
"""
