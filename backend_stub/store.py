"""The central system's SQLite data layer: chargers, users, cards, an append-only ledger, transactions,
payments and statistics.

Synchronous by design: every call is a short SQLite statement or transaction, so the OCPP handlers and the
REST API call it directly. Every public write is exactly one SQLite transaction; every sqlite3 error leaves
this module as StoreError. Money is integer minor units in one currency per installation, energy is Wh, and
times are timezone-aware UTC stored as fixed-width ISO-8601 text (so text order is time order).
"""

from __future__ import annotations

import csv
import enum
import hashlib
import hmac
import io
import json
import math
import os
import re
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from pathlib import Path
from types import TracebackType
from typing import Final, NamedTuple, Self, TypeVar

__all__ = [
    "DEFAULT_CURRENCY",
    "MAX_AMOUNT_MINOR",
    "PAYMENT_TRANSITIONS",
    "AuthStatus",
    "Authorization",
    "BalanceMismatch",
    "Card",
    "CardMode",
    "CardStatus",
    "Charger",
    "ChargerStatus",
    "Conflict",
    "ConnectorStatus",
    "CostFn",
    "CsmsStore",
    "DailyStats",
    "ForeignTransaction",
    "IdempotencyConflict",
    "InvalidInput",
    "InvalidTransition",
    "LedgerEntry",
    "LedgerKind",
    "MeterSample",
    "NotFound",
    "Payment",
    "PaymentStatus",
    "PaymentUpdate",
    "SecurityEvent",
    "SecurityEventKind",
    "SessionSummary",
    "StopResult",
    "StoreError",
    "Transaction",
    "UnknownCard",
    "UnknownCharger",
    "UnknownPayment",
    "UnknownTransaction",
    "UnknownUser",
    "User",
    "UserConsumption",
]

SCHEMA_VERSION: Final = 2
DEFAULT_CURRENCY: Final = "EUR"
MAX_ID_TAG_LENGTH: Final = 20  # OCPP 1.6 IdToken is CiString20Type
MAX_AMOUNT_MINOR: Final = 10**12  # keeps every SUM far inside SQLite's signed 64-bit integers
MAX_TEXT_LENGTH: Final = 10_000
ENERGY_REGISTER: Final = "Energy.Active.Import.Register"
# Largest magnitude of a stored sample: an energy register in kWh x 1000 stays far inside SQLite's signed 64-bit
# integers when it becomes a transaction's last_meter_wh.
MAX_SAMPLE_VALUE: Final = 1e15
MAX_METER_WH: Final = 2**62
# A stranger can cause security events (a charger reporting on another's transaction, bad samples): the table
# keeps only the newest ones, so it cannot grow without bound.
MAX_SECURITY_EVENTS: Final = 10_000
CHARGING: Final = "Charging"  # OCPP 1.6 ChargePointStatus counted as working time

# scrypt (RFC 7914) cost: ~16 MiB and some tens of ms per check; parameters are stored with each hash.
_SCRYPT_N: Final = 2**14
_SCRYPT_R: Final = 8
_SCRYPT_P: Final = 1
_SALT_BYTES: Final = 16
# Checked when a charger is unknown or has no password, so every answer costs one scrypt run.
_DUMMY_HASH: Final = f"scrypt${_SCRYPT_N}${_SCRYPT_R}${_SCRYPT_P}${'00' * _SALT_BYTES}${'00' * 32}"

_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_CURRENCY = re.compile(r"[A-Z]{3}")  # ISO 4217 alphabetic code
_CSV_FORMULA_START: Final = ("=", "+", "-", "@", "\t", "\r")


class StoreError(Exception):
    """Any failure of the central system store; sqlite3 errors are translated to this."""


class InvalidInput(StoreError, ValueError):
    """An argument is out of range or malformed; nothing was written."""


class NotFound(StoreError, LookupError):
    """A referenced row does not exist."""


class UnknownCharger(NotFound):
    """No charger with this id."""


class UnknownUser(NotFound):
    """No user with this id."""


class UnknownCard(NotFound):
    """No card with this id_tag."""


class UnknownTransaction(NotFound):
    """No transaction with this id."""


class ForeignTransaction(UnknownTransaction):
    """The transaction exists but belongs to another charger (to that charger it is as unknown)."""


class UnknownPayment(NotFound):
    """No payment with this id."""


class Conflict(StoreError):
    """The write contradicts a row that already exists."""


class IdempotencyConflict(Conflict):
    """An idempotency key was reused with different parameters."""


class InvalidTransition(Conflict):
    """A payment cannot move from its current status to the requested one."""


class ChargerStatus(enum.StrEnum):
    """Registration status of a charger (answered in BootNotification)."""

    ACCEPTED = "accepted"
    PENDING = "pending"
    REJECTED = "rejected"


class CardMode(enum.StrEnum):
    """Personal cards are billed afterwards; prepaid cards need a balance."""

    PERSONAL = "personal"
    PREPAID = "prepaid"


class CardStatus(enum.StrEnum):
    """Administrative card status."""

    ACTIVE = "active"
    BLOCKED = "blocked"


class LedgerKind(enum.StrEnum):
    """Ledger entry kinds; signs: topup > 0, charge <= 0, refund > 0 (money back to the card), adjustment != 0."""

    TOPUP = "topup"
    CHARGE = "charge"
    REFUND = "refund"
    ADJUSTMENT = "adjustment"


class PaymentStatus(enum.StrEnum):
    """Status of a (QR) payment."""

    CREATED = "created"
    AUTHORIZED = "authorized"
    CAPTURED = "captured"
    REFUNDED = "refunded"
    FAILED = "failed"


class SecurityEventKind(enum.StrEnum):
    """What a security event records: an attempt on someone else's data, or data the central system refused."""

    FOREIGN_TRANSACTION = "foreign_transaction"  # a charger reported on another charger's transaction
    UNKNOWN_TRANSACTION = "unknown_transaction"  # a charger reported on a transaction that does not exist
    NOT_ACCEPTED = "not_accepted"  # a Pending/Rejected charger sent something other than BootNotification
    BAD_SAMPLE = "bad_sample"  # a meter sample was skipped (non-finite, out of range, not a number)
    STOP_BEFORE_START = "stop_before_start"  # a StopTransaction stamped at or before its start


class AuthStatus(enum.StrEnum):
    """OCPP 1.6 AuthorizationStatus values this store decides."""

    ACCEPTED = "Accepted"
    BLOCKED = "Blocked"
    EXPIRED = "Expired"
    INVALID = "Invalid"


PAYMENT_TRANSITIONS: Final[dict[PaymentStatus, frozenset[PaymentStatus]]] = {
    PaymentStatus.CREATED: frozenset(
        {PaymentStatus.AUTHORIZED, PaymentStatus.CAPTURED, PaymentStatus.FAILED}
    ),
    PaymentStatus.AUTHORIZED: frozenset({PaymentStatus.CAPTURED, PaymentStatus.FAILED}),
    PaymentStatus.CAPTURED: frozenset({PaymentStatus.REFUNDED}),
    PaymentStatus.REFUNDED: frozenset(),
    PaymentStatus.FAILED: frozenset(),
}

# Columns added after a store was first created: `_add_columns` adds each one a store opened here lacks (a new store
# gets them from SCHEMA). security_profile: the highest OCPP security profile a charger has connected with.
_ADDED_COLUMNS: Final = (
    (
        "chargers",
        "security_profile",
        "INTEGER NOT NULL DEFAULT 0 CHECK (security_profile BETWEEN 0 AND 3)",
    ),
)

SCHEMA = f"""
CREATE TABLE IF NOT EXISTS settings (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS tariffs (id TEXT PRIMARY KEY, ocpi_json TEXT NOT NULL, updated_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS chargers (
    id TEXT PRIMARY KEY,
    password_hash TEXT,
    status TEXT NOT NULL CHECK (status IN ('accepted', 'pending', 'rejected')),
    vendor TEXT,
    model TEXT,
    firmware TEXT,
    serial_number TEXT,
    last_boot TEXT,
    last_heartbeat TEXT,
    diagnostics_status TEXT,
    firmware_status TEXT,
    tariff_id TEXT,
    created_at TEXT NOT NULL,
    security_profile INTEGER NOT NULL DEFAULT 0 CHECK (security_profile BETWEEN 0 AND 3)
);
CREATE TABLE IF NOT EXISTS connectors (
    cp_id TEXT NOT NULL REFERENCES chargers(id),
    connector_id INTEGER NOT NULL CHECK (connector_id >= 0),
    status TEXT NOT NULL,
    error_code TEXT NOT NULL,
    info TEXT,
    timestamp TEXT NOT NULL,
    PRIMARY KEY (cp_id, connector_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS status_history (
    id INTEGER PRIMARY KEY,
    cp_id TEXT NOT NULL REFERENCES chargers(id),
    connector_id INTEGER NOT NULL,
    status TEXT NOT NULL,
    error_code TEXT NOT NULL,
    info TEXT,
    timestamp TEXT NOT NULL,
    UNIQUE (cp_id, connector_id, timestamp, status)
);
CREATE TABLE IF NOT EXISTS users (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    phone TEXT,
    email TEXT,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS cards (
    id_tag TEXT NOT NULL COLLATE NOCASE PRIMARY KEY CHECK (length(id_tag) BETWEEN 1 AND {MAX_ID_TAG_LENGTH}),
    user_id INTEGER REFERENCES users(id),
    mode TEXT NOT NULL CHECK (mode IN ('personal', 'prepaid')),
    status TEXT NOT NULL CHECK (status IN ('active', 'blocked')),
    expiry TEXT,
    balance_minor INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS cards_user ON cards(user_id);
CREATE TABLE IF NOT EXISTS transactions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    cp_id TEXT NOT NULL REFERENCES chargers(id),
    connector_id INTEGER NOT NULL,
    id_tag TEXT NOT NULL COLLATE NOCASE,
    meter_start_wh INTEGER NOT NULL,
    started_at TEXT NOT NULL,
    last_meter_wh INTEGER NOT NULL,
    meter_stop_wh INTEGER,
    stopped_at TEXT,
    stop_reason TEXT,
    cost_minor INTEGER,
    cdr_json TEXT,
    id_tag_status TEXT,
    UNIQUE (cp_id, connector_id, id_tag, started_at, meter_start_wh)
);
CREATE INDEX IF NOT EXISTS transactions_stopped ON transactions(cp_id, stopped_at);
CREATE INDEX IF NOT EXISTS transactions_id_tag ON transactions(id_tag);
CREATE TABLE IF NOT EXISTS meter_values (
    transaction_id INTEGER NOT NULL REFERENCES transactions(id),
    timestamp TEXT NOT NULL,
    measurand TEXT NOT NULL,
    phase TEXT NOT NULL DEFAULT '',
    location TEXT NOT NULL DEFAULT '',
    context TEXT NOT NULL DEFAULT '',
    unit TEXT NOT NULL DEFAULT '',
    value REAL NOT NULL,
    PRIMARY KEY (transaction_id, timestamp, measurand, phase, location, context, unit)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS security_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at TEXT NOT NULL,
    cp_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    transaction_id INTEGER,
    detail TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS payments (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    cp_id TEXT NOT NULL REFERENCES chargers(id),
    connector_id INTEGER NOT NULL,
    amount_minor INTEGER NOT NULL CHECK (amount_minor > 0),
    status TEXT NOT NULL CHECK (status IN ('created', 'authorized', 'captured', 'refunded', 'failed')),
    provider TEXT NOT NULL,
    provider_ref TEXT,
    id_tag TEXT COLLATE NOCASE UNIQUE,
    transaction_id INTEGER REFERENCES transactions(id),
    idempotency_key TEXT UNIQUE,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    UNIQUE (provider, provider_ref)
);
CREATE TABLE IF NOT EXISTS payment_events (
    id INTEGER PRIMARY KEY,
    payment_id INTEGER NOT NULL REFERENCES payments(id),
    status TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS ledger (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    id_tag TEXT NOT NULL COLLATE NOCASE REFERENCES cards(id_tag),
    kind TEXT NOT NULL CHECK (kind IN ('topup', 'charge', 'refund', 'adjustment')),
    amount_minor INTEGER NOT NULL CHECK (
        (kind = 'topup' AND amount_minor > 0) OR (kind = 'charge' AND amount_minor <= 0)
        OR (kind = 'refund' AND amount_minor > 0) OR (kind = 'adjustment' AND amount_minor <> 0)
    ),
    transaction_id INTEGER REFERENCES transactions(id),
    payment_id INTEGER REFERENCES payments(id),
    idempotency_key TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL,
    note TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS ledger_card ON ledger(id_tag);
CREATE INDEX IF NOT EXISTS ledger_transaction ON ledger(transaction_id);
-- The ledger is append-only: money is corrected with new entries, never by editing history.
CREATE TRIGGER IF NOT EXISTS ledger_no_update BEFORE UPDATE ON ledger
BEGIN SELECT RAISE(ABORT, 'ledger is append-only: UPDATE is not allowed'); END;
CREATE TRIGGER IF NOT EXISTS ledger_no_delete BEFORE DELETE ON ledger
BEGIN SELECT RAISE(ABORT, 'ledger is append-only: DELETE is not allowed'); END;
-- INSERT OR REPLACE deletes the clashing row without firing DELETE triggers (unless recursive_triggers is
-- on, per connection), so an insert that would replace an entry is refused before it happens.
CREATE TRIGGER IF NOT EXISTS ledger_no_replace BEFORE INSERT ON ledger
WHEN EXISTS (SELECT 1 FROM ledger WHERE id = NEW.id OR idempotency_key = NEW.idempotency_key)
BEGIN SELECT RAISE(ABORT, 'ledger is append-only: an entry with this id or key exists'); END;
-- The cached balance moves with every entry in the same statement, whoever inserts it.
CREATE TRIGGER IF NOT EXISTS ledger_cached_balance AFTER INSERT ON ledger
BEGIN UPDATE cards SET balance_minor = balance_minor + NEW.amount_minor WHERE id_tag = NEW.id_tag; END;
INSERT OR IGNORE INTO settings (name, value) VALUES ('currency', '{DEFAULT_CURRENCY}');
INSERT OR IGNORE INTO settings (name, value) VALUES ('min_balance_minor', '0');
PRAGMA user_version = {SCHEMA_VERSION};
"""

# Schema changes of existing databases, by the version they lead to; each runs inside the opening transaction,
# before SCHEMA (which creates what is new and sets user_version).
_DEFAULT_UNIT_SQL: Final = (
    "CASE WHEN measurand LIKE 'Power.Reactive.%' THEN 'var' WHEN measurand = 'Power.Factor' THEN '' "
    "WHEN measurand LIKE 'Power.%' THEN 'W' WHEN measurand LIKE 'Current.%' THEN 'A' "
    "WHEN measurand = 'Voltage' THEN 'V' WHEN measurand = 'Temperature' THEN 'Celsius' "
    "WHEN measurand = 'SoC' THEN 'Percent' ELSE '' END"
)
MIGRATIONS: Final[dict[int, str]] = {
    # 2: meter samples keep their location and are deduplicated on every identifying field (samples that
    # differed only in location, context or unit were dropped); transactions keep the idTag status given at
    # their start. Version 1 stored "Wh" for every sample without a unit: for a measurand that is not energy,
    # that "Wh" was the wrong default, replaced by the measurand's own (OCPP 1.6 §7.45).
    2: f"""
ALTER TABLE transactions ADD COLUMN id_tag_status TEXT;
CREATE TABLE meter_values_v2 (
    transaction_id INTEGER NOT NULL REFERENCES transactions(id),
    timestamp TEXT NOT NULL,
    measurand TEXT NOT NULL,
    phase TEXT NOT NULL DEFAULT '',
    location TEXT NOT NULL DEFAULT '',
    context TEXT NOT NULL DEFAULT '',
    unit TEXT NOT NULL DEFAULT '',
    value REAL NOT NULL,
    PRIMARY KEY (transaction_id, timestamp, measurand, phase, location, context, unit)
) WITHOUT ROWID;
INSERT OR IGNORE INTO meter_values_v2 (transaction_id, timestamp, measurand, phase, location, context, unit, value)
SELECT transaction_id, timestamp, measurand, phase, '', COALESCE(context, ''),
       CASE WHEN unit = 'Wh' AND measurand NOT LIKE 'Energy.%' THEN {_DEFAULT_UNIT_SQL} ELSE unit END, value
FROM meter_values;
DROP TABLE meter_values;
ALTER TABLE meter_values_v2 RENAME TO meter_values;
""",
}


# ---------------------------------------------------------------------------------------------- rows


@dataclass(frozen=True, slots=True)
class Charger:
    """A registered charger; the password hash never leaves the store."""

    id: str
    status: ChargerStatus
    has_password: bool
    vendor: str | None
    model: str | None
    firmware: str | None
    serial_number: str | None
    last_boot: datetime | None
    last_heartbeat: datetime | None
    diagnostics_status: str | None
    firmware_status: str | None
    tariff_id: str | None
    created_at: datetime
    # The highest OCPP security profile it has connected with (0 none, 1 Basic, 2 Basic over TLS, 3 client
    # certificate); a lower one is refused from then on.
    security_profile: int = 0


@dataclass(frozen=True, slots=True)
class ConnectorStatus:
    """The latest StatusNotification of one connector (0 is the charger as a whole)."""

    cp_id: str
    connector_id: int
    status: str
    error_code: str
    info: str | None
    timestamp: datetime


@dataclass(frozen=True, slots=True)
class User:
    """A customer."""

    id: int
    name: str
    phone: str | None
    email: str | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Card:
    """An RFID card (id_tag compared case-insensitively, as OCPP CiString requires)."""

    id_tag: str
    user_id: int | None
    mode: CardMode
    status: CardStatus
    expiry: datetime | None
    balance_minor: int
    created_at: datetime


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    """One immutable ledger entry; amount_minor is signed (credit > 0)."""

    id: int
    id_tag: str
    kind: LedgerKind
    amount_minor: int
    transaction_id: int | None
    payment_id: int | None
    idempotency_key: str
    created_at: datetime
    note: str


@dataclass(frozen=True, slots=True)
class BalanceMismatch:
    """A card whose cached balance disagrees with the sum of its ledger entries."""

    id_tag: str
    cached_minor: int
    ledger_minor: int


@dataclass(frozen=True, slots=True)
class MeterSample:
    """One sampled value of a MeterValues message."""

    timestamp: datetime
    value: float
    measurand: str = ENERGY_REGISTER
    unit: str | None = "Wh"  # None: the measurand has no unit in OCPP 1.6 (Frequency, RPM, Power.Factor)
    phase: str | None = None
    context: str | None = None
    location: str | None = None  # None: the default, Outlet (OCPP 1.6 §7.45)


@dataclass(frozen=True, slots=True)
class Transaction:
    """A charging session as the central system knows it."""

    id: int
    cp_id: str
    connector_id: int
    id_tag: str
    meter_start_wh: int
    started_at: datetime
    last_meter_wh: int
    meter_stop_wh: int | None
    stopped_at: datetime | None
    stop_reason: str | None
    cost_minor: int | None
    cdr_json: str | None
    id_tag_status: str | None = None  # the idTagInfo status the StartTransaction was answered with

    @property
    def active(self) -> bool:
        """True until StopTransaction was recorded."""
        return self.stopped_at is None

    @property
    def energy_wh(self) -> int:
        """Energy delivered so far (never negative, even if a meter was replaced mid-session)."""
        end = self.meter_stop_wh if self.meter_stop_wh is not None else self.last_meter_wh
        return max(0, end - self.meter_start_wh)


@dataclass(frozen=True, slots=True)
class StopResult:
    """Outcome of stop_transaction; charge is None when the id_tag is no known card."""

    already_stopped: bool
    transaction: Transaction
    charge: LedgerEntry | None


@dataclass(frozen=True, slots=True)
class SecurityEvent:
    """Something a charger did to data that is not its own, or sent that could not be used."""

    id: int
    at: datetime
    cp_id: str
    kind: SecurityEventKind
    transaction_id: int | None
    detail: str


@dataclass(frozen=True, slots=True)
class Payment:
    """A payment made at a charger (e.g. by QR code)."""

    id: int
    cp_id: str
    connector_id: int
    amount_minor: int
    status: PaymentStatus
    provider: str
    provider_ref: str | None
    id_tag: str | None
    transaction_id: int | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class PaymentUpdate:
    """Outcome of a payment transition; changed is False for repeated or stale callbacks."""

    payment: Payment
    changed: bool


class Authorization(NamedTuple):
    """Answer for Authorize/StartTransaction: an OCPP status and a human-readable reason."""

    status: AuthStatus
    reason: str


@dataclass(frozen=True, slots=True)
class DailyStats:
    """One local day of one charger."""

    day: date
    charging_s: float
    energy_wh: int
    sessions: int
    fees_minor: int

    @property
    def working_hours(self) -> float:
        """Connector-hours spent in Charging."""
        return self.charging_s / 3600

    @property
    def energy_kwh(self) -> float:
        """Energy of sessions that ended this day, in kWh."""
        return self.energy_wh / 1000


@dataclass(frozen=True, slots=True)
class SessionSummary:
    """One finished session in a consumption report."""

    transaction_id: int
    cp_id: str
    connector_id: int
    id_tag: str
    started_at: datetime
    stopped_at: datetime
    energy_wh: int
    cost_minor: int


@dataclass(frozen=True, slots=True)
class UserConsumption:
    """All finished sessions of a user's cards, with totals."""

    user_id: int
    sessions: tuple[SessionSummary, ...]
    energy_wh: int
    cost_minor: int


CostFn = Callable[[Transaction], tuple[int, str]]
"""Prices a stopped transaction: (cost in minor units, CDR as JSON text). Runs inside the write transaction."""

_E = TypeVar("_E", bound=enum.StrEnum)


# ---------------------------------------------------------------------------------------------- helpers


def _ts(value: datetime, name: str = "timestamp") -> str:
    """Aware datetime -> fixed-width UTC ISO-8601 text, so equal instants compare equal as text."""
    if not isinstance(value, datetime) or value.tzinfo is None or value.utcoffset() is None:
        raise InvalidInput(f"{name} must be a timezone-aware datetime, got {value!r}")
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def _dt(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _opt_dt(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


def _enum(cls: type[_E], value: str, name: str) -> _E:
    try:
        return cls(value)
    except ValueError:
        allowed = ", ".join(m.value for m in cls)
        raise InvalidInput(f"{name} must be one of {allowed}, got {value!r}") from None


def _int(value: int, name: str, *, low: int, high: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise InvalidInput(f"{name} must be an integer in [{low}, {high}], got {value!r}")
    return value


def _text(value: str, name: str, *, max_len: int = MAX_TEXT_LENGTH, empty: bool = False) -> str:
    if not isinstance(value, str) or len(value) > max_len or (not empty and not value):
        raise InvalidInput(
            f"{name} must be a {'' if empty else 'non-empty '}string of at most {max_len} chars"
        )
    return value


def _opt_text(value: str | None, name: str, *, max_len: int = MAX_TEXT_LENGTH) -> str | None:
    return None if value is None else _text(value, name, max_len=max_len, empty=True)


def _id_tag(value: str) -> str:
    return _text(value, "id_tag", max_len=MAX_ID_TAG_LENGTH)


def _hash_password(password: str, salt: bytes) -> str:
    digest = hashlib.scrypt(
        password.encode("utf-8", "surrogatepass"), salt=salt, n=_SCRYPT_N, r=_SCRYPT_R, p=_SCRYPT_P, dklen=32
    )
    return f"scrypt${_SCRYPT_N}${_SCRYPT_R}${_SCRYPT_P}${salt.hex()}${digest.hex()}"


def _check_password(stored: str, password: str) -> bool:
    try:
        scheme, n, r, p, salt_hex, digest_hex = stored.split("$")
        if scheme != "scrypt":
            raise ValueError(scheme)
        expected = bytes.fromhex(digest_hex)
        actual = hashlib.scrypt(
            password.encode("utf-8", "surrogatepass"),
            salt=bytes.fromhex(salt_hex),
            n=int(n),
            r=int(r),
            p=int(p),
            dklen=len(expected),
        )
    except ValueError as exc:
        raise StoreError(f"malformed password hash: {exc}") from exc
    return hmac.compare_digest(actual, expected)


def _csv_cell(value: object) -> object:
    """Neutralise spreadsheet formulas in text cells (CSV injection); numbers pass unchanged."""
    if isinstance(value, str) and value.startswith(_CSV_FORMULA_START):
        return "'" + value
    return value


def _csv(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows([[_csv_cell(v) for v in row] for row in rows])
    return out.getvalue()


def _charger(row: sqlite3.Row) -> Charger:
    return Charger(
        id=row["id"],
        status=ChargerStatus(row["status"]),
        has_password=row["password_hash"] is not None,
        vendor=row["vendor"],
        model=row["model"],
        firmware=row["firmware"],
        serial_number=row["serial_number"],
        last_boot=_opt_dt(row["last_boot"]),
        last_heartbeat=_opt_dt(row["last_heartbeat"]),
        diagnostics_status=row["diagnostics_status"],
        firmware_status=row["firmware_status"],
        tariff_id=row["tariff_id"],
        created_at=_dt(row["created_at"]),
        security_profile=row["security_profile"],
    )


def _connector(row: sqlite3.Row) -> ConnectorStatus:
    return ConnectorStatus(
        cp_id=row["cp_id"],
        connector_id=row["connector_id"],
        status=row["status"],
        error_code=row["error_code"],
        info=row["info"],
        timestamp=_dt(row["timestamp"]),
    )


def _user(row: sqlite3.Row) -> User:
    return User(
        id=row["id"],
        name=row["name"],
        phone=row["phone"],
        email=row["email"],
        created_at=_dt(row["created_at"]),
    )


def _card(row: sqlite3.Row) -> Card:
    return Card(
        id_tag=row["id_tag"],
        user_id=row["user_id"],
        mode=CardMode(row["mode"]),
        status=CardStatus(row["status"]),
        expiry=_opt_dt(row["expiry"]),
        balance_minor=row["balance_minor"],
        created_at=_dt(row["created_at"]),
    )


def _entry(row: sqlite3.Row) -> LedgerEntry:
    return LedgerEntry(
        id=row["id"],
        id_tag=row["id_tag"],
        kind=LedgerKind(row["kind"]),
        amount_minor=row["amount_minor"],
        transaction_id=row["transaction_id"],
        payment_id=row["payment_id"],
        idempotency_key=row["idempotency_key"],
        created_at=_dt(row["created_at"]),
        note=row["note"],
    )


def _transaction(row: sqlite3.Row) -> Transaction:
    return Transaction(
        id=row["id"],
        cp_id=row["cp_id"],
        connector_id=row["connector_id"],
        id_tag=row["id_tag"],
        meter_start_wh=row["meter_start_wh"],
        started_at=_dt(row["started_at"]),
        last_meter_wh=row["last_meter_wh"],
        meter_stop_wh=row["meter_stop_wh"],
        stopped_at=_opt_dt(row["stopped_at"]),
        stop_reason=row["stop_reason"],
        cost_minor=row["cost_minor"],
        cdr_json=row["cdr_json"],
        id_tag_status=row["id_tag_status"],
    )


def _security_event(row: sqlite3.Row) -> SecurityEvent:
    return SecurityEvent(
        id=row["id"],
        at=_dt(row["at"]),
        cp_id=row["cp_id"],
        kind=SecurityEventKind(row["kind"]),
        transaction_id=row["transaction_id"],
        detail=row["detail"],
    )


def _payment(row: sqlite3.Row) -> Payment:
    return Payment(
        id=row["id"],
        cp_id=row["cp_id"],
        connector_id=row["connector_id"],
        amount_minor=row["amount_minor"],
        status=PaymentStatus(row["status"]),
        provider=row["provider"],
        provider_ref=row["provider_ref"],
        id_tag=row["id_tag"],
        transaction_id=row["transaction_id"],
        created_at=_dt(row["created_at"]),
        updated_at=_dt(row["updated_at"]),
    )


def _reachable(start: PaymentStatus) -> set[PaymentStatus]:
    """Statuses reachable from start by zero or more transitions."""
    seen = {start}
    todo = [start]
    while todo:
        for nxt in PAYMENT_TRANSITIONS[todo.pop()]:
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def _utc_now() -> datetime:
    return datetime.now(UTC)


# ---------------------------------------------------------------------------------------------- store


class CsmsStore:
    """Synchronous repository over one SQLite file; safe to share between threads (calls are serialised)."""

    def __init__(
        self, path: str | Path, *, clock: Callable[[], datetime] = _utc_now, durable: bool = False
    ) -> None:
        """Open (creating if needed) the database and its schema; raises StoreError."""
        self.path = str(path)
        self._clock = clock
        self._lock = threading.RLock()
        try:
            if self.path != ":memory:":
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=10)
        except (sqlite3.Error, OSError) as exc:
            raise StoreError(f"cannot open store {self.path}: {exc}") from exc
        try:
            self._db.row_factory = sqlite3.Row
            self._db.execute("PRAGMA journal_mode=WAL")
            # NORMAL in WAL mode never corrupts the database and loses nothing on a process crash (the
            # common failure: the WAL is in the OS page cache). Only an OS crash or power cut may undo the
            # last few commits. The CSMS runs on server hardware and must absorb thousands of MeterValues
            # per second, which one fsync per commit (FULL) would cap at the disk's fsync rate; pass
            # durable=True where losing an acknowledged top-up to a power cut is unacceptable.
            self._db.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
            self._db.execute("PRAGMA foreign_keys=ON")
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise StoreError(
                    f"{self.path} has schema version {version}; this code knows {SCHEMA_VERSION}"
                )
            # An existing database is migrated in the same transaction that brings its schema up to date.
            migrations = "".join(
                MIGRATIONS[v] for v in range(version + 1, SCHEMA_VERSION + 1) if version and v in MIGRATIONS
            )
            self._db.executescript(f"BEGIN IMMEDIATE;\n{migrations}\n{SCHEMA}\nCOMMIT;")
        except sqlite3.Error as exc:
            self._db.close()
            raise StoreError(f"cannot open store {self.path}: {exc}") from exc
        except StoreError:
            self._db.close()
            raise
        self._add_columns()

    def _add_columns(self) -> None:
        """Add the columns of `_ADDED_COLUMNS` that an older store lacks (whatever its user_version)."""
        try:
            for table, column, declaration in _ADDED_COLUMNS:
                columns = {r["name"] for r in self._db.execute(f"PRAGMA table_info({table})").fetchall()}
                if column not in columns:
                    self._db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {declaration}")
        except sqlite3.Error as exc:
            self._db.close()
            raise StoreError(f"cannot open store {self.path}: {exc}") from exc

    def close(self) -> None:
        """Close the database (idempotent)."""
        with self._lock:
            self._db.close()

    def __enter__(self) -> Self:
        """Use the store as a context manager that closes it."""
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        """Close the store."""
        self.close()

    # -- plumbing

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One atomic write transaction; any error rolls it back, sqlite3 errors become StoreError."""
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise StoreError(f"cannot begin write: {exc}") from exc
            try:
                yield self._db
                self._db.execute("COMMIT")
            except BaseException as exc:
                try:
                    if self._db.in_transaction:
                        self._db.execute("ROLLBACK")
                except sqlite3.Error:
                    pass  # the original error is the one worth reporting
                if isinstance(exc, sqlite3.IntegrityError):
                    raise Conflict(f"store write rejected: {exc}") from exc
                if isinstance(exc, sqlite3.Error):
                    raise StoreError(f"store write failed: {exc}") from exc
                if isinstance(exc, OverflowError):
                    raise InvalidInput(f"value out of range: {exc}") from exc
                raise

    def _read(self, sql: str, args: Sequence[object] = ()) -> list[sqlite3.Row]:
        with self._lock:
            try:
                return self._db.execute(sql, tuple(args)).fetchall()
            except sqlite3.Error as exc:
                raise StoreError(f"store read failed: {exc}") from exc
            except OverflowError as exc:
                raise InvalidInput(f"value out of range: {exc}") from exc

    def _now(self) -> str:
        return _ts(self._clock(), "clock()")

    @staticmethod
    def _charger_row(db: sqlite3.Connection, cp_id: str) -> sqlite3.Row:
        row: sqlite3.Row | None = db.execute("SELECT * FROM chargers WHERE id = ?", (cp_id,)).fetchone()
        if row is None:
            raise UnknownCharger(f"unknown charger {cp_id!r}")
        return row

    @staticmethod
    def _card_row(db: sqlite3.Connection, id_tag: str) -> sqlite3.Row | None:
        row: sqlite3.Row | None = db.execute("SELECT * FROM cards WHERE id_tag = ?", (id_tag,)).fetchone()
        return row

    # -- settings

    def currency(self) -> str:
        """The installation's ISO 4217 currency (default EUR)."""
        return str(self._read("SELECT value FROM settings WHERE name = 'currency'")[0]["value"])

    def set_currency(self, code: str) -> None:
        """Set the currency; refused once the ledger has entries, since amounts carry no currency."""
        if not isinstance(code, str) or not _CURRENCY.fullmatch(code):
            raise InvalidInput(f"currency must be an ISO 4217 code like 'EUR', got {code!r}")
        with self._write() as db:
            current = db.execute("SELECT value FROM settings WHERE name = 'currency'").fetchone()["value"]
            if current == code:
                return
            if db.execute("SELECT 1 FROM ledger LIMIT 1").fetchone() is not None:
                raise Conflict(f"cannot change currency from {current} to {code}: the ledger has entries")
            db.execute("UPDATE settings SET value = ? WHERE name = 'currency'", (code,))

    def admin_token_digest(self) -> str | None:
        """SHA-256 hex digest of the REST API's admin token, or None before the first start."""
        rows = self._read("SELECT value FROM settings WHERE name = 'admin_token_sha256'")
        return str(rows[0]["value"]) if rows else None

    def set_admin_token_digest(self, digest: str) -> None:
        """Store the admin token's SHA-256 hex digest (the token itself is never stored)."""
        if not isinstance(digest, str) or not re.fullmatch(r"[0-9a-f]{64}", digest):
            raise InvalidInput("admin token digest must be 64 lowercase hex digits")
        with self._write() as db:
            db.execute("INSERT OR REPLACE INTO settings VALUES ('admin_token_sha256', ?)", (digest,))

    def min_balance_minor(self) -> int:
        """Minimum balance a prepaid card needs to be authorized (default 0)."""
        return int(self._read("SELECT value FROM settings WHERE name = 'min_balance_minor'")[0]["value"])

    def set_min_balance_minor(self, amount_minor: int) -> None:
        """Set the prepaid minimum balance."""
        _int(amount_minor, "min_balance_minor", low=-MAX_AMOUNT_MINOR, high=MAX_AMOUNT_MINOR)
        with self._write() as db:
            db.execute("UPDATE settings SET value = ? WHERE name = 'min_balance_minor'", (str(amount_minor),))

    def default_tariff_id(self) -> str | None:
        """The tariff for chargers without their own."""
        rows = self._read("SELECT value FROM settings WHERE name = 'default_tariff_id'")
        return str(rows[0]["value"]) if rows else None

    def set_default_tariff_id(self, tariff_id: str | None) -> None:
        """Set or clear the default tariff."""
        _opt_text(tariff_id, "tariff_id")
        with self._write() as db:
            if tariff_id is None:
                db.execute("DELETE FROM settings WHERE name = 'default_tariff_id'")
            else:
                db.execute("INSERT OR REPLACE INTO settings VALUES ('default_tariff_id', ?)", (tariff_id,))

    # -- chargers

    def add_charger(
        self,
        cp_id: str,
        password: str | None = None,
        *,
        status: ChargerStatus | str = ChargerStatus.ACCEPTED,
        tariff_id: str | None = None,
    ) -> Charger:
        """Register a charger; raises Conflict if the id exists."""
        _text(cp_id, "cp_id", max_len=255)
        state = _enum(ChargerStatus, status, "status")
        _opt_text(tariff_id, "tariff_id")
        hashed = (
            None if password is None else _hash_password(_text(password, "password"), os.urandom(_SALT_BYTES))
        )
        with self._write() as db:
            if db.execute("SELECT 1 FROM chargers WHERE id = ?", (cp_id,)).fetchone() is not None:
                raise Conflict(f"charger {cp_id!r} exists")
            db.execute(
                "INSERT INTO chargers (id, password_hash, status, tariff_id, created_at) VALUES (?, ?, ?, ?, ?)",
                (cp_id, hashed, state.value, tariff_id, self._now()),
            )
            return _charger(self._charger_row(db, cp_id))

    def admit_unknown(
        self, cp_id: str, *, max_pending: int | None = None, expire_before: datetime | None = None
    ) -> Charger | None:
        """Return the charger, first registering an unknown one as pending (never changes a known one).

        Pending chargers without a password, transactions or a boot since ``expire_before`` are deleted first;
        then None (nothing registered) if ``max_pending`` pending chargers remain.
        """
        _text(cp_id, "cp_id", max_len=255)
        with self._write() as db:
            row = db.execute("SELECT * FROM chargers WHERE id = ?", (cp_id,)).fetchone()
            if row is not None:
                return _charger(row)
            if expire_before is not None:
                self._expire_pending(db, _ts(expire_before, "expire_before"))
            if max_pending is not None:
                pending = db.execute("SELECT COUNT(*) FROM chargers WHERE status = 'pending'").fetchone()[0]
                if pending >= max_pending:
                    return None
            db.execute(
                "INSERT INTO chargers (id, status, created_at) VALUES (?, 'pending', ?)", (cp_id, self._now())
            )
            return _charger(self._charger_row(db, cp_id))

    def expire_pending(self, before: datetime) -> int:
        """Delete pending chargers nobody accepted that have not booted since ``before``; returns how many."""
        with self._write() as db:
            return self._expire_pending(db, _ts(before, "before"))

    @staticmethod
    def _expire_pending(db: sqlite3.Connection, before: str) -> int:
        stale = "SELECT id FROM chargers WHERE status = 'pending' AND password_hash IS NULL"
        stale += " AND COALESCE(last_boot, created_at) < ?"
        stale += " AND NOT EXISTS (SELECT 1 FROM transactions t WHERE t.cp_id = chargers.id)"
        ids = [r[0] for r in db.execute(stale, (before,)).fetchall()]
        for cp_id in ids:
            db.execute("DELETE FROM status_history WHERE cp_id = ?", (cp_id,))
            db.execute("DELETE FROM connectors WHERE cp_id = ?", (cp_id,))
            db.execute("DELETE FROM chargers WHERE id = ?", (cp_id,))
        return len(ids)

    def set_security_profile(self, cp_id: str, profile: int) -> Charger:
        """Set the recorded security profile (0-3), lower too: the operator's decision, e.g. after a lost key."""
        _int(profile, "security_profile", low=0, high=3)
        with self._write() as db:
            self._charger_row(db, cp_id)
            db.execute("UPDATE chargers SET security_profile = ? WHERE id = ?", (profile, cp_id))
            return _charger(self._charger_row(db, cp_id))

    def raise_security_profile(self, cp_id: str, profile: int) -> Charger:
        """Record that the charger connected with security ``profile`` (0-3); the record never goes down."""
        _int(profile, "security_profile", low=0, high=3)
        with self._write() as db:
            self._charger_row(db, cp_id)
            db.execute(
                "UPDATE chargers SET security_profile = MAX(security_profile, ?) WHERE id = ?",
                (profile, cp_id),
            )
            return _charger(self._charger_row(db, cp_id))

    def charger(self, cp_id: str) -> Charger | None:
        """The charger, or None."""
        rows = self._read("SELECT * FROM chargers WHERE id = ?", (cp_id,))
        return _charger(rows[0]) if rows else None

    def chargers(self) -> list[Charger]:
        """All chargers by id."""
        return [_charger(r) for r in self._read("SELECT * FROM chargers ORDER BY id")]

    def set_password(self, cp_id: str, password: str | None) -> None:
        """Set (freshly salted) or clear a charger's password."""
        hashed = (
            None if password is None else _hash_password(_text(password, "password"), os.urandom(_SALT_BYTES))
        )
        with self._write() as db:
            self._charger_row(db, cp_id)
            db.execute("UPDATE chargers SET password_hash = ? WHERE id = ?", (hashed, cp_id))

    def verify_password(self, cp_id: str, password: str) -> bool:
        """True if the charger exists and has this password; costs one scrypt run whatever the outcome."""
        rows = self._read("SELECT password_hash FROM chargers WHERE id = ?", (cp_id,))
        stored: str | None = rows[0]["password_hash"] if rows else None
        if not isinstance(password, str):
            password = ""
        ok = _check_password(stored or _DUMMY_HASH, password)
        return ok and stored is not None

    def set_charger_status(self, cp_id: str, status: ChargerStatus | str) -> Charger:
        """Accept, keep pending or reject a charger."""
        state = _enum(ChargerStatus, status, "status")
        with self._write() as db:
            self._charger_row(db, cp_id)
            db.execute("UPDATE chargers SET status = ? WHERE id = ?", (state.value, cp_id))
            return _charger(self._charger_row(db, cp_id))

    def set_charger_tariff(self, cp_id: str, tariff_id: str | None) -> None:
        """Give a charger its own tariff, or None for the default."""
        _opt_text(tariff_id, "tariff_id")
        with self._write() as db:
            self._charger_row(db, cp_id)
            db.execute("UPDATE chargers SET tariff_id = ? WHERE id = ?", (tariff_id, cp_id))

    def put_tariff(self, tariff_id: str, ocpi_json: str) -> None:
        """Add or replace a tariff (OCPI 2.2.1 JSON, validated by the caller)."""
        _text(tariff_id, "tariff_id", max_len=36)
        json.loads(ocpi_json)
        with self._write() as db:
            db.execute(
                "INSERT OR REPLACE INTO tariffs (id, ocpi_json, updated_at) VALUES (?, ?, ?)",
                (tariff_id, ocpi_json, _ts(self._clock())),
            )

    def tariff_json(self, tariff_id: str) -> str | None:
        """A tariff's OCPI JSON, or None."""
        rows = self._read("SELECT ocpi_json FROM tariffs WHERE id = ?", (tariff_id,))
        return str(rows[0]["ocpi_json"]) if rows else None

    def tariff_ids(self) -> list[str]:
        """Every stored tariff id."""
        return [str(r["id"]) for r in self._read("SELECT id FROM tariffs ORDER BY id")]

    def tariff_for(self, cp_id: str) -> str | None:
        """The charger's tariff id, else the default tariff id."""
        charger = self.charger(cp_id)
        if charger is None:
            raise UnknownCharger(f"unknown charger {cp_id!r}")
        return charger.tariff_id if charger.tariff_id is not None else self.default_tariff_id()

    def record_boot(
        self,
        cp_id: str,
        *,
        vendor: str,
        model: str,
        firmware: str | None = None,
        serial_number: str | None = None,
        timestamp: datetime,
    ) -> Charger:
        """Store what a BootNotification said."""
        for name, value in (("vendor", vendor), ("model", model)):
            _text(value, name, empty=True)
        _opt_text(firmware, "firmware")
        _opt_text(serial_number, "serial_number")
        at = _ts(timestamp)
        with self._write() as db:
            self._charger_row(db, cp_id)
            db.execute(
                "UPDATE chargers SET vendor = ?, model = ?, firmware = ?, serial_number = ?, last_boot = ? "
                "WHERE id = ?",
                (vendor, model, firmware, serial_number, at, cp_id),
            )
            return _charger(self._charger_row(db, cp_id))

    def record_heartbeat(self, cp_id: str, timestamp: datetime) -> None:
        """Store the time of the latest Heartbeat (or any message that proves liveness)."""
        at = _ts(timestamp)
        with self._write() as db:
            self._charger_row(db, cp_id)
            db.execute("UPDATE chargers SET last_heartbeat = ? WHERE id = ?", (at, cp_id))

    def set_diagnostics_status(self, cp_id: str, status: str) -> None:
        """Store a DiagnosticsStatusNotification status."""
        _text(status, "status", max_len=255)
        with self._write() as db:
            self._charger_row(db, cp_id)
            db.execute("UPDATE chargers SET diagnostics_status = ? WHERE id = ?", (status, cp_id))

    def set_firmware_status(self, cp_id: str, status: str) -> None:
        """Store a FirmwareStatusNotification status."""
        _text(status, "status", max_len=255)
        with self._write() as db:
            self._charger_row(db, cp_id)
            db.execute("UPDATE chargers SET firmware_status = ? WHERE id = ?", (status, cp_id))

    def record_status(
        self,
        cp_id: str,
        connector_id: int,
        status: str,
        timestamp: datetime,
        *,
        error_code: str = "NoError",
        info: str | None = None,
    ) -> bool:
        """Append a StatusNotification to the history and update the live status; False for a duplicate."""
        _int(connector_id, "connector_id", low=0, high=10_000)
        _text(status, "status", max_len=255)
        _text(error_code, "error_code", max_len=255)
        _opt_text(info, "info")
        at = _ts(timestamp)
        with self._write() as db:
            self._charger_row(db, cp_id)
            cur = db.execute(
                "INSERT OR IGNORE INTO status_history (cp_id, connector_id, status, error_code, info, timestamp) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (cp_id, connector_id, status, error_code, info, at),
            )
            # Queued notifications arrive late after an outage: an older one must not overwrite the live status.
            db.execute(
                "INSERT INTO connectors (cp_id, connector_id, status, error_code, info, timestamp) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (cp_id, connector_id) DO UPDATE SET "
                "status = excluded.status, error_code = excluded.error_code, info = excluded.info, "
                "timestamp = excluded.timestamp WHERE excluded.timestamp >= connectors.timestamp",
                (cp_id, connector_id, status, error_code, info, at),
            )
            return cur.rowcount == 1

    def connectors(self, cp_id: str) -> list[ConnectorStatus]:
        """Live status of each connector that has reported, by connector id."""
        rows = self._read("SELECT * FROM connectors WHERE cp_id = ? ORDER BY connector_id", (cp_id,))
        return [_connector(r) for r in rows]

    def all_connectors(self) -> list[ConnectorStatus]:
        """Live status of every reported connector of every charger, by charger and connector id (one query)."""
        return [_connector(r) for r in self._read("SELECT * FROM connectors ORDER BY cp_id, connector_id")]

    def status_history(self, cp_id: str, connector_id: int | None = None) -> list[ConnectorStatus]:
        """Recorded StatusNotifications in time order."""
        sql = "SELECT * FROM status_history WHERE cp_id = ?"
        args: list[object] = [cp_id]
        if connector_id is not None:
            sql += " AND connector_id = ?"
            args.append(connector_id)
        return [_connector(r) for r in self._read(sql + " ORDER BY timestamp, id", args)]

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

    def authorize(self, id_tag: str, now: datetime, min_balance_minor: int | None = None) -> Authorization:
        """Decide Accepted | Blocked | Expired | Invalid for an id_tag (min balance: setting if None)."""
        at = _ts(now, "now")
        if not isinstance(id_tag, str) or not 1 <= len(id_tag) <= MAX_ID_TAG_LENGTH:
            return Authorization(AuthStatus.INVALID, "id_tag is not a 1-20 character string")
        minimum = self.min_balance_minor() if min_balance_minor is None else min_balance_minor
        _int(minimum, "min_balance_minor", low=-MAX_AMOUNT_MINOR, high=MAX_AMOUNT_MINOR)
        card = self.card(id_tag)
        if card is None:
            return Authorization(AuthStatus.INVALID, "unknown card")
        if card.status is CardStatus.BLOCKED:
            return Authorization(AuthStatus.BLOCKED, "card is blocked")
        if card.expiry is not None and _ts(card.expiry) <= at:
            return Authorization(AuthStatus.EXPIRED, f"card expired at {card.expiry.isoformat()}")
        if card.mode is CardMode.PREPAID:
            balance = self.balance(card.id_tag)
            if balance < minimum:
                currency = self.currency()
                return Authorization(
                    AuthStatus.BLOCKED,
                    f"insufficient balance: {balance} is below the minimum of {minimum} ({currency} minor units)",
                )
        return Authorization(AuthStatus.ACCEPTED, "ok")

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

    # -- transactions

    def start_transaction(
        self,
        cp_id: str,
        connector_id: int,
        id_tag: str,
        meter_start_wh: int,
        timestamp: datetime,
        *,
        id_tag_status: AuthStatus | str | None = None,
    ) -> int:
        """Record a StartTransaction and return its id; a resent identical start gets the same id."""
        _int(connector_id, "connector_id", low=1, high=10_000)
        _id_tag(id_tag)
        _int(meter_start_wh, "meter_start_wh", low=0, high=MAX_METER_WH)
        status = None if id_tag_status is None else _enum(AuthStatus, str(id_tag_status), "id_tag_status")
        at = _ts(timestamp)
        with self._write() as db:
            self._charger_row(db, cp_id)
            row = db.execute(
                "SELECT id FROM transactions WHERE cp_id = ? AND connector_id = ? AND id_tag = ? "
                "AND started_at = ? AND meter_start_wh = ?",
                (cp_id, connector_id, id_tag, at, meter_start_wh),
            ).fetchone()
            if row is not None:
                return int(row["id"])
            # AUTOINCREMENT: ids are never reused, so a charger's stale id cannot hit a newer session.
            cur = db.execute(
                "INSERT INTO transactions (cp_id, connector_id, id_tag, meter_start_wh, started_at, last_meter_wh, "
                "id_tag_status) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (cp_id, connector_id, id_tag, meter_start_wh, at, meter_start_wh, status),
            )
            return int(cur.lastrowid or 0)

    def set_id_tag_status(self, cp_id: str, transaction_id: int, status: AuthStatus | str) -> None:
        """Record the idTagInfo status a charger's StartTransaction was finally answered with."""
        value = _enum(AuthStatus, str(status), "status")
        with self._write() as db:
            self._own_transaction_row(db, cp_id, transaction_id)
            db.execute("UPDATE transactions SET id_tag_status = ? WHERE id = ?", (value, transaction_id))

    @staticmethod
    def _own_transaction_row(db: sqlite3.Connection, cp_id: str, transaction_id: int) -> sqlite3.Row:
        """The transaction ``transaction_id`` of charger ``cp_id``; raises ForeignTransaction or UnknownTransaction.

        Every OCPP message acts only on its sender's own data: a transaction is looked up by (charger, id).
        """
        _int(transaction_id, "transaction_id", low=-(2**63), high=2**63 - 1)
        row: sqlite3.Row | None = db.execute(
            "SELECT * FROM transactions WHERE id = ? AND cp_id = ?", (transaction_id, cp_id)
        ).fetchone()
        if row is not None:
            return row
        if db.execute("SELECT 1 FROM transactions WHERE id = ?", (transaction_id,)).fetchone() is not None:
            raise ForeignTransaction(f"transaction {transaction_id!r} is not one of {cp_id!r}'s")
        raise UnknownTransaction(f"unknown transaction {transaction_id!r}")

    def transaction(self, transaction_id: int) -> Transaction:
        """The transaction; raises UnknownTransaction."""
        rows = self._read("SELECT * FROM transactions WHERE id = ?", (transaction_id,))
        if not rows:
            raise UnknownTransaction(f"unknown transaction {transaction_id!r}")
        return _transaction(rows[0])

    def active_transactions(self, cp_id: str | None = None) -> list[Transaction]:
        """Transactions without a stop, all or of one charger."""
        sql = "SELECT * FROM transactions WHERE stopped_at IS NULL"
        args: tuple[object, ...] = ()
        if cp_id is not None:
            sql, args = sql + " AND cp_id = ?", (cp_id,)
        return [_transaction(r) for r in self._read(sql + " ORDER BY id", args)]

    def recent_transactions(
        self,
        *,
        cp_id: str | None = None,
        user_id: int | None = None,
        id_tag: str | None = None,
        limit: int = 100,
    ) -> list[Transaction]:
        """Transactions newest first, optionally only of one charger, of one user's cards or of one card."""
        _int(limit, "limit", low=1, high=10_000)
        clauses: list[str] = []
        args: list[object] = []
        if cp_id is not None:
            clauses.append("t.cp_id = ?")
            args.append(cp_id)
        if user_id is not None:
            clauses.append("t.id_tag IN (SELECT id_tag FROM cards WHERE user_id = ?)")
            args.append(user_id)
        if id_tag is not None:
            clauses.append("t.id_tag = ?")
            args.append(id_tag)
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = self._read(f"SELECT t.* FROM transactions t{where} ORDER BY t.id DESC LIMIT ?", [*args, limit])
        return [_transaction(r) for r in rows]

    def user_entries(self, user_id: int, limit: int = 500) -> list[LedgerEntry]:
        """Ledger entries of all of a user's cards, newest first."""
        _int(limit, "limit", low=1, high=100_000)
        rows = self._read(
            "SELECT * FROM ledger WHERE id_tag IN (SELECT id_tag FROM cards WHERE user_id = ?) "
            "ORDER BY id DESC LIMIT ?",
            (user_id, limit),
        )
        return [_entry(r) for r in rows]

    def add_meter_values(self, cp_id: str, transaction_id: int, samples: Sequence[MeterSample]) -> int:
        """Store samples of ``cp_id``'s own transaction (duplicates ignored) and return how many were new.

        Raises ForeignTransaction for another charger's transaction, UnknownTransaction for none.
        """
        with self._write() as db:
            self._own_transaction_row(db, cp_id, transaction_id)
            return self._insert_samples(db, transaction_id, samples)

    def meter_values(self, transaction_id: int) -> list[MeterSample]:
        """A transaction's samples in time order."""
        rows = self._read(
            "SELECT * FROM meter_values WHERE transaction_id = ? "
            "ORDER BY timestamp, measurand, phase, location, context, unit",
            (transaction_id,),
        )
        return [
            MeterSample(
                timestamp=_dt(r["timestamp"]),
                value=r["value"],
                measurand=r["measurand"],
                unit=r["unit"] or None,
                phase=r["phase"] or None,
                context=r["context"] or None,
                location=r["location"] or None,
            )
            for r in rows
        ]

    @staticmethod
    def _insert_samples(db: sqlite3.Connection, transaction_id: int, samples: Sequence[MeterSample]) -> int:
        rows = []
        for s in samples:
            if not isinstance(s, MeterSample):
                raise InvalidInput(f"samples must be MeterSample, got {s!r}")
            if (
                isinstance(s.value, bool)
                or not isinstance(s.value, int | float)
                or not math.isfinite(s.value)
                or abs(s.value) > MAX_SAMPLE_VALUE
            ):
                raise InvalidInput(
                    f"sample value must be a finite number of at most {MAX_SAMPLE_VALUE:g}, got {s.value!r}"
                )
            _text(s.measurand, "measurand", max_len=255)
            _opt_text(s.unit, "unit", max_len=255)
            _opt_text(s.phase, "phase", max_len=255)
            _opt_text(s.context, "context", max_len=255)
            _opt_text(s.location, "location", max_len=255)
            rows.append(
                (
                    transaction_id,
                    _ts(s.timestamp),
                    s.measurand,
                    s.phase or "",
                    s.location or "",
                    s.context or "",
                    s.unit or "",
                    float(s.value),
                )
            )
        before = db.total_changes
        # Samples are the same only when every identifying field is (a resent frame); samples that differ only
        # in location, context or unit are different readings.
        db.executemany(
            "INSERT OR IGNORE INTO meter_values "
            "(transaction_id, timestamp, measurand, phase, location, context, unit, value) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
        added = db.total_changes - before
        # The billing register is the charger's own meter: location Outlet, the default (OCPP 1.6 §7.45), not
        # what an EV or the inlet reports.
        latest = db.execute(
            "SELECT value, unit FROM meter_values WHERE transaction_id = ? AND measurand = ? AND phase = '' "
            "AND location IN ('', 'Outlet') AND unit IN ('Wh', 'kWh') ORDER BY timestamp DESC LIMIT 1",
            (transaction_id, ENERGY_REGISTER),
        ).fetchone()
        if latest is not None:
            scale = 1000 if latest["unit"] == "kWh" else 1
            db.execute(
                "UPDATE transactions SET last_meter_wh = ? WHERE id = ?",
                (round(latest["value"] * scale), transaction_id),
            )
        return added

    def stop_transaction(
        self,
        cp_id: str,
        transaction_id: int,
        meter_stop_wh: int,
        timestamp: datetime,
        reason: str | None,
        cost_fn: CostFn,
        *,
        samples: Sequence[MeterSample] = (),
    ) -> StopResult:
        """Stop, price and charge ``cp_id``'s own transaction in one SQLite transaction; a repeat charges nothing.

        Raises ForeignTransaction for another charger's transaction (nothing is written), UnknownTransaction
        for none.
        """
        _int(meter_stop_wh, "meter_stop_wh", low=0, high=MAX_METER_WH)
        at = _ts(timestamp)
        _opt_text(reason, "reason", max_len=255)
        with self._write() as db:
            row = self._own_transaction_row(db, cp_id, transaction_id)
            key = f"charge:{transaction_id}"
            if row["stopped_at"] is not None:
                charged = db.execute("SELECT * FROM ledger WHERE idempotency_key = ?", (key,)).fetchone()
                return StopResult(True, _transaction(row), None if charged is None else _entry(charged))
            self._insert_samples(db, transaction_id, samples)
            db.execute(
                "UPDATE transactions SET meter_stop_wh = ?, last_meter_wh = ?, stopped_at = ?, stop_reason = ? "
                "WHERE id = ?",
                (meter_stop_wh, meter_stop_wh, at, reason, transaction_id),
            )
            stopped = _transaction(
                db.execute("SELECT * FROM transactions WHERE id = ?", (transaction_id,)).fetchone()
            )
            cost_minor, cdr_json = cost_fn(stopped)
            _int(cost_minor, "cost_minor", low=0, high=MAX_AMOUNT_MINOR)
            try:
                json.loads(cdr_json)
            except (TypeError, ValueError) as exc:
                raise InvalidInput(f"cost_fn returned a CDR that is not JSON text: {exc}") from exc
            db.execute(
                "UPDATE transactions SET cost_minor = ?, cdr_json = ? WHERE id = ?",
                (cost_minor, cdr_json, transaction_id),
            )
            charge = None
            if self._card_row(db, stopped.id_tag) is not None:
                charge = self._post(
                    db, stopped.id_tag, LedgerKind.CHARGE, -cost_minor, key, transaction_id=transaction_id
                )
            final = db.execute("SELECT * FROM transactions WHERE id = ?", (transaction_id,)).fetchone()
            return StopResult(False, _transaction(final), charge)

    # -- security events

    def record_security_event(
        self,
        cp_id: str,
        kind: SecurityEventKind | str,
        detail: str,
        *,
        transaction_id: int | None = None,
        at: datetime | None = None,
    ) -> SecurityEvent:
        """Append a security event; only the newest MAX_SECURITY_EVENTS are kept."""
        value = _enum(SecurityEventKind, str(kind), "kind")
        _text(cp_id, "cp_id", max_len=MAX_TEXT_LENGTH)
        if transaction_id is not None:
            _int(transaction_id, "transaction_id", low=-(2**63), high=2**63 - 1)
        when = self._now() if at is None else _ts(at, "at")
        with self._write() as db:
            cur = db.execute(
                "INSERT INTO security_events (at, cp_id, kind, transaction_id, detail) VALUES (?, ?, ?, ?, ?)",
                (when, cp_id, value, transaction_id, detail[:1000]),
            )
            new_id = int(cur.lastrowid or 0)
            db.execute("DELETE FROM security_events WHERE id <= ?", (new_id - MAX_SECURITY_EVENTS,))
            return _security_event(
                db.execute("SELECT * FROM security_events WHERE id = ?", (new_id,)).fetchone()
            )

    def security_events(
        self, *, cp_id: str | None = None, kind: SecurityEventKind | str | None = None, limit: int = 100
    ) -> list[SecurityEvent]:
        """Security events newest first, optionally of one charger or one kind."""
        _int(limit, "limit", low=1, high=10_000)
        clauses: list[str] = []
        args: list[object] = []
        if cp_id is not None:
            clauses.append("cp_id = ?")
            args.append(cp_id)
        if kind is not None:
            clauses.append("kind = ?")
            args.append(_enum(SecurityEventKind, str(kind), "kind"))
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = self._read(f"SELECT * FROM security_events{where} ORDER BY id DESC LIMIT ?", [*args, limit])
        return [_security_event(r) for r in rows]

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
        self, payment_id: int, status: PaymentStatus | str, *, provider_ref: str | None = None
    ) -> PaymentUpdate:
        """Apply a provider callback; repeated or stale (already passed) statuses change nothing."""
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
            if payment.status in _reachable(target):
                # target == current, or a late callback for a state this payment has already left.
                if provider_ref is None or payment.provider_ref == provider_ref:
                    return PaymentUpdate(payment, changed=False)
                target = current
            elif target not in PAYMENT_TRANSITIONS[current]:
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

    # -- statistics

    def daily_stats(self, cp_id: str, from_date: date, to_date: date, tz: tzinfo) -> list[DailyStats]:
        """Per local day (inclusive range): Charging connector-time, and energy, sessions, fees of sessions
        that ended that day."""
        if to_date < from_date:
            raise InvalidInput(f"to_date {to_date} is before from_date {from_date}")
        if self.charger(cp_id) is None:
            raise UnknownCharger(f"unknown charger {cp_id!r}")
        days = [from_date + timedelta(days=n) for n in range((to_date - from_date).days + 1)]
        bounds = [
            datetime.combine(d, time(), tzinfo=tz).astimezone(UTC) for d in [*days, to_date + timedelta(1)]
        ]
        start, end = bounds[0], bounds[-1]
        charging = [0.0] * len(days)
        for a, b in self._charging_intervals(cp_id, start, min(end, self._clock().astimezone(UTC))):
            for i in range(len(days)):
                overlap = (min(b, bounds[i + 1]) - max(a, bounds[i])).total_seconds()
                if overlap > 0:
                    charging[i] += overlap
        energy = [0] * len(days)
        sessions = [0] * len(days)
        fees = [0] * len(days)
        index = {d: i for i, d in enumerate(days)}
        rows = self._read(
            "SELECT t.stopped_at, t.meter_start_wh, t.meter_stop_wh, "
            "(SELECT COALESCE(SUM(amount_minor), 0) FROM ledger l "
            " WHERE l.transaction_id = t.id AND l.kind IN ('charge', 'refund')) AS net "
            "FROM transactions t WHERE t.cp_id = ? AND t.stopped_at >= ? AND t.stopped_at < ?",
            (cp_id, _ts(start), _ts(end)),
        )
        for r in rows:
            i = index[_dt(r["stopped_at"]).astimezone(tz).date()]
            energy[i] += max(0, r["meter_stop_wh"] - r["meter_start_wh"])
            sessions[i] += 1
            fees[i] += -r["net"]
        return [DailyStats(d, charging[i], energy[i], sessions[i], fees[i]) for i, d in enumerate(days)]

    def _charging_intervals(
        self, cp_id: str, start: datetime, end: datetime
    ) -> list[tuple[datetime, datetime]]:
        """[a, b) spans within [start, end) during which a connector (> 0) was last reported Charging."""
        if end <= start:
            return []
        # SQLite returns the other columns of the row holding MAX() when it is the only aggregate.
        before = self._read(
            "SELECT connector_id, status, MAX(timestamp) AS timestamp FROM status_history "
            "WHERE cp_id = ? AND connector_id > 0 AND timestamp < ? GROUP BY connector_id",
            (cp_id, _ts(start)),
        )
        inside = self._read(
            "SELECT connector_id, status, timestamp FROM status_history "
            "WHERE cp_id = ? AND connector_id > 0 AND timestamp >= ? AND timestamp < ? "
            "ORDER BY connector_id, timestamp, id",
            (cp_id, _ts(start), _ts(end)),
        )
        timeline: dict[int, list[tuple[datetime, str]]] = {}
        for r in before:
            timeline.setdefault(r["connector_id"], []).append((start, r["status"]))
        for r in inside:
            timeline.setdefault(r["connector_id"], []).append((_dt(r["timestamp"]), r["status"]))
        spans = []
        for events in timeline.values():
            for (at, status), (nxt, _) in zip(events, [*events[1:], (end, "")], strict=True):
                if status == CHARGING and nxt > at:
                    spans.append((at, nxt))
        return spans

    def daily_stats_csv(self, cp_id: str, from_date: date, to_date: date, tz: tzinfo) -> str:
        """daily_stats as CSV text with a header row."""
        currency = self.currency()
        rows = [
            [
                s.day.isoformat(),
                f"{s.working_hours:.3f}",
                f"{s.energy_kwh:.3f}",
                s.sessions,
                s.fees_minor,
                currency,
            ]
            for s in self.daily_stats(cp_id, from_date, to_date, tz)
        ]
        return _csv(["date", "working_hours", "energy_kwh", "sessions", "fees_minor", "currency"], rows)

    def user_consumption(self, user_id: int) -> UserConsumption:
        """Finished sessions of all of a user's cards, oldest first, with totals."""
        if self.user(user_id) is None:
            raise UnknownUser(f"unknown user {user_id!r}")
        rows = self._read(
            "SELECT t.* FROM transactions t JOIN cards c ON t.id_tag = c.id_tag "
            "WHERE c.user_id = ? AND t.stopped_at IS NOT NULL ORDER BY t.started_at, t.id",
            (user_id,),
        )
        sessions = tuple(
            SessionSummary(
                transaction_id=tx.id,
                cp_id=tx.cp_id,
                connector_id=tx.connector_id,
                id_tag=tx.id_tag,
                started_at=tx.started_at,
                stopped_at=tx.stopped_at or tx.started_at,
                energy_wh=tx.energy_wh,
                cost_minor=tx.cost_minor or 0,
            )
            for tx in map(_transaction, rows)
        )
        return UserConsumption(
            user_id=user_id,
            sessions=sessions,
            energy_wh=sum(s.energy_wh for s in sessions),
            cost_minor=sum(s.cost_minor for s in sessions),
        )

    def user_consumption_csv(self, user_id: int) -> str:
        """user_consumption as CSV text: one row per session."""
        currency = self.currency()
        rows = [
            [
                s.transaction_id,
                s.cp_id,
                s.connector_id,
                s.id_tag,
                s.started_at.isoformat(),
                s.stopped_at.isoformat(),
                f"{s.energy_wh / 1000:.3f}",
                s.cost_minor,
                currency,
            ]
            for s in self.user_consumption(user_id).sessions
        ]
        header = ["transaction_id", "cp_id", "connector_id", "id_tag", "started_at", "stopped_at"]
        return _csv([*header, "energy_kwh", "cost_minor", "currency"], rows)
